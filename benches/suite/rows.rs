//! Rows 1, 2, 3, 5 and 6, and the processes they run.

use crate::h2load::{self, Load};
use crate::parts::{GetResult, TOKEN};
use crate::sys::{self, Proc, free_port, local, median, quantile};
use crate::{Profile, Row};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use waba_numbers::pb::phone_number_service_client::PhoneNumberServiceClient;
use waba_numbers::pb::{self, EventSource};
use waba_numbers::sandbox::{CALLS_PATH, bench_number_id};

/// The binary under test: `WABA_BENCH_BIN` (bench/run.sh passes a copy of what `cargo
/// build --release` made: cargo builds the one it gives benches with the dev-dependencies'
/// features too), else the one cargo built for this bench.
pub fn bin() -> &'static str {
    static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("WABA_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_waba-numbers").to_owned())
    });
    &BIN
}

pub type Client = PhoneNumberServiceClient<Channel>;

/// A GetStatus with the default staleness (the service's cache TTL).
pub fn get_status_request(id: &str) -> pb::GetStatusRequest {
    pb::GetStatusRequest {
        phone_number_id: id.to_owned(),
        max_staleness: None,
    }
}

pub struct Bench {
    pub profile: Profile,
    /// Request bodies, h2load logs and the servers' logs.
    pub dir: PathBuf,
    /// Whether the service has a read cache (`--cache-ttl`).
    pub cache: bool,
}

/// The simulated Graph API as its own process: no quota, the bench WABA.
pub struct Graph {
    pub proc: Proc,
    pub addr: SocketAddr,
}

/// What the simulated Graph API counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Calls {
    pub total: u64,
    pub node: u64,
}

impl Graph {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Calls {
        let body = sys::http_get(self.addr, CALLS_PATH).expect("the call counter answers");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        Calls {
            total: json["total"].as_u64().unwrap(),
            node: json["endpoints"]["node"].as_u64().unwrap(),
        }
    }
}

