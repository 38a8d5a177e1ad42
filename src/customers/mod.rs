//! The Solution Partner's customers: each a WABA whose business token (from Embedded
//! Signup) the service holds in the store.
//!
//! - [`Customers::onboard`] (`onboard.rs`) takes a customer from Embedded Signup's
//!   hand-off to a registered number, one recorded step at a time, resumable.
//! - [`Customers::remove`] unsubscribes the app from the WABA's webhooks, then forgets
//!   the token, even when Meta refuses because the token is already dead.
//! - [`Customers::check_tokens`] asks Meta (`debug_token`) about every token, daily, so
//!   an expired or revoked one is marked before a customer's call fails on it.
//!
//! Above `numbers/` (the register step goes through its budget guard, the index step
//! through its read path) and the keyring, which routes every other call to the tokens
//! kept here.

mod onboard;

pub use onboard::Onboarding;

use crate::graph::{self, GraphClient};
use crate::keyring::Keyring;
use crate::model::{Deadline, OnboardingStep, TokenState};
use crate::numbers::{self, Numbers};
use crate::store::{self, Store};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often every token is checked with `debug_token`.
pub const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// A customer as the RPCs show it: the stored customer and its indexed numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerView {
    pub customer: store::Customer,
    pub phone_number_ids: Vec<String>,
}

/// What removing a customer did at Meta.
#[derive(Debug)]
pub struct Removed {
    /// Meta refused the unsubscribe (the token was dead): the customer is gone anyway.
    pub unsubscribe_refused: Option<graph::Error>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(
        "customers are kept in a store, and none is configured: set WABA_STORE (memory, \
         sqlite:PATH or a postgres:// URL)"
    )]
    NoStore,
    #[error("no customer holds WABA {waba_id}")]
    NotFound { waba_id: String },
    #[error("the store is unavailable: {0}")]
    Store(String),
    /// An onboarding step failed; the steps before it stay done.
    #[error("onboarding step {step} failed: {cause}")]
    Step { step: OnboardingStep, cause: Cause },
    /// Meta could not be asked to unsubscribe (or its answer was lost): the customer
    /// stays, so that a retry can unsubscribe it.
    #[error("cannot unsubscribe the app from WABA {waba_id}'s webhooks: {cause}")]
    Unsubscribe {
        waba_id: String,
        cause: graph::Error,
    },
    /// Another replica onboards or removes the WABA, and did not finish in time.
    #[error(
        "another replica is onboarding or removing WABA {waba_id}; retry with the same \
         request_id to resume where it got to"
    )]
    Busy { waba_id: String },
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e.to_string())
    }
}

/// Why an onboarding step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Cause {
    /// A Graph call of the hand-off (exchange, check, subscribe) failed.
    #[error(transparent)]
    Graph(graph::Error),
    /// Indexing or registering failed.
    #[error(transparent)]
    Numbers(numbers::Error),
    #[error("the store is unavailable: {0}")]
    Store(String),
    /// `debug_token` said the token is invalid, or does not reach the WABA: it is
    /// deleted, and no customer remains.
    #[error("{0}")]
    Denied(String),
    /// The number to register is not one of the WABA's.
    #[error("phone number {phone_number_id} is not one of WABA {waba_id}'s numbers")]
    NotInWaba {
        phone_number_id: String,
        waba_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Customers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    graph: Arc<GraphClient>,
    numbers: Numbers,
    /// One onboarding per WABA at a time in this process (a retry waits for the attempt
    /// it retries, then resumes where it ended); across replicas, the store's turns.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This process, in the holders of the store's turns.
    me: String,
}

/// How long a replica's turn on a WABA lasts unless renewed (a replica that dies holds
/// it no longer), how often it is renewed, and how often a replica waiting for it looks.
const TURN_LEASE: Duration = Duration::from_secs(15);
const TURN_RENEW: Duration = Duration::from_secs(5);
const TURN_POLL: Duration = Duration::from_millis(200);
/// The longest wait for another replica's turn (or the caller's deadline, if sooner):
/// an onboarding is bounded by the request timeout, so a longer one is a stuck holder.
const TURN_WAIT: Duration = Duration::from_secs(60);

