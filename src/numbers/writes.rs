//! Every write of a number's life, each sent to Meta once at most:
//!
//! - never retried automatically (a code request sends an SMS or places a call; a
//!   register or deregister spends one of 10 attempts per number per 72 hours);
//! - idempotent under the caller's `request_id` (see `idempotency.rs`);
//! - register and deregister, and display-name changes, pass a budget guard first
//!   (see `budget.rs`);
//! - a write that gets no readable answer is [`Error::OutcomeUnknown`]: Meta may have
//!   processed and counted it;
//! - whatever Meta answered, what the cache knew of the number is dropped.

use super::budget::Ledger;
use super::idempotency::spawned;
use super::{Error, Numbers, Write, routed};
use crate::graph::{self, Credential};
use crate::model::{CodeMethod, Deadline};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;

/// A request to register a number for the Cloud API. Its PIN is a `SecretString`, so
/// `Debug` never shows it.
#[derive(Debug)]
pub struct Registration {
    pub phone_number_id: String,
    pub pin: SecretString,
    pub data_localization_region: Option<String>,
    /// The client's idempotency key.
    pub request_id: Option<String>,
    /// A person's deliberate attempt: may spend the attempts the guard keeps back.
    pub spend_reserve: bool,
}

/// A request to add a number to a WABA (digits only, checked by the caller; the number
/// may be left out when claiming a pre-verified one).
#[derive(Debug, Clone)]
pub struct NewNumber {
    pub waba_id: String,
    pub country_code: Option<String>,
    pub phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub migrate: bool,
    pub preverified_id: Option<String>,
    pub request_id: Option<String>,
}

impl Numbers {
    /// Adds a number to a WABA: the new phone number id.
    pub async fn add_number(&self, n: &NewNumber, deadline: Deadline) -> Result<String, Error> {
        let (graph, keys) = (self.graph.clone(), self.keys.clone());
        let reads = self.reads.clone();
        let owned = n.clone();
        let attempt = async move {
            let route = keys.for_waba_to_write(&owned.waba_id).await?;
            let request = graph::NewNumber {
                waba_id: &owned.waba_id,
                country_code: owned.country_code.as_deref(),
                phone_number: owned.phone_number.as_deref(),
                verified_name: owned.verified_name.as_deref(),
                migrate: owned.migrate,
                preverified_id: owned.preverified_id.as_deref(),
            };
            let credential = route.credential();
            let sent = async {
                let outcome = graph.add_phone_number(&request, &credential, deadline);
                outcome.await.map_err(|e| unanswered(Write::AddNumber, e))
            };
            let outcome = routed(&keys, &route, sent).await;
            // The WABA's pages may miss the number now; its next calls carry the WABA's token.
            reads.invalidate_waba(&owned.waba_id);
            if let Ok(id) = &outcome {
                keys.learn(&owned.waba_id, std::slice::from_ref(id));
            }
            outcome
        };
        let migrate = if n.migrate { "migrate" } else { "" };
        let request = [
            n.waba_id.as_str(),
            n.country_code.as_deref().unwrap_or_default(),
            n.phone_number.as_deref().unwrap_or_default(),
            n.verified_name.as_deref().unwrap_or_default(),
            migrate,
            n.preverified_id.as_deref().unwrap_or_default(),
        ];
        self.guards
            .add
            .run(n.request_id.as_deref(), &request, attempt)
            .await
    }

    /// Has Meta send a verification code to the number (or pre-verified number).
    pub async fn request_code(
        &self,
        id: &str,
        method: CodeMethod,
        language: &str,
        request_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let (graph, language_owned) = (self.graph.clone(), language.to_owned());
        let attempt = self.to_number(id, move |id, by| async move {
            let sent = graph.request_code(&id, &by, method, &language_owned, deadline);
            sent.await.map_err(|e| unanswered(Write::RequestCode, e))
        });
        let request = [id, method.as_meta(), language];
        self.guards
            .request_code
            .run(request_id, &request, succeeded(attempt))
            .await
    }

    /// Checks the code the number received. Not idempotent by key: checking a code twice
    /// spends nothing.
    pub async fn verify_code(
        &self,
        id: &str,
        code: SecretString,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let graph = self.graph.clone();
        let attempt = self.to_number(id, move |id, by| async move {
            let sent = graph.verify_code(&id, &by, &code, deadline);
            sent.await.map_err(|e| unanswered(Write::VerifyCode, e))
        });
        succeeded(spawned(Write::VerifyCode, attempt)).await
    }