/// The service under test, against `graph_url`.
pub struct Service {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Service {
    /// gRPC calls of `method` answered OK, from the service's /metrics.
    pub fn ok_count(&self, method: &str) -> u64 {
        let metrics = sys::http_get(self.http, "/metrics").expect("/metrics answers");
        let labels = [format!("method=\"{method}\""), "code=\"OK\"".to_owned()];
        metrics
            .lines()
            .filter(|l| l.starts_with("waba_grpc_requests_total{"))
            .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub async fn client(&self) -> Client {
        Client::new(channel(self.grpc).await)
    }

    /// `connections` clients, each on its own HTTP/2 connection.
    pub async fn clients(&self, connections: usize) -> Vec<Client> {
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            clients.push(self.client().await);
        }
        clients
    }
}

pub struct Echo {
    pub proc: Proc,
    pub addr: SocketAddr,
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// Asks `addr` for health until it answers SERVING.
pub async fn wait_serving(addr: SocketAddr, within: Duration) {
    wait_serving_service(addr, "", within).await;
}

/// Asks `addr` for the health of `service` ("" for the server's) until it is SERVING.
pub async fn wait_serving_service(addr: SocketAddr, service: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let connected = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(100))
            .connect()
            .await;
        if let Ok(channel) = connected {
            let request = HealthCheckRequest {
                service: service.to_owned(),
            };
            if let Ok(answer) = HealthClient::new(channel).check(request).await
                && answer.into_inner().status() == ServingStatus::Serving
            {
                return;
            }
        }
        assert!(
            start.elapsed() < within,
            "{addr}: {service:?} not SERVING after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Row 1's concurrent measurement: this many calls in flight, each on its own number.
const PROXY_CONCURRENCY: usize = 16;

/// `total` GetStatus calls over one HTTP/2 connection (as h2load -c 1), one task per id,
/// each calling for its own number until the total is reached.
async fn drive(addr: SocketAddr, ids: &[String], total: u64) {
    let client = Client::new(channel(addr).await);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (mut client, next, id) = (client.clone(), next.clone(), id.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    client.get_status(get_status_request(&id)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// `drive HOST:PORT TOTAL CONCURRENCY`: row 1's concurrent load on its own, for a profiler.
pub async fn drive_mode(args: &[String]) {
    let [addr, total, concurrency] = args else {
        panic!("usage: drive HOST:PORT TOTAL CONCURRENCY");
    };
    let concurrency: usize = concurrency.parse().unwrap();
    let ids: Vec<String> = (1..=concurrency).map(bench_number_id).collect();
    let start = Instant::now();
    drive(addr.parse().unwrap(), &ids, total.parse().unwrap()).await;
    println!("{total} GetStatus in {:.2?}", start.elapsed());
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn per_call(cpu: Duration, calls: u64) -> Duration {
    cpu / calls.max(1) as u32
}

impl Bench {
    pub fn new(profile: &Profile) -> Bench {
        let dir = std::env::temp_dir().join(format!("waba-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let help = Command::new(bin())
            .arg("--help")
            .output()
            .expect("the binary runs");
        let cache = String::from_utf8_lossy(&help.stdout).contains("--cache-ttl");
        Bench {
            profile: profile.clone(),
            dir,
            cache,
        }
    }

    pub fn describe(&self) {
        let p = &self.profile;
        println!(
            "waba-numbers benchmark suite ({}), binary {}",
            if p.smoke { "smoke" } else { "full" },
            bin()
        );
        println!(
            "  read cache: {}; open files limit {}; logs in {} (removed after a run that completes)",
            if self.cache {
                "yes (--cache-ttl)"
            } else {
                "none on this build"
            },
            sys::open_files_limit(),
            self.dir.display()
        );
    }

    fn log(&self, name: &str) -> Stdio {
        Stdio::from(std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap())
    }

    /// `waba-numbers sandbox-graph`, quota off, with the bench WABA.
    pub async fn graph(&self, latency: Duration, bench_numbers: usize) -> Graph {
        let addr = local(free_port());
        let mut command = Command::new(bin());
        command
            .args(["sandbox-graph", "--listen", &addr.to_string(), "--no-quota"])
            .args(["--latency", &format!("{}ms", latency.as_millis())])
            .args(["--bench-numbers", &bench_numbers.to_string()])
            .env("RUST_LOG", "warn")
            .env_remove("WABA_APP_SECRET")
            .stdout(Stdio::null())
            .stderr(self.log("sandbox-graph"));
        let mut proc = Proc::spawn("sandbox-graph", &mut command);
        sys::wait_until("sandbox-graph", Duration::from_secs(10), || {
            proc.check_alive();
            sys::http_get(addr, CALLS_PATH).is_some()
        });
        Graph { proc, addr }
    }

    /// The service on `graph` with `args`, its token from the environment, at the
    /// default log level.
    pub async fn service(&self, name: &str, graph: &Graph, args: &[&str]) -> Service {
        self.service_env(name, graph, args, &[]).await
    }

    /// The same, with `env` set (a store, say).
    pub async fn service_env(
        &self,
        name: &str,
        graph: &Graph,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Service {
        let (grpc, http) = (local(free_port()), local(free_port()));
        self.service_at(name, grpc, http, &graph.url(), args, env)
            .await
    }

    /// The same on given addresses, against the Graph API at `graph_url`: a replica
    /// started again where it was.
    pub async fn service_at(
        &self,
        name: &str,
        grpc: SocketAddr,
        http: SocketAddr,
        graph_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Service {
        let mut command = self.service_command(grpc, http, args);
        command.args(["--graph-url", graph_url]);
        command.envs(env.iter().copied());
        command.stderr(self.log(name));
        let mut proc = Proc::spawn(name, &mut command);
        wait_serving(grpc, Duration::from_secs(20)).await;
        proc.check_alive();
        Service { proc, grpc, http }
    }

    fn service_command(&self, grpc: SocketAddr, http: SocketAddr, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args([
                "--listen",
                &grpc.to_string(),
                "--http-listen",
                &http.to_string(),
            ])
            .args(args)
            .env("WABA_ACCESS_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("WABA_ACCESS_TOKEN_FILE")
            .env_remove("WABA_APP_SECRET")
            .env_remove("WABA_CACHE_TTL")
            .env_remove("WABA_WATCH_INTERVAL")
            .stdout(Stdio::null());
        command
    }

    /// Service flags for an uncached GetStatus (every call reads the Graph API).
    fn uncached(&self) -> Vec<&'static str> {
        if self.cache {
            vec!["--cache-ttl", "0"]
        } else {
            Vec::new()
        }
    }

    pub async fn echo(&self) -> Echo {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .arg("echo")
            .stdout(Stdio::piped())
            .stderr(self.log("echo"));
        let mut proc = Proc::spawn("echo", &mut command);
        let port: u16 = proc.read_line_starting("listening ").parse().unwrap();
        let addr = local(port);
        wait_serving(addr, Duration::from_secs(10)).await;
        Echo { proc, addr }
    }

    /// The reqwest part: `count` GETs of one number, `concurrency` at a time or at `rate`.
    fn get_part(&self, graph: &Graph, count: u64, concurrency: u64, rate: u32) -> GetResult {
        let output = Command::new(std::env::current_exe().unwrap())
            .arg("get")
            .arg(graph.url())
            .arg(bench_number_id(1))
            .args([count.to_string(), concurrency.to_string(), rate.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "the get part failed");
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("result "))
            .expect("the get part prints its result");
        let result = GetResult::parse(line);
        assert_eq!(result.ok, count, "every GET succeeded");
        result
    }

    fn body(&self, id: &str) -> PathBuf {
        h2load::frame(&self.dir, &format!("get-{id}.bin"), &get_status_request(id))
    }

    /// Runs h2load against the service and checks every call was OK server-side.
    fn load_service(&self, service: &Service, body: &Path, load: Load) -> h2load::Outcome {
        let before = service.ok_count("GetStatus");
        let outcome = h2load::run(service.grpc, body, load);
        let ok = service.ok_count("GetStatus") - before;
        assert!(
            outcome.failed == 0 && ok == outcome.succeeded,
            "GetStatus under load: h2load {} succeeded, {} failed; service {} OK",
            outcome.succeeded,
            outcome.failed,
            ok
        );
        outcome
    }

    /// Row 1: CPU per uncached GetStatus against the sum of the bare parts, one call at
    /// a time (h2load) and `PROXY_CONCURRENCY` at a time on as many distinct numbers (a
    /// tonic client: identical concurrent reads would share one Graph call); latency added.
    pub async fn proxy_cost(&self) -> Vec<Row> {
        let p = &self.profile;
        let graph = self.graph(Duration::ZERO, PROXY_CONCURRENCY).await;
        let service = self.service("service-row1", &graph, &self.uncached()).await;
        let echo = self.echo().await;
        let body = self.body(&bench_number_id(1));
        let one_at_a_time = |requests| Load::Count {
            requests,
            connections: 1,
            streams: 1,
        };
        let ids: Vec<String> = (1..=PROXY_CONCURRENCY).map(bench_number_id).collect();
        self.load_service(&service, &body, one_at_a_time(200));
        h2load::run(echo.addr, &body, one_at_a_time(200));
        drive(service.grpc, &ids, 200).await;
        drive(echo.addr, &ids, 200).await;

        let n = p.cpu_calls;
        let mut rows = Vec::new();
        for concurrency in [1, PROXY_CONCURRENCY] {
            let (mut svc, mut echoed, mut got) = (Vec::new(), Vec::new(), Vec::new());
            for round in 1..=p.rounds {
                let calls_before = graph.calls().node;
                let ok_before = service.ok_count("GetStatus");
                let cpu_before = service.proc.cpu();
                if concurrency == 1 {
                    self.load_service(&service, &body, one_at_a_time(n));
                } else {
                    drive(service.grpc, &ids, n).await;
                }
                let svc_cpu = service.proc.cpu() - cpu_before;
                assert_eq!(service.ok_count("GetStatus") - ok_before, n);
                let upstream = graph.calls().node - calls_before;
                assert_eq!(upstream, n, "every GetStatus read the Graph API once");
                svc.push(per_call(svc_cpu, n));

                let cpu_before = echo.proc.cpu();
                if concurrency == 1 {
                    let outcome = h2load::run(echo.addr, &body, one_at_a_time(n));
                    assert_eq!(outcome.succeeded, n);
                } else {
                    drive(echo.addr, &ids, n).await;
                }
                echoed.push(per_call(echo.proc.cpu() - cpu_before, n));

                let get = self.get_part(&graph, n, concurrency as u64, 0);
                got.push(per_call(get.cpu, n));
                println!(
                    "  raw row 1 round {round}: {n} calls, {concurrency} at a time: service CPU \
                     {svc_cpu:?} ({}/call, {upstream} Graph calls), echo {}/call, reqwest GET \
                     {}/call ({n} in {:.2?})",
                    micros(svc[round - 1]),
                    micros(echoed[round - 1]),
                    micros(got[round - 1]),
                    get.elapsed,
                );
            }
            let (svc, echoed, got) = (median(&svc), median(&echoed), median(&got));
            let parts = echoed + got;
            let ratio = parts.as_secs_f64() / svc.as_secs_f64();
            rows.push(Row {
                name: if concurrency == 1 {
                    "1. proxy cost: CPU per uncached GetStatus, one at a time".into()
                } else {
                    format!("1. proxy cost: CPU per uncached GetStatus, {concurrency} at a time")
                },
                measured: format!("service {}", micros(svc)),
                baseline: format!(
                    "parts {} (echo {} + GET {})",
                    micros(parts),
                    micros(echoed),
                    micros(got)
                ),
                ratio: Some(ratio),
                target: "parts ÷ service ≥ 0.8".into(),
                pass: Some(ratio >= 0.8),
            });
        }

        // Latency added at a moderate fixed rate, one call at a time.
        let rate = Load::Rate {
            per_sec: p.rate,
            requests: p.rate_calls,
        };
        let mut svc_lat = self.load_service(&service, &body, rate).latencies;
        let mut echo_lat = h2load::run(echo.addr, &body, rate).latencies;
        let get = self.get_part(&graph, p.rate_calls, 1, p.rate);
        let (s50, s99) = (quantile(&mut svc_lat, 0.5), quantile(&mut svc_lat, 0.99));
        let (e50, e99) = (quantile(&mut echo_lat, 0.5), quantile(&mut echo_lat, 0.99));
        let added = |s: Duration, e: Duration, g: Duration| {
            (s.as_secs_f64() - e.as_secs_f64() - g.as_secs_f64()) * 1e6
        };
        println!(
            "  raw row 1 latency at {}/s, {} calls: service p50 {} p99 {}; echo p50 {} p99 {}; \
             reqwest GET p50 {} p99 {}",
            p.rate,
            p.rate_calls,
            micros(s50),
            micros(s99),
            micros(e50),
            micros(e99),
            micros(get.p50),
            micros(get.p99)
        );
        rows.push(Row {
            name: format!("1. latency added at {}/s (p50 / p99)", p.rate),
            measured: format!(
                "{:.0} / {:.0} µs",
                added(s50, e50, get.p50),
                added(s99, e99, get.p99)
            ),
            baseline: format!(
                "service {:.0} / {:.0} µs; echo + GET {:.0} / {:.0} µs",
                s50.as_secs_f64() * 1e6,
                s99.as_secs_f64() * 1e6,
                (e50 + get.p50).as_secs_f64() * 1e6,
                (e99 + get.p99).as_secs_f64() * 1e6
            ),
            ratio: None,
            target: "reported".into(),
            pass: None,
        });
        rows
    }

    /// Row 2: cached GetStatus throughput against the echo, same h2load load.
    pub async fn cached_throughput(&self) -> Vec<Row> {
        let name = "2. cached GetStatus throughput";
        if !self.cache {
            return vec![Row::skipped(name, "this build has no read cache")];
        }
        let p = &self.profile;
        let graph = self.graph(Duration::ZERO, 1).await;
        let service = self.service("service-row2", &graph, &[]).await;
        let echo = self.echo().await;
        let body = self.body(&bench_number_id(1));
        let load = Load::Count {
            requests: p.load_requests,
            connections: p.load_connections,
            streams: p.load_streams,
        };
        let warm = Load::Count {
            requests: 1_000,
            connections: p.load_connections,
            streams: p.load_streams,
        };
        self.load_service(&service, &body, warm);
        h2load::run(echo.addr, &body, warm);
        let (mut svc, mut echoed) = (Vec::new(), Vec::new());
        for round in 1..=p.rounds {
            let calls_before = graph.calls().node;
            let cpu_before = service.proc.cpu();
            let outcome = self.load_service(&service, &body, load);
            let svc_cpu = service.proc.cpu() - cpu_before;
            let upstream = graph.calls().node - calls_before;
            svc.push(outcome.req_per_sec);
            let cpu_before = echo.proc.cpu();
            let echo_outcome = h2load::run(echo.addr, &body, load);
            let echo_cpu = echo.proc.cpu() - cpu_before;
            assert_eq!(echo_outcome.succeeded, p.load_requests);
            echoed.push(echo_outcome.req_per_sec);
            println!(
                "  raw row 2 round {round}: {} requests, {} connections × {} streams: service {:.0} req/s \
                 (CPU {}/call, {upstream} Graph calls), echo {:.0} req/s (CPU {}/call)",
                p.load_requests,
                p.load_connections,
                p.load_streams,
                outcome.req_per_sec,
                micros(per_call(svc_cpu, p.load_requests)),
                echo_outcome.req_per_sec,
                micros(per_call(echo_cpu, p.load_requests)),
            );
        }
        let (svc, echoed) = (median(&svc), median(&echoed));
        let ratio = svc / echoed;
        vec![Row {
            name: name.into(),
            measured: format!("{svc:.0} req/s"),
            baseline: format!("echo {echoed:.0} req/s"),
            ratio: Some(ratio),
            target: "≥ 0.8".into(),
            pass: Some(ratio >= 0.8),
        }]
    }

    /// Row 3: Graph calls for K concurrent identical GetStatus and K WatchStatus
    /// subscribers on N numbers, against one call per number per TTL or interval.
    pub async fn quota_economy(&self) -> Vec<Row> {
        let p = &self.profile;
        let n = p.quota_numbers;
        let graph = self.graph(Duration::from_millis(50), n).await;
        let numbers: Arc<Vec<String>> = Arc::new((1..=n).map(bench_number_id).collect());
        let ttl = Duration::from_secs(1);
        let interval = Duration::from_secs(1);
        let mut rows = Vec::new();
        for &k in &p.quota_ks {
            let name = format!("3. quota: {k} × GetStatus on {n} numbers, TTL 1s");
            if !self.cache {
                rows.push(Row::skipped(&name, "this build has no read cache"));
                continue;
            }
            let service = self
                .service(
                    &format!("service-row3-get-{k}"),
                    &graph,
                    &["--cache-ttl", "1s"],
                )
                .await;
            let clients = service.clients(k.min(10)).await;
            let before = graph.calls().total;
            let start = Instant::now();
            let end = start + Duration::from_secs_f64(p.quota_secs);
            let barrier = Arc::new(tokio::sync::Barrier::new(k));
            let done = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..k)
                .map(|i| {
                    let mut client = clients[i % clients.len()].clone();
                    let (numbers, barrier, done) = (numbers.clone(), barrier.clone(), done.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        loop {
                            for id in numbers.iter() {
                                client.get_status(get_status_request(id)).await.unwrap();
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            if Instant::now() >= end {
                                break;
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let elapsed = start.elapsed();
            let calls = graph.calls().total - before;
            let periods = (elapsed.as_secs_f64() / ttl.as_secs_f64()).floor() as u64 + 1;
            let bound = n as u64 * periods;
            println!(
                "  raw row 3 GetStatus K={k}: {} calls in {elapsed:.2?}, {calls} Graph calls \
                 (one per number per TTL: at most {bound})",
                done.load(Ordering::Relaxed)
            );
            rows.push(Row {
                name,
                measured: format!("{calls} Graph calls"),
                baseline: format!("{n} numbers × {periods} TTLs = {bound}"),
                ratio: Some(calls as f64 / bound as f64),
                target: "≤ 1.0 for every K".into(),
                pass: Some(calls <= bound),
            });
        }
        for &k in &p.quota_ks {
            let service = self
                .service(
                    &format!("service-row3-watch-{k}"),
                    &graph,
                    &["--watch-interval", "1s"],
                )
                .await;
            let clients = service.clients(k.min(10)).await;
            let before = graph.calls().total;
            let start = Instant::now();
            let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
            let tasks: Vec<_> = (0..k)
                .map(|i| {
                    let mut client = clients[i % clients.len()].clone();
                    let (numbers, ready) = (numbers.clone(), ready_tx.clone());
                    tokio::spawn(async move {
                        let request = pb::WatchStatusRequest {
                            phone_number_ids: numbers.to_vec(),
                            waba_id: String::new(),
                        };
                        let mut stream = client.watch_status(request).await.unwrap().into_inner();
                        let mut initial = 0;
                        while let Some(event) = stream.message().await.unwrap() {
                            if event.source() == EventSource::Initial {
                                initial += 1;
                                if initial == numbers.len() {
                                    let _ = ready.send(());
                                }
                            }
                        }
                    })
                })
                .collect();
            for _ in 0..k {
                ready_rx.recv().await.unwrap();
            }
            let opened = start.elapsed();
            tokio::time::sleep(Duration::from_secs_f64(p.quota_secs)).await;
            let elapsed = start.elapsed();
            let calls = graph.calls().total - before;
            for task in tasks {
                task.abort();
            }
            // The first read, then at most one poll per interval less its 10 % jitter.
            let polls = (elapsed.as_secs_f64() / (interval.as_secs_f64() * 0.9)).floor() as u64;
            let bound = n as u64 * (1 + polls);
            println!(
                "  raw row 3 WatchStatus K={k}: every first snapshot in {opened:.2?}, held until \
                 {elapsed:.2?}: {calls} Graph calls (batch operations counted; at most {bound})"
            );
            rows.push(Row {
                name: format!("3. quota: {k} × WatchStatus on {n} numbers, interval 1s"),
                measured: format!("{calls} Graph calls"),
                baseline: format!("{n} numbers × (1 + {polls} polls) = {bound}"),
                ratio: Some(calls as f64 / bound as f64),
                target: "≤ 1.0 for every K".into(),
                pass: Some(calls <= bound),
            });
        }
        rows
    }

    /// Row 5: a 200 ms upstream, C concurrent uncached GetStatus of C distinct numbers.
    pub async fn slow_upstream(&self) -> Row {
        let p = &self.profile;
        let c = p.slow_concurrency;
        let name = format!(
            "5. slow upstream ({} ms): {c} concurrent uncached GetStatus",
            p.slow_latency.as_millis()
        );
        let needed = 2 * c as u64 + 256;
        if sys::open_files_limit() < needed {
            return Row::skipped(
                &name,
                &format!("open files limit below {needed} (ulimit -n)"),
            );
        }
        let graph = self.graph(p.slow_latency, c).await;
        let service = self.service("service-row5", &graph, &self.uncached()).await;
        let clients = service.clients(10).await;
        let run = |secs: f64| {
            let end = Instant::now() + Duration::from_secs_f64(secs);
            let done = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..c)
                .map(|i| {
                    let mut client = clients[i % clients.len()].clone();
                    let done = done.clone();
                    let id = bench_number_id(i + 1);
                    tokio::spawn(async move {
                        loop {
                            client.get_status(get_status_request(&id)).await.unwrap();
                            done.fetch_add(1, Ordering::Relaxed);
                            if Instant::now() >= end {
                                break;
                            }
                        }
                    })
                })
                .collect();
            async move {
                for task in tasks {
                    task.await.unwrap();
                }
                done.load(Ordering::Relaxed)
            }
        };
        // Warm-up: one call each, which opens the upstream connections.
        run(0.0).await;
        let calls_before = graph.calls().node;
        let (cpu_before, graph_cpu_before) = (service.proc.cpu(), graph.proc.cpu());
        let start = Instant::now();
        let done = run(p.slow_secs).await;
        let elapsed = start.elapsed();
        let cpu = service.proc.cpu() - cpu_before;
        let graph_cpu = graph.proc.cpu() - graph_cpu_before;
        let upstream = graph.calls().node - calls_before;
        let throughput = done as f64 / elapsed.as_secs_f64();
        let ideal = c as f64 / p.slow_latency.as_secs_f64();
        println!(
            "  raw row 5: {done} GetStatus in {elapsed:.2?} ({throughput:.0}/s), {upstream} Graph \
             calls, service CPU {cpu:?} ({}/call), RSS {:.1} MiB; sandbox-graph CPU {graph_cpu:?}",
            micros(per_call(cpu, done)),
            sys::rss_kib(service.proc.pid()) as f64 / 1024.0
        );
        assert_eq!(upstream, done, "every GetStatus read the Graph API once");
        let ratio = throughput / ideal;
        Row {
            name,
            measured: format!("{throughput:.0} calls/s"),
            baseline: format!("{c} ÷ {} ms = {ideal:.0}/s", p.slow_latency.as_millis()),
            ratio: Some(ratio),
            target: "≥ 0.9".into(),
            pass: Some(ratio >= 0.9),
        }
    }

    /// Row 6: process start to health SERVING, against the echo's; the binary's size.
    pub async fn startup_and_size(&self) -> Vec<Row> {
        let p = &self.profile;
        let graph = self.graph(Duration::ZERO, 0).await;
        let graph_url = graph.url();
        let mut svc = Vec::new();
        let mut echoed = Vec::new();
        for _ in 0..p.starts {
            let (grpc, http) = (local(free_port()), local(free_port()));
            let mut command = self.service_command(grpc, http, &["--graph-url", &graph_url]);
            command.stderr(Stdio::null());
            let start = Instant::now();
            let _proc = Proc::spawn("service-row6", &mut command);
            wait_serving(grpc, Duration::from_secs(20)).await;
            svc.push(start.elapsed());

            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .arg("echo")
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let start = Instant::now();
            let mut proc = Proc::spawn("echo", &mut command);
            let port: u16 = proc.read_line_starting("listening ").parse().unwrap();
            wait_serving(local(port), Duration::from_secs(10)).await;
            echoed.push(start.elapsed());
        }
        println!("  raw row 6: service starts {svc:.1?}, echo starts {echoed:.1?}");
        let (svc, echoed) = (median(&svc), median(&echoed));
        let size = std::fs::metadata(bin()).unwrap().len();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        vec![
            Row {
                name: "6. start to health SERVING".into(),
                measured: ms(svc),
                baseline: format!("echo {}", ms(echoed)),
                ratio: Some(svc.as_secs_f64() / echoed.as_secs_f64()),
                target: "≤ 100 ms".into(),
                pass: Some(svc <= Duration::from_millis(100)),
            },
            Row {
                name: "6. binary size".into(),
                measured: format!("{:.1} MiB", size as f64 / (1024.0 * 1024.0)),
                baseline: format!(
                    "{} build",
                    if self.profile.smoke {
                        "debug"
                    } else {
                        "release"
                    }
                ),
                ratio: None,
                target: "reported".into(),
                pass: None,
            },
        ]
    }
}
