//! Customers onboarded through Embedded Signup: the code exchange, the business tokens
//! it issues, who a token reaches, `debug_token`, and each WABA's app subscription.
//!
//! The contract (the README and the tests rely on it; graph-api.md §6 and its research
//! update are the reading of Meta behind it):
//!
//! - **The app.** The sandbox is one Meta app: id [`SANDBOX_APP_ID`], named
//!   [`SANDBOX_APP_NAME`]; its secret is the configured `app_secret` when there is one,
//!   else [`SANDBOX_APP_SECRET`] (and then no `appsecret_proof` is required, as today).
//!   Its app token is `APP_ID|APP_SECRET`, also what
//!   `GET /oauth/access_token?grant_type=client_credentials` answers.
//! - **Codes.** `GET /{version}/oauth/access_token?client_id&client_secret&code` accepts
//!   codes of the form [`DEMO_CODE_PREFIX`] + *customer* [+ `.` + *anything*]: the
//!   customer is 1 to 64 of `A-Z a-z 0-9 _ -`, the optional suffix 1 to 64 of those or
//!   `.`. The customer names the WABA: the first code for a customer creates its WABA
//!   ([`customer_waba_id`], `102` + 12 digits of SHA-256), owned by its own business
//!   ([`customer_business_id`], `104` + 12 digits), with [`CUSTOMER_NUMBERS`] numbers
//!   ([`customer_number_id`]): 1 registered and healthy (PIN [`super::DEMO_PIN`]), 2
//!   registered with a new display name in review (approved 3 paces after the exchange,
//!   with its webhook), 3 verified but not registered (no PIN: ready for a register). A
//!   later code for the same customer (`es-acme.2` after `es-acme`) installs the app
//!   again, as a customer going through Embedded Signup again does: a new token for the
//!   same WABA. Codes do not expire in the sandbox (Meta's live about 30 s).
//! - **Answers of the exchange.** `{"access_token": business_token(code), "token_type":
//!   "bearer"}`; the token ([`business_token`]) is a documented function of the code, so
//!   a test or the README can predict it. Errors, all `OAuthException`, HTTP 400, checked
//!   in this order: a missing or wrong `client_id` → 101 "Error validating application.
//!   Invalid application ID."; a missing or wrong `client_secret` → 1 "Error validating
//!   client secret."; a missing code, or one not of the form → 100 "Invalid verification
//!   code format."; a code already exchanged → 100 with subcode 36009 "This authorization
//!   code has been used." (Meta's answer as partner codebases record it; graph-api.md
//!   lists no code for it). `redirect_uri` is ignored. The exchange needs no access
//!   token nor `appsecret_proof`, draws on no WABA's hourly budget, is counted under
//!   `tokens` at `/_sandbox/calls`, and also answers without a version
//!   (`/oauth/access_token`), as Meta's does.
//! - **Who a token reaches.** A business token reaches its WABA (the `phone_numbers` edge,
//!   `subscribed_apps`) and that WABA's numbers with all their edges, and its business's
//!   pre-verified pool; anything else that exists → 200 "(#200) Permissions error" (HTTP
//!   403, as Meta's error table has it) — one rule for nodes, edges and writes, since
//!   that is the error the caller can act on; ids that exist nowhere still get 100/33.
//!   The partner token (`SandboxOptions.access_token`, or any other token when it is
//!   `None`) reaches the demo world and every customer WABA: a Solution Partner is
//!   granted access to the WABAs of the customers it onboards.
//! - **`debug_token`.** `GET /{version}/debug_token?input_token=` (or unversioned) with
//!   the app token as the access token (bearer or `access_token`; no `appsecret_proof`
//!   needed: the proof is for user and system-user tokens). Another `APP_ID|SECRET` →
//!   190 "Invalid OAuth access token signature."; any other token → 100 "You must provide
//!   an app access token...". The answer's shape is `render::debug_token_json`'s: for a
//!   business token `is_valid`, `app_id`, `type: SYSTEM_USER`, `application`,
//!   `expires_at: 0` and `data_access_expires_at: 0` (business tokens never expire),
//!   `issued_at`, `scopes`, `granular_scopes` naming its WABA for
//!   `whatsapp_business_management` and `whatsapp_business_messaging` and its business
//!   for `business_management` (where a partner learns the customer's business id), and
//!   `user_id`; a revoked one `is_valid: false` with `error: {code: 190, subcode: 458,
//!   message}`; a token the sandbox never issued `{is_valid: false, error: {code: 190,
//!   message}, scopes: []}`; the partner token every WABA and the demo business (with no
//!   partner token configured, any other token is the partner's, and valid).
//! - **Revocation** (the customer removes the app): `POST /_sandbox/revoke?waba_id=`
//!   ([`super::REVOKE_PATH`]; no token, from loopback only, else 403 with code 10) kills
//!   every business token of that WABA and removes its app subscription, answering
//!   `{"success": true, "revoked_tokens": n}`; a WABA no code created → 100/33. A revoked token then gets 190 with subcode 458 ("The user has not
//!   authorized application ...", i.e. app not installed) on every call, HTTP 400 like the
//!   sandbox's other 190s, and `debug_token` says `is_valid: false`.
//! - **Subscriptions.** `POST /{WABA_ID}/subscribed_apps` subscribes the app (optional
//!   `override_callback_uri`, at most 200 characters, which needs `verify_token`; kept and
//!   listed but it changes no delivery: overrides apply to messaging fields only, and the
//!   sandbox sends only name and quality updates, which go to the app's default callback),
//!   `GET` lists it, `DELETE` removes it (both idempotent, `{"success": true}`). Webhooks
//!   about a WABA are delivered only while it is subscribed; the demo, migration and bench
//!   WABAs are subscribed from the start, a customer's WABA from its first POST.
//!
//! Tokens and codes are kept only as SHA-256 digests, so the world's `Debug` never shows
//! one; a presented token is hashed to be looked up.

