//! Whose token each call carries.
//!
//! A customer's WABA is reached with that customer's business token (from Embedded
//! Signup, kept encrypted in the store); anything else with the partner's own token,
//! when one is configured. The keyring holds the decrypted tokens in memory (loaded
//! from the store at start, a few hundred bytes a customer) and the phone number → WABA
//! index that places a number-level call in its WABA (filled at onboarding, by listings
//! and by webhooks, kept in the store).
//!
//! When Meta rejects a customer's token (190), the customer is marked
//! [`TokenState::ReauthRequired`] here and in the store, and nothing more is sent with
//! it: calls for its WABA fail at once with [`Error::ReauthRequired`], and the watchers
//! hear of it ([`Keyring::revocations`]) and end their streams. A new onboarding (a new
//! code) replaces the token and makes the customer active again.
//!
//! Below `numbers/` (which routes every read and write through here) and above `graph/`
//! and `store/`.

use crate::graph::Credential;
use crate::model::TokenState;
use crate::store::{self, Store};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::broadcast;

/// Where a call's token comes from.
#[derive(Clone)]
pub enum Route {
    /// The partner's own token.
    Partner,
    /// The business token of the customer that owns `waba_id`.
    Customer {
        waba_id: String,
        token: Arc<SecretString>,
    },
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Partner => f.write_str("Partner"),
            Route::Customer { waba_id, .. } => write!(f, "Customer({waba_id})"),
        }
    }
}

impl Route {
    /// What the Graph client needs to carry the token.
    pub fn credential(&self) -> Credential {
        match self {
            Route::Partner => Credential::Partner,
            Route::Customer { token, .. } => Credential::Business(token.clone()),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// Nothing the service holds may reach the target.
    #[error(
        "no credentials for {target}: no customer's token covers it and no partner access \
         token is configured (onboard the customer, or set WABA_ACCESS_TOKEN)"
    )]
    NoCredentials { target: String },
    /// The customer's token was rejected by Meta (expired or revoked).
    #[error(
        "Meta rejected the business token of WABA {waba_id} (expired or revoked): the \
         customer must go through Embedded Signup again (OnboardCustomer with a new code)"
    )]
    ReauthRequired { waba_id: String },
    /// The store could not say which token to use.
    #[error("the store is unavailable: {0}")]
    Store(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e.to_string())
    }
}

/// A customer's token as the keyring holds it.
struct Key {
    token: Arc<SecretString>,
    state: TokenState,
    business_id: Option<String>,
}

#[derive(Default)]
struct Known {
    customers: HashMap<String, Key>,
    /// Phone number id → its WABA.
    numbers: HashMap<String, String>,
    /// Pre-verified number id → its business (from listings and adds; this process's
    /// memory only: the partner's token serves the rest).
    preverified: HashMap<String, String>,
}

