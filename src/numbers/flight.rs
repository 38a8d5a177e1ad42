//! Single-flight: concurrent identical reads share one upstream call.
//!
//! The first caller starts the read in a task of its own; every caller with the same key
//! awaits that task, each up to its own deadline. A caller that gives up (its deadline
//! passed, its client left) cannot cut the read short for the others, and the read still
//! fills the cache when nobody waits any more. The key is forgotten when the read ends,
//! so the next read after it is a new one (the cache answers in between). The read's log
//! lines carry the span of the call that started it.

use super::Error;
use crate::graph;
use crate::model::Deadline;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::Instrument;

type Flight<V> = Shared<BoxFuture<'static, Result<V, Error>>>;

/// Reads in flight, by key. Cheap to clone: clones share the map.
pub struct Flights<K, V: Clone> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V: Clone> {
    /// Each flight with a number of its own, so that a finished read removes only itself.
    flying: Mutex<HashMap<K, (u64, Flight<V>)>>,
    next_id: AtomicU64,
}

impl<K, V: Clone> Clone for Flights<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                flying: Mutex::default(),
                next_id: AtomicU64::new(0),
            }),
        }
    }
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the read of `key` in flight, or starts `read` as that read; waits for it
    /// until `deadline` (DEADLINE_EXCEEDED after that, the read going on for the others).
    pub async fn join<F>(&self, key: K, deadline: Deadline, read: F) -> Result<V, Error>
    where
        F: Future<Output = Result<V, Error>> + Send + 'static,
    {
        if deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            return Err(graph::Error::DeadlineExceeded.into()); // too late to start anything
        }
        let flight = self.flight(key, read);
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, flight)
                .await
                .unwrap_or(Err(graph::Error::DeadlineExceeded.into())),
            None => flight.await,
        }
    }

    /// Whether a read of `key` is in flight.
    #[cfg(test)]
    pub fn is_flying(&self, key: &K) -> bool {
        self.lock().contains_key(key)
    }

    /// Forgets the read of `key` in flight, if any: later callers start a new one (after
    /// a write, say, a read that began before it must not be joined). The old read still
    /// ends for those already waiting on it.
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every read in flight whose key matches.
    pub fn forget_if(&self, matches: impl Fn(&K) -> bool) {
        self.lock().retain(|key, _| !matches(key));
    }

    fn flight<F>(&self, key: K, read: F) -> Flight<V>
    where
        F: Future<Output = Result<V, Error>> + Send + 'static,
    {
        // No await while the map is locked: the task is spawned, not run, here.
        let mut flying = self.lock();
        if let Some((_, flight)) = flying.get(&key) {
            return flight.clone();
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        let done_key = key.clone();
        // The read logs within the span of the call that started it (its request id).
        let read = read.instrument(tracing::Span::current());
        let task = tokio::spawn(async move {
            let result = read.await;
            let mut flying = lock(&inner.flying);
            if flying.get(&done_key).is_some_and(|(ours, _)| *ours == id) {
                flying.remove(&done_key);
            }
            result
        });
        let flight = async move {
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "a shared read failed");
                Err(graph::Error::Transport(format!("the read failed: {e}")).into())
            })
        }
        .boxed()
        .shared();
        flying.insert(key, (id, flight.clone()));
        flight
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (u64, Flight<V>)>> {
        lock(&self.inner.flying)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Held only for map operations, never across an await or a call that can panic.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_read_and_each_keeps_its_deadline() {
        let flights: Flights<&str, u32> = Flights::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(7)
        };
        let impatient = flights.join(
            "n",
            Some(Instant::now() + Duration::from_secs(1)),
            read(reads.clone()),
        );
        let patient = flights.join("n", None, read(reads.clone()));
        let (impatient, patient) = tokio::join!(impatient, patient);
        assert!(matches!(
            impatient,
            Err(Error::Upstream(graph::Error::DeadlineExceeded))
        ));
        assert_eq!(
            patient.unwrap(),
            7,
            "the read went on after the first caller left"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(!flights.is_flying(&"n"), "forgotten once done");
        assert_eq!(
            flights.join("n", None, read(reads.clone())).await.unwrap(),
            7
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2, "a later read is a new one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_forgotten_read_is_not_joined_but_ends_for_its_callers() {
        let flights: Flights<&str, u32> = Flights::default();
        let slow = flights.join("n", None, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(1)
        });
        let after = async {
            tokio::task::yield_now().await;
            flights.forget(&"n");
            flights.join("n", None, async { Ok(2) }).await
        };
        let (slow, after) = tokio::join!(slow, after);
        assert_eq!((slow.unwrap(), after.unwrap()), (1, 2));
    }
}
