//! Onboarding: from Embedded Signup's hand-off (a one-time code, the WABA id, perhaps a
//! number and its PIN) to a customer whose token is kept, checked and subscribed, whose
//! numbers are indexed, and whose number is registered.
//!
//! Each step is recorded in the store as it completes. The code works once, so the
//! token it gives is kept (encrypted) in the same write that records the exchange, under
//! the call's `request_id`: a retry with that `request_id` finds it and resumes at the
//! first step not done, and never sends the code again. A new `request_id` (a new code)
//! starts over with a new token, which is how a customer whose token died is healed.

use super::{Cause, CustomerView, Customers, Error};
use crate::model::{Deadline, OnboardingStep, TokenState};
use crate::numbers::Registration;
use crate::store::{Change, Customer, Store};
use secrecy::SecretString;
use std::time::Duration;

/// The customer a new hand-off replaces, with its token, until the new one is checked.
struct Previous {
    customer: Customer,
    token: SecretString,
}

/// Embedded Signup's hand-off. `Debug` shows neither the code nor the PIN.
#[derive(Debug)]
pub struct Onboarding {
    pub code: SecretString,
    pub waba_id: String,
    /// The number to register once the rest is done, with its PIN.
    pub register: Option<(String, SecretString)>,
    pub request_id: String,
}

impl Customers {
    /// Runs the onboarding's steps not done yet, in order; stops at the first that
    /// fails, recorded on the customer (before another attempt may run) with the code
    /// and message `describe` gives it.
    pub async fn onboard(
        &self,
        o: &Onboarding,
        deadline: Deadline,
        describe: fn(&Error) -> (i32, String),
    ) -> Result<CustomerView, Error> {
        let store = self.store()?.clone();
        let _turn = self.turn(&o.waba_id, deadline).await?;
        let outcome = self.steps(&store, o, deadline).await;
        if let Err(e @ Error::Step { step, cause }) = &outcome {
            tracing::warn!(waba_id = %o.waba_id, %step, error = %cause, "onboarding step failed");
            let (code, message) = describe(e);
            self.record_failure(&store, o, *step, code, message).await;
        }
        outcome
    }

    async fn steps(
        &self,
        store: &Store,
        o: &Onboarding,
        deadline: Deadline,
    ) -> Result<CustomerView, Error> {
        let waba_id = o.waba_id.as_str();
        let known = store.customer(waba_id).await?;
        let resuming = known.as_ref().is_some_and(|c| {
            c.onboarding_request_id.as_deref() == Some(o.request_id.as_str())
                && c.progress.is_done(OnboardingStep::KeepToken)
        });
        let token = store.token(waba_id).await?;
        let (mut customer, token, previous) = match (known, token) {
            (Some(customer), Some(token)) if resuming => {
                tracing::info!(waba_id, "resuming the onboarding");
                (customer, token, None)
            }
            (Some(_), None) if resuming => return Err(gone(waba_id)),
            // A new hand-off: the customer there is (if any) stands until the new token
            // is checked, and comes back if it is refused.
            (known, token) => {
                let previous = known
                    .zip(token)
                    .map(|(customer, token)| Previous { customer, token });
                let (customer, token) = self.exchange(store, o, previous.as_ref()).await?;
                (customer, token, previous)
            }
        };

        if !customer.progress.is_done(OnboardingStep::CheckToken) {
            customer = self
                .check(store, &customer, &token, previous, deadline)
                .await?;
        }
        if !customer.progress.is_done(OnboardingStep::SubscribeWebhooks) {
            let step = OnboardingStep::SubscribeWebhooks;
            let graph = &self.inner.graph;
            graph
                .subscribe_app(waba_id, &token, deadline)
                .await
                .map_err(|e| failed(step, Cause::Graph(e)))?;
            store
                .update(waba_id, Change::WebhooksSubscribed(true))
                .await
                .map_err(|e| failed(step, Cause::Store(e.to_string())))?;
            customer = self.done(store, waba_id, step).await?;
        }
        if !customer.progress.is_done(OnboardingStep::IndexNumbers) {
            self.index(store, waba_id, deadline).await?;
            customer = self
                .done(store, waba_id, OnboardingStep::IndexNumbers)
                .await?;
        }
        if let Some((id, pin)) = &o.register
            && !customer.progress.is_done(OnboardingStep::RegisterNumber)
        {
            self.register(store, o, id, pin, deadline).await?;
            customer = self
                .done(store, waba_id, OnboardingStep::RegisterNumber)
                .await?;
        }
        if customer.onboarded_at.is_none() {
            customer = store
                .update(waba_id, Change::Onboarded)
                .await?
                .ok_or_else(|| gone(waba_id))?;
            tracing::info!(waba_id, "customer onboarded");
        }
        self.view(customer).await
    }

