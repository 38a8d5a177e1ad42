//! TLS for every HTTP client the process builds: rustls on ring (no aws-lc C build).

/// reqwest is built without a default TLS provider: every HTTP client is built after
/// this installs rustls on ring, once per process.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means a provider was installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
