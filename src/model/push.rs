//! Changes Meta pushes (webhooks), as the domain understands them.
//!
//! A push is provisional: it is applied at once, so subscribers hear of it without
//! waiting for a poll, and then the number is re-read; the read is the truth.

use super::PhoneNumber;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Push {
    /// The WABA the webhook entry is about.
    pub waba_id: String,
    /// When Meta generated it (Unix seconds).
    pub time: i64,
    pub kind: PushKind,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PushKind {
    /// `phone_number_name_update`: a display name was reviewed.
    NameDecision {
        digits: String,
        decision: String,
        requested_name: Option<String>,
    },
    /// `phone_number_quality_update`: messaging limit or flag changed.
    Quality {
        digits: String,
        event: String,
        limit: Option<String>,
    },
    /// `security`: the two-step verification PIN changed, or its reset was asked for.
    Security { digits: String, event: String },
    /// `account_update`: something about the WABA; every number is re-read.
    Account { event: String },
}

impl Push {
    /// How many kinds of push are ordered separately.
    pub const SLOTS: usize = 3;

    /// Which kind of push this is, for ordering pushes of one kind by Meta's time; `None`
    /// for pushes that change nothing by themselves.
    pub fn slot(&self) -> Option<usize> {
        match self.kind {
            PushKind::NameDecision { .. } => Some(0),
            PushKind::Quality { .. } => Some(1),
            PushKind::Security { .. } => Some(2),
            PushKind::Account { .. } => None,
        }
    }

    /// The number concerned (its display digits), when the push names one.
    pub fn digits(&self) -> Option<&str> {
        match &self.kind {
            PushKind::NameDecision { digits, .. }
            | PushKind::Quality { digits, .. }
            | PushKind::Security { digits, .. } => Some(digits),
            PushKind::Account { .. } => None,
        }
    }

    /// Applies what the push says to `number`; tells whether anything changed.
    pub fn apply(&self, number: &mut PhoneNumber) -> bool {
        let before = number.clone();
        match &self.kind {
            PushKind::NameDecision {
                decision,
                requested_name,
                ..
            } => {
                let status = match decision.as_str() {
                    "APPROVED" => "APPROVED",
                    "REJECTED" => "DECLINED",
                    "PENDING" => "PENDING_REVIEW",
                    other => other,
                }
                .to_owned();
                let renaming = !number.new_display_name.is_empty()
                    && requested_name.as_deref() == Some(number.new_display_name.as_str());
                if renaming {
                    number.new_name_status = status;
                } else {
                    if status == "APPROVED"
                        && let Some(name) = requested_name.as_ref().filter(|n| !n.is_empty())
                    {
                        number.verified_name = name.clone();
                    }
                    number.name_status = status;
                }
            }
            PushKind::Quality { event, limit, .. } => {
                // The portfolio-level limit: what `messaging_limit` reads.
                if let Some(limit) = limit.as_ref().filter(|l| l.starts_with("TIER_")) {
                    number.messaging_limit = limit.clone();
                }
                match event.as_str() {
                    "FLAGGED" => number.status = "FLAGGED".into(),
                    "UNFLAGGED" => number.status = "CONNECTED".into(),
                    _ => {}
                }
            }
            // A PIN was set or changed: two-step verification is on.
            PushKind::Security { event, .. } if event == "PIN_CHANGED" => {
                number.is_pin_enabled = true;
            }
            PushKind::Security { .. } | PushKind::Account { .. } => {}
        }
        *number != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(decision: &str, requested: &str) -> Push {
        Push {
            waba_id: "1".into(),
            time: 0,
            kind: PushKind::NameDecision {
                digits: "15550100002".into(),
                decision: decision.into(),
                requested_name: Some(requested.into()),
            },
        }
    }

    #[test]
    fn a_name_decision_sets_the_name_or_the_new_name_status() {
        let mut n = PhoneNumber {
            verified_name: "Shop".into(),
            name_status: "PENDING_REVIEW".into(),
            ..PhoneNumber::default()
        };
        assert!(name("APPROVED", "Shop").apply(&mut n));
        assert_eq!(n.name_status, "APPROVED");
        assert!(
            !name("APPROVED", "Shop").apply(&mut n),
            "a duplicate changes nothing"
        );

        n.new_display_name = "Shop Plus".into();
        n.new_name_status = "PENDING_REVIEW".into();
        assert!(name("REJECTED", "Shop Plus").apply(&mut n));
        assert_eq!(
            (n.name_status.as_str(), n.new_name_status.as_str()),
            ("APPROVED", "DECLINED")
        );
    }

    #[test]
    fn a_quality_update_moves_the_limit_and_the_flag() {
        let mut n = PhoneNumber {
            status: "CONNECTED".into(),
            ..PhoneNumber::default()
        };
        let push = Push {
            waba_id: "1".into(),
            time: 0,
            kind: PushKind::Quality {
                digits: "1".into(),
                event: "FLAGGED".into(),
                limit: Some("TIER_10K".into()),
            },
        };
        assert!(push.apply(&mut n));
        assert_eq!(
            (n.status.as_str(), n.messaging_limit.as_str()),
            ("FLAGGED", "TIER_10K")
        );
    }
}
