//! The benchmark suite (issue 8, section 3): every row measured in one run on one
//! machine, as a ratio against a baseline measured in the same run, next to its target.
//!
//! bench/run.sh                 the whole suite on the release binary (a few minutes)
//! bench/run.sh --smoke         tiny counts on the debug binary, in seconds (CI)
//! cargo bench --bench suite -- --rows 1,4     some rows only
//!
//! Rows 7 and 8 (replicas on one PostgreSQL store) start a PostgreSQL of their own
//! (`postgres.rs`; Debian's `postgresql` package, run as the user `pgtest` when the
//! suite runs as root) and are skipped, saying why, without one.
//!
//! The service, the simulated Graph API (`waba-numbers sandbox-graph`) and the baseline
//! parts run as separate processes; CPU time and RSS come from /proc. This binary is
//! also the parts: `suite echo` (a trivial tonic server) and `suite get ...` (a reqwest
//! client), re-executed by the suite. Load comes from h2load (fixed request body, so one
//! number) or from tonic clients in this process (many numbers, streams).
//!
//! The soak (`suite soak [--duration 10m] [--smoke]`, bench/soak.sh): three replicas
//! on PostgreSQL under a steady mix of calls with faults on a schedule (`soak.rs`).
//!
//! For profiling the service under row 1's concurrent load: `suite drive HOST:PORT TOTAL
//! CONCURRENCY` makes TOTAL GetStatus calls of the bench WABA's first CONCURRENCY numbers.

mod fleet;
mod h2load;
mod parts;
mod postgres;
mod rows;
mod soak;
mod sys;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

/// What one run measures: the full suite, or a smoke run that only proves it works.
#[derive(Debug, Clone)]
pub struct Profile {
    pub smoke: bool,
    /// Interleaved repetitions of rows 1 and 2; medians are reported.
    pub rounds: usize,
    /// Row 1: calls per measurement, one at a time.
    pub cpu_calls: u64,
    /// Row 1: the fixed rate of the latency measurement, and for how long.
    pub rate: u32,
    pub rate_calls: u64,
    /// Row 2: requests per measurement, connections and streams per connection.
    pub load_requests: u64,
    pub load_connections: u32,
    pub load_streams: u32,
    /// Row 3: the Ks, the numbers, and how long each load runs.
    pub quota_ks: Vec<usize>,
    pub quota_numbers: usize,
    pub quota_secs: f64,
    /// Row 4.
    pub watch_streams: usize,
    pub watch_connections: usize,
    pub watch_hold: Duration,
    /// Row 5: concurrency (and distinct numbers), upstream latency, duration.
    pub slow_concurrency: usize,
    pub slow_latency: Duration,
    pub slow_secs: f64,
    /// Row 6: starts measured per binary.
    pub starts: usize,
    /// Row 7: sandbox customers (a WABA of 3 numbers each) watched, the replicas'
    /// `--watch-interval`, how long after the first snapshots the window starts at the
    /// earliest, and its length.
    pub fleet_wabas: usize,
    pub fleet_interval: Duration,
    pub fleet_settle: Duration,
    pub fleet_window: Duration,
    /// Row 8: Registers measured on each store, after this many to warm up.
    pub register_calls: usize,
    pub register_warmup: usize,
}

impl Profile {
    fn full() -> Profile {
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Profile {
            smoke: false,
            rounds: 3,
            cpu_calls: 10_000,
            rate: 200,
            rate_calls: 1_000,
            load_requests: 100_000,
            load_connections: 4,
            load_streams: 32,
            quota_ks: vec![1, 100, 1_000],
            quota_numbers: 10,
            quota_secs: 3.0,
            watch_streams: env("STREAMS", 10_000) as usize,
            watch_connections: env("CONNECTIONS", 20) as usize,
            watch_hold: Duration::from_secs(env("HOLD_SECS", 30)),
            slow_concurrency: 1_000,
            slow_latency: Duration::from_millis(200),
            slow_secs: 5.0,
            starts: 5,
            fleet_wabas: env("WABAS", 1_000) as usize,
            fleet_interval: Duration::from_secs(env("WATCH_INTERVAL_SECS", 10)),
            fleet_settle: Duration::from_secs(30),
            fleet_window: Duration::from_secs(env("WINDOW_SECS", 60)),
            register_calls: 500,
            register_warmup: 20,
        }
    }

