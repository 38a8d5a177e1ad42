//! The soak (issue 12): three replicas of the real binary on the suite's own PostgreSQL,
//! a steady mix of calls from three callers, held streams, and faults on a schedule.
//!
//! `cargo bench --bench suite -- soak [--duration 10m] [--smoke] [--streams N] [--out FILE]`
//! (`bench/soak.sh` builds the binary and runs it).
//!
//! - **Upstream**: `waba-numbers sandbox-graph --no-quota` with the bench WABA, behind a
//!   proxy in this process ([`Upstream`]) that is the replicas' `--graph-url`: it counts
//!   every `POST /{id}/register` it is sent, and is the fault switch: answering Meta's
//!   transient error (HTTP 500, code 2, `is_transient`) without forwarding, or answering
//!   slowly.
//! - **Callers**: three, each with an API key, written to a `WABA_CALLERS_FILE` (a
//!   `[[caller]]` per name with the key's SHA-256 and every scope) and sent as
//!   `authorization: Bearer <key>` on every call. Each sends, at a steady rate whatever
//!   the answers (a call is its own task, 10 s deadline): GetStatus (default staleness),
//!   GetStatus with `max_staleness` 0 (5 a minute: under the coming limit of 6 per caller
//!   and WABA; RESOURCE_EXHAUSTED for them counts as expected), ListNumbers, Register
//!   (each with its own `request_id` and its own number; a third replayed on another
//!   replica, which must answer the same), and WatchStatus churn (open, first snapshot,
//!   close). `--streams` WatchStatus streams (1,000) stay open over the run, spread over
//!   the replicas and callers, each reopened after it ends.
//! - **Faults**, once per cycle (a minute; the whole 30 s of a smoke run): a burst of
//!   upstream 5xx, slow upstream answers, replica 3 killed (SIGKILL) and started again on
//!   its addresses, PostgreSQL stopped (fast shutdown) and started again.
//!
//! Checks (any failing: exit status 1): every error is explained by a fault active around
//! then (its kind, the replica it hit and its code: see [`explain`]); no number had its
//! register POSTed to the Graph API twice, and every replayed Register answered as the
//! first did; every held stream that ended, ended with a status (never a clean end), and
//! all are open again at the end; the replicas never killed are alive; in a run of more
//! than one cycle, the runtime's tasks (`waba_tokio_alive_tasks`) of the replicas never
//! killed are flat from the first cycle's end to the last's. RSS (/proc/PID/status),
//! threads and open files are reported beside them. The table is printed and written
//! to `--out` (default `target/soak-summary.md`).

use crate::fleet::{CUSTOMER_SERVICE, StoreEnv, replica_args};
use crate::postgres::Postgres;
use crate::rows::{Bench, Graph, Service, wait_serving_service};
use crate::sys::{self, local};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;
use waba_numbers::pb::phone_number_service_client::PhoneNumberServiceClient;
use waba_numbers::pb::{
    GetStatusRequest, ListNumbersRequest, RegisterRequest, RegisterResponse, WatchStatusRequest,
};
use waba_numbers::sandbox::{BENCH_WABA_ID, DEMO_PIN, bench_number_id};

/// Replicas; the last is the one killed.
const REPLICAS: usize = 3;
const CALLERS: [&str; 3] = ["soak-go", "soak-java", "soak-python"];
/// Held streams watch numbers 1..=HELD_NUMBERS; GetStatus and churn read up to
/// READ_NUMBERS; Registers use numbers from FIRST_REGISTER_NUMBER on, one each.
const HELD_NUMBERS: usize = 200;
const READ_NUMBERS: usize = 400;
const FIRST_REGISTER_NUMBER: usize = 1_001;
/// Streams per HTTP/2 connection to a replica.
const STREAMS_PER_CONNECTION: usize = 100;
/// Every unary call's deadline (and a churn stream's wait for its first snapshot).
const DEADLINE: Duration = Duration::from_secs(10);

/// What one run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub smoke: bool,
    pub streams: usize,
    pub out: PathBuf,
}

impl Options {
    pub fn parse(args: &[String]) -> Options {
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
        };
        let smoke = args.iter().any(|a| a == "--smoke");
        let duration = value("--duration")
            .map_or(Duration::from_secs(if smoke { 30 } else { 600 }), |d| {
                humantime::parse_duration(d).expect("--duration: 30s, 3m, 10m...")
            });
        let streams = value("--streams").map_or(if smoke { 300 } else { 1_000 }, |n| {
            n.parse().expect("--streams: a count")
        });
        let out =
            value("--out").map_or_else(|| PathBuf::from("target/soak-summary.md"), PathBuf::from);
        Options {
            duration,
            smoke,
            streams,
            out,
        }
    }

    /// One cycle of faults: a minute, or the whole run when it is shorter.
    fn cycle(&self) -> Duration {
        self.duration.min(Duration::from_secs(60))
    }

    fn cycles(&self) -> u32 {
        (self.duration.as_secs_f64() / self.cycle().as_secs_f64()).floor() as u32
    }
}

// ---------------------------------------------------------------------------------------
// The upstream: a proxy in front of sandbox-graph, with a fault switch.

/// What the proxy does with a Graph call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Forward,
    /// Meta's transient error, not forwarded.
    Fail,
    /// Forwarded after this long.
    Slow(Duration),
}