use super::state::{Fault, Number, World, healthy_number, unregister};
use super::state::{Scripted, graph_time};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

/// The sandbox's Meta app id: the `client_id` of the code exchange, the `app_id` of
/// `debug_token`, the id `subscribed_apps` lists.
pub const SANDBOX_APP_ID: &str = "1080000000000001";
/// The app's name, as `debug_token` (`application`) and `subscribed_apps` show it.
pub const SANDBOX_APP_NAME: &str = "waba-numbers sandbox";
/// The app secret when the sandbox is configured with none.
pub const SANDBOX_APP_SECRET: &str = "sandbox-app-secret-0123456789abcdef";
/// Embedded Signup codes the sandbox accepts start with this.
pub const DEMO_CODE_PREFIX: &str = "es-";
/// How many numbers a customer's WABA is created with.
pub const CUSTOMER_NUMBERS: usize = 3;
/// The system user behind the partner token, as `debug_token` names it.
pub const PARTNER_SYSTEM_USER_ID: &str = "105000000000001";
/// The subcode of a code exchanged twice.
pub const CODE_USED: i64 = 36009;
/// The subcode of a token whose customer removed the app (app not installed).
pub const APP_NOT_INSTALLED: i64 = 458;

const MAX_PART: usize = 64;

/// The customer a code names (`acme` for `es-acme` and `es-acme.2`), if the code has the
/// documented form.
pub fn customer_of(code: &str) -> Option<&str> {
    let rest = code.strip_prefix(DEMO_CODE_PREFIX)?;
    let (customer, suffix) = match rest.split_once('.') {
        Some((customer, suffix)) => (customer, Some(suffix)),
        None => (rest, None),
    };
    let word = |s: &str, dots: bool| {
        (1..=MAX_PART).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.'))
    };
    (word(customer, false) && suffix.is_none_or(|s| word(s, true))).then_some(customer)
}

/// The id of the WABA a code's customer gets: `102` and 12 digits of
/// SHA-256(`"customer-waba/{customer}"`), as for [`super::phone_number_id`].
pub fn customer_waba_id(code: &str) -> Option<String> {
    customer_of(code).map(|c| super::state::hashed_id("102", &format!("customer-waba/{c}")))
}

/// The id of the business portfolio owning that WABA: `104` and 12 digits of
/// SHA-256(`"customer-business/{customer}"`).
pub fn customer_business_id(code: &str) -> Option<String> {
    customer_of(code).map(|c| super::state::hashed_id("104", &format!("customer-business/{c}")))
}

/// The business integration system user of that customer (`debug_token`'s `user_id`):
/// `105` and 12 digits of SHA-256(`"system-user/{customer}"`).
fn system_user_id(customer: &str) -> String {
    super::state::hashed_id("105", &format!("system-user/{customer}"))
}

/// The business token a code is exchanged for: `EAAS` and the lowercase hex SHA-256 of
/// `"business-token/{code}"` (68 characters).
pub fn business_token(code: &str) -> String {
    format!(
        "EAAS{}",
        hex::encode(Sha256::digest(format!("business-token/{code}")))
    )
}

