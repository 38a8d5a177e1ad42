//! The replicas of one PostgreSQL store tell each other what they learn: a webhook push
//! (Meta delivers each to one replica only) and a write to a number or WABA. Each is one
//! small NOTIFY (the push itself, or the ids written), sent after the webhook was
//! acknowledged and the write answered; every other replica applies it as if it had
//! happened there: the push to its cache and its watchers, the write as an invalidation
//! of its cache and a prompt re-read by its watchers.
//!
//! What is sent while a replica reconnects to the store is lost to it (NOTIFY keeps
//! nothing): its watchers catch up at their next poll.

use super::Hub;
use crate::model::Push;
use crate::store::{MAX_NOTIFICATION, Store};
use serde::{Deserialize, Serialize};

/// The channel every replica listens on.
const CHANNEL: &str = "waba_numbers_changes";

#[derive(Debug, Serialize, Deserialize)]
struct Change {
    /// The replica that sent it (which skips its own).
    from: String,
    what: What,
}

#[derive(Debug, Serialize, Deserialize)]
enum What {
    Pushed(Push),
    Written {
        waba_id: Option<String>,
        phone_number_id: Option<String>,
    },
}

/// This replica's end of the fleet's messages.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    store: Store,
    /// This replica, in what it sends.
    me: String,
}

impl Fleet {
    /// Listens for the other replicas' changes and applies them to `hub`; `None` for a
    /// store of one replica (or none).
    pub(super) async fn join(store: Option<Store>, hub: Hub) -> Option<Fleet> {
        let store = store?;
        let mut notifications = match store.subscribe(CHANNEL).await {
            Ok(Some(notifications)) => notifications,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to the other replicas; webhooks and writes reach only this one's watchers");
                return None;
            }
        };
        let me = format!("{:016x}", rand::random::<u64>());
        let fleet = Fleet {
            store,
            me: me.clone(),
        };
        let mut stop = hub.inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let payload = tokio::select! {
                    payload = notifications.next() => payload,
                    _ = stop.wait_for(|stop| *stop) => return,
                };
                match serde_json::from_str::<Change>(&payload) {
                    Ok(change) if change.from == me => {}
                    Ok(Change { what, .. }) => apply(&hub, what),
                    Err(e) => tracing::warn!(error = %e, "unreadable change from another replica"),
                }
            }
        });
        Some(fleet)
    }

    pub(super) fn pushed(&self, push: &Push) {
        self.send(What::Pushed(push.clone()));
    }

    pub(super) fn written(&self, waba_id: Option<&str>, phone_number_id: Option<&str>) {
        if waba_id.is_none() && phone_number_id.is_none() {
            return; // nothing another replica holds (a business's pre-verified pool)
        }
        self.send(What::Written {
            waba_id: waba_id.map(str::to_owned),
            phone_number_id: phone_number_id.map(str::to_owned),
        });
    }

    /// Sends in the background: the webhook or the write has its answer already.
    fn send(&self, what: What) {
        let change = Change {
            from: self.me.clone(),
            what,
        };
        let Ok(payload) = serde_json::to_string(&change) else {
            return;
        };
        if payload.len() > MAX_NOTIFICATION {
            tracing::warn!(
                bytes = payload.len(),
                "a change too large to tell the other replicas; they learn it at their next poll"
            );
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.publish(CHANNEL, &payload).await {
                tracing::warn!(error = %e, "cannot tell the other replicas of a change; they learn it at their next poll");
            }
        });
    }
}

/// Another replica's change, applied here as if it had happened here.
fn apply(hub: &Hub, what: What) {
    match what {
        What::Pushed(push) => hub.push_here(&push),
        What::Written {
            waba_id,
            phone_number_id,
        } => {
            let reads = &hub.inner.reads;
            if let Some(id) = &phone_number_id {
                reads.invalidate(id);
            }
            if let Some(waba_id) = &waba_id {
                reads.invalidate_waba(waba_id);
            }
            hub.written_here(waba_id.as_deref(), phone_number_id.as_deref());
        }
    }
}
