//! Register idempotency: a client retrying with the same `request_id` must not spend
//! another of Meta's 10 register attempts per number per 72 hours.
//!
//! Successful outcomes are remembered for a day by request_id. Concurrent calls with one
//! key share a single upstream attempt. Failures are not remembered: retrying after one
//! is a deliberate new attempt. A key reused for a different request (another number,
//! PIN or region) is refused.

use super::{Error, Registration};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::future::Future;
use std::time::Duration;

const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);
const MAX_KEYS: u64 = 100_000;

#[derive(Clone)]
struct Outcome {
    /// Identifies the request without keeping its PIN.
    fingerprint: [u8; 32],
    success: bool,
}

pub struct RegisterGuard {
    outcomes: moka::future::Cache<String, Outcome>,
    key: [u8; 32],
}

impl std::fmt::Debug for RegisterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterGuard")
            .field("remembered", &self.outcomes.entry_count())
            .finish_non_exhaustive()
    }
}

impl RegisterGuard {
    pub fn new() -> Self {
        Self {
            outcomes: moka::future::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(REMEMBER_FOR)
                .build(),
            key: rand::random(),
        }
    }

    /// Runs `attempt` unless this request already succeeded under its request_id.
    pub async fn run<F, Fut>(&self, r: &Registration, attempt: F) -> Result<bool, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, Error>>,
    {
        let Some(request_id) = r.request_id.as_deref().filter(|id| !id.is_empty()) else {
            return attempt().await;
        };
        let fingerprint = self.fingerprint(r);
        let outcome = self
            .outcomes
            .try_get_with(request_id.to_owned(), async {
                let success = attempt().await?;
                Ok::<_, Error>(Outcome {
                    fingerprint,
                    success,
                })
            })
            .await
            .map_err(|shared| (*shared).clone())?;
        if outcome.fingerprint != fingerprint {
            return Err(Error::RequestIdReused);
        }
        Ok(outcome.success)
    }

    fn fingerprint(&self, r: &Registration) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        for part in [
            r.phone_number_id.as_str(),
            r.data_localization_region.as_deref().unwrap_or_default(),
            r.pin.expose_secret(),
        ] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }
}
