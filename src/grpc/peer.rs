//! Who is at the other end of a gRPC connection, as its TLS client certificate says.
//!
//! The listener (src/grpc/transport.rs) puts one in every request's extensions when the
//! connection presented a client certificate (mutual TLS); the caller check
//! (src/grpc/auth.rs) matches a caller entry's `tls_san` against it.

use std::sync::Arc;

/// The subject alternative names (URI and DNS) of a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    pub sans: Arc<[String]>,
}

impl PeerIdentity {
    pub fn new(sans: Vec<String>) -> Self {
        Self { sans: sans.into() }
    }

    /// Whether the certificate names `san` (exactly).
    pub fn has_san(&self, san: &str) -> bool {
        self.sans.iter().any(|s| s == san)
    }
}