    /// Registers a number, within its register/deregister budget.
    pub async fn register(&self, r: &Registration, deadline: Deadline) -> Result<bool, Error> {
        let (graph, guards) = (self.graph.clone(), self.guards.clone());
        let (pin, region) = (r.pin.clone(), r.data_localization_region.clone());
        let id = r.phone_number_id.clone();
        let spend_reserve = r.spend_reserve;
        let attempt = self.to_number(&id, move |id, by| async move {
            let sent = graph.register(&id, &by, &pin, region.as_deref(), deadline);
            let budget = &guards.register_budget;
            let outcome = within_budget(budget, &id, spend_reserve, Write::Register, sent).await;
            if outcome.as_ref().is_ok_and(|&success| success) {
                guards.deadlines.registered(&id);
            }
            outcome
        });
        let request = [
            id.as_str(),
            r.data_localization_region.as_deref().unwrap_or_default(),
            r.pin.expose_secret(),
        ];
        self.guards
            .register
            .run(r.request_id.as_deref(), &request, attempt)
            .await
    }

    /// Takes the number off the Cloud API, within its register/deregister budget.
    /// `spend_reserve`: a person's deliberate attempt, which may spend the attempts the
    /// guard keeps back.
    pub async fn deregister(
        &self,
        id: &str,
        spend_reserve: bool,
        request_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let (graph, guards) = (self.graph.clone(), self.guards.clone());
        let attempt = self.to_number(id, move |id, by| async move {
            let sent = graph.deregister(&id, &by, deadline);
            let budget = &guards.register_budget;
            within_budget(budget, &id, spend_reserve, Write::Deregister, sent).await
        });
        self.guards
            .deregister
            .run(request_id, &[id], succeeded(attempt))
            .await
    }

    /// Sets or changes the number's two-step verification PIN.
    pub async fn set_two_step_pin(
        &self,
        id: &str,
        pin: SecretString,
        request_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let graph = self.graph.clone();
        let request_pin = pin.clone();
        let attempt = self.to_number(id, move |id, by| async move {
            let sent = graph.set_two_step_pin(&id, &by, &pin, deadline);
            sent.await.map_err(|e| unanswered(Write::SetPin, e))
        });
        self.guards
            .pin
            .run(
                request_id,
                &[id, request_pin.expose_secret()],
                succeeded(attempt),
            )
            .await
    }

    /// Asks for a new display name to be reviewed, within 10 requests per 30 days.
    pub async fn request_display_name(
        &self,
        id: &str,
        display_name: &str,
        request_id: Option<&str>,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let (graph, guards) = (self.graph.clone(), self.guards.clone());
        let name = display_name.to_owned();
        let attempt = self.to_number(id, move |id, by| async move {
            let sent = graph.request_display_name(&id, &by, &name, deadline);
            let outcome =
                within_budget(&guards.display_names, &id, false, Write::DisplayName, sent).await;
            if outcome.as_ref().is_ok_and(|&success| success) {
                // A new request supersedes an approved change still awaiting registration.
                guards.deadlines.requested(&id);
            }
            outcome
        });
        self.guards
            .display_name
            .run(request_id, &[id, display_name], succeeded(attempt))
            .await
    }

    /// A write to the number `id`, sent with the token its WABA's customer holds (or
    /// the partner's); no call when there is none. Whatever Meta answered, what the
    /// cache knew of the number is dropped.
    fn to_number<T, F, Fut>(
        &self,
        id: &str,
        send: F,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static
    where
        F: FnOnce(String, Credential) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let (reads, keys) = (self.reads.clone(), self.keys.clone());
        let id = id.to_owned();
        async move {
            let route = keys.for_number_to_write(&id).await?;
            let outcome = routed(&keys, &route, send(id.clone(), route.credential())).await;
            reads.invalidate(&id);
            outcome
        }
    }
}

/// Sends a write within `budget`: counted before it is sent (or refused), given back if it
/// never left the service, and Meta's own block (133016) kept, so the next attempts are
/// refused here.
async fn within_budget<T>(
    budget: &Ledger,
    id: &str,
    spend_reserve: bool,
    write: Write,
    send: impl Future<Output = Result<T, graph::Error>>,
) -> Result<T, Error> {
    let counted = budget.count(id, spend_reserve).await?;
    let outcome = send.await;
    if let Err(e) = &outcome {
        if e.was_not_sent() {
            budget.uncount(id, counted).await;
        }
        if e.is_register_limit() {
            budget.note_block(id, super::budget::REGISTER_WINDOW).await;
        }
    }
    outcome.map_err(|e| unanswered(write, e))
}

/// A failed write: no readable answer means nobody knows whether Meta processed it.
pub(super) fn unanswered(write: Write, e: graph::Error) -> Error {
    if e.outcome_unknown() {
        Error::OutcomeUnknown {
            write,
            cause: e.to_string(),
        }
    } else {
        Error::WriteFailed(e)
    }
}

/// A write whose answer is Meta's `{"success": ...}`: `false` is no success.
pub(super) async fn succeeded(
    attempt: impl Future<Output = Result<bool, Error>> + Send + 'static,
) -> Result<(), Error> {
    match attempt.await? {
        true => Ok(()),
        false => Err(graph::Error::Decode("Meta answered success: false".into()).into()),
    }
}
