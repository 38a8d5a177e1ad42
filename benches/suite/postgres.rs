//! A PostgreSQL server of the suite's own, for rows 7 and 8: Debian's binaries (the
//! newest under /usr/lib/postgresql), a data folder in the run's folder, a free loopback
//! port, and `pg_stat_statements` loaded so that the statements the service sends can be
//! counted. As root (CI), initdb, pg_ctl and the server run as the unprivileged user
//! `pgtest` (`runuser`), since PostgreSQL refuses to run as root; otherwise as this user.
//! The server's settings are the defaults (fsync and synchronous commit on), apart from
//! the listen address, the socket folder and the preloaded library.
//!
//! Stopped when dropped (also when a row panics: the unwinding drops it); the data
//! folder goes with it, the server's log stays with the run's logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys::{free_port, quantile};
use std::time::{Duration, Instant};

/// The unprivileged user the server runs as when the suite runs as root.
const USER: &str = "pgtest";

pub struct Postgres {
    bin: PathBuf,
    /// The run's folder for it: the data folder, the socket, the log.
    dir: PathBuf,
    data: PathBuf,
    /// `Some(USER)` when the suite runs as root.
    user: Option<&'static str>,
    pub port: u16,
    /// The server's `-o` options.
    options: String,
    /// Connected to the `postgres` database: the suite's own queries, which therefore
    /// are not counted with the service's.
    admin: sqlx::PgPool,
    running: bool,
}

/// The newest PostgreSQL's binaries, if any are installed.
fn binaries() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no PostgreSQL binaries (/usr/lib/postgresql: apt-get install postgresql)")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no PostgreSQL binaries under /usr/lib/postgresql/*/bin".to_owned())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(uid.split_whitespace().next()? == "0")
        })
        .unwrap_or(false)
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{what} failed: {}", stderr.trim()))
    }
}