/// The `i`-th number (1 to [`CUSTOMER_NUMBERS`]) of a code's customer WABA:
/// [`super::phone_number_id`] of the WABA and its digits, `1 555-3xx-xx0i`.
pub fn customer_number_id(code: &str, i: usize) -> Option<String> {
    let waba_id = customer_waba_id(code)?;
    let digits = customer_digits(customer_of(code)?, i);
    Some(super::phone_number_id(&waba_id, &digits))
}

/// `1555` `3` + 4 digits of the customer's hash + `0i`: the customer's numbers are
/// `+1 555-3xx-xx0i`, apart from the demo's `+1 555-010-xxxx`.
fn customer_digits(customer: &str, i: usize) -> String {
    let hash = Sha256::digest(format!("customer-numbers/{customer}"));
    let n = u16::from_be_bytes([hash[0], hash[1]]) % 10_000;
    format!("15553{n:04}{i:02}")
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// What a business token was granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub waba_id: String,
    pub business_id: String,
    pub user_id: String,
    pub issued_at: DateTime<Utc>,
    /// The customer removed the app.
    pub revoked: bool,
}

/// A WABA's app subscription (`POST /{WABA_ID}/subscribed_apps`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    pub override_callback_uri: Option<String>,
}

/// The customers' side of the world.
#[derive(Debug, Default)]
pub struct Customers {
    /// SHA-256 of every code exchanged.
    used_codes: BTreeSet<[u8; 32]>,
    /// SHA-256 of each business token → what it was granted.
    tokens: BTreeMap<[u8; 32], Grant>,
    /// WABA id → its subscription, for subscribed WABAs.
    subscriptions: BTreeMap<String, Subscription>,
    /// WABAs created by a code.
    wabas: BTreeSet<String>,
}

impl Customers {
    /// A WABA of the demo world: subscribed before anyone asks.
    pub(super) fn subscribe_from_start(&mut self, waba_id: &str) {
        self.subscriptions
            .insert(waba_id.into(), Subscription::default());
    }
}

/// Who is calling, as the token says.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The partner's system-user token: sees everything.
    Partner,
    /// A customer's business token (live).
    Business(Grant),
    /// The app token (`APP_ID|APP_SECRET`): `debug_token` only.
    App,
    /// No token: the code exchange only.
    Anonymous,
}

/// What a call touches, for the token check.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Waba(String),
    Business(String),
    /// Nothing that exists: the endpoint answers as it does for unknown ids.
    Nothing,
}

impl Caller {
    /// Whether this caller may touch `target`; `Err` is Meta's permission error.
    pub fn may(&self, target: &Target) -> Result<(), Fault> {
        let allowed = match (self, target) {
            (_, Target::Nothing) | (Caller::Partner, _) => true,
            (Caller::Business(grant), Target::Waba(w)) => *w == grant.waba_id,
            (Caller::Business(grant), Target::Business(b)) => *b == grant.business_id,
            (Caller::App | Caller::Anonymous, _) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(permission_error())
        }
    }
}

/// `(#200) Permissions error`, HTTP 403.
pub fn permission_error() -> Fault {
    Fault {
        http_status: 403,
        ..Fault::new(200, "OAuthException", "(#200) Permissions error")
    }
}

/// 190/458: the token's customer removed the app.
pub fn app_not_installed() -> Fault {
    let message = format!(
        "Error validating access token: The user has not authorized application {SANDBOX_APP_ID}."
    );
    Fault::new(190, "OAuthException", message).with_subcode(APP_NOT_INSTALLED)
}

/// Checks the exchange's client credentials against the app's, in Meta's order.
pub fn check_client(
    client_id: Option<&str>,
    client_secret: Option<&str>,
    app_secret: &str,
) -> Result<(), Fault> {
    match client_id {
        None | Some("") => {
            return Err(Fault::new(
                101,
                "OAuthException",
                "Missing client_id parameter.",
            ));
        }
        Some(id) if id != SANDBOX_APP_ID => {
            let message = "Error validating application. Invalid application ID.";
            return Err(Fault::new(101, "OAuthException", message));
        }
        Some(_) => {}
    }
    let secret_ok = client_secret.is_some_and(|s| {
        use subtle::ConstantTimeEq;
        bool::from(s.as_bytes().ct_eq(app_secret.as_bytes()))
    });
    if !secret_ok {
        return Err(Fault::new(
            1,
            "OAuthException",
            "Error validating client secret.",
        ));
    }
    Ok(())
}

