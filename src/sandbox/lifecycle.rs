//! The life of a phone number, as Meta's rules have it: added to a WABA (new, migrated
//! from another WABA, or claimed from the pre-verified pool), verified by a code,
//! registered, deregistered, given a two-step PIN, renamed.
//!
//! Error codes where Meta documents none, chosen here (the README lists them):
//! digits on another WABA without `migrate_phone_number`, and every other migration
//! refusal but the PIN: 100 with subcode 2388103; a two-step PIN on the number to
//! migrate: 100/2388001; the 11th display-name request in 30 days: 100 (no subcode);
//! `request_code` on a number already verified and registered, or on a pre-verified
//! number verified more than 45 days before its expiry: 136024.

use super::params::Params;
use super::preverified::REVERIFY_WITHIN;
use super::state::{
    DAY, Fault, Number, REGIONS, REGISTER_LIMIT, REGISTER_WINDOW, Scripted, VERIFICATION_CODE,
    World, display_number, graph_time, healthy_number, phone_number_id, unregister,
};
use std::time::Duration;
use tokio::time::Instant;

/// Display-name change requests per number in [`NAME_REQUEST_WINDOW`].
const NAME_REQUEST_LIMIT: usize = 10;
const NAME_REQUEST_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// A review (of a new number's name or a requested new name) takes this many paces.
const REVIEW_PACES: u32 = 3;

/// Subcode: the phone number already exists in this WABA.
pub const ALREADY_IN_THIS_WABA: i64 = 2388012;
/// Subcode: two-step verification on the number to migrate (confirm ownership).
pub const MIGRATION_PIN: i64 = 2388001;
/// Subcode: any other migration refusal (the number is on another WABA, or not eligible).
pub const MIGRATION_REFUSED: i64 = 2388103;

/// What a register call carries.
#[derive(Debug, Default)]
pub struct RegisterParams {
    pub messaging_product: Option<String>,
    pub pin: Option<String>,
    pub data_localization_region: Option<String>,
}

/// A code on its way, as the phone would receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeSent {
    /// `SMS`, `VOICE` or `IVR`.
    pub method: String,
    /// The number it goes to, as displayed.
    pub to: String,
}

impl CodeSent {
    /// The line the sandbox logs in place of the SMS or call.
    pub fn message(&self) -> String {
        let (first, second) = VERIFICATION_CODE.split_at(3);
        match self.method.as_str() {
            "SMS" => format!(
                "sandbox: SMS to {}: your WhatsApp verification code is {first}-{second}",
                self.to
            ),
            _ => {
                let spoken: Vec<String> = VERIFICATION_CODE.chars().map(String::from).collect();
                format!(
                    "sandbox: {} call to {}: \"your WhatsApp verification code is {}\"",
                    self.method.to_ascii_lowercase(),
                    self.to,
                    spoken.join(" ")
                )
            }
        }
    }
}

fn request_code_error(details: &str) -> Fault {
    Fault::new(136024, "OAuthException", "(#136024) Request code error").with_details(details)
}

fn verify_code_error(details: &str) -> Fault {
    Fault::new(136025, "OAuthException", "(#136025) Verify code error").with_details(details)
}

fn refused(subcode: i64, message: &str) -> Fault {
    Fault::invalid_parameter(message).with_subcode(subcode)
}

/// `code_method` and `language` of a request_code call.
fn code_request(params: &Params, methods: &[&str]) -> Result<String, Fault> {
    let method = params.required("code_method")?;
    if !methods.contains(&method) {
        return Err(Fault::invalid_parameter(format!(
            "Param code_method must be one of {{{}}}",
            methods.join(", ")
        )));
    }
    let language = params.required("language")?;
    let (lang, region) = language.split_once('_').unwrap_or((language, "AA"));
    let locale = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.len() == 2
        && region.bytes().all(|b| b.is_ascii_uppercase());
    if !locale {
        return Err(Fault::invalid_parameter(format!(
            "Param language must be a language code such as en or en_US, not {language}"
        )));
    }
    Ok(method.to_owned())
}

/// The number's full digits from `cc` and `phone_number`, which may carry the country
/// code already (when it starts with `+`, or with `cc` and at least 10 digits follow).
fn full_digits(cc: &str, phone_number: &str) -> Result<(String, String), Fault> {
    if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Fault::invalid_parameter(
            "Param cc must be a country dial code, 1 to 3 digits",
        ));
    }
    let international = phone_number.trim_start().starts_with('+');
    let digits: String = phone_number
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let national = match digits.strip_prefix(cc) {
        Some(rest) if international || rest.len() >= 10 => rest.to_owned(),
        _ if international => {
            return Err(Fault::invalid_parameter(
                "Param phone_number does not start with the country code cc",
            ));
        }
        _ => digits,
    };
    let total = cc.len() + national.len();
    if !(8..=15).contains(&total) || !national.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Fault::invalid_parameter(
            "Param phone_number must be a phone number, digits only",
        ));
    }
    Ok((cc.to_owned(), national))
}

