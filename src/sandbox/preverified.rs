//! A business's pool of pre-verified phone numbers (Solution Partners), and Meta's rules
//! about it: added unverified, verified by code for 90 days, re-verified only in the
//! last 45 of them, removed when not verified within 90 days of being added, and claimed
//! into a WABA (`POST /{WABA_ID}/phone_numbers` with `preverified_id`), which takes the
//! number out of the pool: the pre-verified object is replaced by a phone-number node.

use super::state::{Fault, World, display_number, preverified_id};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A verified pre-verified number stays verified this long.
pub(super) const VERIFIED_FOR: chrono::TimeDelta = chrono::TimeDelta::days(90);
/// Re-verification is possible only this close to the expiry.
pub(super) const REVERIFY_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(45);
/// Numbers added and never verified are removed after this long.
const UNVERIFIED_KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::days(90);

#[derive(Debug, Clone)]
pub struct PreVerified {
    pub id: String,
    pub business_id: String,
    /// Digits only, country code first.
    pub phone_number: String,
    pub code_verification_status: String,
    pub code_verification_time: Option<DateTime<Utc>>,
    pub verification_expiry_time: Option<DateTime<Utc>>,
    pub(super) added: DateTime<Utc>,
    /// A code was sent and not used yet.
    pub(super) code_requested: bool,
}

impl PreVerified {
    pub(super) fn new(business_id: &str, digits: &str, added: DateTime<Utc>) -> Self {
        PreVerified {
            id: preverified_id(business_id, digits),
            business_id: business_id.into(),
            phone_number: digits.into(),
            code_verification_status: "NOT_VERIFIED".into(),
            code_verification_time: None,
            verification_expiry_time: None,
            added,
            code_requested: false,
        }
    }

    pub(super) fn verified_at(&mut self, at: DateTime<Utc>) {
        self.code_verification_status = "VERIFIED".into();
        self.code_verification_time = Some(at);
        self.verification_expiry_time = Some(at + VERIFIED_FOR);
    }

    /// As a person would read it: `+1 555-010-0801`.
    pub fn display(&self) -> String {
        match self.phone_number.strip_prefix('1') {
            Some(national) if national.len() == 10 => display_number("1", national),
            _ => format!("+{}", self.phone_number),
        }
    }
}

/// Digits as a pre-verified pool takes them: the full number, country code first, an
/// optional `+` and spaces or hyphens aside.
fn pool_digits(phone_number: &str) -> Result<String, Fault> {
    let digits: String = phone_number
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(Fault::invalid_parameter(
            "Param phone_number must be the full phone number with its country code, digits only",
        ))
    }
}

impl World {
    pub(super) fn add_preverified_entry(&mut self, entry: PreVerified) {
        self.pools
            .entry(entry.business_id.clone())
            .or_default()
            .push(entry.id.clone());
        self.preverified.insert(entry.id.clone(), entry);
    }

    pub fn is_business(&self, id: &str) -> bool {
        self.pools.contains_key(id)
    }

    /// `POST /{BUSINESS_ID}/add_phone_numbers`: a new, unverified pool entry's id.
    pub fn add_preverified(
        &mut self,
        business_id: &str,
        phone_number: &str,
        now: Instant,
    ) -> Result<String, Fault> {
        if !self.is_business(business_id) {
            return Err(Fault::unsupported("POST", business_id));
        }
        let digits = pool_digits(phone_number)?;
        if self
            .pool(business_id)
            .any(|entry| entry.phone_number == digits)
        {
            return Err(Fault::invalid_parameter(format!(
                "The phone number {digits} is already in this business's pre-verified numbers"
            )));
        }
        let entry = PreVerified::new(business_id, &digits, self.wall(now));
        let id = entry.id.clone();
        self.add_preverified_entry(entry);
        Ok(id)
    }

    fn pool(&self, business_id: &str) -> impl Iterator<Item = &PreVerified> {
        self.pools
            .get(business_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.preverified.get(id))
    }

    /// `GET /{BUSINESS_ID}/preverified_numbers`, filtered by status and digits.
    pub fn preverified_numbers(
        &self,
        business_id: &str,
        status: Option<&str>,
        phone_number: Option<&str>,
    ) -> Result<Vec<&PreVerified>, Fault> {
        if !self.is_business(business_id) {
            return Err(Fault::unknown_object(business_id));
        }
        let digits = phone_number.map(pool_digits).transpose()?;
        Ok(self
            .pool(business_id)
            .filter(|e| status.is_none_or(|s| e.code_verification_status == s))
            .filter(|e| digits.as_ref().is_none_or(|d| e.phone_number == *d))
            .collect())
    }