    fn smoke() -> Profile {
        Profile {
            smoke: true,
            rounds: 1,
            cpu_calls: 300,
            rate: 100,
            rate_calls: 50,
            load_requests: 2_000,
            load_connections: 2,
            load_streams: 8,
            quota_ks: vec![1, 10],
            quota_numbers: 3,
            quota_secs: 1.1,
            watch_streams: 100,
            watch_connections: 2,
            watch_hold: Duration::from_secs(1),
            slow_concurrency: 50,
            slow_latency: Duration::from_millis(50),
            slow_secs: 1.0,
            starts: 2,
            fleet_wabas: 20,
            fleet_interval: Duration::from_secs(2),
            fleet_settle: Duration::from_secs(6),
            fleet_window: Duration::from_secs(5),
            register_calls: 20,
            register_warmup: 3,
        }
    }
}

/// One line of the table. `pass` is `None` for figures reported without a target.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub measured: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub pass: Option<bool>,
}

impl Row {
    pub fn skipped(name: &str, why: &str) -> Row {
        Row {
            name: name.to_owned(),
            measured: format!("not measured: {why}"),
            baseline: String::new(),
            ratio: None,
            target: String::new(),
            pass: None,
        }
    }
}

fn print_table(rows: &[Row], smoke: bool) {
    println!();
    println!("| row | measured | baseline | ratio | target | result |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let ratio = row.ratio.map_or(String::from("—"), |r| format!("{r:.2}"));
        let result = match (row.pass, smoke) {
            (None, _) => "—",
            (Some(_), true) => "(smoke)",
            (Some(true), false) => "pass",
            (Some(false), false) => "**MISS**",
        };
        println!(
            "| {} | {} | {} | {ratio} | {} | {result} |",
            row.name, row.measured, row.baseline, row.target
        );
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes --bench; the modes come first.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runtime = || tokio::runtime::Runtime::new().unwrap();
    match args.first().map(String::as_str) {
        Some("echo") => {
            runtime().block_on(parts::echo());
            return ExitCode::SUCCESS;
        }
        Some("get") => {
            runtime().block_on(parts::get(&args[1..]));
            return ExitCode::SUCCESS;
        }
        Some("soak") => {
            let options = soak::Options::parse(&args[1..]);
            let passed = runtime().block_on(async {
                let bench = rows::Bench::new(&Profile::full());
                bench.describe();
                let passed = soak::run(&bench, &options).await;
                if passed {
                    let _ = std::fs::remove_dir_all(&bench.dir);
                }
                passed
            });
            return if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some("drive") => {
            runtime().block_on(rows::drive_mode(&args[1..]));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let smoke =
        args.iter().any(|a| a == "--smoke") || std::env::var("SMOKE").is_ok_and(|v| v == "1");
    let only: Option<Vec<u32>> = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map(|list| {
            list.split(',')
                .filter_map(|r| r.trim().parse().ok())
                .collect()
        });
    let profile = if smoke {
        Profile::smoke()
    } else {
        Profile::full()
    };
    let wanted = |row: u32| only.as_ref().is_none_or(|rows| rows.contains(&row));

    let rows = runtime().block_on(async {
        let bench = rows::Bench::new(&profile);
        bench.describe();
        let mut table = Vec::new();
        if wanted(1) {
            table.extend(bench.proxy_cost().await);
        }
        if wanted(2) {
            table.extend(bench.cached_throughput().await);
        }
        if wanted(3) {
            table.extend(bench.quota_economy().await);
        }
        if wanted(4) {
            table.push(watch::row(&bench).await);
        }
        if wanted(5) {
            table.push(bench.slow_upstream().await);
        }
        if wanted(6) {
            table.extend(bench.startup_and_size().await);
        }
        if wanted(7) || wanted(8) {
            table.extend(fleet::rows(&bench, wanted(7), wanted(8)).await);
        }
        // Kept when a row fails (a panic ends the run before this), for its logs.
        let _ = std::fs::remove_dir_all(&bench.dir);
        table
    });
    print_table(&rows, smoke);
    let missed = rows.iter().filter(|r| r.pass == Some(false)).count();
    if smoke {
        println!("\nsmoke run: every row ran; figures from a debug build are not judged");
        ExitCode::SUCCESS
    } else if missed > 0 {
        println!("\n{missed} target(s) missed");
        ExitCode::from(3)
    } else {
        println!("\nevery target met");
        ExitCode::SUCCESS
    }
}