    /// Steps 1 and 2: the code for a token, kept at once (nothing that can fail comes
    /// between: the code cannot be exchanged again). While a `previous` token is active,
    /// calls keep carrying it until the new one is checked.
    async fn exchange(
        &self,
        store: &Store,
        o: &Onboarding,
        previous: Option<&Previous>,
    ) -> Result<(Customer, SecretString), Error> {
        // Not the caller's deadline: an answer Meta sends after it would carry a token
        // the spent code can never give again. The request timeout bounds it.
        let token = self
            .inner
            .graph
            .exchange_code(&o.code, None)
            .await
            .map_err(|e| failed(OnboardingStep::ExchangeCode, Cause::Graph(e)))?;
        let kept = store
            .put_token(&o.waba_id, &token, Some(&o.request_id))
            .await;
        let customer = match kept {
            Ok(customer) => customer,
            Err(e) => {
                // The one loss nothing can undo: the code is spent, its token not kept.
                tracing::error!(waba_id = %o.waba_id, error = %e, "the store cannot keep the customer's new token: the customer needs a new code from Embedded Signup");
                return Err(failed(
                    OnboardingStep::KeepToken,
                    Cause::Store(e.to_string()),
                ));
            }
        };
        if previous.is_none_or(|p| p.customer.token_state != TokenState::Active) {
            self.keys()
                .keep(&o.waba_id, token.clone(), TokenState::Unchecked, None);
        }
        tracing::info!(waba_id = %o.waba_id, "code exchanged; the customer's token is kept");
        Ok((customer, token))
    }