impl Customers {
    pub fn new(graph: Arc<GraphClient>, numbers: Numbers) -> Self {
        Customers {
            inner: Arc::new(Inner {
                graph,
                numbers,
                turns: Mutex::default(),
                me: format!("{:016x}", rand::random::<u64>()),
            }),
        }
    }

    fn keys(&self) -> &Keyring {
        self.inner.numbers.keys()
    }

    /// The store; [`Error::Store`] at once while it has not been reached since the start
    /// (rather than each call waiting for the pool to give up).
    fn store(&self) -> Result<&Store, Error> {
        match self.keys().store() {
            None => Err(Error::NoStore),
            Some(store) if !store.is_ready() => Err(Error::Store(
                "not reached since the service started; it is being retried".into(),
            )),
            Some(store) => Ok(store),
        }
    }

    /// Whether customers can be kept (a store is configured).
    pub fn available(&self) -> bool {
        self.keys().store().is_some()
    }

    /// The customer of `waba_id`.
    pub async fn get(&self, waba_id: &str) -> Result<CustomerView, Error> {
        let store = self.store()?;
        let customer = store
            .customer(waba_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                waba_id: waba_id.to_owned(),
            })?;
        self.view(customer).await
    }

    /// Up to `limit` customers after the WABA id `after`, in WABA id order; the cursor
    /// of the next page.
    pub async fn list(
        &self,
        limit: NonZeroU32,
        after: Option<&str>,
    ) -> Result<(Vec<CustomerView>, Option<String>), Error> {
        let page = self.store()?.list(limit, after).await?;
        let mut views = Vec::with_capacity(page.customers.len());
        for customer in page.customers {
            views.push(self.view(customer).await?);
        }
        Ok((views, page.next))
    }

    /// Unsubscribes the app from the WABA's webhooks with the customer's token, then
    /// forgets the customer. Meta refusing (the token is dead, access was removed) does
    /// not keep it (the token is dead, or no longer reaches the WABA); anything else (Meta
    /// unreachable, throttling) does, so the unsubscribe can be tried again.
    pub async fn remove(&self, waba_id: &str, deadline: Deadline) -> Result<Removed, Error> {
        let store = self.store()?;
        let _turn = self.turn(waba_id, deadline).await?;
        if store.customer(waba_id).await?.is_none() {
            return Err(Error::NotFound {
                waba_id: waba_id.to_owned(),
            });
        }
        let mut refused = None;
        if let Some(token) = store.token(waba_id).await? {
            match self
                .inner
                .graph
                .unsubscribe_app(waba_id, &token, deadline)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_token_rejected() || e.is_permission_denied() => {
                    tracing::info!(waba_id, error = %e, "Meta refused the unsubscribe; forgetting the customer all the same");
                    refused = Some(e);
                }
                Err(cause) => {
                    return Err(Error::Unsubscribe {
                        waba_id: waba_id.to_owned(),
                        cause,
                    });
                }
            }
        }
        store.delete(waba_id).await?;
        self.keys().forget(waba_id);
        tracing::info!(waba_id, "customer removed");
        Ok(Removed {
            unsubscribe_refused: refused,
        })
    }

    /// Checks every customer's token with `debug_token` once: an invalid one is marked
    /// [`TokenState::ReauthRequired`]. How many were marked. A token some replica checked
    /// less than `fresh_for` ago is skipped (each check is claimed in the store first).
    pub async fn check_tokens(&self, fresh_for: Duration) -> Result<usize, Error> {
        let store = self.store()?;
        let limit = NonZeroU32::new(store::MAX_PAGE).expect("not zero");
        let (mut after, mut marked) = (None::<String>, 0);
        loop {
            let page = store.list(limit, after.as_deref()).await?;
            for customer in &page.customers {
                if customer.token_state == TokenState::ReauthRequired
                    || !store
                        .claim_token_check(&customer.waba_id, fresh_for)
                        .await?
                {
                    continue;
                }
                let Some(token) = store.token(&customer.waba_id).await? else {
                    continue;
                };
                match self.inner.graph.debug_token(&token, None).await {
                    Ok(info) if info.is_valid => {}
                    Ok(_) => {
                        if self.keys().rejected(&customer.waba_id, &token).await {
                            marked += 1;
                        }
                    }
                    Err(graph::Error::AppCredentialsMissing) => {
                        tracing::warn!(
                            "cannot check customers' tokens: WABA_APP_ID and WABA_APP_SECRET are not both set"
                        );
                        return Ok(marked);
                    }
                    Err(e) => {
                        tracing::warn!(waba_id = %customer.waba_id, error = %e, "cannot check the customer's token; trying again next time");
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(marked),
            }
        }
    }

    /// Checks every token every `interval` (the first check one minute after start),
    /// until `stop` turns true.
    pub async fn check_tokens_every(
        self,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut next = tokio::time::Instant::now() + Duration::from_secs(60).min(interval);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            // Another replica's check of the same day counts: a token is asked about
            // once per interval (less a tenth, for the replicas' drift) by the fleet.
            match self.check_tokens(interval - interval / 10).await {
                Ok(0) => tracing::debug!("customers' tokens checked"),
                Ok(n) => tracing::warn!(
                    marked = n,
                    "customers' tokens checked: some need Embedded Signup again"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot check customers' tokens"),
            }
            next += interval;
        }
    }

    async fn view(&self, customer: store::Customer) -> Result<CustomerView, Error> {
        let phone_number_ids = self.store()?.numbers_of(&customer.waba_id).await?;
        Ok(CustomerView {
            customer,
            phone_number_ids,
        })
    }

    /// The lock that keeps two onboardings (or a removal) of one WABA apart, held until
    /// the [`Turn`] drops.
    /// The WABA's turn: this process's first (a retry waits here for the attempt it
    /// retries), then the fleet's, in the store (an attempt on another replica, until it
    /// ends or its holder's lease lapses; [`Error::Busy`] after [`TURN_WAIT`] or the
    /// deadline). So of two replicas sent the same onboarding at once, one runs it and
    /// the other then finds it done.
    async fn turn(&self, waba_id: &str, deadline: Deadline) -> Result<Turn<'_>, Error> {
        let lock = self.turns().entry(waba_id.to_owned()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        let mut turn = Turn {
            customers: self,
            waba_id: waba_id.to_owned(),
            lock,
            _guard: guard,
            renewing: None,
            // This attempt's own: the next attempt here is not this one's renewal, and
            // this one's late give-back cannot take the next one's turn away.
            holder: format!("{}:{:08x}", self.inner.me, rand::random::<u32>()),
        };
        let store = self.store()?.clone();
        let name = format!("customer:{waba_id}");
        let me = turn.holder.clone();
        let now = tokio::time::Instant::now();
        let give_up = deadline.map_or(now + TURN_WAIT, |d| d.min(now + TURN_WAIT));
        while !store.take_turn(&name, &me, TURN_LEASE).await? {
            if tokio::time::Instant::now() + TURN_POLL > give_up {
                return Err(Error::Busy {
                    waba_id: waba_id.to_owned(),
                });
            }
            tokio::time::sleep(TURN_POLL).await;
        }
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(TURN_RENEW).await;
                match store.take_turn(&name, &me, TURN_LEASE).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        turn = name,
                        "lost the turn to another replica (this one's renewals were late)"
                    ),
                    Err(e) => tracing::warn!(turn = name, error = %e, "cannot renew the turn"),
                }
            }
        });
        turn.renewing = Some(renewing);
        Ok(turn)
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        // Held for map operations only, never across an await.
        self.inner.turns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A WABA's turn: dropping it lets the next onboarding or removal of the WABA in, and
/// forgets the WABA's lock when nobody else waits on it (so the map holds only WABAs in
/// use, whatever ids callers send).
struct Turn<'a> {
    customers: &'a Customers,
    waba_id: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    /// Renews the fleet's turn, once taken; given back with it.
    renewing: Option<tokio::task::JoinHandle<()>>,
    /// Who holds the fleet's turn: this attempt.
    holder: String,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
            if let Ok(store) = self.customers.store() {
                let (store, holder) = (store.clone(), self.holder.clone());
                let name = format!("customer:{}", self.waba_id);
                tokio::spawn(async move {
                    if let Err(e) = store.give_turn(&name, &holder).await {
                        tracing::warn!(turn = name, error = %e, "cannot give the turn back; it lapses by itself");
                    }
                });
            }
        }
        let mut turns = self.customers.turns();
        // The map's, ours and our guard's: nobody else holds or waits for it.
        if Arc::strong_count(&self.lock) <= 3 {
            turns.remove(&self.waba_id);
        }
    }
}
