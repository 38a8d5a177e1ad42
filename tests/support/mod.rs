//! The shared harness: the real server on 127.0.0.1:0, a real tonic client over TCP,
//! and either the embedded sandbox or a per-test fake Graph API (wiremock).
//!
//! Tests `use crate::support::{...}` for all of it: this module holds the server and
//! its settings; `graph` the fake Graph API's answers, mocks and request counts, `ids`
//! the ids the fake-Graph tests share, `requests` the request messages, `stream`
//! reading WatchStatus streams (bounded, or `unbounded` for the paused clock), `store`
//! the store on each backend, `postgres` a PostgreSQL server of a test's own, `raw` fake
//! Graph APIs below HTTP (a reset mid-body, an endless body, an untrusted certificate),
//! `tls` certificates made on the spot and clients over TLS (mutual or not).

mod binary;
mod graph;
mod ids;
mod postgres;
mod raw;
mod requests;
mod store;
mod stream;
mod tls;
mod webhooks;

pub use binary::*;
pub use graph::*;
pub use ids::*;
pub use postgres::*;
pub use raw::*;
pub use requests::*;
pub use store::*;
pub use stream::*;
pub use tls::*;
pub use webhooks::*;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::{ErrorInfo, StatusExt};
use waba_numbers::graph::{GraphSettings, TokenSource};
use waba_numbers::http::{WEBHOOK_PATH, WebhookSettings};
use waba_numbers::pb::customer_service_client::CustomerServiceClient;
use waba_numbers::pb::phone_number_service_client::PhoneNumberServiceClient;
use waba_numbers::pb::{StatusEvent, WatchStatusRequest};
use waba_numbers::sandbox::{self, SandboxOptions};
use waba_numbers::server::{self, BoxError, Settings};
use waba_numbers::store::StoreConfig;
use waba_numbers::watch::Hub;
use wiremock::MockServer;

/// The access token the service is started with.
pub const TOKEN: &str = "EAAGtest-access-token-0123456789";
/// The app secret: for appsecret_proof and webhook signatures.
pub const APP_SECRET: &str = "test-app-secret-abcdef";
/// The Graph API version in every path.
pub const VERSION: &str = "v25.0";
/// The token Meta's webhook verification handshake must present.
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// A client of the service.
pub type Client = PhoneNumberServiceClient<Channel>;
/// A client of the service's customer RPCs.
pub type CustomersClient = CustomerServiceClient<Channel>;

/// The Meta app id the customer tests exchange codes with.
pub const APP_ID: &str = "1234567890123456";

/// The service, running on its own task, and a client connected to it.
pub struct Service {
    /// Where gRPC calls go.
    pub addr: SocketAddr,
    /// Where Meta's webhooks go.
    pub http_addr: SocketAddr,
    /// A client on `addr`.
    pub client: Client,
    /// A client of the customer RPCs on `addr`.
    pub customers: CustomersClient,
    /// The service's watchers, to read their stats.
    pub hub: Hub,
    /// The plaintext health port, when started with one.
    pub health_addr: Option<SocketAddr>,
    /// The /metrics port, when started with one.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), BoxError>>,
}

impl Service {
    /// Starts with `settings` and waits until health answers.
    pub async fn start(settings: Settings) -> Service {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Service::start_on(settings, http).await
    }

    /// Starts with the HTTP (webhook) listener already bound.
    pub async fn start_on(settings: Settings, http: TcpListener) -> Service {
        Service::start_with(
            settings,
            StartOptions {
                http: Some(http),
                ..StartOptions::default()
            },
        )
        .await
    }

    /// Starts with `options`: which extra ports, how clients connect.
    pub async fn start_with(settings: Settings, options: StartOptions<'_>) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = match options.http {
            Some(http) => http,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let http_addr = http.local_addr().unwrap();
        let mut service = server::Service::build(settings).await.unwrap();
        let mut health_addr = None;
        if options.health_port {
            let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
            health_addr = Some(health.local_addr().unwrap());
            service = service.with_health_listener(health);
        }
        let mut metrics_addr = None;
        if options.metrics_port {
            let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
            metrics_addr = Some(metrics.local_addr().unwrap());
            service = service.with_metrics_listener(metrics);
        }
        let hub = service.hub().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, http, async {
            let _ = stopped.await;
        }));
        let channel = match options.tls {
            None => channel(addr).await,
            Some((ca, identity)) => tls_channel(addr, ca, identity).await.unwrap(),
        };
        // Ready once health answers.
        let ready = HealthCheckRequest {
            service: String::new(),
        };
        HealthClient::new(channel.clone())
            .check(ready)
            .await
            .unwrap();
        let client = Client::new(channel.clone());
        Service {
            addr,
            http_addr,
            client,
            customers: CustomersClient::new(channel),
            hub,
            health_addr,
            metrics_addr,
            stop: Some(stop),
            task,
        }
    }

    /// The service on the embedded sandbox, which checks the token and appsecret_proof
    /// and delivers signed webhooks to the service.
    pub async fn on_sandbox() -> Service {
        Service::on_sandbox_with(SandboxOptions::default()).await
    }

    /// The service on the embedded sandbox run with `options` (its credentials and
    /// webhook address are the service's).
    pub async fn on_sandbox_with(options: SandboxOptions) -> Service {
        let (settings, http) = on_sandbox_settings(options).await;
        Service::start_on(settings, http).await
    }

    /// The service on the embedded sandbox with customers: the sandbox's app id, a
    /// `memory` store.
    pub async fn on_sandbox_with_customers() -> Service {
        let (settings, http) = sandbox_customers_settings().await;
        Service::start_on(settings, http).await
    }

    /// The service on a fake Graph API.
    pub async fn on_fake(graph: &MockServer) -> Service {
        Service::start(settings(&graph.uri())).await
    }

    /// The service on a fake Graph API, for tests on tokio's paused clock.
    pub async fn on_fake_paused(graph: &MockServer) -> Service {
        Service::start(paused_clock_settings(&graph.uri())).await
    }

    /// Another handle on the client (they share one connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Opens a WatchStatus stream; fails the test if the call is refused.
    pub async fn watch(&self, request: WatchStatusRequest) -> Streaming<StatusEvent> {
        self.client()
            .watch_status(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Triggers graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap()
    }
}

