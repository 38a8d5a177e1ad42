//! Rows 7 and 8: replicas on one PostgreSQL store (issue 11), against the suite's own
//! PostgreSQL ([`crate::postgres`]) and `waba-numbers sandbox-graph --no-quota`.
//!
//! **Row 7, the fleet at a partner's scale.** A service on the store onboards
//! `fleet_wabas` sandbox customers (OnboardCustomer with the codes `es-bench00000`...:
//! the sandbox creates a WABA of 3 numbers per code), then stops. Phase A: one replica on
//! the store, one WatchStatus stream per WABA. Phase B: three fresh replicas, each with a
//! stream per WABA. Every replica runs with `--watch-interval` `Profile::fleet_interval`
//! (10 s in the full run instead of the default 60 s, so that a steady state is reached
//! and measured in minutes). In each phase, once every stream has its first snapshot, the
//! replicas' first `debug_token` check of every token (one minute after start, then
//! daily) has passed and been reported to the statistics (full run only) and
//! `Profile::fleet_settle` has gone by, a window
//! of `Profile::fleet_window` measures the Graph calls the sandbox answered
//! (`/_sandbox/calls`) and the statements the store ran (`pg_stat_statements` of the
//! service's database, `BEGIN` and `COMMIT` included; transactions from
//! `pg_stat_database.xact_commit`). The row: Graph calls/s with three replicas ÷ with
//! one, for the same WABAs watched (one poller per WABA across the fleet: 1.0, within a
//! few percent of poll timing), and the store's statements/s with three.
//!
//! **Row 8, Register with the shared ledger.** Two services against one sandbox-graph
//! (no latency: what is measured is the service's own cost): one on the PostgreSQL store
//! (ledger and idempotency records in the database), one on `WABA_STORE=memory` (both in
//! memory). Registers one at a time, alternating between the two, each with its own
//! `request_id` and its own bench number (registered with the sandbox's PIN: one attempt
//! of that number's 10, far from the guard's reserve). p50 and p99 of each; PostgreSQL's
//! p50 ÷ memory's.

use crate::Row;
use crate::postgres::{Counters, Database, Delta, Postgres};
use crate::rows::{Bench, Graph, Service, channel, wait_serving_service};
use crate::sys::{self, quantile};
use base64::Engine as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use waba_numbers::pb::customer_service_client::CustomerServiceClient;
use waba_numbers::pb::{EventSource, OnboardCustomerRequest, RegisterRequest, WatchStatusRequest};
use waba_numbers::sandbox::{
    CALLS_PATH, CUSTOMER_NUMBERS, DEMO_CODE_PREFIX, DEMO_PIN, SANDBOX_APP_ID, SANDBOX_APP_SECRET,
    bench_number_id, customer_waba_id,
};

pub const CUSTOMER_SERVICE: &str = "whatsapp.phonenumbers.v1.CustomerService";
/// Row 7's target: Graph calls of three replicas ÷ one replica's, with room for the
/// poll timing (each poll's wait is jittered by ±10 %, so a window catches a few more or
/// fewer of them).
const FLEET_TARGET: f64 = 1.1;
/// How late a busy PostgreSQL session may report its transactions (PGSTAT_IDLE_INTERVAL
/// is 10 s), and a second more.
const STATS_LAG: Duration = Duration::from_secs(11);
/// Streams per HTTP/2 connection to a replica.
const STREAMS_PER_CONNECTION: usize = 100;

/// The code of the `i`-th bench customer.
fn customer_code(i: usize) -> String {
    format!("{DEMO_CODE_PREFIX}bench{i:05}")
}

fn customer_waba(i: usize) -> String {
    customer_waba_id(&customer_code(i)).expect("a code of the documented form")
}

/// What the sandbox counted, by endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Endpoints {
    total: u64,
    phone_numbers: u64,
    node: u64,
    tokens: u64,
    batch_items: u64,
    register: u64,
}

impl Endpoints {
    fn of(graph: &Graph) -> Endpoints {
        let body = sys::http_get(graph.addr, CALLS_PATH).expect("the call counter answers");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let e = &json["endpoints"];
        let get = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        Endpoints {
            total: get(&json["total"]),
            phone_numbers: get(&e["phone_numbers"]),
            node: get(&e["node"]),
            tokens: get(&e["tokens"]),
            batch_items: get(&e["batch_items"]),
            register: get(&e["register"]),
        }
    }