/// The app token for `app_secret`.
pub fn app_token(app_secret: &str) -> String {
    format!("{SANDBOX_APP_ID}|{app_secret}")
}

impl World {
    /// Exchanges an Embedded Signup code (client credentials already checked): creates
    /// the customer's WABA on its first code, records the code as used, and returns the
    /// new business token.
    pub fn exchange_code(&mut self, code: &str, now: Instant) -> Result<String, Fault> {
        let Some(customer) = customer_of(code) else {
            return Err(Fault::new(
                100,
                "OAuthException",
                "Invalid verification code format.",
            ));
        };
        if !self.customers.used_codes.insert(digest(code)) {
            let message = "This authorization code has been used.";
            return Err(Fault::new(100, "OAuthException", message).with_subcode(CODE_USED));
        }
        let waba_id = customer_waba_id(code).expect("the code has the form");
        let business_id = customer_business_id(code).expect("the code has the form");
        if !self.is_waba(&waba_id) {
            self.add_customer_waba(customer, &waba_id, &business_id, now);
        }
        let token = business_token(code);
        let grant = Grant {
            waba_id,
            business_id,
            user_id: system_user_id(customer),
            issued_at: self.wall(now),
            revoked: false,
        };
        self.customers.tokens.insert(digest(&token), grant);
        Ok(token)
    }

    fn add_customer_waba(
        &mut self,
        customer: &str,
        waba_id: &str,
        business_id: &str,
        now: Instant,
    ) {
        self.owners.insert(waba_id.into(), business_id.into());
        self.customers.wabas.insert(waba_id.into());
        let mut name: String = customer.replace(['_', '-'], " ");
        if let Some(first) = name.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        let onboarded = graph_time(self.wall(now));
        for i in 1..=CUSTOMER_NUMBERS {
            let digits = customer_digits(customer, i);
            let mut n: Number = healthy_number(i);
            n.id = super::phone_number_id(waba_id, &digits);
            n.waba_id = waba_id.into();
            n.display_phone_number = super::state::display_number("1", &digits[1..]);
            n.verified_name = format!("{name} {i}");
            n.last_onboarded_time = onboarded.clone();
            match i {
                1 => {}
                2 => {
                    n.new_display_name = format!("{name} {i} Express");
                    n.new_name_status = "PENDING_REVIEW".into();
                    n.name_requests.push_back(now);
                    let review = Scripted::NewName {
                        approve: true,
                        name: Some(n.new_display_name.clone()),
                    };
                    self.script
                        .push((now + self.pace * 3, n.id.clone(), review));
                }
                _ => unregister(&mut n, "PENDING"),
            }
            self.add(n);
        }
    }

    /// Whether `waba_id` was created by a code.
    pub fn is_customer_waba(&self, waba_id: &str) -> bool {
        self.customers.wabas.contains(waba_id)
    }

    /// What the business token `token` was granted, revoked or not; `None` for any
    /// other token.
    pub fn grant(&self, token: &str) -> Option<&Grant> {
        self.customers.tokens.get(&digest(token))
    }

    /// The customer removed the app: every business token of `waba_id` dies and its
    /// subscription goes. Returns how many live tokens were revoked; a WABA no code
    /// created is 100/33.
    pub fn revoke(&mut self, waba_id: &str) -> Result<usize, Fault> {
        if !self.is_customer_waba(waba_id) {
            return Err(Fault::unknown_object(waba_id));
        }
        let mut revoked = 0;
        for grant in self.customers.tokens.values_mut() {
            if grant.waba_id == waba_id && !grant.revoked {
                grant.revoked = true;
                revoked += 1;
            }
        }
        self.customers.subscriptions.remove(waba_id);
        Ok(revoked)
    }

    /// Subscribes the app to `waba_id`'s webhooks (again: the override is replaced).
    pub fn subscribe(&mut self, waba_id: &str, subscription: Subscription) -> Result<(), Fault> {
        if !self.is_waba(waba_id) {
            return Err(Fault::unsupported("POST", waba_id));
        }
        if let Some(uri) = &subscription.override_callback_uri
            && uri.chars().count() > 200
        {
            return Err(Fault::invalid_parameter(
                "Param override_callback_uri must be at most 200 characters long",
            ));
        }
        self.customers
            .subscriptions
            .insert(waba_id.into(), subscription);
        Ok(())
    }