impl Postgres {
    /// Initialises and starts a server in `parent/postgres`, and loads
    /// `pg_stat_statements`; why not, when it cannot.
    pub async fn start(parent: &Path) -> Result<Postgres, String> {
        let bin = binaries()?;
        let user = if is_root() {
            let known = Command::new("id")
                .arg(USER)
                .output()
                .is_ok_and(|o| o.status.success());
            if !known {
                return Err(format!(
                    "running as root needs the unprivileged user {USER} (useradd -r -M {USER})"
                ));
            }
            Some(USER)
        } else {
            None
        };
        let dir = parent.join("postgres");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(user) = user {
            let mut chown = Command::new("chown");
            chown.arg(user).arg(&dir);
            run(chown, "chown")?;
        }
        let data = dir.join("data");
        let port = free_port();
        let tool = |name: &str| {
            let mut command = match user {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(bin.join(name));
                    c
                }
                None => Command::new(bin.join(name)),
            };
            command.current_dir(&dir);
            command
        };
        let mut initdb = tool("initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c shared_preload_libraries=pg_stat_statements",
            dir.display()
        );
        run(
            start_command(tool("pg_ctl"), &data, &dir, &options),
            "pg_ctl start",
        )?;
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let admin = match sqlx::PgPool::connect(&url).await {
            Ok(pool) => pool,
            Err(e) => {
                let mut stop = tool("pg_ctl");
                stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
                let _ = run(stop, "pg_ctl stop");
                return Err(format!("cannot connect to the suite's PostgreSQL: {e}"));
            }
        };
        let pg = Postgres {
            bin,
            dir,
            data,
            user,
            port,
            options,
            admin,
            running: true,
        };
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pg.admin)
            .await
            .map_err(|e| format!("CREATE EXTENSION pg_stat_statements: {e}"))?;
        Ok(pg)
    }

    /// `postgres --version`, for the raw output.
    pub fn version(&self) -> String {
        Command::new(self.bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// A new database for one row: the service's statements there are counted apart.
    pub async fn database(&self, name: &str) -> Database {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Database {
            name: name.to_owned(),
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            admin: self.admin.clone(),
        }
    }

    /// Medians over `n` each, on one connection of the suite's (not counted with the
    /// service's): a one-row INSERT committed on its own (a WAL flush to disk), and
    /// `SELECT 1` (a round trip). What a statement of the service costs at least.
    pub async fn probe(&self, n: usize) -> (Duration, Duration) {
        let mut conn = self.admin.acquire().await.expect("a connection");
        sqlx::query("CREATE TABLE IF NOT EXISTS suite_probe (i integer)")
            .execute(&mut *conn)
            .await
            .expect("CREATE TABLE");
        let (mut commits, mut trips) = (Vec::new(), Vec::new());
        for i in 0..n {
            let start = Instant::now();
            sqlx::query("INSERT INTO suite_probe VALUES ($1)")
                .bind(i32::try_from(i).unwrap_or(0))
                .execute(&mut *conn)
                .await
                .expect("INSERT");
            commits.push(start.elapsed());
            let start = Instant::now();
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("SELECT 1");
            trips.push(start.elapsed());
        }
        (quantile(&mut commits, 0.5), quantile(&mut trips, 0.5))
    }

    /// `pg_ctl`, as the user the server runs as.
    fn pg_ctl(&self) -> Command {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(pg_ctl);
                c
            }
            None => Command::new(pg_ctl),
        };
        command.current_dir(&self.dir);
        command
    }

    /// Stops the server (fast shutdown: sessions are ended), keeping its data, for
    /// [`Postgres::start_again`]: an outage under the service.
    pub fn stop_server(&self) -> Result<(), String> {
        let mut command = self.pg_ctl();
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        run(command, "pg_ctl stop")
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn start_again(&self) -> Result<(), String> {
        let command = start_command(self.pg_ctl(), &self.data, &self.dir, &self.options);
        run(command, "pg_ctl start")
    }

    fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        // Already stopped by an outage that did not end (a failed start): nothing to say.
        if let Err(e) = self.stop_server()
            && !e.contains("Is server running?")
        {
            eprintln!("the suite's PostgreSQL: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `pg_ctl start` of the data folder `data`, logging to `dir/postgres.log`, waiting (at
/// most 60 s) until it accepts connections.
fn start_command(mut pg_ctl: Command, data: &Path, dir: &Path, options: &str) -> Command {
    pg_ctl
        .arg("-D")
        .arg(data)
        .args(["-o", options, "-l"])
        .arg(dir.join("postgres.log"))
        .args(["-w", "-t", "60", "start"]);
    pg_ctl
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One database of the suite's server, and what it counts of the statements sent to it.
pub struct Database {
    pub name: String,
    /// `WABA_STORE` for the service.
    pub url: String,
    admin: sqlx::PgPool,
}

/// The server's counters for one database at one moment.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// `pg_stat_statements`: calls per statement (normalised text), summed.
    pub by_statement: HashMap<String, u64>,
    /// `pg_stat_database.xact_commit`: sessions report it when idle, at most once a
    /// second (a backend busy all the time reports it up to 10 s late).
    pub commits: u64,
}

impl Counters {
    pub fn statements(&self) -> u64 {
        self.by_statement.values().sum()
    }

    /// What happened between `before` and `self`: statements, commits, and the
    /// statements by calls, most first.
    pub fn since(&self, before: &Counters) -> Delta {
        let mut top: Vec<(u64, String)> = self
            .by_statement
            .iter()
            .map(|(query, calls)| {
                let was = before.by_statement.get(query).copied().unwrap_or(0);
                (calls.saturating_sub(was), query.clone())
            })
            .filter(|(calls, _)| *calls > 0)
            .collect();
        top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Delta {
            statements: self.statements().saturating_sub(before.statements()),
            commits: self.commits.saturating_sub(before.commits),
            top,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Delta {
    pub statements: u64,
    pub commits: u64,
    pub top: Vec<(u64, String)>,
}

impl Delta {
    /// The `n` most called statements, one line each, for the raw output.
    pub fn top_lines(&self, n: usize, per: impl Fn(u64) -> String) -> Vec<String> {
        self.top
            .iter()
            .take(n)
            .map(|(calls, query)| {
                let mut text: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                if text.chars().count() > 110 {
                    text = text.chars().take(107).collect::<String>() + "...";
                }
                format!("{calls:>7} ({}) {text}", per(*calls))
            })
            .collect()
    }
}

impl Database {
    pub async fn counters(&self) -> Counters {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT s.calls, s.query FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        )
        .bind(&self.name)
        .fetch_all(&self.admin)
        .await
        .expect("pg_stat_statements answers");
        let mut by_statement = HashMap::new();
        for (calls, query) in rows {
            *by_statement.entry(query).or_insert(0) += u64::try_from(calls).unwrap_or(0);
        }
        let commits: i64 =
            sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                .bind(&self.name)
                .fetch_one(&self.admin)
                .await
                .expect("pg_stat_database answers");
        Counters {
            by_statement,
            commits: u64::try_from(commits).unwrap_or(0),
        }
    }
}