    fn since(&self, before: &Endpoints) -> Endpoints {
        Endpoints {
            total: self.total - before.total,
            phone_numbers: self.phone_numbers - before.phone_numbers,
            node: self.node - before.node,
            tokens: self.tokens - before.tokens,
            batch_items: self.batch_items - before.batch_items,
            register: self.register - before.register,
        }
    }
}

/// The store a service runs on: `WABA_STORE` and its key file.
pub struct StoreEnv {
    url: String,
    key_file: String,
}

impl StoreEnv {
    pub fn new(bench: &Bench, db: &Database) -> StoreEnv {
        let key: [u8; 32] = rand::random();
        let path = bench.dir.join(format!("{}.key", db.name));
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        std::fs::write(&path, format!("{encoded}\n")).unwrap();
        StoreEnv {
            url: db.url.clone(),
            key_file: path.display().to_string(),
        }
    }

    /// With the sandbox app's id and secret: the service onboards customers, and
    /// checks their tokens, as against Meta.
    pub fn vars(&self) -> [(&str, &str); 3] {
        [
            ("WABA_STORE", self.url.as_str()),
            ("WABA_STORE_KEY_FILE", self.key_file.as_str()),
            ("WABA_APP_SECRET", SANDBOX_APP_SECRET),
        ]
    }
}

/// What one phase of row 7 measured in its window.
struct Window {
    replicas: usize,
    streams: usize,
    ready: usize,
    failed: u64,
    opened_in: Duration,
    /// Since the first replica started, when the window began.
    began_at: Duration,
    length: Duration,
    graph: Endpoints,
    store: Delta,
    events: u64,
    /// CPU of the replicas together, in the window.
    cpu: Duration,
}

impl Window {
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.length.as_secs_f64()
    }

    fn raw(&self, label: &str) {
        let (g, s) = (&self.graph, &self.store);
        println!(
            "  raw row 7 {label}: {} replica(s), {} streams ({} with their first snapshot in \
             {:.2?}, {} failed); window {:.1?} from +{:.1?}: {} Graph calls ({:.1}/s; \
             phone_numbers {}, node {}, batch items {}, tokens {}), {} store statements \
             ({:.1}/s), {} transactions ({:.1}/s), {} events delivered, replicas' CPU {:.2?} \
             ({:.1} % of a core)",
            self.replicas,
            self.streams,
            self.ready,
            self.opened_in,
            self.failed,
            self.length,
            self.began_at,
            g.total,
            self.per_s(g.total),
            g.phone_numbers,
            g.node,
            g.batch_items,
            g.tokens,
            s.statements,
            self.per_s(s.statements),
            s.commits,
            self.per_s(s.commits),
            self.events,
            self.cpu,
            self.cpu.as_secs_f64() / self.length.as_secs_f64() * 100.0,
        );
        let secs = self.length.as_secs_f64();
        for line in s.top_lines(12, |calls| format!("{:.2}/s", calls as f64 / secs)) {
            println!("  raw row 7 {label} statement: {line}");
        }
    }
}

/// Subscribers of one phase: a stream per WABA on each replica.
struct Watchers {
    tasks: Vec<JoinHandle<()>>,
    /// Events after the first snapshots.
    events: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    ready: usize,
    opened_in: Duration,
}

