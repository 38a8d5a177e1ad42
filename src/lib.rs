//! waba-numbers: one gRPC service for managing WhatsApp Business phone numbers through
//! Meta's Graph API, with an embedded simulated Graph API (the sandbox).
//!
//! ```text
//! grpc/     thin handlers: validate → domain → proto; one error → Status mapping
//! numbers/  the domain (read path, register guard)
//! watch/    one shared watcher per number or WABA → tokio::sync::watch → subscribers
//! graph/    the only code that speaks HTTP to Meta (and reads its webhooks)
//! http/     axum: /webhooks/whatsapp
//! sandbox/  a simulated Graph API: a second, independent reading of Meta's contract
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod graph;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod numbers;
pub mod sandbox;
pub mod server;
pub mod watch;

pub use grpc::pb;

/// reqwest is built without a default TLS provider (no aws-lc C build): every HTTP client
/// is built after this installs rustls on ring, once per process.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means a provider was installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