pub struct Keyring {
    /// Whether a partner token is configured: the fallback for what no customer covers.
    partner: bool,
    store: Option<Store>,
    known: RwLock<Known>,
    revoked: broadcast::Sender<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self.read();
        f.debug_struct("Keyring")
            .field("partner", &self.partner)
            .field("customers", &known.customers.len())
            .field("numbers", &known.numbers.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring of the partner's token alone (no store: no customers).
    pub fn partner_only() -> Keyring {
        Keyring::new(None, true)
    }

    fn new(store: Option<Store>, partner: bool) -> Keyring {
        Keyring {
            partner,
            store,
            known: RwLock::default(),
            revoked: broadcast::channel(1024).0,
        }
    }

    /// Loads every customer's token from `store`. `partner`: whether a partner token is
    /// configured. A token no key at hand opens fails the start (a lost key is not
    /// something to discover on a customer's first call).
    pub async fn load(store: Store, partner: bool) -> Result<Keyring, store::Error> {
        let keyring = Keyring::new(Some(store.clone()), partner);
        let limit = NonZeroU32::new(store::MAX_PAGE).expect("not zero");
        let mut after: Option<String> = None;
        loop {
            let page = store.list(limit, after.as_deref()).await?;
            for customer in page.customers {
                let Some(token) = store.token(&customer.waba_id).await? else {
                    continue; // removed meanwhile
                };
                keyring.insert(
                    &customer.waba_id,
                    token,
                    customer.token_state,
                    customer.business_id,
                );
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        keyring.publish();
        Ok(keyring)
    }

    /// The store customers are kept in, if there is one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The token for calls about the WABA: its customer's, else the partner's.
    pub async fn for_waba(&self, waba_id: &str) -> Result<Route, Error> {
        let refused = match self.customer_route(waba_id) {
            Ok(Some(route)) => return Ok(route),
            Ok(None) => None,
            Err(refused) => Some(refused),
        };
        // Onboarded (or, refused here, healed) by another replica since?
        if self.reload(waba_id).await?
            && let Ok(Some(route)) = self.customer_route(waba_id)
        {
            return Ok(route);
        }
        match refused {
            Some(refused) => Err(refused),
            None => self.partner(|| format!("WABA {waba_id}")),
        }
    }

    /// Takes the customer of `waba_id` as the store has it; whether it has one.
    async fn reload(&self, waba_id: &str) -> Result<bool, Error> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let Some(customer) = store.customer(waba_id).await? else {
            return Ok(false);
        };
        let Some(token) = store.token(waba_id).await? else {
            return Ok(false);
        };
        self.keep(waba_id, token, customer.token_state, customer.business_id);
        Ok(true)
    }

    /// The token for calls about a phone number: its WABA's, as the index places it,
    /// else the partner's.
    /// A pre-verified number's id is placed in its business instead.
    pub async fn for_number(&self, phone_number_id: &str) -> Result<Route, Error> {
        if let Some(waba_id) = self.waba_of(phone_number_id).await? {
            return self.for_waba(&waba_id).await;
        }
        let business = self.read().preverified.get(phone_number_id).cloned();
        match business {
            Some(business_id) => self.for_business(&business_id),
            None => self.partner(|| format!("phone number {phone_number_id}")),
        }
    }

    /// Learns that the pre-verified numbers `ids` are in `business_id`'s pool.
    pub fn learn_preverified(&self, business_id: &str, ids: impl IntoIterator<Item = String>) {
        let mut known = self.write();
        for id in ids {
            known.preverified.insert(id, business_id.to_owned());
        }
    }

    /// The token for calls about a business portfolio (its pre-verified pool): an active
    /// customer's of that business (the lowest WABA id, of several), else the partner's.
    pub fn for_business(&self, business_id: &str) -> Result<Route, Error> {
        let known = self.read();
        let customer = known
            .customers
            .iter()
            .filter(|(_, key)| {
                key.state == TokenState::Active && key.business_id.as_deref() == Some(business_id)
            })
            .min_by(|(a, _), (b, _)| a.cmp(b));
        if let Some((waba_id, key)) = customer {
            return Ok(Route::Customer {
                waba_id: waba_id.clone(),
                token: key.token.clone(),
            });
        }
        drop(known);
        self.partner(|| format!("business {business_id}"))
    }

    /// The WABA a number belongs to, as indexed (in memory, else in the store).
    pub async fn waba_of(&self, phone_number_id: &str) -> Result<Option<String>, Error> {
        if let Some(waba_id) = self.read().numbers.get(phone_number_id) {
            return Ok(Some(waba_id.clone()));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let found = store.waba_of(phone_number_id).await?;
        if let Some(waba_id) = &found {
            self.write()
                .numbers
                .insert(phone_number_id.to_owned(), waba_id.clone());
        }
        Ok(found)
    }

    /// The WABA a number belongs to, if this process has learnt it.
    pub fn known_waba_of(&self, phone_number_id: &str) -> Option<String> {
        self.read().numbers.get(phone_number_id).cloned()
    }

    /// Learns that `numbers` belong to `waba_id` (a listing, a webhook): the index in
    /// memory at once, the store's in the background, only for what is news.
    pub fn learn(&self, waba_id: &str, numbers: &[String]) {
        let news: Vec<String> = {
            let known = self.read();
            numbers
                .iter()
                .filter(|id| known.numbers.get(*id).map(String::as_str) != Some(waba_id))
                .cloned()
                .collect()
        };
        if news.is_empty() {
            return;
        }
        {
            let mut known = self.write();
            for id in &news {
                known.numbers.insert(id.clone(), waba_id.to_owned());
            }
        }
        if let Some(store) = self.store.clone() {
            let waba_id = waba_id.to_owned();
            tokio::spawn(async move {
                if let Err(e) = store.index_numbers(&waba_id, &news).await {
                    // Memory has it; a later listing writes it again.
                    tracing::warn!(waba_id, error = %e, "cannot index the WABA's numbers in the store");
                }
            });
        }
    }

    /// Holds `token` for the customer of `waba_id` (new, or replacing its old one).
    pub fn keep(
        &self,
        waba_id: &str,
        token: SecretString,
        state: TokenState,
        business_id: Option<String>,
    ) {
        self.insert(waba_id, token, state, business_id);
        self.publish();
    }

    fn insert(
        &self,
        waba_id: &str,
        token: SecretString,
        state: TokenState,
        business_id: Option<String>,
    ) {
        let key = Key {
            token: Arc::new(token),
            state,
            business_id,
        };
        self.write().customers.insert(waba_id.to_owned(), key);
    }

    /// The customer's token is now in `state` (`business_id`, when it is known).
    pub fn set_state(&self, waba_id: &str, state: TokenState, business_id: Option<String>) {
        if let Some(key) = self.write().customers.get_mut(waba_id) {
            key.state = state;
            if business_id.is_some() {
                key.business_id = business_id;
            }
        }
        self.publish();
        if state == TokenState::ReauthRequired {
            // Nobody listening is fine: no watcher runs.
            let _ = self.revoked.send(waba_id.to_owned());
        }
    }

    /// Forgets the customer's token (its numbers stay indexed: they are still its WABA's).
    pub fn forget(&self, waba_id: &str) {
        self.write().customers.remove(waba_id);
        self.publish();
    }

    /// Meta rejected the customer's token `token` (190, or `debug_token` said invalid):
    /// marked in memory at once (so nothing more is sent with it), then in the store;
    /// whether it was marked. A token replaced meanwhile (a new onboarding) is not the
    /// one rejected: nothing changes.
    pub async fn rejected(&self, waba_id: &str, token: &SecretString) -> bool {
        let current = self.read().customers.get(waba_id).is_some_and(|k| {
            k.state != TokenState::ReauthRequired
                && k.token.expose_secret() == token.expose_secret()
        });
        if !current {
            return false;
        }
        // Replaced in the store meanwhile (another replica onboarded the customer again)?
        // Then the store's token is the customer's now, and this one's death no news.
        if let Some(store) = &self.store
            && let Ok(Some(stored)) = store.token(waba_id).await
            && stored.expose_secret() != token.expose_secret()
        {
            let _ = self.reload(waba_id).await;
            return false;
        }
        tracing::warn!(
            waba_id,
            "Meta rejected the customer's business token; it needs Embedded Signup again"
        );
        self.set_state(waba_id, TokenState::ReauthRequired, None);
        if let Some(store) = &self.store
            && let Err(e) = store
                .set_token_state(waba_id, TokenState::ReauthRequired)
                .await
        {
            tracing::warn!(waba_id, error = %e, "cannot record in the store that the token needs re-authorisation");
        }
        true
    }

    /// The WABAs whose token Meta rejects, as it happens (for the watchers).
    pub fn revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    /// `Ok(None)`: no customer holds the WABA.
    fn customer_route(&self, waba_id: &str) -> Result<Option<Route>, Error> {
        let known = self.read();
        let Some(key) = known.customers.get(waba_id) else {
            return Ok(None);
        };
        if key.state == TokenState::ReauthRequired {
            return Err(Error::ReauthRequired {
                waba_id: waba_id.to_owned(),
            });
        }
        Ok(Some(Route::Customer {
            waba_id: waba_id.to_owned(),
            token: key.token.clone(),
        }))
    }

    fn partner(&self, target: impl FnOnce() -> String) -> Result<Route, Error> {
        if self.partner {
            Ok(Route::Partner)
        } else {
            Err(Error::NoCredentials { target: target() })
        }
    }

    /// `waba_customers{token_state}`: how many customers are in each state.
    fn publish(&self) {
        let known = self.read();
        for state in TokenState::ALL {
            let n = known
                .customers
                .values()
                .filter(|k| k.state == state)
                .count();
            metrics::gauge!("waba_customers", "token_state" => state.as_str()).set(n as f64);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Known> {
        // Held for map operations only, never across an await.
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Known> {
        self.known.write().unwrap_or_else(|p| p.into_inner())
    }
}
