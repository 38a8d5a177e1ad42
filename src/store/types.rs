//! What the store hands out and takes in: plain values, no token among them (the token
//! is read on its own, [`super::Store::token`], as a `SecretString`).

use crate::model::{OnboardingStep, TokenState};
use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;

/// A customer row's version: starts at 1, +1 on every change of the customer (not on
/// re-encryption, which changes nothing a reader sees). The guard of
/// [`super::Store::update_if`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub(crate) i64);

impl Version {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A customer: one WABA whose business token the service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub waba_id: String,
    /// The business that owns the WABA, once `debug_token` said.
    pub business_id: Option<String>,
    pub token_state: TokenState,
    /// When the token expires, if it does (`debug_token`'s `expires_at`; none for a
    /// business integration system user token that never expires).
    pub token_expires_at: Option<DateTime<Utc>>,
    pub webhooks_subscribed: bool,
    pub progress: Progress,
    /// When onboarding first completed.
    pub onboarded_at: Option<DateTime<Utc>>,
    /// By the store's clock (the database's, shared by replicas).
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: Version,
    /// The `request_id` of the onboarding whose code gave the current token.
    pub onboarding_request_id: Option<String>,
}

/// Which onboarding steps are done, and the last failure of one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    done: u64,
    pub failure: Option<StepFailure>,
}

impl Progress {
    pub fn is_done(&self, step: OnboardingStep) -> bool {
        self.done & step_bit(step) != 0
    }

    /// The steps done, in order.
    pub fn done(&self) -> Vec<OnboardingStep> {
        OnboardingStep::ALL
            .into_iter()
            .filter(|s| self.is_done(*s))
            .collect()
    }

    /// Where a new token's onboarding starts: with the code exchanged and the token kept
    /// when an onboarding put it, from nothing otherwise.
    pub(crate) fn exchanged(by_onboarding: bool) -> Progress {
        let done = if by_onboarding {
            step_bit(OnboardingStep::ExchangeCode) | step_bit(OnboardingStep::KeepToken)
        } else {
            0
        };
        Progress {
            done,
            failure: None,
        }
    }

    pub(crate) fn bits(&self) -> i64 {
        self.done as i64
    }

    pub(crate) fn from_parts(done: i64, failure: Option<StepFailure>) -> Progress {
        Progress {
            done: done as u64,
            failure,
        }
    }

    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::StepDone(step) => {
                self.done |= step_bit(*step);
                if self.failure.as_ref().is_some_and(|f| f.step == *step) {
                    self.failure = None;
                }
            }
            Change::StepFailed(failure) => {
                self.done &= !step_bit(failure.step);
                self.failure = Some(failure.clone());
            }
            _ => {}
        }
    }
}

/// The bit of `step` in the stored set of steps done. Part of the schema: never renumber.
pub(crate) fn step_bit(step: OnboardingStep) -> u64 {
    1 << match step {
        OnboardingStep::ExchangeCode => 0,
        OnboardingStep::KeepToken => 1,
        OnboardingStep::CheckToken => 2,
        OnboardingStep::SubscribeWebhooks => 3,
        OnboardingStep::IndexNumbers => 4,
        OnboardingStep::RegisterNumber => 5,
    }
}

/// Why a step failed: a `google.rpc.Code` number and a message for people. The message is
/// stored and shown to callers: it must not carry a token, a code or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: OnboardingStep,
    pub code: i32,
    pub message: String,
}

/// One change to a customer (all but its token, which [`super::Store::put_token`] sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    TokenState(TokenState),
    /// `debug_token` vouched for the token: active, with its business and expiry.
    TokenChecked {
        /// `None`: the token did not say (the business already known is kept).
        business_id: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    },
    WebhooksSubscribed(bool),
    /// Done; clears the step's failure, if it was the last one.
    StepDone(OnboardingStep),
    /// Failed (and so not done); the customer's last failure.
    StepFailed(StepFailure),
    /// Onboarding completed: `onboarded_at` is set, the first time only.
    Onboarded,
}