    pub fn unsubscribe(&mut self, waba_id: &str) -> Result<(), Fault> {
        if !self.is_waba(waba_id) {
            return Err(Fault::unsupported("DELETE", waba_id));
        }
        self.customers.subscriptions.remove(waba_id);
        Ok(())
    }

    /// `waba_id`'s subscription, if the app is subscribed.
    pub fn subscription(&self, waba_id: &str) -> Option<&Subscription> {
        self.customers.subscriptions.get(waba_id)
    }

    /// Whether webhooks about `waba_id` are delivered now.
    pub fn is_subscribed(&self, waba_id: &str) -> bool {
        self.customers.subscriptions.contains_key(waba_id)
    }

    /// Every WABA, for the partner token's `granular_scopes`.
    pub fn waba_ids(&self) -> impl Iterator<Item = &str> {
        self.wabas.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::state::{DEMO_BUSINESS_ID, DEMO_WABA_ID, test_world};
    use std::time::Duration;

    const PACE: Duration = Duration::from_secs(10);

    #[test]
    fn codes_of_the_documented_form_name_a_customer() {
        assert_eq!(customer_of("es-acme"), Some("acme"));
        assert_eq!(customer_of("es-acme.2"), Some("acme"));
        assert_eq!(customer_of("es-Big_Shop-7.retry.3"), Some("Big_Shop-7"));
        for bad in [
            "", "es-", "acme", "es-.2", "es-acme.", "es-a b", "es-ä", "ES-acme",
        ] {
            assert_eq!(customer_of(bad), None, "{bad}");
        }
        assert_eq!(customer_of(&format!("es-{}", "a".repeat(65))), None);
        // Ids are functions of the customer, tokens of the whole code.
        assert_eq!(customer_waba_id("es-acme"), customer_waba_id("es-acme.2"));
        assert_ne!(customer_waba_id("es-acme"), customer_waba_id("es-other"));
        assert_ne!(business_token("es-acme"), business_token("es-acme.2"));
        let waba = customer_waba_id("es-acme").unwrap();
        let business = customer_business_id("es-acme").unwrap();
        assert!(waba.starts_with("102") && waba.len() == 15, "{waba}");
        assert!(
            business.starts_with("104") && business.len() == 15,
            "{business}"
        );
        assert_ne!(waba, DEMO_WABA_ID);
        assert_ne!(business, DEMO_BUSINESS_ID);
        assert_eq!(business_token("es-acme").len(), 68);
    }

    #[test]
    fn a_first_code_creates_the_customer_waba_and_a_code_works_once() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let token = world.exchange_code("es-acme", now).unwrap();
        assert_eq!(token, business_token("es-acme"));
        let waba = customer_waba_id("es-acme").unwrap();
        let (numbers, _) = world.page(&waba, 0, 100).unwrap();
        assert_eq!(numbers.len(), CUSTOMER_NUMBERS);
        let ids: Vec<_> = (1..=CUSTOMER_NUMBERS)
            .map(|i| customer_number_id("es-acme", i).unwrap())
            .collect();
        assert_eq!(
            numbers.iter().map(|n| &n.id).collect::<Vec<_>>(),
            ids.iter().collect::<Vec<_>>()
        );
        assert!(numbers[0].is_registered() && numbers[1].is_registered());
        assert!(!numbers[2].is_registered() && !numbers[2].is_pin_enabled());
        assert_eq!(numbers[2].code_verification_status, "VERIFIED");
        assert_eq!(numbers[1].new_name_status, "PENDING_REVIEW");
        assert!(numbers[0].display_phone_number.starts_with("+1 555-3"));
        assert_eq!(
            world.business_of(&waba),
            customer_business_id("es-acme").unwrap()
        );

        let used = world.exchange_code("es-acme", now).unwrap_err();
        assert_eq!((used.code, used.subcode), (100, Some(CODE_USED)));
        let bad = world.exchange_code("nonsense", now).unwrap_err();
        assert_eq!((bad.code, bad.subcode), (100, None));

        // A second code for the customer: a second token, the same WABA, no new numbers.
        let again = world.exchange_code("es-acme.2", now).unwrap();
        assert_ne!(again, token);
        assert_eq!(world.count(&waba), CUSTOMER_NUMBERS);
        assert_eq!(world.grant(&again).unwrap().waba_id, waba);
        assert!(world.grant("EAAGother").is_none());
    }