impl Watchers {
    async fn open(replicas: &[Service], wabas: usize, within: Duration) -> Watchers {
        let events = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for replica in replicas {
            let mut channels = Vec::new();
            for _ in 0..wabas.div_ceil(STREAMS_PER_CONNECTION) {
                channels.push(channel(replica.grpc).await);
            }
            for i in 0..wabas {
                let mut client =
                    crate::rows::Client::new(channels[i / STREAMS_PER_CONNECTION].clone());
                let (events, failed, ready) = (events.clone(), failed.clone(), ready_tx.clone());
                let request = WatchStatusRequest {
                    phone_number_ids: Vec::new(),
                    waba_id: customer_waba(i),
                };
                tasks.push(tokio::spawn(async move {
                    let mut stream = match client.watch_status(request).await {
                        Ok(answer) => answer.into_inner(),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let mut initial = 0;
                    loop {
                        match stream.message().await {
                            Ok(Some(event)) if event.source() == EventSource::Initial => {
                                initial += 1;
                                if initial == CUSTOMER_NUMBERS {
                                    let _ = ready.send(());
                                }
                            }
                            Ok(Some(_)) => {
                                events.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(None) | Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                }));
            }
        }
        drop(ready_tx);
        let expected = wabas * replicas.len();
        let deadline = tokio::time::Instant::now() + within;
        let mut ready = 0;
        while ready < expected {
            match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
                Ok(Some(())) => ready += 1,
                Ok(None) | Err(_) => break,
            }
        }
        Watchers {
            tasks,
            events,
            failed,
            ready,
            opened_in: start.elapsed(),
        }
    }

    fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A replica's flags: the sandbox app, and how often its watchers poll.
pub fn replica_args(watch_interval: Duration) -> Vec<String> {
    vec![
        "--app-id".into(),
        SANDBOX_APP_ID.into(),
        "--watch-interval".into(),
        humantime::format_duration(watch_interval).to_string(),
    ]
}

impl Bench {
    fn fleet_args(&self) -> Vec<String> {
        replica_args(self.profile.fleet_interval)
    }

    /// A replica on the fleet's store, serving customers.
    async fn replica(&self, name: &str, graph: &Graph, store: &StoreEnv) -> Service {
        let args = self.fleet_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let service = self.service_env(name, graph, &args, &store.vars()).await;
        wait_serving_service(service.grpc, CUSTOMER_SERVICE, Duration::from_secs(60)).await;
        service
    }

    /// Onboards the bench customers through `service`, a few at a time.
    async fn onboard(&self, service: &Service, customers: usize) {
        let channel = channel(service.grpc).await;
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let mut client = CustomerServiceClient::new(channel.clone());
                let next = next.clone();
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= customers {
                            return;
                        }
                        let code = customer_code(i);
                        let request = OnboardCustomerRequest {
                            waba_id: customer_waba(i),
                            request_id: format!("bench-onboard-{i}"),
                            code,
                            ..OnboardCustomerRequest::default()
                        };
                        if let Err(status) = client.onboard_customer(request).await {
                            panic!("onboarding bench customer {i}: {status:?}");
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// One phase of row 7: `count` fresh replicas, a stream per WABA on each, measured
    /// over a window once steady; the replicas are stopped after.
    async fn fleet_phase(
        &self,
        label: &str,
        count: usize,
        graph: &Graph,
        store: &StoreEnv,
        db: &Database,
        checks: usize,
    ) -> Window {
        let p = &self.profile;
        let wabas = p.fleet_wabas;
        let tokens_before = Endpoints::of(graph).tokens;
        let started = Instant::now();
        let mut replicas = Vec::new();
        for r in 1..=count {
            replicas.push(
                self.replica(&format!("service-row7-{label}-{r}"), graph, store)
                    .await,
            );
        }
        let watchers = Watchers::open(&replicas, wabas, Duration::from_secs(120)).await;
        let mut settled = Instant::now() + p.fleet_settle;
        if !p.smoke {
            // The replicas check the customers' tokens a minute after they start (and
            // daily after that, so not part of the steady state): each token once for the
            // fleet, claimed in the store, so only the first phase asks Meta (`checks`);
            // the later one's claims, all refused, are done well before a window that
            // starts 75 s in.
            let checks = tokens_before + checks as u64;
            let deadline = Instant::now() + Duration::from_secs(240);
            while Endpoints::of(graph).tokens < checks {
                assert!(
                    Instant::now() < deadline,
                    "row 7 {label}: the replicas' first token checks did not end in 240 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // A busy session reports its transactions to pg_stat_database up to 10 s
            // late: the checks' own must not land in the window.
            settled = settled
                .max(Instant::now() + STATS_LAG)
                .max(started + Duration::from_secs(75));
        }
        if let Some(wait) = settled.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let cpu = |replicas: &[Service]| replicas.iter().map(|r| r.proc.cpu()).sum::<Duration>();
        let began_at = started.elapsed();
        let (graph_before, store_before, cpu_before, events_before): (_, Counters, _, _) = (
            Endpoints::of(graph),
            db.counters().await,
            cpu(&replicas),
            watchers.events.load(Ordering::Relaxed),
        );
        let window_start = Instant::now();
        tokio::time::sleep(p.fleet_window).await;
        let length = window_start.elapsed();
        let graph_calls = Endpoints::of(graph).since(&graph_before);
        let store_delta = db.counters().await.since(&store_before);
        let window = Window {
            replicas: count,
            streams: wabas * count,
            ready: watchers.ready,
            failed: watchers.failed.load(Ordering::Relaxed),
            opened_in: watchers.opened_in,
            began_at,
            length,
            graph: graph_calls,
            store: store_delta,
            events: watchers.events.load(Ordering::Relaxed) - events_before,
            cpu: cpu(&replicas) - cpu_before,
        };
        for replica in &mut replicas {
            replica.proc.check_alive();
        }
        watchers.close();
        for replica in &mut replicas {
            replica.proc.terminate(Duration::from_secs(25));
        }
        window
    }

    /// Row 7: Graph calls and store statements of the same watched WABAs on one
    /// replica, then on three.
    pub async fn fleet(&self, pg: &Postgres) -> Vec<Row> {
        let p = &self.profile;
        let wabas = p.fleet_wabas;
        let graph = self.graph(Duration::ZERO, 0).await;
        let db = pg.database("fleet").await;
        let store = StoreEnv::new(self, &db);

        let onboarder = self.replica("service-row7-onboard", &graph, &store).await;
        let (calls_before, store_before) = (Endpoints::of(&graph), db.counters().await);
        let start = Instant::now();
        self.onboard(&onboarder, wabas).await;
        let took = start.elapsed();
        let (calls, statements) = (
            Endpoints::of(&graph).since(&calls_before),
            db.counters().await.since(&store_before),
        );
        println!(
            "  raw row 7 onboarding: {wabas} sandbox customers ({CUSTOMER_NUMBERS} numbers \
             each) in {took:.2?}, 8 at a time: {} Graph calls, {} store statements",
            calls.total, statements.statements
        );
        let mut onboarder = onboarder;
        onboarder.proc.terminate(Duration::from_secs(25));
        drop(onboarder);

        let one = self
            .fleet_phase("A", 1, &graph, &store, &db, p.fleet_wabas)
            .await;
        one.raw("phase A");
        let three = self.fleet_phase("B", 3, &graph, &store, &db, 0).await;
        three.raw("phase B");

        let complete = |w: &Window| w.ready == w.streams && w.failed == 0;
        let (a, b) = (one.per_s(one.graph.total), three.per_s(three.graph.total));
        let ratio = b / a.max(f64::MIN_POSITIVE);
        let interval = p.fleet_interval.as_secs_f64();
        vec![
            Row {
                name: format!(
                    "7. fleet: Graph calls/s, 3 replicas ÷ 1 replica, same {wabas} WABAs watched \
                     (interval {interval:.0}s)"
                ),
                measured: format!("3 replicas {b:.1}/s"),
                baseline: format!(
                    "1 replica {a:.1}/s ({wabas} WABAs ÷ {interval:.0}s = {:.1}/s)",
                    wabas as f64 / interval
                ),
                ratio: Some(ratio),
                target: format!("≤ {FLEET_TARGET}"),
                pass: Some(ratio <= FLEET_TARGET && complete(&one) && complete(&three)),
            },
            Row {
                name: format!("7. store statements/s at {wabas} WABAs × 3 replicas"),
                measured: format!(
                    "{:.1}/s ({:.1} transactions/s)",
                    three.per_s(three.store.statements),
                    three.per_s(three.store.commits)
                ),
                baseline: format!(
                    "1 replica {:.1}/s ({:.1} transactions/s)",
                    one.per_s(one.store.statements),
                    one.per_s(one.store.commits)
                ),
                ratio: None,
                target: "reported".into(),
                pass: None,
            },
        ]
    }

    /// Row 8: Register one at a time on the PostgreSQL store against the memory store.
    pub async fn register_latency(&self, pg: &Postgres) -> Row {
        let p = &self.profile;
        let (n, warm) = (p.register_calls, p.register_warmup);
        let each = n + warm;
        let graph = self.graph(Duration::ZERO, 2 * each).await;
        let db = pg.database("register").await;
        let store = StoreEnv::new(self, &db);
        let on_pg = self
            .service_env(
                "service-row8-postgres",
                &graph,
                &[],
                &[
                    ("WABA_STORE", store.url.as_str()),
                    ("WABA_STORE_KEY_FILE", store.key_file.as_str()),
                ],
            )
            .await;
        let on_memory = self
            .service_env(
                "service-row8-memory",
                &graph,
                &[],
                &[("WABA_STORE", "memory")],
            )
            .await;
        let (mut pg_client, mut memory_client) = (on_pg.client().await, on_memory.client().await);
        let register = |number: usize, key: String| RegisterRequest {
            phone_number_id: bench_number_id(number),
            pin: DEMO_PIN.into(),
            request_id: key,
            ..RegisterRequest::default()
        };
        let (mut pg_times, mut memory_times) = (Vec::new(), Vec::new());
        let (mut calls_before, mut store_before) = (Endpoints::default(), Counters::default());
        for i in 0..each {
            if i == warm {
                calls_before = Endpoints::of(&graph);
                store_before = db.counters().await;
            }
            // Alternating which goes first, so neither always follows the other.
            for which in [i % 2, 1 - i % 2] {
                let (client, number, times) = if which == 0 {
                    (&mut pg_client, 1 + i, &mut pg_times)
                } else {
                    (&mut memory_client, 1 + each + i, &mut memory_times)
                };
                let request = register(number, format!("bench-register-{which}-{i}"));
                let start = Instant::now();
                let answer = client.register(request).await;
                let took = start.elapsed();
                if let Err(status) = answer {
                    panic!("Register of bench number {number}: {status:?}");
                }
                if i >= warm {
                    times.push(took);
                }
            }
        }
        let calls = Endpoints::of(&graph).since(&calls_before);
        let statements = db.counters().await.since(&store_before);
        let (pg50, pg99) = (quantile(&mut pg_times, 0.5), quantile(&mut pg_times, 0.99));
        let (m50, m99) = (
            quantile(&mut memory_times, 0.5),
            quantile(&mut memory_times, 0.99),
        );
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let (commit, trip) = pg.probe(if p.smoke { 20 } else { 200 }).await;
        println!(
            "  raw row 8: this PostgreSQL, from the suite: a one-row INSERT committed alone \
             p50 {} (its WAL flushed to disk), SELECT 1 p50 {}",
            ms(commit),
            ms(trip)
        );
        println!(
            "  raw row 8: {n} Registers each (after {warm} to warm up), one at a time, \
             alternating: PostgreSQL p50 {} p99 {}, memory p50 {} p99 {}; {} Graph calls \
             ({} registers), {} store statements ({:.1} per Register), {} transactions",
            ms(pg50),
            ms(pg99),
            ms(m50),
            ms(m99),
            calls.total,
            calls.register,
            statements.statements,
            statements.statements as f64 / n.max(1) as f64,
            statements.commits,
        );
        for line in statements.top_lines(12, |calls| {
            format!("{:.2} per Register", calls as f64 / n.max(1) as f64)
        }) {
            println!("  raw row 8 statement: {line}");
        }
        Row {
            name: "8. Register latency, shared ledger on PostgreSQL (p50 / p99)".into(),
            measured: format!("{} / {}", ms(pg50), ms(pg99)),
            baseline: format!("memory store {} / {}", ms(m50), ms(m99)),
            ratio: Some(pg50.as_secs_f64() / m50.as_secs_f64().max(1e-9)),
            target: "reported".into(),
            pass: None,
        }
    }
}

/// Rows 7 and 8 on the suite's own PostgreSQL, started here and stopped after; skipped
/// with the reason when it cannot start.
pub async fn rows(bench: &Bench, fleet: bool, register: bool) -> Vec<Row> {
    let pg = match Postgres::start(&bench.dir).await {
        Ok(pg) => pg,
        Err(why) => {
            let mut rows = Vec::new();
            if fleet {
                rows.push(Row::skipped(
                    "7. fleet: Graph calls and store statements",
                    &why,
                ));
            }
            if register {
                rows.push(Row::skipped(
                    "8. Register latency, shared ledger on PostgreSQL",
                    &why,
                ));
            }
            return rows;
        }
    };
    println!("  {} on 127.0.0.1:{}", pg.version(), pg.port);
    let mut rows = Vec::new();
    if fleet {
        rows.extend(bench.fleet(&pg).await);
    }
    if register {
        rows.push(bench.register_latency(&pg).await);
    }
    rows
}
