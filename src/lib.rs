//! waba-numbers: one gRPC service for managing WhatsApp Business phone numbers through
//! Meta's Graph API, with an embedded simulated Graph API (the sandbox).
//!
//! ```text
//! callers/  who may call and what they may do: the callers file (API keys, TLS names)
//! grpc/     thin handlers: validate → domain → proto; one error → Status mapping
//! http/     axum: /webhooks/whatsapp, /metrics
//! numbers/  the domain: the read path (cache, single-flight, throttle memory), the
//!           register guard
//! watch/    one shared watcher per number or WABA → tokio::sync::watch → subscribers
//! graph/    the only code that speaks HTTP to Meta (and reads its webhooks); a leaf
//! store/    what survives restarts and replicas share: memory, a SQLite file or
//!           PostgreSQL; tokens encrypted at rest
//! model/    plain domain types at the bottom: imported by all, imports nothing
//! sandbox/  a simulated Graph API: a second, independent reading of Meta's contract
//! ```
//!
//! What may import what is checked by `scripts/check-layers.py` (in CI).
#![forbid(unsafe_code)]

pub mod callers;
pub mod config;
pub mod customers;
#[cfg(test)]
mod fuzzing;
pub mod graph;
pub mod grpc;
pub mod http;
pub mod keyring;
pub mod metrics;
pub mod model;
pub mod numbers;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod tls;
pub mod watch;

pub use grpc::pb;
