//! The domain: what the service does with phone numbers, whoever asks.
//!
//! Reads go straight to the Graph API for now; the quota-saving read path (short-TTL
//! cache, single-flight) belongs here. Registration goes through the register guard.

mod register_guard;

use crate::graph::{self, GraphClient};
use crate::model::{Deadline, NumbersPage, PhoneNumber};
use register_guard::RegisterGuard;
use secrecy::SecretString;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] graph::Error),
    #[error("request_id was already used for a different register request")]
    RequestIdReused,
    /// Register got no answer (timeout, connection lost, 5xx without a body): Meta may
    /// have processed and counted it.
    #[error("the register request may or may not have reached Meta: {0}")]
    RegisterOutcomeUnknown(String),
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
        let graph = self.graph.clone();
        let (id, pin, region) = (
            r.phone_number_id.clone(),
            r.pin.clone(),
            r.data_localization_region.clone(),
        );
        let attempt = async move {
            match graph.register(&id, &pin, region.as_deref(), deadline).await {
                Ok(success) => Ok(success),
                Err(e) if e.outcome_unknown() => Err(Error::RegisterOutcomeUnknown(e.to_string())),
                Err(e) => Err(e.into()),
            }
        };
        self.register_guard.run(r, attempt).await
    }
}
