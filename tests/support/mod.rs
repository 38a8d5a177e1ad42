//! The shared harness: the real server on 127.0.0.1:0, a real tonic client over TCP,
//! and either the embedded sandbox or a per-test fake Graph API (wiremock).

use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::{ErrorInfo, StatusExt};
use waba_numbers::graph::{GraphSettings, TokenSource, appsecret_proof};
use waba_numbers::http::{WEBHOOK_PATH, WebhookSettings};
use waba_numbers::pb::phone_number_service_client::PhoneNumberServiceClient;
use waba_numbers::sandbox::{self, SandboxOptions};
use waba_numbers::server::{self, BoxError, Settings};
use waba_numbers::watch::Hub;
use wiremock::{MockServer, ResponseTemplate};

pub const TOKEN: &str = "EAAGtest-access-token-0123456789";
pub const APP_SECRET: &str = "test-app-secret-abcdef";
pub const VERSION: &str = "v25.0";
pub const FBTRACE: &str = "AbCdEfGhIjK";
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// The exact field list Meta must receive on every phone-number read.
pub const FIELDS: &str = "id,display_phone_number,verified_name,name_status,new_name_status,\
new_display_name,code_verification_status,quality_rating,status,platform_type,throughput,\
messaging_limit_tier,whatsapp_business_manager_messaging_limit,account_mode,\
is_official_business_account,is_pin_enabled,last_onboarded_time";

pub type Client = PhoneNumberServiceClient<Channel>;

pub struct Service {
    pub addr: SocketAddr,
    /// Where Meta's webhooks go.
    pub http_addr: SocketAddr,
    pub client: Client,
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), BoxError>>,
}

impl Service {
    pub async fn start(settings: Settings) -> Service {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Service::start_on(settings, http).await
    }

    /// Starts with the HTTP (webhook) listener already bound.
    pub async fn start_on(settings: Settings, http: TcpListener) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let service = server::Service::build(settings).await.unwrap();
        let hub = service.hub().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, http, async {
            let _ = stopped.await;
        }));
        let channel = channel(addr).await;
        // Ready once health answers.
        let ready = HealthCheckRequest {
            service: String::new(),
        };
        HealthClient::new(channel.clone())
            .check(ready)
            .await
            .unwrap();
        let client = Client::new(channel);
        Service {
            addr,
            http_addr,
            client,
            hub,
            stop: Some(stop),
            task,
        }
    }

    /// The service on the embedded sandbox, which checks the token and appsecret_proof
    /// and delivers signed webhooks to the service.
    pub async fn on_sandbox() -> Service {
        Service::on_sandbox_with(SandboxOptions::default()).await
    }

    pub async fn on_sandbox_with(options: SandboxOptions) -> Service {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_url = format!("http://{}{WEBHOOK_PATH}", http.local_addr().unwrap());
        let options = SandboxOptions {
            access_token: Some(TOKEN.into()),
            app_secret: Some(APP_SECRET.into()),
            webhook_url: Some(webhook_url),
            ..options
        };
        let url = sandbox::spawn(options).await.unwrap();
        Service::start_on(settings(&url), http).await
    }

    /// The service on a fake Graph API.
    pub async fn on_fake(graph: &MockServer) -> Service {
        Service::start(settings(&graph.uri())).await
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Triggers graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap()
    }
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

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub fn graph_settings(url: &str) -> GraphSettings {
    let mut graph = GraphSettings::new(url, VERSION, TokenSource::Static(TOKEN.into()));
    graph.app_secret = Some(APP_SECRET.into());
    graph.request_timeout = Some(Duration::from_secs(5));
    graph
}

/// The appsecret_proof Meta expects with `token`.
pub fn proof_for(token: &str) -> String {
    appsecret_proof(&SecretString::from(APP_SECRET), &SecretString::from(token))
}

pub fn error_info(status: &Status) -> ErrorInfo {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"))
}

/// Meta's error envelope as the fake Graph API answers it.
pub fn graph_error(http: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_json(graph_error_body(code, subcode, message))
}

pub fn graph_error_body(code: i64, subcode: Option<i64>, message: &str) -> serde_json::Value {
    let mut error = serde_json::json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": FBTRACE,
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    serde_json::json!({ "error": error })
}

/// A phone-number node as Meta returns it.
pub fn number_json(id: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "display_phone_number": "+1 555-555-5555",
        "verified_name": "Jaspers Market",
        "name_status": "APPROVED",
        "new_name_status": "NONE",
        "code_verification_status": "VERIFIED",
        "quality_rating": "GREEN",
        "status": "CONNECTED",
        "platform_type": "CLOUD_API",
        "throughput": { "level": "STANDARD" },
        "messaging_limit_tier": "TIER_1K",
        "whatsapp_business_manager_messaging_limit": "TIER_2K",
        "account_mode": "LIVE",
        "is_official_business_account": false,
        "is_pin_enabled": true,
        "last_onboarded_time": "2023-08-22T19:05:53+0000"
    })
}
