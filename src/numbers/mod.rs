//! The domain: what the service does with phone numbers, whoever asks.
//!
//! Every read, by an RPC or a watcher, goes through the read path (`read.rs`: cache,
//! single-flight, throttle memory). Registration goes through the register guard, and
//! drops what the cache knew of the number.

mod directory;
mod flight;
mod read;
mod register_guard;
mod throttle;

pub use directory::Accepted;
pub use read::{CacheSettings, Page, ReadPath};
pub use throttle::DEFAULT_PAUSE as THROTTLE_PAUSE;

use crate::graph::{self, GraphClient};
use crate::model::{Deadline, Snapshot};
use register_guard::RegisterGuard;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

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
    /// Meta throttles the number's WABA (or the app), and no cached answer will do: no
    /// call was sent.
    #[error("Meta is throttling calls for this number's WABA or the app; no call was sent (try again in {}s)", .retry_after.as_secs())]
    Throttled { retry_after: Duration },
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
    reads: ReadPath,
    register_guard: Arc<RegisterGuard>,
}

impl Numbers {
    pub fn new(graph: Arc<GraphClient>, cache: &CacheSettings) -> Self {
        Self {
            reads: ReadPath::new(graph.clone(), cache),
            graph,
            register_guard: Arc::new(RegisterGuard::new()),
        }
    }

    /// The read path, shared with the watchers.
    pub fn reads(&self) -> &ReadPath {
        &self.reads
    }

    /// One page of a WABA's numbers, from cache while fresh.
    pub async fn list(
        &self,
        waba_id: &str,
        page_size: u32,
        cursor: Option<&str>,
        deadline: Deadline,
    ) -> Result<Arc<Page>, Error> {
        self.reads
            .page(waba_id, page_size, cursor, None, deadline)
            .await
    }

    /// A number's snapshot no older than `max_staleness` (`None`: the cache TTL).
    pub async fn get(
        &self,
        phone_number_id: &str,
        max_staleness: Option<Duration>,
        deadline: Deadline,
    ) -> Result<Arc<Snapshot>, Error> {
        self.reads
            .number(phone_number_id, max_staleness, deadline)
            .await
    }

    /// Registers a number: one upstream attempt at most, since each spends Meta's
    /// register budget; with a `request_id`, at most one successful attempt per key.
    pub async fn register(&self, r: &Registration, deadline: Deadline) -> Result<bool, Error> {
        let graph = self.graph.clone();
        let reads = self.reads.clone();
        let (id, pin, region) = (
            r.phone_number_id.clone(),
            r.pin.clone(),
            r.data_localization_region.clone(),
        );
        let attempt = async move {
            let outcome = graph.register(&id, &pin, region.as_deref(), deadline).await;
            // Whatever Meta answered, what the cache knew of the number may be stale now.
            reads.invalidate(&id);
            match outcome {
                Ok(success) => Ok(success),
                Err(e) if e.outcome_unknown() => Err(Error::RegisterOutcomeUnknown(e.to_string())),
                Err(e) => Err(e.into()),
            }
        };
        self.register_guard.run(r, attempt).await
    }
}
