//! The embedded sandbox: a simulated Graph API on a real HTTP server.
//!
//! It speaks Meta's paths, JSON, error envelope and usage headers, seeded with a demo
//! WABA of numbers in varied states, and behaves like Meta where it matters: cursor
//! pagination, `fields=`, register PIN rules and the 10-per-72-hours budget, display
//! names decided after a while, unknown ids → 100/33.
//!
//! It never imports `graph/` (nor the reverse): it is a second, independent reading of
//! Meta's contract, so a misunderstanding of Meta cannot pass every test unnoticed.

mod http;
pub mod state;

pub use state::{DEMO_PIN, DEMO_WABA_ID};

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
    /// When set, every call must carry a valid `appsecret_proof`.
    pub app_secret: Option<SecretString>,
    /// Time between display-name decisions of the pending demo numbers.
    pub review_delay: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            access_token: None,
            app_secret: None,
            review_delay: Duration::from_secs(20),
        }
    }
}

/// Serves the simulated Graph API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: SandboxOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let world = state::World::demo(Instant::now(), options.review_delay);
    let app = http::router(Arc::new(http::Shared::new(world, options)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the simulated Graph API on a free loopback port, in the background for the
/// life of the runtime; returns its base URL (without version).
pub async fn spawn(options: SandboxOptions) -> std::io::Result<String> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, options, std::future::pending()).await {
            tracing::error!(error = %e, "sandbox Graph API stopped");
        }
    });
    Ok(format!("http://{addr}"))
}