/// Dial codes of the countries the sandbox names (`country_code`), longest first where
/// they share a prefix.
const COUNTRIES: &[(&str, &str)] = &[
    ("1", "US"),
    ("20", "EG"),
    ("27", "ZA"),
    ("31", "NL"),
    ("33", "FR"),
    ("34", "ES"),
    ("39", "IT"),
    ("44", "GB"),
    ("49", "DE"),
    ("52", "MX"),
    ("54", "AR"),
    ("55", "BR"),
    ("57", "CO"),
    ("61", "AU"),
    ("62", "ID"),
    ("81", "JP"),
    ("91", "IN"),
    ("234", "NG"),
    ("351", "PT"),
    ("593", "EC"),
    ("971", "AE"),
];

/// The ISO country of a dial code, when the sandbox knows it.
pub fn country_of(dial_code: &str) -> Option<&'static str> {
    COUNTRIES
        .iter()
        .find(|(code, _)| *code == dial_code)
        .map(|(_, country)| *country)
}

/// The dial code a full number starts with, as far as the sandbox knows (else `1`).
fn dial_code_of(digits: &str) -> &'static str {
    [3, 2, 1]
        .into_iter()
        .filter_map(|len| digits.get(..len))
        .find_map(|prefix| COUNTRIES.iter().find(|(code, _)| *code == prefix))
        .map_or("1", |(code, _)| code)
}

impl World {
    /// The number `id`, for a write: an unknown id is Meta's "Unsupported post request".
    fn number_mut(&mut self, id: &str) -> Result<&mut Number, Fault> {
        self.numbers
            .get_mut(id)
            .ok_or_else(|| Fault::unsupported("POST", id))
    }

    /// The number listed in a WABA with these digits, if any (migrated ones have left).
    /// (A scan without allocating: the bench WABA may hold a million numbers.)
    fn holder(&self, digits: &str) -> Option<&Number> {
        self.numbers.values().find(|n| {
            !n.is_migrated()
                && n.display_phone_number
                    .chars()
                    .filter(char::is_ascii_digit)
                    .eq(digits.chars())
        })
    }

    fn review_at(&self, now: Instant) -> Instant {
        now + self.pace * REVIEW_PACES
    }

    /// `POST /{WABA_ID}/phone_numbers`: a new number (`cc`, `phone_number`,
    /// `verified_name`), a migration into this WABA (`migrate_phone_number=true`), or a
    /// pre-verified number claimed (`preverified_id`). Returns the new number's id
    /// ([`phone_number_id`]). A new number's name is approved 3 paces later (webhook).
    pub fn add_number(
        &mut self,
        waba_id: &str,
        params: &Params,
        now: Instant,
    ) -> Result<String, Fault> {
        if !self.is_waba(waba_id) {
            return Err(Fault::unsupported("POST", waba_id));
        }
        let migrate = params.flag("migrate_phone_number")?;
        let preverified = params.get("preverified_id").filter(|p| !p.is_empty());
        let (cc, national) = match preverified {
            Some(pv) => {
                let entry = self
                    .preverified
                    .get(pv)
                    .filter(|e| self.owners.get(waba_id) == Some(&e.business_id))
                    .ok_or_else(|| {
                        Fault::invalid_parameter(format!(
                            "Param preverified_id {pv} is not a pre-verified number of this \
                             WhatsApp Business Account's business"
                        ))
                    })?;
                if entry.code_verification_status != "VERIFIED" {
                    return Err(Fault::invalid_parameter(format!(
                        "The pre-verified number {pv} is {}: verify it (request_code, \
                         verify_code) before adding it",
                        entry.code_verification_status
                    )));
                }
                let digits = entry.phone_number.clone();
                let cc = params
                    .get("cc")
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| dial_code_of(&digits));
                let national = digits.strip_prefix(cc).ok_or_else(|| {
                    Fault::invalid_parameter("Param cc does not match the pre-verified number")
                })?;
                if let Some(given) = params.get("phone_number").filter(|p| !p.is_empty())
                    && full_digits(cc, given)?.1 != national
                {
                    return Err(Fault::invalid_parameter(
                        "Param phone_number does not match the pre-verified number",
                    ));
                }
                (cc.to_owned(), national.to_owned())
            }
            None => full_digits(params.required("cc")?, params.required("phone_number")?)?,
        };
        let verified_name = match params.get("verified_name").filter(|v| !v.is_empty()) {
            Some(name) => Some(name.to_owned()),
            None if migrate || preverified.is_some() => None,
            None => {
                return Err(Fault::invalid_parameter(
                    "The parameter verified_name is required",
                ));
            }
        };
        let digits = format!("{cc}{national}");

