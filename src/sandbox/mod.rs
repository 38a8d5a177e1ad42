//! The embedded sandbox: a simulated Graph API on a real HTTP server.
//!
//! It speaks Meta's paths, JSON, error envelope and usage headers, and simulates the
//! whole life of a phone number as Meta's contract describes it:
//!
//! - a demo business ([`DEMO_BUSINESS_ID`]) owning the demo WABA ([`DEMO_WABA_ID`], 34
//!   numbers in varied states), a second WABA holding one number ready to migrate
//!   ([`MIGRATION_WABA_ID`], [`MIGRATABLE_NUMBER`]) and a pool of pre-verified numbers;
//! - adding a number (`POST /{WABA_ID}/phone_numbers`: new, `migrate_phone_number`, or
//!   `preverified_id`), with deterministic ids ([`phone_number_id`]);
//! - `request_code` (the code, always [`VERIFICATION_CODE`], is logged as the phone
//!   would receive it) and `verify_code`, on numbers and pre-verified numbers;
//! - `register` (PIN rules, verification required, applies an approved display-name
//!   change, completes a migration) and `deregister`, sharing 10 attempts per 72 hours;
//! - `POST /{ID}` with `pin` or `new_display_name` (10 per 30 days);
//! - the pre-verified pool: `add_phone_numbers`, `preverified_numbers`, read, delete;
//! - `GET /{ID}` with every documented field (`username` refused as on v24.0+),
//!   `GET /{WABA_ID}/phone_numbers` with cursor paging both ways and `summary`, batch
//!   requests of any operation, unknown ids, paths and methods answered 100/33;
//! - customers onboarded by Embedded Signup: `GET /oauth/access_token` exchanges codes
//!   of the form [`DEMO_CODE_PREFIX`]`customer[.anything]` for business tokens (the first
//!   code of a customer creates its WABA, [`customer_waba_id`], with
//!   [`CUSTOMER_NUMBERS`] numbers), a business token reaches only its own WABA (else
//!   `(#200) Permissions error`), `GET /debug_token` as the app ([`SANDBOX_APP_ID`]),
//!   `GET`/`POST`/`DELETE /{WABA_ID}/subscribed_apps` (webhooks about a WABA only while
//!   it is subscribed), and `POST /_sandbox/revoke?waba_id=` ([`REVOKE_PATH`]: the
//!   customer removes the app, its tokens then get 190/458). The whole contract is in
//!   `customers.rs`.
//!
//! Parameters are read from the query string, a form body or a JSON body alike, paths
//! with a trailing slash work, and the access token and `appsecret_proof` may come in
//! a header, the query or the body: any generic Graph client works against it.
//!
//! Its numbers change by themselves (the life script: display names and requested new
//! names get decided, verification completes, quality moves, approved new names lapse
//! after 14 days without a register), and it delivers signed webhooks.
//!
//! For benchmarks it can answer slowly, drop the quota, hold a WABA of generated
//! numbers, and count the calls it answers (`GET /_sandbox/calls`, no token needed).
//!
//! Layout: `state` (the world, its demo and the life script: pure, `now` passed in),
//! `lifecycle` (the writes' rules), `preverified` (the pool), `customers` (codes, business
//! tokens, who a token reaches, subscriptions: pure), `params` (one parser for
//! every call's parameters), `render` (nodes and edges as Meta's JSON), `http` (paths,
//! authentication, envelope, batch), `webhooks` (signed delivery).
//!
//! It never imports `graph/` (nor the reverse): it is a second, independent reading of
//! Meta's contract, so a misunderstanding of Meta cannot pass every test unnoticed.

mod customers;
mod http;
pub mod lifecycle;
mod params;
pub mod preverified;
mod render;
pub mod state;
mod webhooks;

pub use customers::{
    APP_NOT_INSTALLED, CODE_USED, CUSTOMER_NUMBERS, DEMO_CODE_PREFIX, PARTNER_SYSTEM_USER_ID,
    SANDBOX_APP_ID, SANDBOX_APP_NAME, SANDBOX_APP_SECRET, business_token, customer_business_id,
    customer_number_id, customer_waba_id,
};
pub use http::{CALLS_PATH, REVOKE_PATH};
pub use state::{
    BENCH_WABA_ID, DEMO_BUSINESS_ID, DEMO_PIN, DEMO_WABA_ID, MAX_BENCH_NUMBERS, MIGRATABLE_NUMBER,
    MIGRATION_WABA_ID, VERIFICATION_CODE, bench_number_id, phone_number_id, preverified_id,
};

use secrecy::SecretString;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The only token accepted; `None` accepts any bearer token.
    pub access_token: Option<SecretString>,
    /// When set, every call must carry a valid `appsecret_proof`; it is also the app
    /// secret of the code exchange and the app token (else [`SANDBOX_APP_SECRET`]).
    pub app_secret: Option<SecretString>,
    /// Where to deliver webhooks (Meta's callback URL); `None` delivers none.
    pub webhook_url: Option<String>,
    /// Time between the demo numbers' scripted changes.
    pub pace: Duration,
    /// How long every Graph call waits before it is answered, as a slow Meta would (the
    /// call counter at [`CALLS_PATH`] answers at once).
    pub latency: Duration,
    /// Meta's hourly call budget per WABA; `false` never throttles (no 80007, usage 0 %).
    pub quota: bool,
    /// Generated numbers in the bench WABA ([`BENCH_WABA_ID`]), for load tests; 0: none.
    pub bench_numbers: usize,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            access_token: None,
            app_secret: None,
            webhook_url: None,
            pace: Duration::from_secs(4),
            latency: Duration::ZERO,
            quota: true,
            bench_numbers: 0,
        }
    }
}

/// Serves the simulated Graph API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: SandboxOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Before anything answers: the webhook client needs it, and so does any client
    // built in the same process once the sandbox is up.
    crate::tls::install_provider();
    let mut world = state::World::demo(Instant::now(), chrono::Utc::now(), options.pace);
    world.add_bench_waba(options.bench_numbers);
    world.unlimited = !options.quota;
    let (outbox, announcements) = tokio::sync::mpsc::unbounded_channel();
    let delivery = webhooks::deliver(
        announcements,
        options.webhook_url.clone(),
        options.app_secret.clone(),
    );
    let shared = Arc::new(http::Shared::new(world, options, outbox));
    // Time passes in the sandbox even when nobody calls it.
    let clock = {
        let shared = Arc::downgrade(&shared);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                drop(shared.world());
            }
        }
    };
    let life = tokio::spawn(async move { tokio::join!(clock, delivery) });
    let router = http::router(shared).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    life.abort();
    served
}

/// Starts the simulated Graph API on a free loopback port, in the background for the
/// life of the runtime; returns its base URL (without version).
pub async fn spawn(options: SandboxOptions) -> std::io::Result<String> {
    crate::tls::install_provider();
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, options, std::future::pending()).await {
            tracing::error!(error = %e, "sandbox Graph API stopped");
        }
    });
    Ok(format!("http://{addr}"))
}
