//! The domain: what the service does with phone numbers, whoever asks.
//!
//! Every read, by an RPC or a watcher, goes through the read path (`read.rs`: cache,
//! single-flight, throttle memory). Every write (`writes.rs`) is sent once, through
//! the idempotency guard and, where Meta limits it, a budget guard; it drops what the
//! cache knew of the number. Snapshots carry the number's windows (`deadlines.rs`).

mod budget;
mod deadlines;
mod directory;
mod flight;
mod idempotency;
mod preverified;
mod read;
mod throttle;
mod writes;

pub use budget::{Limit, Refusal};
pub use directory::Accepted;
pub use read::{CacheSettings, Page, ReadPath};
pub use throttle::DEFAULT_PAUSE as THROTTLE_PAUSE;
pub use writes::{NewNumber, Registration};

use crate::graph::{self, GraphClient};
use crate::keyring::{self, Keyring, Route};
use crate::model::{Deadline, Snapshot, digits};
use budget::Ledger;
use deadlines::Deadlines;
use idempotency::Idempotent;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Attempts of Meta's 10 per 72 hours the register guard keeps for a person by default.
pub const DEFAULT_REGISTER_RESERVE: u32 = 1;

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    #[error(transparent)]
    Upstream(#[from] graph::Error),
    /// Meta answered a write with an error (or it was never sent): a definite no, and
    /// never an invitation to send it again at once.
    #[error(transparent)]
    WriteFailed(graph::Error),
    #[error("request_id was already used for a different request in the last 24 hours")]
    RequestIdReused,
    /// A write got no answer (timeout, connection lost, 5xx without a body): Meta may
    /// have processed and counted it.
    #[error("the {} request may or may not have reached Meta: {cause}", .write.name())]
    OutcomeUnknown { write: Write, cause: String },
    /// Meta throttles the number's WABA (or the app), and no cached answer will do: no
    /// call was sent.
    #[error("Meta is throttling calls for this number's WABA or the app; no call was sent (try again in {}s)", .retry_after.as_secs())]
    Throttled { retry_after: Duration },
    /// A guard on one of Meta's per-number limits refused: no call was sent.
    #[error("{}", refusal_message(.0))]
    Refused(Box<Refusal>),
    /// The store that keeps the count of Meta's limits cannot be reached: no call was
    /// sent (the service never guesses a count it could overspend).
    #[error(
        "the store that guards this write (its attempt count or idempotency record) is unavailable ({0}); no call was sent"
    )]
    StoreUnavailable(String),
    /// No token may make the call (or the customer's needs Embedded Signup again): no
    /// call was sent, or Meta rejected the customer's token.
    #[error(transparent)]
    Credentials(#[from] keyring::Error),
}

impl Error {
    /// A definite no (Meta answered with an error, or the service refused before
    /// calling): trying again is a new attempt, not a repeat.
    pub fn is_definite(&self) -> bool {
        !matches!(self, Error::OutcomeUnknown { .. })
    }

    /// Meta rejected the token the call carried (190).
    fn token_rejected(&self) -> bool {
        matches!(self, Error::Upstream(e) | Error::WriteFailed(e) if e.is_token_rejected())
    }
}

fn refusal_message(r: &Refusal) -> String {
    let hours = r.retry_after.as_secs().div_ceil(3600);
    match (r.limit, r.blocked_by_meta) {
        (Limit::Register, true) => format!(
            "Meta blocked register and deregister for number {} (error 133016); no call was sent (allowed again in about {hours} h)",
            r.phone_number_id
        ),
        (Limit::Register, false) => format!(
            "number {} has used {} of its {} register/deregister attempts in 72 hours, and the \
             rest are kept for a person (--register-reserve); no call was sent (allowed again in about {hours} h)",
            r.phone_number_id, r.used, r.allowed
        ),
        (Limit::DisplayName, _) => format!(
            "number {} has requested {} of its {} display-name changes in 30 days; no call was \
             sent (allowed again in about {hours} h)",
            r.phone_number_id, r.used, r.allowed
        ),
    }
}

/// The writes, for messages and for the idempotency keys (one space of keys each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Write {
    AddNumber,
    RequestCode,
    VerifyCode,
    Register,
    Deregister,
    SetPin,
    DisplayName,
    AddPreverified,
    DeletePreverified,
}