        let mut number = healthy_number(0);
        let holder = self.holder(&digits);
        match holder {
            Some(h) if h.waba_id == waba_id => {
                return Err(refused(
                    ALREADY_IN_THIS_WABA,
                    "The phone number already exists in this WhatsApp Business Account",
                ));
            }
            Some(h) if migrate => {
                if !h.is_registered() {
                    return Err(refused(
                        MIGRATION_REFUSED,
                        "Only a phone number registered on its WhatsApp Business Account can be \
                         migrated",
                    ));
                }
                if h.is_pin_enabled() {
                    return Err(refused(
                        MIGRATION_PIN,
                        "Confirm ownership of the phone number: disable its two-step \
                         verification before migrating it",
                    ));
                }
                if h.name_status != "APPROVED" || h.new_name_status == "PENDING_REVIEW" {
                    return Err(refused(
                        MIGRATION_REFUSED,
                        "Only a phone number with an approved display name and no change in \
                         review can be migrated",
                    ));
                }
                // Display name, quality, limits and OBA status carry over.
                number.verified_name = h.verified_name.clone();
                number.quality_rating = h.quality_rating.clone();
                number.messaging_limit_tier = h.messaging_limit_tier.clone();
                number.messaging_limit = h.messaging_limit.clone();
                number.is_official_business_account = h.is_official_business_account;
                number.migrating_from = Some(h.id.clone());
            }
            Some(_) => {
                return Err(refused(
                    MIGRATION_REFUSED,
                    "The phone number is in use on another WhatsApp Business Account: add it \
                     with migrate_phone_number=true to migrate it here",
                ));
            }
            None if migrate => {
                return Err(refused(
                    MIGRATION_REFUSED,
                    "The phone number is not on any other WhatsApp Business Account: there is \
                     nothing to migrate",
                ));
            }
            None => {}
        }