    #[test]
    fn a_business_token_reaches_only_its_waba_and_business() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let token = world.exchange_code("es-acme", now).unwrap();
        let business = Caller::Business(world.grant(&token).unwrap().clone());
        let waba = customer_waba_id("es-acme").unwrap();
        let owner = customer_business_id("es-acme").unwrap();
        assert_eq!(business.may(&Target::Waba(waba.clone())), Ok(()));
        assert_eq!(business.may(&Target::Business(owner)), Ok(()));
        assert_eq!(business.may(&Target::Nothing), Ok(()));
        let denied = business
            .may(&Target::Waba(DEMO_WABA_ID.into()))
            .unwrap_err();
        assert_eq!((denied.code, denied.http_status), (200, 403));
        assert!(
            business
                .may(&Target::Business(DEMO_BUSINESS_ID.into()))
                .is_err()
        );
        assert_eq!(Caller::Partner.may(&Target::Waba(waba)), Ok(()));
        assert!(Caller::App.may(&Target::Waba(DEMO_WABA_ID.into())).is_err());
    }

    #[test]
    fn revoking_kills_every_token_of_the_waba_and_its_subscription() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let first = world.exchange_code("es-acme", now).unwrap();
        let second = world.exchange_code("es-acme.2", now).unwrap();
        let other = world.exchange_code("es-other", now).unwrap();
        let waba = customer_waba_id("es-acme").unwrap();
        assert!(
            !world.is_subscribed(&waba),
            "a new customer is not subscribed"
        );
        world.subscribe(&waba, Subscription::default()).unwrap();
        assert!(world.is_subscribed(&waba));
        assert_eq!(world.revoke(&waba), Ok(2));
        assert!(world.grant(&first).unwrap().revoked && world.grant(&second).unwrap().revoked);
        assert!(!world.grant(&other).unwrap().revoked);
        assert!(!world.is_subscribed(&waba));
        assert_eq!(world.revoke(DEMO_WABA_ID).unwrap_err().subcode, Some(33));
        // Embedded Signup again: a live token for the same WABA.
        let third = world.exchange_code("es-acme.3", now).unwrap();
        assert!(!world.grant(&third).unwrap().revoked);
    }

    #[test]
    fn the_demo_wabas_start_subscribed_and_subscriptions_come_and_go() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        assert!(world.is_subscribed(DEMO_WABA_ID));
        world.unsubscribe(DEMO_WABA_ID).unwrap();
        world.unsubscribe(DEMO_WABA_ID).unwrap();
        assert!(!world.is_subscribed(DEMO_WABA_ID));
        let long = Subscription {
            override_callback_uri: Some(format!("https://example.com/{}", "a".repeat(200))),
        };
        assert_eq!(world.subscribe(DEMO_WABA_ID, long).unwrap_err().code, 100);
        assert_eq!(
            world
                .subscribe("1", Subscription::default())
                .unwrap_err()
                .subcode,
            Some(33)
        );
        world
            .subscribe(DEMO_WABA_ID, Subscription::default())
            .unwrap();
        assert_eq!(
            world.subscription(DEMO_WABA_ID),
            Some(&Subscription::default())
        );
    }

    #[test]
    fn the_customers_name_review_is_approved_with_a_webhook() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        world.exchange_code("es-acme", now).unwrap();
        let waba = customer_waba_id("es-acme").unwrap();
        let announced = world.settle(now + PACE * 3);
        let ours: Vec<_> = announced.iter().filter(|a| a.waba_id == waba).collect();
        assert_eq!(ours.len(), 1, "{announced:?}");
        let id = customer_number_id("es-acme", 2).unwrap();
        assert_eq!(world.number(&id).unwrap().new_name_status, "APPROVED");
    }

    #[test]
    fn client_credentials_are_checked_in_metas_order() {
        let secret = SANDBOX_APP_SECRET;
        assert_eq!(
            check_client(Some(SANDBOX_APP_ID), Some(secret), secret),
            Ok(())
        );
        assert_eq!(
            check_client(None, Some(secret), secret).unwrap_err().code,
            101
        );
        assert_eq!(
            check_client(Some("1"), Some("wrong"), secret)
                .unwrap_err()
                .code,
            101
        );
        assert_eq!(
            check_client(Some(SANDBOX_APP_ID), Some("wrong"), secret)
                .unwrap_err()
                .code,
            1
        );
        assert_eq!(
            check_client(Some(SANDBOX_APP_ID), None, secret)
                .unwrap_err()
                .code,
            1
        );
        assert_eq!(app_token("s"), format!("{SANDBOX_APP_ID}|s"));
    }
}
