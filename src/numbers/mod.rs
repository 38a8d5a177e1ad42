//! The domain: what the service does with phone numbers, whoever asks.
//!
//! Reads go straight to the Graph API for now; the quota-saving read path (short-TTL
//! cache, single-flight) belongs here. Registration goes through the register guard.

mod model;
mod register_guard;

pub use model::{NumbersPage, PhoneNumber, is_graph_id};

use crate::graph::{self, Deadline, GraphClient};
use register_guard::RegisterGuard;
use secrecy::SecretString;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] graph::Error),
    #[error("request_id was already used for a different register request")]
    RequestIdReused,
}

/// A request to register a number for the Cloud API. Its PIN is a `SecretString`, so
/// `Debug` never shows it.
#[derive(Debug)]
pub struct Registration {
    pub phone_number_id: String,
    pub pin: SecretString,
    pub data_localization_region: Option<String>,
    /// The client's idempotency key.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Numbers {
    graph: Arc<GraphClient>,
    register_guard: Arc<RegisterGuard>,
}

impl Numbers {
    pub fn new(graph: Arc<GraphClient>) -> Self {
        Self {
            graph,
            register_guard: Arc::new(RegisterGuard::new()),
        }
    }

    pub async fn list(
        &self,
        waba_id: &str,
        page_size: u32,
        cursor: Option<&str>,
        deadline: Deadline,
    ) -> Result<NumbersPage, Error> {
        Ok(self
            .graph
            .list_phone_numbers(waba_id, page_size, cursor, deadline)
            .await?)
    }

    pub async fn get(
        &self,
        phone_number_id: &str,
        deadline: Deadline,
    ) -> Result<PhoneNumber, Error> {
        Ok(self.graph.phone_number(phone_number_id, deadline).await?)
    }

    /// Registers a number: one upstream attempt at most, since each spends Meta's
    /// register budget; with a `request_id`, at most one successful attempt per key.
    pub async fn register(&self, r: &Registration, deadline: Deadline) -> Result<bool, Error> {
        self.register_guard
            .run(r, || async {
                let region = r.data_localization_region.as_deref();
                Ok(self
                    .graph
                    .register(&r.phone_number_id, &r.pin, region, deadline)
                    .await?)
            })
            .await
    }
}