        let id = phone_number_id(waba_id, &digits);
        let quality = number.quality_rating.clone();
        let limits = (
            number.messaging_limit_tier.clone(),
            number.messaging_limit.clone(),
        );
        unregister(&mut number, "PENDING");
        number.id = id.clone();
        number.waba_id = waba_id.into();
        number.display_phone_number = display_number(&cc, &national);
        number.country_dial_code = cc;
        number.last_onboarded_time = graph_time(self.wall(now));
        number.code_verification_status = "NOT_VERIFIED".into();
        if number.migrating_from.is_some() {
            number.quality_rating = quality;
            (number.messaging_limit_tier, number.messaging_limit) = limits;
        } else if let Some(name) = verified_name {
            number.verified_name = name;
            number.name_status = "PENDING_REVIEW".into();
            let review = Scripted::Name { approve: true };
            self.script.push((self.review_at(now), id.clone(), review));
        } else {
            // A claimed pre-verified number without a display name yet.
            number.verified_name = String::new();
            number.name_status = "NONE".into();
        }
        if let Some(pv) = preverified {
            self.delete_preverified(pv)?;
            number.code_verification_status = "VERIFIED".into();
            number.is_preverified_number = true;
        }
        // The same digits may come back to a WABA they were migrated away from.
        if self.numbers.remove(&id).is_some()
            && let Some(ids) = self.wabas.get_mut(waba_id)
        {
            ids.retain(|other| *other != id);
        }
        self.add(number);
        Ok(id)
    }

    /// `POST /{ID}/request_code` on a phone number or a pre-verified number: "sends"
    /// [`VERIFICATION_CODE`]; the caller shows [`CodeSent::message`] in its place.
    pub fn request_code(
        &mut self,
        id: &str,
        params: &Params,
        now: Instant,
    ) -> Result<CodeSent, Fault> {
        let wall = self.wall(now);
        if let Some(entry) = self.preverified.get_mut(id) {
            let method = code_request(params, &["SMS", "VOICE", "IVR"])?;
            if entry.code_verification_status == "VERIFIED"
                && entry
                    .verification_expiry_time
                    .is_some_and(|expiry| wall < expiry - REVERIFY_WITHIN)
            {
                return Err(request_code_error(
                    "A pre-verified number can only be re-verified in the last 45 days before \
                     its verification expires",
                ));
            }
            entry.code_requested = true;
            return Ok(CodeSent {
                method,
                to: entry.display(),
            });
        }
        let n = self.number_mut(id)?;
        let method = code_request(params, &["SMS", "VOICE"])?;
        if n.code_verification_status == "VERIFIED" && n.is_registered() {
            return Err(request_code_error(
                "This phone number is already verified and registered",
            ));
        }
        n.code_requested = true;
        Ok(CodeSent {
            method,
            to: n.display_phone_number.clone(),
        })
    }

    /// `POST /{ID}/verify_code`: only [`VERIFICATION_CODE`], only after a request_code.
    pub fn verify_code(&mut self, id: &str, params: &Params, now: Instant) -> Result<(), Fault> {
        let wall = self.wall(now);
        let code = params.required("code")?;
        let check = |requested: bool| {
            if !requested {
                Err(verify_code_error(
                    "No verification code was requested for this number: call request_code first",
                ))
            } else if code != VERIFICATION_CODE {
                Err(verify_code_error("The verification code is incorrect"))
            } else {
                Ok(())
            }
        };
        if let Some(entry) = self.preverified.get_mut(id) {
            check(entry.code_requested)?;
            entry.code_requested = false;
            entry.verified_at(wall);
            return Ok(());
        }
        let n = self.number_mut(id)?;
        check(n.code_requested)?;
        n.code_requested = false;
        n.code_verification_status = "VERIFIED".into();
        Ok(())
    }

    /// `POST /{id}/register`, with Meta's rules: every attempt counts against 10 per
    /// 72 hours (shared with deregister); the number must be verified; a number with
    /// two-step verification needs its PIN. Registering applies an approved display-name
    /// change, and completes a migration (the source number becomes `MIGRATED`).
    pub fn register(
        &mut self,
        id: &str,
        params: RegisterParams,
        now: Instant,
    ) -> Result<(), Fault> {
        let n = self.number_mut(id)?;
        match params.messaging_product.as_deref() {
            Some("whatsapp") => {}
            Some(other) => {
                return Err(Fault::invalid_parameter(format!(
                    "Invalid messaging_product: {other}"
                )));
            }
            None => {
                return Err(Fault::invalid_parameter(
                    "The parameter messaging_product is required.",
                ));
            }
        }
        let pin = params
            .pin
            .ok_or_else(|| Fault::invalid_parameter("The parameter pin is required."))?;
        if !is_pin(&pin) {
            return Err(Fault::invalid_parameter(
                "Param pin must be a 6-digit number.",
            ));
        }
        if let Some(region) = params.data_localization_region.as_deref()
            && !REGIONS.contains(&region)
        {
            return Err(Fault::invalid_parameter(format!(
                "Param data_localization_region must be one of {}",
                REGIONS.join(", ")
            )));
        }
        spend_attempt(n, now)?;

        if n.code_verification_status != "VERIFIED" {
            return Err(Fault::new(
                133006,
                "OAuthException",
                "(#133006) Phone number re-verification needed",
            )
            .with_details(
                "Verify the phone number (request_code, verify_code) before registering it.",
            ));
        }
        if n.pin.as_deref().is_some_and(|set| set != pin) {
            return Err(Fault::new(
                133005,
                "OAuthException",
                "(#133005) Two step verification PIN Mismatch",
            )
            .with_details(
                "The PIN does not match the two-step verification PIN set on this number.",
            ));
        }
        n.pin = Some(pin);
        n.platform_type = "CLOUD_API".into();
        n.status = "CONNECTED".into();
        n.throughput_level = "STANDARD".into();
        if n.quality_rating == "UNKNOWN" {
            n.quality_rating = "GREEN".into();
        }
        if n.new_name_status == "APPROVED" {
            n.verified_name = std::mem::take(&mut n.new_display_name);
            n.name_status = "APPROVED".into();
            n.new_name_status = "NONE".into();
        }
        if let Some(source) = n.migrating_from.take()
            && let Some(source) = self.numbers.get_mut(&source)
        {
            unregister(source, "MIGRATED");
        }
        Ok(())
    }

    /// `POST /{id}/deregister`: off the Cloud API; draws from register's budget.
    pub fn deregister(&mut self, id: &str, now: Instant) -> Result<(), Fault> {
        let n = self.number_mut(id)?;
        spend_attempt(n, now)?;
        n.platform_type = "NOT_APPLICABLE".into();
        n.throughput_level = "NOT_APPLICABLE".into();
        n.status = "DISCONNECTED".into();
        Ok(())
    }

    /// `POST /{id}` with `pin` (sets the two-step PIN) and/or `new_display_name`
    /// (requests a change, reviewed 3 paces later: approved, with a webhook; it takes
    /// effect when the number is registered again within 14 days). Other parameters
    /// are ignored, as `webhook_configuration` is here.
    pub fn update_number(&mut self, id: &str, params: &Params, now: Instant) -> Result<(), Fault> {
        let review_at = self.review_at(now);
        let n = self.number_mut(id)?;
        let pin = params.get("pin");
        let name = params.get("new_display_name");
        if pin.is_none() && name.is_none() && params.get("webhook_configuration").is_none() {
            return Err(Fault::invalid_parameter(
                "The parameter pin or new_display_name is required",
            ));
        }
        if pin.is_some_and(|p| !is_pin(p)) {
            return Err(Fault::invalid_parameter(
                "Param pin must be a 6-digit number.",
            ));
        }
        if let Some(name) = name {
            let name = name.trim();
            if name.is_empty() {
                return Err(Fault::invalid_parameter(
                    "Param new_display_name must be a non-empty string",
                ));
            }
            let requests = &mut n.name_requests;
            while requests
                .front()
                .is_some_and(|t| now.duration_since(*t) >= NAME_REQUEST_WINDOW)
            {
                requests.pop_front();
            }
            if requests.len() >= NAME_REQUEST_LIMIT {
                let wait = NAME_REQUEST_WINDOW.saturating_sub(now.duration_since(requests[0]));
                return Err(Fault::invalid_parameter(
                    "Display name change limit reached: 10 requests per phone number in 30 days",
                )
                .with_details(format!(
                    "Try again in {} days.",
                    wait.as_secs().div_ceil(DAY.as_secs())
                )));
            }
            requests.push_back(now);
            n.new_display_name = name.to_owned();
            n.new_name_status = "PENDING_REVIEW".into();
            let review = Scripted::NewName {
                approve: true,
                name: Some(name.to_owned()),
            };
            self.script.push((review_at, id.to_owned(), review));
        }
        if let Some(pin) = pin {
            self.number_mut(id)?.pin = Some(pin.to_owned());
        }
        Ok(())
    }
}