    /// Step 3: `debug_token` must vouch for the token and name the WABA among those it
    /// manages; else the token is deleted, and the customer is what it was before this
    /// hand-off (`previous`), or no customer remains.
    async fn check(
        &self,
        store: &Store,
        customer: &Customer,
        token: &SecretString,
        previous: Option<Previous>,
        deadline: Deadline,
    ) -> Result<Customer, Error> {
        let step = OnboardingStep::CheckToken;
        let waba_id = customer.waba_id.as_str();
        let info = self
            .inner
            .graph
            .debug_token(token, deadline)
            .await
            .map_err(|e| failed(step, Cause::Graph(e)))?;
        let problem = if !info.is_valid {
            Some("Meta says the business token is not valid".to_owned())
        } else if !info.managed_wabas.iter().any(|w| w == waba_id) {
            Some(format!(
                "the business token is not granted whatsapp_business_management on WABA \
                 {waba_id} (its granular_scopes name {})",
                match info.managed_wabas.as_slice() {
                    [] => "no WABA".to_owned(),
                    wabas => wabas.join(", "),
                }
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            match previous {
                Some(previous) => self.restore(store, previous).await?,
                None => {
                    store.delete(waba_id).await?;
                    self.keys().forget(waba_id);
                }
            }
            tracing::warn!(waba_id, problem, "token refused at onboarding: deleted");
            return Err(failed(step, Cause::Denied(problem)));
        }
        let business_id = info.businesses.first().cloned();
        let checked = Change::TokenChecked {
            business_id: business_id.clone(),
            expires_at: info.expires_at,
        };
        store
            .update(waba_id, checked)
            .await
            .map_err(|e| failed(step, Cause::Store(e.to_string())))?;
        let business_id = business_id.or_else(|| customer.business_id.clone());
        self.keys()
            .keep(waba_id, token.clone(), TokenState::Active, business_id);
        self.done(store, waba_id, step).await
    }

    /// Puts back the token and state a refused hand-off replaced.
    async fn restore(&self, store: &Store, previous: Previous) -> Result<(), Error> {
        let Previous { customer, token } = previous;
        let waba_id = customer.waba_id.as_str();
        let request_id = customer.onboarding_request_id.as_deref();
        store.put_token(waba_id, &token, request_id).await?;
        let mut changes: Vec<Change> = customer
            .progress
            .done()
            .into_iter()
            .map(Change::StepDone)
            .collect();
        changes.push(Change::WebhooksSubscribed(customer.webhooks_subscribed));
        changes.push(match customer.token_state {
            TokenState::Active => Change::TokenChecked {
                business_id: customer.business_id.clone(),
                expires_at: customer.token_expires_at,
            },
            state => Change::TokenState(state),
        });
        for change in changes {
            store.update(waba_id, change).await?;
        }
        self.keys().keep(
            waba_id,
            token,
            customer.token_state,
            customer.business_id.clone(),
        );
        tracing::info!(waba_id, "the customer's previous token is back");
        Ok(())
    }

    /// Step 5: every page of the WABA's numbers, read now with the customer's token,
    /// indexed in the store before the step counts as done.
    async fn index(&self, store: &Store, waba_id: &str, deadline: Deadline) -> Result<(), Error> {
        const PAGE: u32 = 100;
        const MAX_PAGES: usize = 100;
        let step = OnboardingStep::IndexNumbers;
        let reads = self.inner.numbers.reads();
        let (mut ids, mut cursor) = (Vec::new(), None::<String>);
        for _ in 0..MAX_PAGES {
            let page = reads
                .page(
                    waba_id,
                    PAGE,
                    cursor.as_deref(),
                    Some(Duration::ZERO),
                    deadline,
                )
                .await
                .map_err(|e| failed(step, Cause::Numbers(e)))?;
            ids.extend(page.numbers.iter().map(|s| s.number.id.clone()));
            match &page.next_cursor {
                Some(next) => cursor = Some(next.clone()),
                None => break,
            }
        }
        store
            .index_numbers(waba_id, &ids)
            .await
            .map_err(|e| failed(step, Cause::Store(e.to_string())))
    }

    /// Step 6: the number registered, through the register guard, under a request id
    /// of the onboarding's own (so a resumed onboarding cannot register twice).
    async fn register(
        &self,
        store: &Store,
        o: &Onboarding,
        id: &str,
        pin: &SecretString,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let step = OnboardingStep::RegisterNumber;
        let indexed = store
            .numbers_of(&o.waba_id)
            .await
            .map_err(|e| failed(step, Cause::Store(e.to_string())))?;
        if !indexed.iter().any(|n| n == id) {
            return Err(failed(
                step,
                Cause::NotInWaba {
                    phone_number_id: id.to_owned(),
                    waba_id: o.waba_id.clone(),
                },
            ));
        }
        let registration = Registration {
            phone_number_id: id.to_owned(),
            pin: pin.clone(),
            data_localization_region: None,
            request_id: Some(format!("onboard:{}", o.request_id)),
            spend_reserve: false,
        };
        match self.inner.numbers.register(&registration, deadline).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(failed(
                step,
                Cause::Numbers(
                    crate::graph::Error::Decode("Meta answered success: false".into()).into(),
                ),
            )),
            Err(e) => Err(failed(step, Cause::Numbers(e))),
        }
    }

    /// Records `step` done: the customer as it is now.
    async fn done(
        &self,
        store: &Store,
        waba_id: &str,
        step: OnboardingStep,
    ) -> Result<Customer, Error> {
        store
            .update(waba_id, Change::StepDone(step))
            .await
            .map_err(|e| failed(step, Cause::Store(e.to_string())))?
            .ok_or_else(|| gone(waba_id))
    }

    /// Records a step's failure on the customer this onboarding's token made, if it
    /// remains: not on one a new code failed to replace (its own onboarding stands).
    /// The message is shown to callers: it carries no secret.
    async fn record_failure(
        &self,
        store: &Store,
        o: &Onboarding,
        step: OnboardingStep,
        code: i32,
        message: String,
    ) {
        let waba_id = o.waba_id.as_str();
        let ours = match store.customer(waba_id).await {
            Ok(customer) => customer
                .is_some_and(|c| c.onboarding_request_id.as_deref() == Some(o.request_id.as_str())),
            Err(e) => {
                tracing::warn!(waba_id, %step, error = %e, "cannot record the step's failure");
                false
            }
        };
        if !ours {
            return;
        }
        let failure = crate::store::StepFailure {
            step,
            code,
            message,
        };
        if let Err(e) = store.record_step_failed(waba_id, failure).await {
            tracing::warn!(waba_id, %step, error = %e, "cannot record the step's failure");
        }
    }
}

fn failed(step: OnboardingStep, cause: Cause) -> Error {
    Error::Step { step, cause }
}

/// The customer vanished mid-onboarding (removed meanwhile, by another replica).
fn gone(waba_id: &str) -> Error {
    Error::NotFound {
        waba_id: waba_id.to_owned(),
    }
}
