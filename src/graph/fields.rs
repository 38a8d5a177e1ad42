//! Which fields phone-number reads ask Meta for, and the ones this Graph version refused.

use super::Error;
use std::sync::{Mutex, MutexGuard};

/// The fields every phone-number read asks for, in this order. Never rely on Meta's
/// defaults: they differ between versions and omit most of these. A field Meta stops
/// serving answers error 100 for the whole read, so [`FieldList`] drops one
/// Meta refuses and reads on without it. Not asked for: `username` (error 100 on v24.0+;
/// usernames have their own edge), `certificate` (sensitive, and no caller needs it).
pub const PHONE_NUMBER_FIELDS: &[&str] = &[
    "id",
    // The number as people dial it; webhooks name numbers by its digits.
    "display_phone_number",
    // The display name, and its review (name_status: approved, pending, declined...).
    "verified_name",
    "name_status",
    // A requested new display name and its review.
    "new_name_status",
    "new_display_name",
    // OTP verification: only a VERIFIED number can be registered.
    "code_verification_status",
    "quality_rating",
    // Connection status: CONNECTED to send and receive, FLAGGED, BANNED...
    "status",
    // CLOUD_API once registered, NOT_APPLICABLE before.
    "platform_type",
    "throughput",
    // Deprecated by Meta, null on v24.0+; read while some versions still serve it.
    "messaging_limit_tier",
    // The business portfolio's messaging limit, which replaced messaging_limit_tier.
    "whatsapp_business_manager_messaging_limit",
    // SANDBOX or LIVE.
    "account_mode",
    "is_official_business_account",
    // Whether two-step verification has a PIN: Register must then be given it.
    "is_pin_enabled",
    // When Embedded Signup added the number (its 14-day registration window starts).
    "last_onboarded_time",
    // Created from a pre-verified number (90 days to register instead of 14).
    "is_preverified_number",
    // Also on the WhatsApp Business app (coexistence).
    "is_on_biz_app",
];

/// How Meta names the phone-number node type in its error messages.
pub const PHONE_NODE: &str = "on node type (WhatsAppBusinessPhoneNumber)";

/// [`PHONE_NUMBER_FIELDS`] less the fields Meta refused as nonexisting (error 100): one
/// field Meta stops serving must not take every read down.
#[derive(Debug, Default)]
pub struct FieldList {
    refused: Mutex<Vec<&'static str>>,
}

impl FieldList {
    /// The `fields=` value reads send now.
    pub fn current(&self) -> String {
        let refused = self.lock();
        let asked: Vec<&str> = PHONE_NUMBER_FIELDS
            .iter()
            .copied()
            .filter(|f| !refused.contains(f))
            .collect();
        asked.join(",")
    }

    /// When `err` is Meta's error 100 "nonexisting field (X)" for a field of our list,
    /// drops that field for this Graph version (logged once) and says so: one field Meta
    /// stops serving must not take every read down.
    pub fn drop_refused(&self, err: &Error) -> bool {
        let Some(g) = err.graph().filter(|g| g.code == 100) else {
            return false;
        };
        // Only a refusal by a phone-number node: the same words about another node type
        // mean the id named something else (a WABA, say), not that the field is gone.
        if !g.message.contains(PHONE_NODE) {
            return false;
        }
        let Some(name) = g
            .message
            .split_once("nonexisting field (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(name, _)| name)
        else {
            return false;
        };
        let Some(field) = PHONE_NUMBER_FIELDS
            .iter()
            .copied()
            .find(|f| *f == name && *f != "id")
        else {
            return false;
        };
        let mut refused = self.lock();
        if refused.contains(&field) {
            return false;
        }
        refused.push(field);
        tracing::warn!(
            field,
            graph_message = %g.message,
            "Meta does not serve this field on this Graph version; reading without it"
        );
        true
    }

    fn lock(&self) -> MutexGuard<'_, Vec<&'static str>> {
        // Held for a list operation only, never across an await.
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphError;

    fn refusal(message: &str) -> Error {
        Error::Graph(Box::new(GraphError::of(100, None, message)))
    }

    #[test]
    fn a_refused_field_of_the_list_is_dropped_once_and_never_the_id() {
        let fields = FieldList::default();
        let all = fields.current();
        let nonexisting = |f: &str| {
            refusal(&format!(
                "(#100) Tried accessing nonexisting field ({f}) on node type (WhatsAppBusinessPhoneNumber)"
            ))
        };
        assert!(fields.drop_refused(&nonexisting("account_mode")));
        assert!(!fields.drop_refused(&nonexisting("account_mode")), "once");
        assert!(!fields.current().contains("account_mode"));
        assert_eq!(
            fields.current().split(',').count(),
            all.split(',').count() - 1
        );
        let on_a_waba = refusal(
            "(#100) Tried accessing nonexisting field (status) on node type (WhatsAppBusinessAccount)",
        );
        for other in [
            nonexisting("id"),
            nonexisting("username"),
            refusal("(#100) Invalid parameter"),
            on_a_waba,
        ] {
            assert!(!fields.drop_refused(&other), "{other}");
        }
    }
}