/// The outcome of a compare-and-set ([`super::Store::update_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The version matched: the change is made; the customer as it is now.
    Applied(Customer),
    /// Someone changed the customer since that version: nothing was changed.
    Stale,
    /// No such customer (any more).
    Missing,
}

/// A page of customers, in WABA id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    /// The cursor of the next page (the last WABA id of this one); `None` on the last.
    pub next: Option<String>,
}

/// What `store rekey` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rekeyed {
    /// Tokens re-encrypted under the current key.
    pub changed: u64,
    /// Tokens looked at.
    pub total: u64,
    /// Tokens still under another key when it ended: written meanwhile by a replica
    /// not yet on the new key, or unreadable. Old keys stay needed while this is not 0.
    pub left: u64,
    /// The WABAs whose token no key at hand opens (their key is lost): skipped.
    pub unreadable: Vec<String>,
}

/// What the ledger counts for one number and one limit, by the store's clock: the
/// attempts still in the window, oldest first, and Meta's block if it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerView {
    pub now: DateTime<Utc>,
    pub attempts: Vec<DateTime<Utc>>,
    pub blocked_until: Option<DateTime<Utc>>,
}

/// An attempt [`super::Store::ledger_spend`] counted: its id gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptId(pub(crate) String);

impl AttemptId {
    pub(crate) fn new() -> AttemptId {
        AttemptId(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What claiming an idempotency key found ([`super::Store::idem_claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this call's: send the write, renew the lease while it runs, finish.
    Won(ClaimId),
    /// Another call holds it.
    Held(IdemRecord),
}

/// Which call holds a key: the one that claimed it. The caller makes it once per attempt
/// and gives the same one to every try of its claim, so a claim whose answer was lost
/// (made in the store, the reply dropped) is the caller's own on the next try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimId(pub(crate) String);

impl ClaimId {
    pub fn new() -> ClaimId {
        ClaimId(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimId {
    fn default() -> Self {
        ClaimId::new()
    }
}

/// A request's fingerprint as a record keeps it: an HMAC of the request under one of the
/// store's fingerprint keys ([`super::Store::fingerprint_keys`]), and that key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// `None` in a record kept before key ids were (migration 0006): any known key.
    pub key_id: Option<String>,
    pub mac: Vec<u8>,
}

/// An idempotency record as another call left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    /// The request it was claimed for (an HMAC, never the request).
    pub fingerprint: Fingerprint,
    /// The outcome, once its attempt ended (the caller's encoding).
    pub outcome: Option<String>,
    /// How long ago the outcome was kept, by the store's clock (a replayed "retry after"
    /// counts from then).
    pub outcome_age: Option<Duration>,
    /// The attempt's holder renewed its lease in time (false once it ended, or died).
    pub lease_alive: bool,
}

/// What one replica's tick of the shard leases does ([`crate::store::Store::fleet_tick`]).
#[derive(Debug, Clone, Copy)]
pub struct TickPlan<'a> {
    pub replica: &'a str,
    pub shards: u32,
    /// How long a lease (and a replica's liveness) lasts without renewal.
    pub ttl: std::time::Duration,
    /// Targets this replica watches, with their shards, to refresh for `interest`.
    pub watching: Option<(&'a [String], &'a [i32])>,
    pub interest: std::time::Duration,
    /// Delete rows nobody renews.
    pub tidy: bool,
}

/// A replica's leases after its tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    /// The shards it polls, ascending.
    pub shards: Vec<u32>,
    /// The replicas alive (itself included).
    pub replicas: u32,
    /// The watched targets of its shards, some replica's subscribers wanting them.
    pub watched: Vec<String>,
}

/// An owner's latest observation of a target, as kept for the other replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub target: String,
    /// Rises with every observation of the target.
    pub version: i64,
    /// JSON, written and read by the watchers (the store does not look inside).
    pub body: String,
}
