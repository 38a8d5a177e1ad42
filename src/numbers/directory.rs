//! What the service has learnt about numbers from listings, reads and webhooks: which
//! id a webhook's display digits name, and the newest push of each kind applied to it
//! (so a late, older push is ignored). Which WABA a number belongs to is the keyring's
//! index (`crate::keyring`).

use crate::model::{Push, Snapshot};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// A push about a number the service knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    /// Not older than a push of its kind already applied: apply it. A stale push changes
    /// nothing, but the number is still worth a re-read.
    pub fresh: bool,
}

/// Grows with the numbers the token can read (only successful reads and pushes about
/// known numbers add to it): a few hundred bytes a number.
#[derive(Debug, Default)]
pub struct Directory {
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Display digits → phone number id.
    ids: HashMap<String, String>,
    /// Phone number id → Meta's time of the newest push applied, per kind ([`Push::slot`]).
    push_times: HashMap<String, [i64; Push::SLOTS]>,
}

impl Directory {
    /// Learns a number's digits.
    pub fn learn(&self, snapshot: &Snapshot) {
        let number = &snapshot.number;
        let mut known = self.lock();
        let digits = number.display_digits();
        if !digits.is_empty() && known.ids.get(&digits) != Some(&number.id) {
            known.ids.insert(digits, number.id.clone());
        }
    }

    /// The number a push is about, if the push names one the service has seen, and
    /// whether it is news (not older than a push of its kind already applied).
    pub fn accept(&self, push: &Push) -> Option<Accepted> {
        let mut known = self.lock();
        let id = known.ids.get(push.digits()?)?.clone();
        let mut fresh = true;
        if let Some(slot) = push.slot() {
            let times = known.push_times.entry(id.clone()).or_default();
            if push.time < times[slot] {
                fresh = false; // stale: a newer push of its kind came first
            } else {
                times[slot] = push.time;
            }
        }
        Some(Accepted { id, fresh })
    }

    fn lock(&self) -> MutexGuard<'_, Known> {
        // Held for map operations only, never across an await.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
