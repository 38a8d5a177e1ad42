//! The domain: what the service does with phone numbers, whoever asks.
//!
//! Today a direct path to the Graph API; this is where the quota-saving read path
//! (short-TTL cache, single-flight) and the register guard (idempotency, the
//! 10-per-72-hours budget) belong.

mod model;

pub use model::{NumbersPage, PhoneNumber, is_graph_id};

use crate::graph::{self, Deadline, GraphClient};
use secrecy::SecretString;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] graph::Error),
}

/// A request to register a number for the Cloud API. Not `Debug`-printable in clear:
/// the PIN is a secret.
#[derive(Debug)]
pub struct Registration {
    pub phone_number_id: String,
    pub pin: SecretString,
    pub data_localization_region: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Numbers {
    graph: Arc<GraphClient>,
}

impl Numbers {
    pub fn new(graph: Arc<GraphClient>) -> Self {
        Self { graph }
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

    /// Registers a number. One attempt only: each spends Meta's register budget.
    pub async fn register(&self, r: &Registration, deadline: Deadline) -> Result<bool, Error> {
        let region = r.data_localization_region.as_deref();
        Ok(self
            .graph
            .register(&r.phone_number_id, &r.pin, region, deadline)
            .await?)
    }
}