/// What [`Service::on_sandbox_with_customers`] runs on, to change before it starts.
pub async fn sandbox_customers_settings() -> (Settings, TcpListener) {
    let (settings, http) = on_sandbox_settings(SandboxOptions::default()).await;
    let mut settings = with_customers(settings, StoreConfig::memory());
    settings.graph.app_id = Some(sandbox::SANDBOX_APP_ID.into());
    (settings, http)
}

/// How [`Service::start_with`] starts the service.
#[derive(Default)]
pub struct StartOptions<'a> {
    /// The webhook listener, already bound (else a free port).
    pub http: Option<TcpListener>,
    /// Serve grpc.health.v1 on a plaintext port of its own (`health_addr`).
    pub health_port: bool,
    /// Serve /metrics on a port of its own (`metrics_addr`).
    pub metrics_port: bool,
    /// The settings' TLS: clients trust this CA, and present this identity.
    pub tls: Option<(&'a Ca, Option<&'a Identity>)>,
}

/// A sandbox run with `options` (its credentials and webhook address the service's),
/// the settings that reach it, and the service's webhook listener.
pub async fn on_sandbox_settings(options: SandboxOptions) -> (Settings, TcpListener) {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook_url = format!("http://{}{WEBHOOK_PATH}", http.local_addr().unwrap());
    let options = SandboxOptions {
        access_token: Some(TOKEN.into()),
        app_secret: Some(APP_SECRET.into()),
        webhook_url: Some(webhook_url),
        ..options
    };
    let url = sandbox::spawn(options).await.unwrap();
    (settings(&url), http)
}

/// Settings against the Graph API at `url`, verifying webhooks with the app secret.
pub fn settings(url: &str) -> Settings {
    let mut settings = Settings::new(graph_settings(url));
    settings.webhooks = WebhookSettings {
        app_secret: Some(APP_SECRET.into()),
        verify_token: Some(VERIFY_TOKEN.into()),
    };
    settings
}

/// `settings` with customers kept in `store`, codes exchanged as the app [`APP_ID`], and
/// no periodic token check (the tests that want one set it).
pub fn with_customers(mut settings: Settings, store: StoreConfig) -> Settings {
    settings.store = Some(store);
    settings.graph.app_id = Some(APP_ID.into());
    settings.token_check_interval = None;
    settings
}

/// Settings for tests on tokio's paused clock. The clock jumps to the next timer
/// whenever the runtime waits, for real network I/O too, however far off the timer; so
/// no timer may stand for "the network is slow": no timeouts, no HTTP/2 keepalive. Only
/// the watchers' own waits remain, and those are what the tests let pass.
pub fn paused_clock_settings(url: &str) -> Settings {
    let mut settings = settings(url);
    settings.graph.request_timeout = None;
    settings.graph.connect_timeout = None;
    settings.keepalive = None;
    settings.watch.first_snapshot_wait = None;
    settings
}

/// A connected channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Graph API settings for `url`: `TOKEN`, `APP_SECRET`, a 5 s request timeout.
pub fn graph_settings(url: &str) -> GraphSettings {
    let mut graph = GraphSettings::new(url, VERSION, Some(TokenSource::Static(TOKEN.into())));
    graph.app_secret = Some(APP_SECRET.into());
    graph.request_timeout = Some(Duration::from_secs(5));
    graph
}

/// Asserts that `status` is INVALID_ARGUMENT and that its BadRequest detail's first
/// violation names `field`.
pub fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations[0].field, field, "{status:?}");
}

/// Asserts that `status` is the register guard's refusal for number `id`: ErrorInfo
/// REGISTER_BUDGET_GUARD in the service's domain, RetryInfo within the 72-hour window (more
/// than `at_least_hours`), a QuotaFailure naming the number.
pub fn assert_register_guard(status: &Status, id: &str, at_least_hours: u64) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = error_info(status);
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("REGISTER_BUDGET_GUARD", "waba-numbers")
    );
    let retry = status
        .get_details_retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(
        retry > Duration::from_secs(at_least_hours * 3600)
            && retry <= Duration::from_secs(72 * 3600),
        "{retry:?}"
    );
    let quota = status.get_details_quota_failure().unwrap();
    assert_eq!(quota.violations[0].subject, format!("phone_number:{id}"));
}

/// The ErrorInfo detail in `status`; fails the test without one.
pub fn error_info(status: &Status) -> ErrorInfo {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}