struct Upstream {
    target: String,
    http: reqwest::Client,
    mode: Mutex<Mode>,
    /// `POST /{id}/register` received, per number id (faulted ones too).
    registers: Mutex<HashMap<String, u64>>,
    calls: AtomicU64,
    failed: AtomicU64,
    delayed: AtomicU64,
}

impl Upstream {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// Meta's answer when it has trouble of its own (code 2, "Service temporarily
/// unavailable"), which a client may retry.
fn meta_transient() -> Response {
    let body = serde_json::json!({ "error": {
        "message": "An unexpected error has occurred. Please retry your request later.",
        "type": "OAuthException",
        "is_transient": true,
        "code": 2,
        "fbtrace_id": "SoakFault0001",
    }});
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(body),
    )
        .into_response()
}

async fn proxy(State(up): State<Arc<Upstream>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let graph_call = !path.starts_with("/_sandbox");
    if graph_call {
        up.calls.fetch_add(1, Ordering::Relaxed);
        if parts.method == axum::http::Method::POST
            && let Some(id) = path.trim_end_matches('/').strip_suffix("/register")
        {
            let id = id.rsplit('/').next().unwrap_or_default().to_owned();
            *up.registers.lock().unwrap().entry(id).or_insert(0) += 1;
        }
    }
    let mode = if graph_call {
        *up.mode.lock().unwrap()
    } else {
        Mode::Forward
    };
    match mode {
        Mode::Fail => {
            up.failed.fetch_add(1, Ordering::Relaxed);
            return meta_transient();
        }
        Mode::Slow(wait) => {
            up.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
        Mode::Forward => {}
    }
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let url = format!(
        "{}{}",
        up.target,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers;
    headers.remove(axum::http::header::HOST);
    let answer = up
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let Ok(answer) = answer else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove(axum::http::header::TRANSFER_ENCODING);
    headers.remove(axum::http::header::CONNECTION);
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

async fn start_upstream(graph: &Graph) -> (Arc<Upstream>, SocketAddr) {
    waba_numbers::tls::install_provider();
    let up = Arc::new(Upstream {
        target: graph.url(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        mode: Mutex::new(Mode::Forward),
        registers: Mutex::new(HashMap::new()),
        calls: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        delayed: AtomicU64::new(0),
    });
    let router = axum::Router::new().fallback(proxy).with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (up, addr)
}

// ---------------------------------------------------------------------------------------
// Callers, calls and what they answered.

struct Caller {
    name: &'static str,
    key: String,
}

impl Caller {
    fn request<T>(&self, message: T, deadline: Option<Duration>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        let bearer = format!("Bearer {}", self.key).parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        request
    }
}

/// `WABA_CALLERS_FILE`: the callers, their keys' SHA-256 and every scope.
fn callers_file(callers: &[Arc<Caller>]) -> String {
    let mut toml = String::from("# Written by the soak (benches/suite/soak.rs).\n");
    for caller in callers {
        let digest = hex::encode(sha2::Sha256::digest(caller.key.as_bytes()));
        let _ = write!(
            toml,
            "\n[[caller]]\nname = \"{}\"\napi_key_sha256 = \"{digest}\"\n\
             scopes = [\"read\", \"watch\", \"write\", \"onboard\"]\n",
            caller.name
        );
    }
    toml
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Rpc {
    GetStatus,
    ForcedGetStatus,
    ListNumbers,
    Register,
    RegisterReplay,
    WatchChurn,
    /// Opening a held stream (again).
    HeldOpen,
    /// A held stream ending.
    HeldEnd,
}

impl Rpc {
    const ALL: [Rpc; 8] = [
        Rpc::GetStatus,
        Rpc::ForcedGetStatus,
        Rpc::ListNumbers,
        Rpc::Register,
        Rpc::RegisterReplay,
        Rpc::WatchChurn,
        Rpc::HeldOpen,
        Rpc::HeldEnd,
    ];

    fn name(self) -> &'static str {
        match self {
            Rpc::GetStatus => "GetStatus",
            Rpc::ForcedGetStatus => "GetStatus max_staleness 0",
            Rpc::ListNumbers => "ListNumbers",
            Rpc::Register => "Register (request_id)",
            Rpc::RegisterReplay => "Register replayed on another replica",
            Rpc::WatchChurn => "WatchStatus churn (open, snapshot, close)",
            Rpc::HeldOpen => "WatchStatus held: opened",
            Rpc::HeldEnd => "WatchStatus held: ended",
        }
    }

    fn unary(self) -> bool {
        !matches!(self, Rpc::HeldOpen | Rpc::HeldEnd)
    }
}

/// An error a call met: `code` `None` for a stream that ended without a status.
#[derive(Debug, Clone)]
struct Failure {
    at: Duration,
    rpc: Rpc,
    replica: usize,
    code: Option<Code>,
    message: String,
}

#[derive(Default)]
struct Tally {
    calls: u64,
    ok: u64,
}

/// What every call answered, from the run's start.
struct Record {
    start: Instant,
    stopping: AtomicBool,
    tallies: Mutex<BTreeMap<Rpc, Tally>>,
    failures: Mutex<Vec<Failure>>,
}

impl Record {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn ok(&self, rpc: Rpc) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        let mut tallies = self.tallies.lock().unwrap();
        let tally = tallies.entry(rpc).or_default();
        tally.calls += 1;
        tally.ok += 1;
    }

    fn failed(&self, rpc: Rpc, replica: usize, code: Option<Code>, message: String) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        self.tallies.lock().unwrap().entry(rpc).or_default().calls += 1;
        self.failures.lock().unwrap().push(Failure {
            at: self.now(),
            rpc,
            replica,
            code,
            message,
        });
    }

    fn status(&self, rpc: Rpc, replica: usize, status: &tonic::Status) {
        self.failed(
            rpc,
            replica,
            Some(status.code()),
            status.message().chars().take(160).collect(),
        );
    }

    fn answer<T>(&self, rpc: Rpc, replica: usize, answer: &Result<T, tonic::Status>) {
        match answer {
            Ok(_) => self.ok(rpc),
            Err(status) => self.status(rpc, replica, status),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Faults and which errors they explain.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Upstream5xx,
    SlowUpstream,
    /// Replica index (0-based) killed with SIGKILL, until it serves again.
    Killed(usize),
    PostgresRestart,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Upstream5xx => "upstream 5xx burst".into(),
            Fault::SlowUpstream => "slow upstream".into(),
            Fault::Killed(r) => format!("replica {} SIGKILLed and restarted", r + 1),
            Fault::PostgresRestart => "PostgreSQL restarted".into(),
        }
    }

    /// How long after the fault ends its errors may still come: calls sent during it
    /// finish within their deadline, retries back off.
    fn after(self) -> Duration {
        match self {
            Fault::Upstream5xx | Fault::SlowUpstream => DEADLINE + Duration::from_secs(2),
            Fault::Killed(_) => Duration::from_secs(3),
            Fault::PostgresRestart => DEADLINE + Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    fault: Fault,
    start: Duration,
    end: Duration,
}

/// The fault that explains `f`, if any: its kind allows the call and code, and it was
/// active from a second before the error began to `Fault::after` past its end.
fn explain(f: &Failure, spans: &[Span]) -> Option<String> {
    use Code::*;
    if f.rpc == Rpc::ForcedGetStatus && f.code == Some(ResourceExhausted) {
        return Some("forced-read limit (6 a minute per caller and WABA)".into());
    }
    // A stream that ends without a status is never explained: a client cannot tell it
    // from a finished answer.
    let code = f.code?;
    // A fault active at the time comes before one whose after-effects are still due,
    // and of those the latest to begin.
    let mut candidates: Vec<&Span> = spans
        .iter()
        .filter(|s| f.at + Duration::from_secs(1) >= s.start && f.at <= s.end + s.fault.after())
        .collect();
    candidates.sort_by_key(|s| (f.at > s.end, std::cmp::Reverse(s.start)));
    candidates
        .into_iter()
        .find(|s| match s.fault {
            Fault::Upstream5xx | Fault::SlowUpstream => {
                // Reads retried until their deadline; writes never retried; a held
                // stream's poller retries with backoff and must not end.
                f.rpc.unary() && matches!(code, Unavailable | DeadlineExceeded)
            }
            Fault::Killed(r) => {
                // Everything to that replica: refused connections, streams and calls cut
                // off with the connection.
                f.replica == r && matches!(code, Unavailable | Unknown | Cancelled)
            }
            Fault::PostgresRestart => {
                // Writes fail closed (STORE_UNAVAILABLE), a call may wait for the pool
                // past its deadline; held streams must stay open.
                f.rpc.unary() && matches!(code, Unavailable | DeadlineExceeded)
            }
        })
        .map(|s| s.fault.name())
}

// ---------------------------------------------------------------------------------------
// Load.

type Client = PhoneNumberServiceClient<Channel>;

fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

fn pick(n: usize) -> usize {
    rand::random_range(0..n)
}

/// Held stream `i`: on replica `i % 3`, for caller `i / 3 % 3`, watching one of the
/// first HELD_NUMBERS numbers; reopened half a second after it ends.
async fn hold(
    i: usize,
    mut client: Client,
    caller: Arc<Caller>,
    record: Arc<Record>,
    open: Arc<AtomicUsize>,
) {
    let replica = i % REPLICAS;
    let number = bench_number_id(1 + i % HELD_NUMBERS);
    loop {
        let request = WatchStatusRequest {
            phone_number_ids: vec![number.clone()],
            waba_id: String::new(),
        };
        match client.watch_status(caller.request(request, None)).await {
            Err(status) => record.status(Rpc::HeldOpen, replica, &status),
            Ok(answer) => {
                let mut stream = answer.into_inner();
                let mut counted = false;
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => {
                            if !counted {
                                counted = true;
                                open.fetch_add(1, Ordering::Relaxed);
                                record.ok(Rpc::HeldOpen);
                            }
                        }
                        Ok(None) => {
                            record.failed(
                                Rpc::HeldEnd,
                                replica,
                                None,
                                "ended without a status".into(),
                            );
                            break;
                        }
                        Err(status) => {
                            record.status(Rpc::HeldEnd, replica, &status);
                            break;
                        }
                    }
                }
                if counted {
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One caller's steady load on the replicas: each call its own task.
struct Load {
    caller: Arc<Caller>,
    /// One client per replica, on this caller's own connection.
    clients: Vec<Client>,
    record: Arc<Record>,
    next_register: Arc<AtomicUsize>,
    registers: Arc<Mutex<Vec<Registered>>>,
}

/// A Register sent, and what it answered.
#[derive(Debug, Clone)]
struct Registered {
    number: String,
    ok: bool,
}

impl Load {
    fn client(&self) -> (usize, Client) {
        let r = pick(REPLICAS);
        (r, self.clients[r].clone())
    }

    fn every(self: &Arc<Self>, period: Duration, op: fn(Arc<Load>)) -> JoinHandle<()> {
        let load = self.clone();
        tokio::spawn(async move {
            // A random phase, so the callers do not call in step.
            tokio::time::sleep(period.mul_f64(rand::random::<f64>())).await;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                op(load.clone());
            }
        })
    }

    fn get_status(self: Arc<Self>) {
        tokio::spawn(async move {
            let (r, mut client) = self.client();
            let request = GetStatusRequest {
                phone_number_id: bench_number_id(1 + pick(READ_NUMBERS)),
                max_staleness: None,
            };
            let answer = client
                .get_status(self.caller.request(request, Some(DEADLINE)))
                .await;
            self.record.answer(Rpc::GetStatus, r, &answer);
        });
    }

    fn forced_get_status(self: Arc<Self>) {
        tokio::spawn(async move {
            let (r, mut client) = self.client();
            let request = GetStatusRequest {
                phone_number_id: bench_number_id(1 + pick(HELD_NUMBERS)),
                max_staleness: Some(prost_types::Duration::default()),
            };
            let answer = client
                .get_status(self.caller.request(request, Some(DEADLINE)))
                .await;
            self.record.answer(Rpc::ForcedGetStatus, r, &answer);
        });
    }

    fn list_numbers(self: Arc<Self>) {
        tokio::spawn(async move {
            let (r, mut client) = self.client();
            let request = ListNumbersRequest {
                waba_id: BENCH_WABA_ID.into(),
                page_size: 50,
                ..ListNumbersRequest::default()
            };
            let answer = client
                .list_numbers(self.caller.request(request, Some(DEADLINE)))
                .await;
            self.record.answer(Rpc::ListNumbers, r, &answer);
        });
    }

    fn register(self: Arc<Self>) {
        tokio::spawn(async move {
            let (r, mut client) = self.client();
            let n = self.next_register.fetch_add(1, Ordering::Relaxed);
            let number = bench_number_id(n);
            let request = RegisterRequest {
                phone_number_id: number.clone(),
                pin: DEMO_PIN.into(),
                request_id: format!("{}-register-{n}", self.caller.name),
                ..RegisterRequest::default()
            };
            let answer = client
                .register(self.caller.request(request.clone(), Some(DEADLINE)))
                .await
                .map(tonic::Response::into_inner);
            self.record.answer(Rpc::Register, r, &answer);
            self.registers.lock().unwrap().push(Registered {
                number,
                ok: answer.is_ok(),
            });
            if let Ok(first) = answer
                && n.is_multiple_of(3)
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.replay(r, request, first).await;
            }
        });
    }

    /// The same Register on the next replica: the same answer, and nothing sent.
    async fn replay(
        &self,
        first_replica: usize,
        request: RegisterRequest,
        first: RegisterResponse,
    ) {
        let r = (first_replica + 1) % REPLICAS;
        let mut client = self.clients[r].clone();
        let answer = client
            .register(self.caller.request(request, Some(DEADLINE)))
            .await
            .map(tonic::Response::into_inner);
        match answer {
            Ok(again) if again == first => self.record.ok(Rpc::RegisterReplay),
            Ok(again) => self.record.failed(
                Rpc::RegisterReplay,
                r,
                Some(Code::Ok),
                format!("answered {again:?}, the first time {first:?}"),
            ),
            Err(status) => self.record.status(Rpc::RegisterReplay, r, &status),
        }
    }

    fn churn(self: Arc<Self>) {
        tokio::spawn(async move {
            let (r, mut client) = self.client();
            let request = WatchStatusRequest {
                phone_number_ids: vec![bench_number_id(
                    1 + HELD_NUMBERS + pick(READ_NUMBERS - HELD_NUMBERS),
                )],
                waba_id: String::new(),
            };
            let first = tokio::time::timeout(DEADLINE, async {
                let mut stream = client
                    .watch_status(self.caller.request(request, None))
                    .await?
                    .into_inner();
                match stream.message().await? {
                    Some(_) => Ok(stream),
                    None => Err(tonic::Status::unknown("ended before its snapshot")),
                }
            })
            .await;
            match first {
                Ok(Ok(stream)) => {
                    self.record.ok(Rpc::WatchChurn);
                    tokio::time::sleep(Duration::from_millis(500 + pick(2_000) as u64)).await;
                    drop(stream);
                }
                Ok(Err(status)) => self.record.status(Rpc::WatchChurn, r, &status),
                Err(_) => self.record.failed(
                    Rpc::WatchChurn,
                    r,
                    Some(Code::DeadlineExceeded),
                    "no first snapshot within the deadline (the driver's)".into(),
                ),
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// The replicas and what /proc and /metrics say about them.

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    threads: u64,
    fds: u64,
    tasks: Option<u64>,
    streams: Option<u64>,
}

fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

fn sample(service: &Service, at: Duration) -> Sample {
    let pid = service.proc.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let metrics = sys::http_get(service.http, "/metrics").unwrap_or_default();
    Sample {
        at,
        rss_kib: sys::rss_kib(pid),
        threads,
        fds,
        tasks: gauge(&metrics, "waba_tokio_alive_tasks"),
        streams: gauge(&metrics, "waba_watch_streams"),
    }
}

struct Fleet {
    replicas: Vec<Service>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    graph_url: String,
    restarts: usize,
}

impl Fleet {
    async fn start_one(
        &self,
        bench: &Bench,
        name: &str,
        grpc: SocketAddr,
        http: SocketAddr,
    ) -> Service {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let service = bench
            .service_at(name, grpc, http, &self.graph_url, &args, &env)
            .await;
        wait_serving_service(grpc, CUSTOMER_SERVICE, Duration::from_secs(60)).await;
        service
    }
}

// ---------------------------------------------------------------------------------------
// The run.

/// Sleeps until `at` after `start` (at once if that has passed).
async fn until(start: Instant, at: Duration) {
    tokio::time::sleep_until((start + at).into()).await;
}

pub async fn run(bench: &Bench, options: &Options) -> bool {
    let pg = match Postgres::start(&bench.dir).await {
        Ok(pg) => Arc::new(pg),
        Err(why) => {
            println!("soak: cannot start PostgreSQL: {why}");
            return false;
        }
    };
    println!("  {} on 127.0.0.1:{}", pg.version(), pg.port);
    let db = pg.database("soak").await;
    let store = StoreEnv::new(bench, &db);
    let register_numbers = (options.duration.as_secs() as usize / 4 + 10) * CALLERS.len();
    let graph = bench
        .graph(Duration::ZERO, FIRST_REGISTER_NUMBER + register_numbers)
        .await;
    let (upstream, upstream_addr) = start_upstream(&graph).await;

    let callers: Vec<Arc<Caller>> = CALLERS
        .iter()
        .map(|name| {
            Arc::new(Caller {
                name,
                key: format!("{name}-{}", hex::encode(rand::random::<[u8; 16]>())),
            })
        })
        .collect();
    let callers_path = bench.dir.join("callers.toml");
    std::fs::write(&callers_path, callers_file(&callers)).unwrap();

    let interval = Duration::from_secs(if options.smoke { 5 } else { 10 });
    let mut env: Vec<(String, String)> = store
        .vars()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push((
        "WABA_CALLERS_FILE".into(),
        callers_path.display().to_string(),
    ));
    env.push(("RUST_LOG".into(), "warn".into()));
    let mut fleet = Fleet {
        replicas: Vec::new(),
        args: replica_args(interval),
        env,
        graph_url: format!("http://{upstream_addr}"),
        restarts: 0,
    };
    for r in 0..REPLICAS {
        let (grpc, http) = (local(sys::free_port()), local(sys::free_port()));
        let service = fleet
            .start_one(bench, &format!("soak-replica-{}", r + 1), grpc, http)
            .await;
        fleet.replicas.push(service);
    }
    let addrs: Vec<SocketAddr> = fleet.replicas.iter().map(|s| s.grpc).collect();
    println!(
        "  3 replicas on PostgreSQL, watch interval {interval:?}, Graph API through the fault \
         proxy at {upstream_addr}; callers file {}",
        callers_path.display()
    );

    let record = Arc::new(Record {
        start: Instant::now(),
        stopping: AtomicBool::new(false),
        tallies: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(Vec::new()),
    });

    // The held streams, all open before the clock starts.
    let open = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let per_replica = options.streams.div_ceil(REPLICAS);
    let channels: Vec<Vec<Channel>> = addrs
        .iter()
        .map(|addr| {
            (0..per_replica.div_ceil(STREAMS_PER_CONNECTION).max(1))
                .map(|_| lazy_channel(*addr))
                .collect()
        })
        .collect();
    let opening = Instant::now();
    for i in 0..options.streams {
        let r = i % REPLICAS;
        let channel = channels[r][(i / REPLICAS) / STREAMS_PER_CONNECTION].clone();
        tasks.push(tokio::spawn(hold(
            i,
            Client::new(channel),
            callers[i / REPLICAS % CALLERS.len()].clone(),
            record.clone(),
            open.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while open.load(Ordering::Relaxed) < options.streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened_in = opening.elapsed();
    println!(
        "  {} of {} held streams open in {opened_in:.2?}",
        open.load(Ordering::Relaxed),
        options.streams
    );
    if open.load(Ordering::Relaxed) < options.streams {
        println!("soak: the held streams did not all open in 120 s");
        return false;
    }

    // Faults and load from here; failures and faults are timed from the record's start
    // (before the streams opened: a failure while they opened is unexpected too).
    let start = Instant::now();
    let next_register = Arc::new(AtomicUsize::new(FIRST_REGISTER_NUMBER));
    let registers = Arc::new(Mutex::new(Vec::new()));
    for caller in &callers {
        let load = Arc::new(Load {
            caller: caller.clone(),
            clients: addrs
                .iter()
                .map(|a| Client::new(lazy_channel(*a)))
                .collect(),
            record: record.clone(),
            next_register: next_register.clone(),
            registers: registers.clone(),
        });
        tasks.push(load.every(Duration::from_millis(200), Load::get_status));
        tasks.push(load.every(Duration::from_secs(12), Load::forced_get_status));
        tasks.push(load.every(Duration::from_secs(2), Load::list_numbers));
        tasks.push(load.every(Duration::from_secs(4), Load::register));
        tasks.push(load.every(Duration::from_secs(2), Load::churn));
    }
    println!(
        "  load: per caller 5 GetStatus/s, 5 forced reads a minute, ListNumbers and churn \
         every 2 s, a Register every 4 s; {} held streams; {} cycle(s) of faults of {:?}",
        options.streams,
        options.cycles(),
        options.cycle()
    );

    // The faults, cycle by cycle; a checkpoint of every replica at each cycle's end.
    let spans: Arc<Mutex<Vec<Span>>> = Arc::new(Mutex::new(Vec::new()));
    let mut checkpoints: Vec<Vec<Sample>> = Vec::new();
    let mut open_at_checkpoints = Vec::new();
    let cycle = options.cycle();
    let slow = if options.smoke {
        Duration::from_millis(1_500)
    } else {
        Duration::from_secs(2)
    };
    let killed = REPLICAS - 1;
    let begin = |fault: Fault| {
        let at = record.now();
        println!("  +{:>5.1}s {} begins", at.as_secs_f64(), fault.name());
        spans.lock().unwrap().push(Span {
            fault,
            start: at,
            end: Duration::MAX,
        });
    };
    let end = |fault: Fault| {
        let at = record.now();
        println!("  +{:>5.1}s {} ends", at.as_secs_f64(), fault.name());
        if let Some(span) = spans
            .lock()
            .unwrap()
            .iter_mut()
            .rev()
            .find(|s| s.fault == fault)
        {
            span.end = at;
        }
    };
    let mut ok = true;
    for c in 0..options.cycles() {
        let base = cycle * c;
        let at = |fraction: f64| base + cycle.mul_f64(fraction);
        until(start, at(0.13)).await;
        begin(Fault::Upstream5xx);
        upstream.set(Mode::Fail);
        until(start, at(0.27)).await;
        upstream.set(Mode::Forward);
        end(Fault::Upstream5xx);

        until(start, at(0.33)).await;
        begin(Fault::SlowUpstream);
        upstream.set(Mode::Slow(slow));
        until(start, at(0.47)).await;
        upstream.set(Mode::Forward);
        end(Fault::SlowUpstream);

        until(start, at(0.53)).await;
        begin(Fault::Killed(killed));
        let victim = &mut fleet.replicas[killed];
        let _ = victim.proc.child.kill();
        let _ = victim.proc.child.wait();
        until(start, at(0.62)).await;
        fleet.restarts += 1;
        let (grpc, http) = (fleet.replicas[killed].grpc, fleet.replicas[killed].http);
        let name = format!("soak-replica-{}-restart-{}", killed + 1, fleet.restarts);
        let again = fleet.start_one(bench, &name, grpc, http).await;
        fleet.replicas[killed] = again;
        end(Fault::Killed(killed));

        until(start, at(0.73)).await;
        begin(Fault::PostgresRestart);
        let stopper = pg.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || stopper.stop_server())
            .await
            .unwrap()
        {
            println!("soak: {e}");
            ok = false;
        }
        until(start, at(0.78)).await;
        let starter = pg.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || starter.start_again())
            .await
            .unwrap()
        {
            println!("soak: {e}; the run cannot go on");
            return false;
        }
        end(Fault::PostgresRestart);

        until(start, at(0.97)).await;
        let now = record.now();
        let samples: Vec<Sample> = fleet.replicas.iter().map(|s| sample(s, now)).collect();
        open_at_checkpoints.push(open.load(Ordering::Relaxed));
        println!(
            "  +{:>5.1}s checkpoint: {} held streams open; RSS {} MiB; tasks {}",
            now.as_secs_f64(),
            open.load(Ordering::Relaxed),
            samples
                .iter()
                .map(|s| format!("{:.1}", s.rss_kib as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(" / "),
            samples
                .iter()
                .map(|s| s.tasks.map_or("?".into(), |t| t.to_string()))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        checkpoints.push(samples);
    }
    until(start, options.duration).await;
    // Calls still in flight may finish (within their deadline) after this; what they
    // answer is not counted.
    let ran = start.elapsed();
    // Streams cut off by a late fault (a restart that took long on a busy machine) may
    // still be reopening: every one must be open again, however long that takes here.
    let wait = Instant::now() + Duration::from_secs(30);
    while open.load(Ordering::Relaxed) < options.streams && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    record.stopping.store(true, Ordering::Relaxed);
    let open_at_end = open.load(Ordering::Relaxed);
    for task in &tasks {
        task.abort();
    }
    let mut alive = true;
    for (r, replica) in fleet.replicas.iter_mut().enumerate() {
        if let Ok(Some(status)) = replica.proc.child.try_wait() {
            println!("soak: replica {} exited: {status}", r + 1);
            alive = false;
        }
    }
    // Let the replicas answer what is in flight before they are stopped.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let summary = Summary {
        options,
        ran,
        opened_in,
        spans: spans.lock().unwrap().clone(),
        tallies: std::mem::take(&mut *record.tallies.lock().unwrap()),
        failures: record.failures.lock().unwrap().clone(),
        registers: registers.lock().unwrap().clone(),
        posts: upstream.registers.lock().unwrap().clone(),
        upstream: (
            upstream.calls.load(Ordering::Relaxed),
            upstream.failed.load(Ordering::Relaxed),
            upstream.delayed.load(Ordering::Relaxed),
        ),
        checkpoints,
        open_at_checkpoints,
        open_at_end,
        alive,
        killed,
    };
    let (text, passed) = summary.render();
    println!("\n{text}");
    if let Some(parent) = options.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&options.out, &text) {
        Ok(()) => println!("written to {}", options.out.display()),
        Err(e) => println!("cannot write {}: {e}", options.out.display()),
    }
    for replica in &mut fleet.replicas {
        replica.proc.terminate(Duration::from_secs(25));
    }
    drop(db);
    ok && passed
}

// ---------------------------------------------------------------------------------------
// The summary.

struct Summary<'a> {
    options: &'a Options,
    ran: Duration,
    opened_in: Duration,
    spans: Vec<Span>,
    tallies: BTreeMap<Rpc, Tally>,
    failures: Vec<Failure>,
    registers: Vec<Registered>,
    posts: HashMap<String, u64>,
    /// Graph calls through the proxy, answered with the fault, delayed.
    upstream: (u64, u64, u64),
    checkpoints: Vec<Vec<Sample>>,
    open_at_checkpoints: Vec<usize>,
    open_at_end: usize,
    alive: bool,
    killed: usize,
}

fn code_name(code: Option<Code>) -> String {
    code.map_or_else(|| "no status".into(), |c| format!("{c:?}"))
}

impl Summary<'_> {
    /// The tables, and whether every check passed.
    fn render(&self) -> (String, bool) {
        let o = self.options;
        let mut t = String::new();
        let mut passed = true;
        let _ = writeln!(
            t,
            "## Soak: {} ({:.0} s run, {} cycle(s) of faults of {:.0} s), 3 replicas, {} held \
             streams (open in {:.2?}), 3 callers",
            if o.smoke { "smoke" } else { "full" },
            self.ran.as_secs_f64(),
            o.cycles(),
            o.cycle().as_secs_f64(),
            o.streams,
            self.opened_in,
        );

        // Every failure, explained or not.
        let mut explained: BTreeMap<Rpc, BTreeMap<String, u64>> = BTreeMap::new();
        let mut examples: BTreeMap<(Rpc, String), String> = BTreeMap::new();
        let mut unexplained: Vec<&Failure> = Vec::new();
        for f in &self.failures {
            match explain(f, &self.spans) {
                Some(why) => {
                    let key = format!("{} ({why})", code_name(f.code));
                    examples
                        .entry((f.rpc, key.clone()))
                        .or_insert_with(|| f.message.clone());
                    *explained.entry(f.rpc).or_default().entry(key).or_insert(0) += 1;
                }
                None => unexplained.push(f),
            }
        }
        let _ = writeln!(
            t,
            "\n| calls | sent | OK | errors explained by a fault | unexpected |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|");
        for rpc in Rpc::ALL {
            let tally = self.tallies.get(&rpc);
            let (calls, ok) = tally.map_or((0, 0), |t| (t.calls, t.ok));
            let why = explained.get(&rpc).map_or("—".into(), |m| {
                m.iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            let bad = unexplained.iter().filter(|f| f.rpc == rpc).count();
            let sent = if rpc == Rpc::HeldEnd {
                "—".into()
            } else {
                calls.to_string()
            };
            let _ = writeln!(t, "| {} | {sent} | {ok} | {why} | {bad} |", rpc.name());
        }

        let _ = writeln!(t, "\nAn example of each kind of explained error:\n");
        for ((rpc, key), message) in &examples {
            let _ = writeln!(t, "- {}: {key}: {message:?}", rpc.name());
        }
        let _ = writeln!(t, "\n| fault | from | to |");
        let _ = writeln!(t, "|---|---|---|");
        for s in &self.spans {
            let _ = writeln!(
                t,
                "| {} | +{:.1}s | +{:.1}s |",
                s.fault.name(),
                s.start.as_secs_f64(),
                s.end.as_secs_f64()
            );
        }
        let (calls, failed, delayed) = self.upstream;
        let _ = writeln!(
            t,
            "\nGraph API calls through the fault proxy: {calls} ({failed} answered Meta's \
             transient error, {delayed} delayed)"
        );

        // The checks.
        let mut checks: Vec<(String, bool, String)> = Vec::new();
        checks.push((
            "every error explained by a fault active then".into(),
            unexplained.is_empty(),
            format!(
                "{} errors, {} unexpected",
                self.failures.len(),
                unexplained.len()
            ),
        ));
        let max_posts = self.posts.values().copied().max().unwrap_or(0);
        let twice: Vec<_> = self.posts.iter().filter(|(_, n)| **n > 1).collect();
        let ok_registers = self.registers.iter().filter(|r| r.ok).count();
        let ok_without_post = self
            .registers
            .iter()
            .filter(|r| r.ok && self.posts.get(&r.number).copied().unwrap_or(0) == 0)
            .count();
        checks.push((
            "no register POSTed twice (one request_id and number per Register)".into(),
            twice.is_empty() && ok_without_post == 0,
            format!(
                "{} Registers ({ok_registers} OK), {} numbers POSTed, at most {max_posts} POST \
                 per number; {} OK without a POST{}",
                self.registers.len(),
                self.posts.len(),
                ok_without_post,
                if twice.is_empty() {
                    String::new()
                } else {
                    format!("; POSTed more than once: {twice:?}")
                }
            ),
        ));
        let replays = self.tallies.get(&Rpc::RegisterReplay);
        let different = self
            .failures
            .iter()
            .filter(|f| f.rpc == Rpc::RegisterReplay && f.code == Some(Code::Ok))
            .count();
        checks.push((
            "a replayed Register answers as the first".into(),
            different == 0,
            format!(
                "{} replays, {} the same answer, {different} different",
                replays.map_or(0, |t| t.calls),
                replays.map_or(0, |t| t.ok)
            ),
        ));
        let ends: Vec<&Failure> = self
            .failures
            .iter()
            .filter(|f| f.rpc == Rpc::HeldEnd)
            .collect();
        let silent = ends.iter().filter(|f| f.code.is_none()).count();
        checks.push((
            "no held stream lost without a status".into(),
            silent == 0 && self.open_at_end == o.streams,
            format!(
                "{} ended ({} with a status, {silent} without); open at the checkpoints {:?}, \
                 at the end {} of {}",
                ends.len(),
                ends.len() - silent,
                self.open_at_checkpoints,
                self.open_at_end,
                o.streams
            ),
        ));
        checks.push((
            "replicas alive".into(),
            self.alive,
            if self.alive {
                "all 3 (replica 3 as restarted)".into()
            } else {
                "one exited by itself".into()
            },
        ));

        // Resources: from the first checkpoint (the first cycle's end) to the last.
        let mut resources = String::new();
        let _ = writeln!(
            resources,
            "\n| replica | RSS first → last checkpoint | tasks (waba_tokio_alive_tasks) | threads | open fds | waba_watch_streams |"
        );
        let _ = writeln!(resources, "|---|---|---|---|---|---|");
        let mut flat = true;
        let judged = self.checkpoints.len() >= 2 && !o.smoke;
        if let (Some(first), Some(last)) = (self.checkpoints.first(), self.checkpoints.last()) {
            let n = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
            for r in 0..first.len() {
                let (a, b) = (first[r], last[r]);
                let mib = |kib: u64| kib as f64 / 1024.0;
                let note = if r == self.killed {
                    " (killed each cycle: since its last start)"
                } else {
                    ""
                };
                let _ = writeln!(
                    resources,
                    "| {}{note} | {:.1} → {:.1} MiB (+{:.0}s → +{:.0}s) | {} → {} | {} → {} | {} → {} | {} → {} |",
                    r + 1,
                    mib(a.rss_kib),
                    mib(b.rss_kib),
                    a.at.as_secs_f64(),
                    b.at.as_secs_f64(),
                    n(a.tasks),
                    n(b.tasks),
                    a.threads,
                    b.threads,
                    a.fds,
                    b.fds,
                    n(a.streams),
                    n(b.streams),
                );
                if r != self.killed
                    && let (Some(x), Some(y)) = (a.tasks, b.tasks)
                    && y as f64 > x as f64 * 1.1 + 20.0
                {
                    flat = false;
                }
            }
            let all: Vec<String> = self
                .checkpoints
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|s| format!("{:.1}", s.rss_kib as f64 / 1024.0))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            let _ = writeln!(
                resources,
                "\nRSS at every checkpoint (MiB, replicas 1/2/3): {}",
                all.join(", ")
            );
            let tasks: Vec<String> = self
                .checkpoints
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|s| s.tasks.map_or("?".into(), |t| t.to_string()))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            let _ = writeln!(
                resources,
                "Tasks at every checkpoint (replicas 1/2/3): {}",
                tasks.join(", ")
            );
        }
        if judged {
            checks.push((
                "tasks flat from the first cycle to the last (replicas 1 and 2: ≤ +10 % + 20)"
                    .into(),
                flat,
                if flat { "flat".into() } else { "grew".into() },
            ));
        }

        let _ = writeln!(t, "\n| check | result | figures |");
        let _ = writeln!(t, "|---|---|---|");
        for (name, ok, figures) in &checks {
            passed &= ok;
            let _ = writeln!(
                t,
                "| {name} | {} | {figures} |",
                if *ok { "pass" } else { "**FAIL**" }
            );
        }
        t.push_str(&resources);
        if !unexplained.is_empty() {
            let _ = writeln!(t, "\nUnexpected errors (the first 30):\n");
            for f in unexplained.iter().take(30) {
                let _ = writeln!(
                    t,
                    "- +{:.2}s {} on replica {}: {}: {}",
                    f.at.as_secs_f64(),
                    f.rpc.name(),
                    f.replica + 1,
                    code_name(f.code),
                    f.message
                );
            }
        }
        let _ = writeln!(
            t,
            "\n{}",
            if passed {
                "every check passed"
            } else {
                "a check FAILED"
            }
        );
        (t, passed)
    }
}