    pub fn preverified_number(&self, id: &str) -> Result<&PreVerified, Fault> {
        self.preverified
            .get(id)
            .ok_or_else(|| Fault::unknown_object(id))
    }

    /// `DELETE /{PRE_VERIFIED_ID}`, and what claiming a number does to its entry.
    pub fn delete_preverified(&mut self, id: &str) -> Result<PreVerified, Fault> {
        let entry = self
            .preverified
            .remove(id)
            .ok_or_else(|| Fault::unsupported("DELETE", id))?;
        if let Some(pool) = self.pools.get_mut(&entry.business_id) {
            pool.retain(|other| other != id);
        }
        Ok(entry)
    }

    /// Verified entries expire 90 days after verification; entries never verified
    /// leave the pool 90 days after they were added.
    pub(super) fn expire_preverified(&mut self, now: Instant) {
        let wall = self.wall(now);
        let mut gone = Vec::new();
        for entry in self.preverified.values_mut() {
            match entry.code_verification_status.as_str() {
                "VERIFIED" if entry.verification_expiry_time.is_some_and(|t| wall >= t) => {
                    entry.code_verification_status = "EXPIRED".into();
                }
                "NOT_VERIFIED" if wall >= entry.added + UNVERIFIED_KEPT_FOR => {
                    gone.push(entry.id.clone());
                }
                _ => {}
            }
        }
        for id in gone {
            let _ = self.delete_preverified(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::state::{DEMO_BUSINESS_ID, DEMO_WABA_ID};
    use std::time::Duration;

    fn world(now: Instant) -> World {
        crate::sandbox::state::test_world(now, Duration::from_secs(4))
    }

    #[test]
    fn the_demo_pool_has_a_verified_and_an_unverified_number() {
        let now = Instant::now();
        let world = world(now);
        let all = world
            .preverified_numbers(DEMO_BUSINESS_ID, None, None)
            .unwrap();
        let statuses: Vec<_> = all
            .iter()
            .map(|e| e.code_verification_status.as_str())
            .collect();
        assert_eq!(statuses, ["VERIFIED", "NOT_VERIFIED"]);
        let verified = all[0];
        assert_eq!(
            verified.verification_expiry_time.unwrap() - verified.code_verification_time.unwrap(),
            VERIFIED_FOR
        );
        let only = world
            .preverified_numbers(DEMO_BUSINESS_ID, Some("NOT_VERIFIED"), Some("+15550100802"))
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].display(), "+1 555-010-0802");
        assert_eq!(
            world
                .preverified_numbers(DEMO_WABA_ID, None, None)
                .unwrap_err()
                .subcode,
            Some(33)
        );
    }

    #[test]
    fn a_number_joins_the_pool_once_and_leaves_when_deleted() {
        let now = Instant::now();
        let mut world = world(now);
        let id = world
            .add_preverified(DEMO_BUSINESS_ID, "15550100803", now)
            .unwrap();
        assert_eq!(id, preverified_id(DEMO_BUSINESS_ID, "15550100803"));
        assert!(id.starts_with("107") && id.len() == 15);
        let again = world.add_preverified(DEMO_BUSINESS_ID, "+1 555-010-0803", now);
        assert_eq!(again.unwrap_err().code, 100);
        let bad = world.add_preverified(DEMO_BUSINESS_ID, "12ab", now);
        assert_eq!(bad.unwrap_err().code, 100);
        assert_eq!(
            world
                .add_preverified("42", "15550100804", now)
                .unwrap_err()
                .subcode,
            Some(33)
        );
        world.delete_preverified(&id).unwrap();
        assert_eq!(world.preverified_number(&id).unwrap_err().subcode, Some(33));
        assert_eq!(world.delete_preverified(&id).unwrap_err().subcode, Some(33));
    }

    #[test]
    fn verification_lapses_after_90_days_and_unverified_entries_leave() {
        let start = Instant::now();
        let mut world = world(start);
        let added = world
            .add_preverified(DEMO_BUSINESS_ID, "15550100803", start)
            .unwrap();
        world.settle(start + Duration::from_secs(88 * 24 * 3600));
        let statuses = |world: &World| -> Vec<String> {
            world
                .preverified_numbers(DEMO_BUSINESS_ID, None, None)
                .unwrap()
                .iter()
                .map(|e| e.code_verification_status.clone())
                .collect()
        };
        // The seeded verified one (verified 3 days before start) has expired; the
        // seeded unverified one (added 10 days before start) is gone.
        assert_eq!(statuses(&world), ["EXPIRED", "NOT_VERIFIED"]);
        world.settle(start + Duration::from_secs(91 * 24 * 3600));
        assert_eq!(statuses(&world), ["EXPIRED"]);
        assert!(world.preverified_number(&added).is_err());
    }
}