impl Write {
    /// Its space of idempotency keys in the store. Part of the schema: never rename.
    pub fn key(self) -> &'static str {
        match self {
            Write::AddNumber => "add_number",
            Write::RequestCode => "request_code",
            Write::VerifyCode => "verify_code",
            Write::Register => "register",
            Write::Deregister => "deregister",
            Write::SetPin => "set_pin",
            Write::DisplayName => "display_name",
            Write::AddPreverified => "add_preverified",
            Write::DeletePreverified => "delete_preverified",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Write::AddNumber => "add number",
            Write::RequestCode => "request code",
            Write::VerifyCode => "verify code",
            Write::Register => "register",
            Write::Deregister => "deregister",
            Write::SetPin => "two-step PIN",
            Write::DisplayName => "display name change",
            Write::AddPreverified => "add pre-verified number",
            Write::DeletePreverified => "delete pre-verified number",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Numbers {
    graph: Arc<GraphClient>,
    keys: Arc<Keyring>,
    reads: ReadPath,
    guards: Arc<Guards>,
}

/// What keeps writes from repeating themselves or spending Meta's limits.
#[derive(Debug)]
struct Guards {
    register_budget: Arc<Ledger>,
    display_names: Ledger,
    deadlines: Arc<Deadlines>,
    add: Idempotent<String>,
    request_code: Idempotent<()>,
    register: Idempotent<bool>,
    deregister: Idempotent<()>,
    pin: Idempotent<()>,
    display_name: Idempotent<()>,
}

impl Numbers {
    /// `register_reserve`: of Meta's 10 register/deregister attempts per 72 hours, how
    /// many the guard keeps for a person.
    /// Every call carries the token `keys` routes it to.
    pub fn new(
        graph: Arc<GraphClient>,
        keys: Arc<Keyring>,
        cache: &CacheSettings,
        register_reserve: u32,
    ) -> Self {
        let store = keys.store().cloned();
        let register_budget = Arc::new(Ledger::with_store(
            Limit::Register,
            register_reserve,
            store.clone(),
        ));
        let deadlines = Arc::new(Deadlines::new(register_budget.clone()));
        Self {
            reads: ReadPath::new(graph.clone(), keys.clone(), cache, deadlines.clone()),
            graph,
            keys,
            guards: Arc::new(Guards {
                register_budget,
                display_names: Ledger::with_store(Limit::DisplayName, 0, store.clone()),
                deadlines,
                add: Idempotent::with_store(Write::AddNumber, store.clone()),
                request_code: Idempotent::with_store(Write::RequestCode, store.clone()),
                register: Idempotent::with_store(Write::Register, store.clone()),
                deregister: Idempotent::with_store(Write::Deregister, store.clone()),
                pin: Idempotent::with_store(Write::SetPin, store.clone()),
                display_name: Idempotent::with_store(Write::DisplayName, store.clone()),
            }),
        }
    }

    /// The read path, shared with the watchers.
    pub fn reads(&self) -> &ReadPath {
        &self.reads
    }

    /// Whose token each call carries.
    pub fn keys(&self) -> &Arc<Keyring> {
        &self.keys
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

    /// The WABA's numbers whose display digits are `wanted` (normally one): every page
    /// is read (from cache while fresh; a WABA holds a few dozen numbers at most, one
    /// page). Meta's own `display_phone_number` filter is reported by one secondary
    /// source only, and its formatting rules are unknown.
    pub async fn find(
        &self,
        waba_id: &str,
        wanted: &str,
        deadline: Deadline,
    ) -> Result<Vec<Arc<Snapshot>>, Error> {
        const PAGE: u32 = 100;
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .reads
                .page(waba_id, PAGE, cursor.as_deref(), None, deadline)
                .await?;
            found.extend(
                page.numbers
                    .iter()
                    .filter(|s| digits(&s.number.display_phone_number) == wanted)
                    .cloned(),
            );
            match &page.next_cursor {
                Some(next) => cursor = Some(next.clone()),
                None => return Ok(found),
            }
        }
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
}

/// Awaits a call routed by `route`: when Meta rejects the customer's token it carried
/// (190), the customer is marked for re-authorisation and the answer is
/// [`keyring::Error::ReauthRequired`].
async fn routed<T>(
    keys: &Keyring,
    route: &Route,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match call.await {
        Err(e) => Err(rejected(keys, route, e).await),
        ok => ok,
    }
}

/// A call routed by `route` failed with `e`: see [`routed`].
async fn rejected(keys: &Keyring, route: &Route, e: Error) -> Error {
    match route {
        Route::Customer { waba_id, token } if e.token_rejected() => {
            keys.rejected(waba_id, token).await;
            keyring::Error::ReauthRequired {
                waba_id: waba_id.clone(),
            }
            .into()
        }
        _ => e,
    }
}
