//! A PostgreSQL server of the test's own, to stop and start under the service (the one in
//! `WABA_TEST_POSTGRES_URL` is shared by every other test: never stopped). It is the
//! newest `/usr/lib/postgresql/*/bin` in a temporary folder, on a free loopback port,
//! trusting local connections. As root (CI) `initdb` and `pg_ctl` run as the
//! unprivileged user `pgtest` (PostgreSQL refuses to run as root; .ci/run creates the
//! user), otherwise as the test's user. Without the binaries a test says so and passes,
//! unless `WABA_TEST_POSTGRES_REQUIRED` is set (as for [`super::StoreFixture`]).

use super::POSTGRES_REQUIRED_VAR;
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// Who runs the server when the tests run as root.
const PG_USER: &str = "pgtest";

/// A PostgreSQL server in a temporary folder; stopped (immediately) when dropped.
pub struct OwnPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_root: bool,
}

impl OwnPostgres {
    /// A new database cluster, not started; `None` (after saying so) without PostgreSQL's
    /// binaries.
    pub fn init() -> Option<OwnPostgres> {
        let Some(bin) = newest_bin() else {
            if std::env::var_os(POSTGRES_REQUIRED_VAR).is_some() {
                panic!("{POSTGRES_REQUIRED_VAR} is set but no /usr/lib/postgresql/*/bin/pg_ctl");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "own PostgreSQL: SKIPPED (no /usr/lib/postgresql/*/bin/pg_ctl)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_root = is_root();
        if as_root {
            let chowned = Command::new("chown")
                .args(["-R", PG_USER])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chowned.success(), "chown {PG_USER} {:?}", dir.path());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let pg = OwnPostgres {
            dir,
            bin,
            port,
            as_root,
        };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"]);
        Some(pg)
    }

    /// The URL to reach it, as `WABA_STORE` takes it.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it (the same folder, the same port each time); returns once it accepts
    /// connections.
    pub async fn start(&self) {
        let (data, socket, log) = (self.data(), self.path(""), self.path("log"));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {socket} -c fsync=off",
            self.port
        );
        let args = ["-D", &data, "-o", &options, "-l", &log, "-w", "start"];
        self.run_async("pg_ctl", &args).await;
    }

    /// Stops it as an operator does for maintenance: `pg_ctl stop -m fast` (sessions
    /// are cut, the server is gone when it returns).
    pub async fn stop(&self) {
        let data = self.data();
        self.run_async("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await;
    }

    fn data(&self) -> String {
        self.path("data")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", PG_USER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program, args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn run_async(&self, program: &str, args: &[&str]) {
        let command = self.command(program, args);
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.path("log")).unwrap_or_default()
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // Whatever the test did: no server outlives it (a stopped one says so, harmlessly).
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// The newest installed PostgreSQL's `bin` folder (`sort -V`: 15 before 16 before 17).
fn newest_bin() -> Option<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}
