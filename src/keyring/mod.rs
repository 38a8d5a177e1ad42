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
//! A WABA no customer holds in memory is asked of the store (onboarded by another replica
//! since?). When the store cannot say (down, or not reached since the start, when no
//! customer is loaded yet: [`Keyring::unloaded`]), the keyring does not guess "no
//! customer": a read goes with the partner's token, if one is configured (reads spend
//! nothing, and Meta says whether that token reaches the WABA), and a write, or a read
//! without a partner token, fails with [`Error::Store`] (UNAVAILABLE `STORE_UNAVAILABLE`),
//! never [`Error::NoCredentials`].
//!
//! Below `numbers/` (which routes every read and write through here) and above `graph/`
//! and `store/`.

use crate::graph::Credential;
use crate::model::TokenState;
use crate::store::{self, Store};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What a call's token is for (see [`Keyring::for_waba`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Read,
    Write,
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
    /// Every customer of the store has been read in ([`Keyring::fill`]).
    loaded: AtomicBool,
    known: RwLock<Known>,
    revoked: broadcast::Sender<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self.read();
        f.debug_struct("Keyring")
            .field("partner", &self.partner)
            .field("loaded", &self.loaded())
            .field("customers", &known.customers.len())
            .field("numbers", &known.numbers.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring of the partner's token alone (no store: no customers).
    pub fn partner_only() -> Keyring {
        let keyring = Keyring::new(None, true);
        keyring.loaded.store(true, Ordering::Release);
        keyring
    }

    fn new(store: Option<Store>, partner: bool) -> Keyring {
        Keyring {
            partner,
            store,
            loaded: AtomicBool::new(false),
            known: RwLock::default(),
            revoked: broadcast::channel(1024).0,
        }
    }

    /// Loads every customer's token from `store`. `partner`: whether a partner token is
    /// configured. A token no key at hand opens fails the start (a lost key is not
    /// something to discover on a customer's first call).
    pub async fn load(store: Store, partner: bool) -> Result<Keyring, store::Error> {
        let keyring = Keyring::unloaded(store, partner);
        keyring.fill().await?;
        Ok(keyring)
    }

    /// A keyring on `store` that holds no customer yet, for a store that cannot be read
    /// now: [`Keyring::fill`] reads them in once it can. Meanwhile a customer the store
    /// is asked about (and answers) is read in alone, and what the store cannot say is
    /// never taken for "no customer" (see [`Keyring::for_waba`]).
    pub fn unloaded(store: Store, partner: bool) -> Keyring {
        Keyring::new(Some(store), partner)
    }

    /// Reads every customer's token from the store (as [`Keyring::load`]), then counts
    /// the keyring as loaded.
    pub async fn fill(&self) -> Result<(), store::Error> {
        if let Some(store) = &self.store {
            let limit = NonZeroU32::new(store::MAX_PAGE).expect("not zero");
            let mut after: Option<String> = None;
            loop {
                let page = store.list(limit, after.as_deref()).await?;
                for customer in page.customers {
                    let Some(token) = store.token(&customer.waba_id).await? else {
                        continue; // removed meanwhile
                    };
                    self.insert(
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
        }
        self.loaded.store(true, Ordering::Release);
        self.publish();
        Ok(())
    }

    /// Whether every customer of the store has been read in.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The store customers are kept in, if there is one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The token for reads about the WABA: its customer's, else the partner's. When
    /// the store cannot say whether a customer holds a WABA this replica does not know
    /// (it is down, or not reached since the start), the partner's token is used if
    /// there is one (Meta says whether it reaches the WABA; a read spends nothing), else
    /// [`Error::Store`]: never [`Error::NoCredentials`], which only the store may say.
    pub async fn for_waba(&self, waba_id: &str) -> Result<Route, Error> {
        self.route_waba(waba_id, Purpose::Read).await
    }

    /// The token for writes about the WABA: as [`Keyring::for_waba`], except that when
    /// the store cannot say, nothing is sent ([`Error::Store`]) rather than a write
    /// carried by a token that may not be the one the customer gave.
    pub async fn for_waba_to_write(&self, waba_id: &str) -> Result<Route, Error> {
        self.route_waba(waba_id, Purpose::Write).await
    }

    async fn route_waba(&self, waba_id: &str, purpose: Purpose) -> Result<Route, Error> {
        let refused = match self.customer_route(waba_id) {
            Ok(Some(route)) => return Ok(route),
            Ok(None) => None,
            Err(refused) => Some(refused),
        };
        // Onboarded (or, refused here, healed) by another replica since?
        match self.reload(waba_id).await {
            Ok(true) => {
                if let Ok(Some(route)) = self.customer_route(waba_id) {
                    return Ok(route);
                }
            }
            Ok(false) => {}
            // What this replica knows of a refused customer stands.
            Err(unsure) if refused.is_none() => return self.unsure(purpose, unsure),
            Err(_) => {}
        }
        match refused {
            Some(refused) => Err(refused),
            None => self.partner(|| format!("WABA {waba_id}")),
        }
    }

    /// Takes the customer of `waba_id` as the store has it; whether it has one.
    /// [`Error::Store`] at once when the store is not believed to answer.
    async fn reload(&self, waba_id: &str) -> Result<bool, Error> {
        let Some(store) = self.answering()? else {
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

    /// The store, if there is one and it is believed to answer; [`Error::Store`] if
    /// there is one that does not (down, or not reached since the start), so that a
    /// call does not wait for the pool to give up on it.
    fn answering(&self) -> Result<Option<&Store>, Error> {
        match &self.store {
            None => Ok(None),
            Some(store) if store.answers() => Ok(Some(store)),
            Some(store) if !store.is_ready() => Err(Error::Store(
                "not reached since the service started, so it cannot say which customer's \
                 token to use"
                    .into(),
            )),
            Some(_) => Err(Error::Store(
                "it is down, so it cannot say which customer's token to use".into(),
            )),
        }
    }

    /// The store could not say whose token reaches the target: see [`Keyring::for_waba`].
    fn unsure(&self, purpose: Purpose, why: Error) -> Result<Route, Error> {
        match purpose {
            Purpose::Read if self.partner => Ok(Route::Partner),
            _ => Err(why),
        }
    }

    /// The token for reads about a phone number: its WABA's, as the index places it,
    /// else the partner's (the same rules as [`Keyring::for_waba`] when the store
    /// cannot say).
    /// A pre-verified number's id is placed in its business instead.
    pub async fn for_number(&self, phone_number_id: &str) -> Result<Route, Error> {
        self.route_number(phone_number_id, Purpose::Read).await
    }

    /// The token for writes about a phone number: see [`Keyring::for_waba_to_write`].
    pub async fn for_number_to_write(&self, phone_number_id: &str) -> Result<Route, Error> {
        self.route_number(phone_number_id, Purpose::Write).await
    }

    async fn route_number(&self, phone_number_id: &str, purpose: Purpose) -> Result<Route, Error> {
        let unsure = match self.waba_of(phone_number_id).await {
            Ok(Some(waba_id)) => return self.route_waba(&waba_id, purpose).await,
            Ok(None) => None,
            Err(unsure) => Some(unsure),
        };
        let business = self.read().preverified.get(phone_number_id).cloned();
        match (business, unsure) {
            (Some(business_id), _) => self.for_business(&business_id),
            (None, Some(unsure)) => self.unsure(purpose, unsure),
            (None, None) => self.partner(|| format!("phone number {phone_number_id}")),
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

    /// The WABA a number belongs to, as indexed (in memory, else in the store;
    /// [`Error::Store`] when it is not in memory and the store does not answer).
    pub async fn waba_of(&self, phone_number_id: &str) -> Result<Option<String>, Error> {
        if let Some(waba_id) = self.read().numbers.get(phone_number_id) {
            return Ok(Some(waba_id.clone()));
        }
        let Some(store) = self.answering()? else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A PostgreSQL store on a port nobody listens on: opened, never reached.
    async fn never_reached(dir: &std::path::Path) -> Store {
        let key = dir.join("store.key");
        let bytes: [u8; 32] = rand::random();
        std::fs::write(
            &key,
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // closed again at once: refused
        let spec = format!("postgres://app@127.0.0.1:{port}/waba");
        let config = store::StoreConfig::parse(&spec, Some(key), None).unwrap();
        match Store::open_or_wait(&config).await.unwrap() {
            store::Opened::Unreachable { store, .. } => store,
            store::Opened::Ready(_) => panic!("nobody listens on {port}"),
        }
    }

    #[tokio::test]
    async fn a_store_never_reached_is_not_taken_for_no_customer() {
        let dir = tempfile::tempdir().unwrap();
        let store = never_reached(dir.path()).await;
        // Without a partner token: the store's word is missing, not "no credentials".
        let alone = Keyring::unloaded(store.clone(), false);
        assert!(!alone.loaded());
        for routed in [
            alone.for_waba("201000000000001").await,
            alone.for_number("106540352242922").await,
            alone.for_waba_to_write("201000000000001").await,
        ] {
            assert!(matches!(routed, Err(Error::Store(_))), "{routed:?}");
        }
        // With one: reads go with it, writes are still refused.
        let partner = Keyring::unloaded(store, true);
        let read = partner.for_waba("201000000000001").await;
        assert!(matches!(read, Ok(Route::Partner)), "{read:?}");
        let read = partner.for_number("106540352242922").await;
        assert!(matches!(read, Ok(Route::Partner)), "{read:?}");
        let write = partner.for_number_to_write("106540352242922").await;
        assert!(matches!(write, Err(Error::Store(_))), "{write:?}");
    }
}
