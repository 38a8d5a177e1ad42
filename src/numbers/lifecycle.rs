//! The windows of a number's life, worked out so people need not remember them:
//!
//! - register within 14 days of Embedded Signup (`last_onboarded_time`), or 90 days
//!   for a number created from a pre-verified one;
//! - after a display-name change is approved, register again within 14 days. Graph
//!   keeps no approval time, so the service remembers it: the webhook's time, else when
//!   a read first showed the approval (`new_name_status` APPROVED);
//! - the register/deregister budget, as the guard counts it.
//!
//! Every snapshot is stamped with them as it is made (a read or a push), so reads and
//! watchers see the same windows, and WatchStatus names them when they move.

use super::budget::Ledger;
use crate::model::{PhoneNumber, Windows};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// Embedded Signup's window to register a number.
pub const REGISTER_WINDOW: Duration = Duration::days(14);
/// A number created from a pre-verified one has longer.
pub const PREVERIFIED_REGISTER_WINDOW: Duration = Duration::days(90);
/// To register again after a display-name change is approved.
pub const REREGISTER_WINDOW: Duration = Duration::days(14);
const APPROVALS_KEPT: u64 = 100_000;
/// An approval is remembered well past its window, so a lapsed window shows as lapsed
/// instead of starting again.
const APPROVALS_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(60 * 24 * 3600);

#[derive(Debug, Clone)]
struct Approval {
    /// The approved new display name.
    name: String,
    at: DateTime<Utc>,
    /// Registered again since: the change took effect.
    reregistered: bool,
}

#[derive(Debug)]
pub struct Lifecycle {
    register: Arc<Ledger>,
    /// Phone number id → the approved display-name change awaiting re-registration.
    approvals: moka::sync::Cache<String, Approval>,
}

impl Lifecycle {
    pub fn new(register: Arc<Ledger>) -> Self {
        Lifecycle {
            register,
            approvals: moka::sync::Cache::builder()
                .max_capacity(APPROVALS_KEPT)
                .time_to_live(APPROVALS_REMEMBERED)
                .build(),
        }
    }

    /// A webhook said the number's new display name `name` was approved at `at`.
    pub fn approved(&self, id: &str, name: &str, at: DateTime<Utc>) {
        self.approvals
            .entry_by_ref(id)
            .and_compute_with(|current| match current {
                // The first word on this approval stands.
                Some(c) if c.value().name == name => moka::ops::compute::Op::Nop,
                _ => moka::ops::compute::Op::Put(Approval {
                    name: name.to_owned(),
                    at,
                    reregistered: false,
                }),
            });
    }

    /// The number was registered: an approved change it awaited took effect.
    pub fn registered(&self, id: &str) {
        if let Some(mut approval) = self.approvals.get(id) {
            approval.reregistered = true;
            self.approvals.insert(id.to_owned(), approval);
        }
    }

    /// Fills in the number's windows, as of now.
    pub fn stamp(&self, number: &mut PhoneNumber) {
        number.windows = Windows {
            register_deadline: register_deadline(number),
            reregister_deadline: self.reregister_deadline(number),
            register_budget: Some(self.register.budget(&number.id)),
        };
    }

    fn reregister_deadline(&self, number: &PhoneNumber) -> Option<DateTime<Utc>> {
        let awaiting = number.new_name_status == "APPROVED";
        if !awaiting {
            self.approvals.invalidate(&number.id);
            return None;
        }
        let name = number.new_display_name.as_str();
        let approval = self.approvals.get(&number.id).filter(|a| a.name == name);
        let approval = approval.unwrap_or_else(|| {
            // First seen by a read: the approval is at most this old.
            self.approved(&number.id, name, Utc::now());
            self.approvals.get(&number.id).expect("just inserted")
        });
        (!approval.reregistered).then(|| approval.at + REREGISTER_WINDOW)
    }
}

/// For a number not registered for the Cloud API: its onboarding time plus its window.
fn register_deadline(number: &PhoneNumber) -> Option<DateTime<Utc>> {
    let unregistered = !number.platform_type.is_empty() && number.platform_type != "CLOUD_API";
    let onboarded = number.last_onboarded_time.filter(|_| unregistered)?;
    Some(
        onboarded
            + if number.is_preverified_number {
                PREVERIFIED_REGISTER_WINDOW
            } else {
                REGISTER_WINDOW
            },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::budget::Limit;

    fn lifecycle() -> Lifecycle {
        Lifecycle::new(Arc::new(Ledger::new(Limit::Register, 1)))
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn register_deadline_is_14_days_after_onboarding_until_registered() {
        let mut n = PhoneNumber {
            id: "1".into(),
            platform_type: "NOT_APPLICABLE".into(),
            last_onboarded_time: Some(at("2026-11-20T10:00:00Z")),
            ..PhoneNumber::default()
        };
        let l = lifecycle();
        l.stamp(&mut n);
        assert_eq!(
            n.windows.register_deadline,
            Some(at("2026-12-04T10:00:00Z"))
        );
        n.is_preverified_number = true;
        l.stamp(&mut n);
        assert_eq!(
            n.windows.register_deadline,
            Some(at("2027-02-18T10:00:00Z"))
        );
        n.platform_type = "CLOUD_API".into();
        l.stamp(&mut n);
        assert_eq!(n.windows.register_deadline, None);
        assert_eq!(n.windows.register_budget.unwrap().attempts_left, 10);
    }

    #[test]
    fn reregister_deadline_runs_from_the_approval_until_registered_again() {
        let l = lifecycle();
        let mut n = PhoneNumber {
            id: "1".into(),
            new_display_name: "Shop Plus".into(),
            new_name_status: "PENDING_REVIEW".into(),
            ..PhoneNumber::default()
        };
        l.stamp(&mut n);
        assert_eq!(n.windows.reregister_deadline, None);

        l.approved("1", "Shop Plus", at("2026-12-01T08:00:00Z"));
        n.new_name_status = "APPROVED".into();
        l.stamp(&mut n);
        assert_eq!(
            n.windows.reregister_deadline,
            Some(at("2026-12-15T08:00:00Z"))
        );
        // A later word on the same approval does not move it.
        l.approved("1", "Shop Plus", at("2026-12-01T09:00:00Z"));
        l.stamp(&mut n);
        assert_eq!(
            n.windows.reregister_deadline,
            Some(at("2026-12-15T08:00:00Z"))
        );

        l.registered("1");
        l.stamp(&mut n);
        assert_eq!(n.windows.reregister_deadline, None);
    }

    #[test]
    fn an_approval_first_seen_by_a_read_counts_from_then() {
        let l = lifecycle();
        let mut n = PhoneNumber {
            id: "2".into(),
            new_display_name: "New".into(),
            new_name_status: "APPROVED".into(),
            ..PhoneNumber::default()
        };
        let before = Utc::now();
        l.stamp(&mut n);
        let deadline = n.windows.reregister_deadline.unwrap();
        assert!(
            deadline >= before + REREGISTER_WINDOW && deadline <= Utc::now() + REREGISTER_WINDOW
        );
        n.new_name_status = "NONE".into();
        l.stamp(&mut n);
        assert_eq!(n.windows.reregister_deadline, None);
    }
}