fn is_pin(pin: &str) -> bool {
    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Counts a register or deregister attempt: 10 per 72 hours; the 11th blocks both for
/// 72 hours from then.
fn spend_attempt(n: &mut Number, now: Instant) -> Result<(), Fault> {
    let attempts = &mut n.register_attempts;
    while attempts
        .front()
        .is_some_and(|t| now.duration_since(*t) >= REGISTER_WINDOW)
    {
        attempts.pop_front();
    }
    if attempts.len() >= REGISTER_LIMIT {
        n.register_blocked_until = Some(now + REGISTER_WINDOW);
    }
    if n.register_blocked_until.is_some_and(|until| now < until) {
        return Err(Fault::new(
            133016,
            "OAuthException",
            "(#133016) Account register deregister rate limit exceeded",
        )
        .with_details(
            "Too many register or deregister requests for this phone number; registration is \
             blocked for 72 hours.",
        ));
    }
    attempts.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::state::{
        Announced, DEMO_BUSINESS_ID, DEMO_PIN, DEMO_WABA_ID, MIGRATABLE_NUMBER, MIGRATION_WABA_ID,
        preverified_id, test_world,
    };

    const ID: &str = "106540352242902"; // verified, unregistered, no PIN
    const WITH_PIN: &str = "106540352242901";
    const PACE: Duration = Duration::from_secs(20);

    fn register(world: &mut World, id: &str, pin: &str, now: Instant) -> Result<(), Fault> {
        let params = RegisterParams {
            messaging_product: Some("whatsapp".into()),
            pin: Some(pin.into()),
            data_localization_region: None,
        };
        world.register(id, params, now)
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut params = Params::default();
        for (k, v) in pairs {
            params.insert(k, *v);
        }
        params
    }

    fn sms() -> Params {
        params(&[("code_method", "SMS"), ("language", "en_US")])
    }

    fn code(code: &str) -> Params {
        params(&[("code", code)])
    }

    #[test]
    fn register_sets_the_pin_then_requires_it() {
        let now = Instant::now();
        let mut world = test_world(now, Duration::from_secs(20));
        register(&mut world, ID, "654321", now).unwrap();
        let n = world.number(ID).unwrap();
        assert!(n.is_registered() && n.is_pin_enabled());
        assert_eq!(
            register(&mut world, ID, "111111", now).unwrap_err().code,
            133005
        );
        assert_eq!(
            register(&mut world, WITH_PIN, "000000", now)
                .unwrap_err()
                .code,
            133005
        );
        register(&mut world, WITH_PIN, DEMO_PIN, now).unwrap();
    }

    #[test]
    fn the_eleventh_register_attempt_in_72_hours_is_refused() {
        let start = Instant::now();
        let mut world = test_world(start, Duration::from_secs(20));
        for i in 0..10 {
            let at = start + Duration::from_secs(i * 60);
            let _ = register(
                &mut world,
                WITH_PIN,
                if i % 2 == 0 { "000000" } else { DEMO_PIN },
                at,
            );
        }
        let refused_at = start + Duration::from_secs(3600);
        let eleventh = register(&mut world, WITH_PIN, DEMO_PIN, refused_at);
        assert_eq!(eleventh.unwrap_err().code, 133016);
        // Blocked for 72 hours from the refusal, not from the first attempt.
        let still_blocked = register(&mut world, WITH_PIN, DEMO_PIN, start + REGISTER_WINDOW);
        assert_eq!(still_blocked.unwrap_err().code, 133016);
        register(&mut world, WITH_PIN, DEMO_PIN, refused_at + REGISTER_WINDOW).unwrap();
    }

    #[test]
    fn register_checks_its_parameters_and_the_verification() {
        let now = Instant::now();
        let mut world = test_world(now, Duration::from_secs(20));
        let missing = world
            .register(ID, RegisterParams::default(), now)
            .unwrap_err();
        assert_eq!(missing.code, 100);
        assert_eq!(
            register(&mut world, ID, "12345", now).unwrap_err().code,
            100
        );
        let not_verified = "106540352242903";
        assert_eq!(
            register(&mut world, not_verified, "123456", now)
                .unwrap_err()
                .code,
            133006
        );
        assert_eq!(
            register(&mut world, "999", "123456", now)
                .unwrap_err()
                .subcode,
            Some(33)
        );
    }

    #[test]
    fn a_new_number_is_added_verified_by_the_one_code_and_registered() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let add = params(&[
            ("cc", "1"),
            ("phone_number", "5550100777"),
            ("verified_name", "Lucky Shrub"),
        ]);
        let id = world.add_number(DEMO_WABA_ID, &add, now).unwrap();
        assert_eq!(id, phone_number_id(DEMO_WABA_ID, "15550100777"));
        assert!(id.starts_with("106") && id.len() == 15);
        let n = world.number(&id).unwrap();
        assert_eq!(n.display_phone_number, "+1 555-010-0777");
        assert_eq!(
            (
                n.code_verification_status.as_str(),
                n.platform_type.as_str(),
                n.status.as_str(),
                n.name_status.as_str(),
                n.quality_rating.as_str(),
            ),
            (
                "NOT_VERIFIED",
                "NOT_APPLICABLE",
                "PENDING",
                "PENDING_REVIEW",
                "UNKNOWN"
            )
        );
        assert_eq!(n.last_onboarded_time, "2026-11-30T00:53:20+0000");
        // The same digits again, with the country code this time: already there.
        let again = params(&[
            ("cc", "1"),
            ("phone_number", "+1 555 010 0777"),
            ("verified_name", "Lucky Shrub"),
        ]);
        let err = world.add_number(DEMO_WABA_ID, &again, now).unwrap_err();
        assert_eq!((err.code, err.subcode), (100, Some(ALREADY_IN_THIS_WABA)));
        let nameless = params(&[("cc", "1"), ("phone_number", "5550100778")]);
        assert_eq!(
            world
                .add_number(DEMO_WABA_ID, &nameless, now)
                .unwrap_err()
                .code,
            100
        );
        // Elsewhere without migrating: refused.
        let elsewhere = world.add_number(MIGRATION_WABA_ID, &add, now).unwrap_err();
        assert_eq!(elsewhere.subcode, Some(MIGRATION_REFUSED));

        assert_eq!(
            world
                .verify_code(&id, &code(VERIFICATION_CODE), now)
                .unwrap_err()
                .code,
            136025
        );
        let sent = world.request_code(&id, &sms(), now).unwrap();
        assert_eq!(
            sent.message(),
            "sandbox: SMS to +1 555-010-0777: your WhatsApp verification code is 424-242"
        );
        assert_eq!(
            world
                .verify_code(&id, &code("424-242"), now)
                .unwrap_err()
                .code,
            136025
        );
        assert_eq!(
            world
                .verify_code(&id, &code("111111"), now)
                .unwrap_err()
                .code,
            136025
        );
        world
            .verify_code(&id, &code(VERIFICATION_CODE), now)
            .unwrap();
        assert_eq!(
            world.number(&id).unwrap().code_verification_status,
            "VERIFIED"
        );
        register(&mut world, &id, "246810", now).unwrap();
        let refused = world.request_code(&id, &sms(), now).unwrap_err();
        assert_eq!(refused.code, 136024);

        // The name is approved by the script, with a webhook.
        let announced = world.settle(now + PACE * 3);
        assert!(
            announced
                .iter()
                .any(|a| a.display_phone_number == "15550100777")
        );
        assert_eq!(world.number(&id).unwrap().name_status, "APPROVED");
    }

    #[test]
    fn request_code_needs_a_method_and_a_language() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let bad = [
            params(&[("language", "en_US")]),
            params(&[("code_method", "IVR"), ("language", "en_US")]),
            params(&[("code_method", "SMS")]),
            params(&[("code_method", "SMS"), ("language", "english")]),
        ];
        for p in &bad {
            assert_eq!(
                world.request_code(ID, p, now).unwrap_err().code,
                100,
                "{p:?}"
            );
        }
        let voice = params(&[("code_method", "VOICE"), ("language", "en")]);
        let sent = world.request_code(ID, &voice, now).unwrap();
        assert!(sent.message().contains("4 2 4 2 4 2"), "{}", sent.message());
        assert_eq!(
            world.request_code("42", &sms(), now).unwrap_err().subcode,
            Some(33)
        );
    }

    #[test]
    fn deregister_shares_registers_budget() {
        let start = Instant::now();
        let mut world = test_world(start, PACE);
        for i in 0..5 {
            let at = start + Duration::from_secs(i * 60);
            register(&mut world, WITH_PIN, DEMO_PIN, at).unwrap();
            world.deregister(WITH_PIN, at).unwrap();
            let n = world.number(WITH_PIN).unwrap();
            assert_eq!(
                (n.platform_type.as_str(), n.status.as_str()),
                ("NOT_APPLICABLE", "DISCONNECTED")
            );
        }
        assert_eq!(world.deregister(WITH_PIN, start).unwrap_err().code, 133016);
        assert_eq!(
            register(&mut world, WITH_PIN, DEMO_PIN, start)
                .unwrap_err()
                .code,
            133016
        );
    }

    #[test]
    fn a_migrated_number_moves_when_it_registers_at_its_destination() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let (cc, national) = MIGRATABLE_NUMBER;
        let migrate = params(&[
            ("cc", cc),
            ("phone_number", national),
            ("migrate_phone_number", "true"),
        ]);
        let id = world.add_number(DEMO_WABA_ID, &migrate, now).unwrap();
        let n = world.number(&id).unwrap();
        assert_eq!(
            (n.verified_name.as_str(), n.name_status.as_str()),
            ("Moving Shop", "APPROVED")
        );
        assert_eq!(n.code_verification_status, "NOT_VERIFIED");
        let source = "106540352243900";
        assert_eq!(world.number(source).unwrap().status, "CONNECTED");
        world.request_code(&id, &sms(), now).unwrap();
        world
            .verify_code(&id, &code(VERIFICATION_CODE), now)
            .unwrap();
        register(&mut world, &id, "246810", now).unwrap();
        let source = world.number(source).unwrap();
        assert_eq!(
            (source.status.as_str(), source.platform_type.as_str()),
            ("MIGRATED", "NOT_APPLICABLE")
        );
        assert_eq!(world.number(&id).unwrap().status, "CONNECTED");

        // A number with a PIN, or one not registered, cannot be migrated.
        let with_pin = params(&[
            ("cc", "1"),
            ("phone_number", "5550100001"),
            ("migrate_phone_number", "true"),
        ]);
        let err = world
            .add_number(MIGRATION_WABA_ID, &with_pin, now)
            .unwrap_err();
        assert_eq!(err.subcode, Some(MIGRATION_PIN));
        let unregistered = params(&[
            ("cc", "1"),
            ("phone_number", "5550100002"),
            ("migrate_phone_number", "1"),
        ]);
        let err = world
            .add_number(MIGRATION_WABA_ID, &unregistered, now)
            .unwrap_err();
        assert_eq!(err.subcode, Some(MIGRATION_REFUSED));
        let nowhere = params(&[
            ("cc", "1"),
            ("phone_number", "5550109999"),
            ("migrate_phone_number", "true"),
        ]);
        let err = world
            .add_number(MIGRATION_WABA_ID, &nowhere, now)
            .unwrap_err();
        assert_eq!(err.subcode, Some(MIGRATION_REFUSED));
    }

    #[test]
    fn a_verified_preverified_number_is_claimed_once() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let verified = preverified_id(DEMO_BUSINESS_ID, "15550100801");
        let unverified = preverified_id(DEMO_BUSINESS_ID, "15550100802");
        let claim = |pv: &str| params(&[("preverified_id", pv)]);
        assert_eq!(
            world
                .add_number(DEMO_WABA_ID, &claim(&unverified), now)
                .unwrap_err()
                .code,
            100
        );
        let id = world
            .add_number(DEMO_WABA_ID, &claim(&verified), now)
            .unwrap();
        let n = world.number(&id).unwrap();
        assert!(n.is_preverified_number);
        assert_eq!(n.code_verification_status, "VERIFIED");
        assert_eq!(n.display_phone_number, "+1 555-010-0801");
        assert!(
            world.preverified_number(&verified).is_err(),
            "claimed: gone from the pool"
        );
        assert_eq!(
            world
                .add_number(DEMO_WABA_ID, &claim(&verified), now)
                .unwrap_err()
                .code,
            100
        );

        // The unverified one: no early re-verification for the verified kind, IVR allowed.
        let ivr = params(&[("code_method", "IVR"), ("language", "en_US")]);
        world.request_code(&unverified, &ivr, now).unwrap();
        world
            .verify_code(&unverified, &code(VERIFICATION_CODE), now)
            .unwrap();
        let entry = world.preverified_number(&unverified).unwrap();
        assert_eq!(entry.code_verification_status, "VERIFIED");
        assert_eq!(entry.code_verification_time, Some(world.wall(now)));
        assert_eq!(
            world.request_code(&unverified, &ivr, now).unwrap_err().code,
            136024
        );
        let late = now + Duration::from_secs(46 * 24 * 3600);
        world.request_code(&unverified, &ivr, late).unwrap();
    }

    #[test]
    fn a_new_display_name_is_approved_then_applied_by_registering() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let rename = params(&[("new_display_name", "Lucky Shrub")]);
        world.update_number(WITH_PIN, &rename, now).unwrap();
        let n = world.number(WITH_PIN).unwrap();
        assert_eq!(
            (n.new_display_name.as_str(), n.new_name_status.as_str()),
            ("Lucky Shrub", "PENDING_REVIEW")
        );
        let announced = world.settle(now + PACE * 3);
        assert!(announced.iter().any(|a| a.what
            == Announced::NameDecision {
                decision: "APPROVED",
                requested_verified_name: "Lucky Shrub".into()
            }));
        let n = world.number(WITH_PIN).unwrap();
        assert_eq!(
            (n.verified_name.as_str(), n.new_name_status.as_str()),
            ("Demo Shop 01", "APPROVED")
        );
        register(&mut world, WITH_PIN, DEMO_PIN, now + PACE * 3).unwrap();
        let n = world.number(WITH_PIN).unwrap();
        assert_eq!(
            (
                n.verified_name.as_str(),
                n.name_status.as_str(),
                n.new_name_status.as_str(),
                n.new_display_name.as_str()
            ),
            ("Lucky Shrub", "APPROVED", "NONE", "")
        );

        // Ten requests in 30 days, then refused; the window moves.
        for i in 1..10 {
            let name = format!("Lucky Shrub {i}");
            world
                .update_number(WITH_PIN, &params(&[("new_display_name", &name)]), now)
                .unwrap();
        }
        assert_eq!(
            world
                .update_number(WITH_PIN, &rename, now)
                .unwrap_err()
                .code,
            100
        );
        world
            .update_number(WITH_PIN, &rename, now + NAME_REQUEST_WINDOW)
            .unwrap();
        assert_eq!(
            world
                .update_number(WITH_PIN, &params(&[("new_display_name", "")]), now)
                .unwrap_err()
                .code,
            100
        );
    }

    #[test]
    fn an_approved_name_lapses_after_14_days_without_registering() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        world
            .update_number(
                WITH_PIN,
                &params(&[("new_display_name", "Lucky Shrub")]),
                now,
            )
            .unwrap();
        world.settle(now + PACE * 3);
        world.settle(now + PACE * 3 + Duration::from_secs(14 * 24 * 3600));
        assert_eq!(world.number(WITH_PIN).unwrap().new_name_status, "EXPIRED");
        register(
            &mut world,
            WITH_PIN,
            DEMO_PIN,
            now + Duration::from_secs(15 * 24 * 3600),
        )
        .unwrap();
        assert_eq!(
            world.number(WITH_PIN).unwrap().verified_name,
            "Demo Shop 01"
        );
    }

    #[test]
    fn the_pin_is_set_by_a_post_to_the_number() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        world
            .update_number(ID, &params(&[("pin", "246810")]), now)
            .unwrap();
        assert!(world.number(ID).unwrap().is_pin_enabled());
        assert_eq!(
            register(&mut world, ID, DEMO_PIN, now).unwrap_err().code,
            133005
        );
        register(&mut world, ID, "246810", now).unwrap();
        for bad in [params(&[("pin", "12345")]), Params::default()] {
            assert_eq!(world.update_number(ID, &bad, now).unwrap_err().code, 100);
        }
        assert_eq!(
            world
                .update_number("42", &params(&[("pin", "123456")]), now)
                .unwrap_err()
                .subcode,
            Some(33)
        );
    }

    #[test]
    fn the_demo_has_a_deadline_tomorrow_and_a_change_awaiting_registration() {
        let now = Instant::now();
        let mut world = test_world(now, PACE);
        let deadline = world.number("106540352242933").unwrap();
        assert!(!deadline.is_registered());
        assert_eq!(deadline.code_verification_status, "VERIFIED");
        assert_eq!(deadline.last_onboarded_time, "2026-11-17T00:53:20+0000");
        let announced = world.settle(now + PACE * 3 / 2);
        assert!(
            announced
                .iter()
                .any(|a| a.display_phone_number == "15550100034")
        );
        let renamed = world.number("106540352242934").unwrap();
        assert_eq!(renamed.new_name_status, "APPROVED");
        assert!(renamed.is_registered());
    }
}
