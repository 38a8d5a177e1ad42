//! The read path: every read of Meta, by an RPC or a watcher, goes through here.
//!
//! - A cache of number snapshots and WABA pages. The TTL says when a snapshot is fresh,
//!   not when it is forgotten: snapshots stay (bounded in entries, dropped after
//!   [`CacheSettings::keep_idle`] unused) so they can be served while Meta throttles.
//! - Single-flight ([`Flights`]): concurrent identical reads share one upstream call.
//! - Throttle memory ([`Throttle`]): while Meta throttles a WABA or the app, no read for
//!   it is sent; a caller that accepts a stale answer gets the cached one, others
//!   RESOURCE_EXHAUSTED.
//! - Webhook pushes update cached snapshots at once; writes drop the number's snapshot
//!   and its WABA's pages.
//!
//! A read that started before a push or a write to its number (or WABA, for pages)
//! landed does not fill the cache when it ends, and is not joined by later readers: it
//! may predate them.

use super::deadlines::Deadlines;
use super::directory::{Accepted, Directory};
use super::flight::Flights;
use super::throttle::{Scope, Throttle};
use super::{Error, rejected, routed};
use crate::graph::{GraphClient, UsageTracker};
use crate::keyring::{Keyring, Route};
use crate::model::{Deadline, PhoneNumber, Push, PushKind, Snapshot};
use moka::ops::compute::Op;
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// How long a snapshot is fresh: reads within it make no Graph call. Zero disables
    /// the cache (nothing is kept).
    pub ttl: Duration,
    /// At most this many number snapshots (and as many pages) are kept.
    pub max_entries: u64,
    /// A snapshot nobody asked for in this long is forgotten.
    pub keep_idle: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15),
            max_entries: 100_000,
            keep_idle: Duration::from_secs(600),
        }
    }
}

/// How long a push or write to a number is remembered against reads of it still in
/// flight: longer than any read takes (its attempts are bounded by the request timeout).
const TOUCH_MEMORY: Duration = Duration::from_secs(300);

/// One page of a WABA's numbers, as read.
#[derive(Debug, Clone)]
pub struct Page {
    pub numbers: Vec<Arc<Snapshot>>,
    /// Meta's cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// When its read ended.
    seen: Instant,
    /// Its WABA's generation when its read started (see `Inner::generations`).
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    waba_id: String,
    page_size: u32,
    cursor: Option<String>,
}

#[derive(Clone)]
pub struct ReadPath {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPath")
            .field("snapshots", &self.inner.numbers.entry_count())
            .field("pages", &self.inner.pages.entry_count())
            .finish_non_exhaustive()
    }
}

struct Inner {
    graph: Arc<GraphClient>,
    /// Whose token each read carries; the number → WABA index.
    keys: Arc<Keyring>,
    ttl: Duration,
    numbers: Cache<String, Arc<Snapshot>>,
    pages: Cache<PageKey, Arc<Page>>,
    number_reads: Flights<String, Arc<Snapshot>>,
    page_reads: Flights<PageKey, Arc<Page>>,
    throttle: Throttle,
    directory: Directory,
    /// When a push or write to a number last landed: a read that started before it does
    /// not fill the cache.
    touched: Cache<String, Instant>,
    /// Per WABA, how many pushes and writes have landed: a page read under an older
    /// generation is not served. One counter per WABA ever pushed or written to.
    generations: Mutex<HashMap<String, u64>>,
    /// Stamps every snapshot with the number's windows.
    deadlines: Arc<Deadlines>,
}

impl ReadPath {
    pub fn new(
        graph: Arc<GraphClient>,
        keys: Arc<Keyring>,
        settings: &CacheSettings,
        deadlines: Arc<Deadlines>,
    ) -> Self {
        // With the cache disabled nothing is inserted (see `keep`).
        let keep_idle = settings.keep_idle.max(settings.ttl);
        Self {
            inner: Arc::new(Inner {
                graph,
                keys,
                ttl: settings.ttl,
                numbers: Cache::builder()
                    .max_capacity(settings.max_entries)
                    .time_to_idle(keep_idle)
                    .build(),
                // Weighed by the snapshots a page holds: the bound is in snapshots.
                pages: Cache::builder()
                    .max_capacity(settings.max_entries)
                    .weigher(|_, page: &Arc<Page>| {
                        u32::try_from(page.numbers.len() + 1).unwrap_or(u32::MAX)
                    })
                    .time_to_idle(keep_idle)
                    .build(),
                number_reads: Flights::default(),
                page_reads: Flights::default(),
                throttle: Throttle::default(),
                directory: Directory::default(),
                touched: Cache::builder()
                    .max_capacity(settings.max_entries)
                    .time_to_live(TOUCH_MEMORY)
                    .build(),
                generations: Mutex::default(),
                deadlines,
            }),
        }
    }

    /// Rate-limit usage as Meta last reported it.
    pub fn usage(&self) -> &UsageTracker {
        self.inner.graph.usage()
    }

    /// Whose token each read carries.
    pub fn keys(&self) -> &Arc<Keyring> {
        &self.inner.keys
    }

    /// A number's snapshot no older than `max_staleness` (`None`: the cache TTL; zero:
    /// read Meta now). While Meta throttles its WABA the cached snapshot is served if it
    /// meets `max_staleness` (any age when `None`), else [`Error::Throttled`].
    pub async fn number(
        &self,
        id: &str,
        max_staleness: Option<Duration>,
        deadline: Deadline,
    ) -> Result<Arc<Snapshot>, Error> {
        let inner = &self.inner;
        let cached = inner.numbers.get(id);
        let ages = cached.as_ref().map(|s| s.age());
        if let Some(answer) =
            inner.answer_from_cache(cached, ages, max_staleness, &inner.scope_of(id))
        {
            return answer;
        }
        let read = {
            let inner = inner.clone();
            let id = id.to_owned();
            async move { inner.read_number(id).await }
        };
        inner.number_reads.join(id.to_owned(), deadline, read).await
    }

    /// One page of a WABA's numbers no older than `max_staleness` (as for [`Self::number`]).
    pub async fn page(
        &self,
        waba_id: &str,
        page_size: u32,
        cursor: Option<&str>,
        max_staleness: Option<Duration>,
        deadline: Deadline,
    ) -> Result<Arc<Page>, Error> {
        let inner = &self.inner;
        let key = PageKey {
            waba_id: waba_id.to_owned(),
            page_size,
            cursor: cursor.map(str::to_owned),
        };
        let cached = inner.pages.get(&key).filter(|page| {
            let valid = page.generation == inner.generation(waba_id);
            if !valid {
                inner.pages.invalidate(&key);
            }
            valid
        });
        let age = cached.as_ref().map(|p| p.seen.elapsed());
        let scope = Scope::Waba(waba_id.to_owned());
        if let Some(answer) = inner.answer_from_cache(cached, age, max_staleness, &scope) {
            return answer;
        }
        let read = {
            let inner = inner.clone();
            let key = key.clone();
            async move { inner.read_page(key).await }
        };
        inner.page_reads.join(key, deadline, read).await
    }

    /// Reads several numbers from Meta now, for the watchers: in one batch request per
    /// token (at most [`crate::graph::MAX_BATCH`] numbers in all). Each result stands
    /// alone; numbers whose WABA is throttled are not sent.
    pub async fn numbers_now(&self, ids: &[String]) -> Vec<Result<Arc<Snapshot>, Error>> {
        let inner = &self.inner;
        let mut results: Vec<Option<Result<Arc<Snapshot>, Error>>> = Vec::new();
        // The numbers to read, by the token that reads them (`None`: the partner's).
        let mut batches: Vec<(Option<String>, Route, Vec<usize>)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if let Some(retry_after) = inner.throttled(&inner.scope_of(id)) {
                results.push(Some(Err(Error::Throttled { retry_after })));
                continue;
            }
            let route = match inner.keys.for_number(id).await {
                Ok(route) => route,
                Err(e) => {
                    results.push(Some(Err(e.into())));
                    continue;
                }
            };
            results.push(None);
            let owner = match &route {
                Route::Partner => None,
                Route::Customer { waba_id, .. } => Some(waba_id.clone()),
            };
            match batches.iter_mut().find(|(o, _, _)| *o == owner) {
                Some((_, _, members)) => members.push(i),
                None => batches.push((owner, route, vec![i])),
            }
        }
        for (_, route, members) in batches {
            let read = match members.as_slice() {
                [i] => vec![self.number(&ids[*i], Some(Duration::ZERO), None).await],
                _ => {
                    let batch: Vec<String> = members.iter().map(|i| ids[*i].clone()).collect();
                    inner.read_batch(&batch, &route).await
                }
            };
            for (i, result) in members.into_iter().zip(read) {
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("one result per id"))
            .collect()
    }

    /// Applies a webhook push to the cached snapshot at once, and drops the WABA's cached
    /// pages; returns what the push is about, if it names a number the service knows
    /// (see [`Accepted`]). Reads in flight from before the push are not joined any more.
    pub fn push(&self, push: &Push) -> Option<Accepted> {
        let inner = &self.inner;
        inner.forget_pages_of(&push.waba_id);
        let accepted = inner.directory.accept(push)?;
        inner
            .keys
            .learn(&push.waba_id, std::slice::from_ref(&accepted.id));
        if !accepted.fresh {
            return Some(accepted);
        }
        let id = &accepted.id;
        inner.note_decision(id, push);
        inner.touched.insert(id.clone(), Instant::now());
        inner.number_reads.forget(id);
        // Atomic per number: concurrent pushes (or a write) do not undo each other.
        inner
            .numbers
            .entry_by_ref(id)
            .and_compute_with(|cached| match cached {
                Some(cached) => {
                    let mut number = cached.value().number.clone();
                    if self.apply(push, &mut number) {
                        Op::Put(Arc::new(Snapshot::pushed(number)))
                    } else {
                        Op::Nop
                    }
                }
                None => Op::Nop,
            });
        Some(accepted)
    }

    /// Applies a push to a number and stamps its windows again; tells whether anything
    /// changed.
    pub fn apply(&self, push: &Push, number: &mut PhoneNumber) -> bool {
        let before = number.windows.clone();
        let changed = push.apply(number);
        self.inner.deadlines.stamp(number);
        changed || number.windows != before
    }

    /// After a write to a WABA (a number added): its cached pages are dropped.
    pub fn invalidate_waba(&self, waba_id: &str) {
        self.inner.forget_pages_of(waba_id);
    }

    /// After a write to a number: its snapshot and its WABA's pages are dropped, and reads
    /// in flight that began before the write are not joined.
    pub fn invalidate(&self, phone_number_id: &str) {
        let inner = &self.inner;
        inner
            .touched
            .insert(phone_number_id.to_owned(), Instant::now());
        inner.numbers.invalidate(phone_number_id);
        inner.number_reads.forget(&phone_number_id.to_owned());
        if let Some(waba_id) = inner.keys.known_waba_of(phone_number_id) {
            inner.forget_pages_of(&waba_id);
        }
    }

    /// After this replica may have missed other replicas' writes and pushes (its
    /// connection to the store was lost): every cached snapshot and page is dropped, and
    /// reads in flight are no longer joined.
    pub fn invalidate_all(&self) {
        let inner = &self.inner;
        inner.numbers.invalidate_all();
        inner.pages.invalidate_all();
        inner.number_reads.forget_if(|_| true);
        inner.page_reads.forget_if(|_| true);
    }

    /// How long a read of Meta stays fresh (`--cache-ttl`).
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// A number's snapshot as cached, however old; Meta is not asked.
    pub fn cached(&self, phone_number_id: &str) -> Option<Arc<Snapshot>> {
        self.inner.numbers.get(phone_number_id)
    }

    /// The WABA a number is known to belong to.
    pub fn waba_of(&self, phone_number_id: &str) -> Option<String> {
        self.inner.keys.known_waba_of(phone_number_id)
    }
}

impl Inner {
    /// A webhook's word on a requested display name: an approval starts its window to
    /// register again (from the webhook's time, whether or not the number is cached); a
    /// rejection ends any.
    fn note_decision(&self, id: &str, push: &Push) {
        let PushKind::NameDecision {
            decision,
            requested_name: Some(name),
            ..
        } = &push.kind
        else {
            return;
        };
        let cached = self.numbers.get(id);
        // An approval of the name the number already has is its first review, no change.
        let first_review = cached
            .as_ref()
            .is_some_and(|s| s.number.verified_name == *name && s.number.new_display_name != *name);
        match decision.as_str() {
            "APPROVED" if !name.is_empty() && !first_review => {
                if let Some(at) = chrono::DateTime::from_timestamp(push.time, 0) {
                    self.deadlines.approved(id, name, at);
                }
            }
            "REJECTED" if !first_review => self.deadlines.requested(id),
            _ => {}
        }
    }

    fn scope_of(&self, phone_number_id: &str) -> Scope {
        match self.keys.known_waba_of(phone_number_id) {
            Some(waba_id) => Scope::Waba(waba_id),
            None => Scope::Number(phone_number_id.to_owned()),
        }
    }

    /// The answer without a read, if there is one: the cached value (of age `age`) while
    /// fresh for `max_staleness` (`None`: the TTL); while Meta throttles `scope`, the
    /// cached value if `max_staleness` allows it (any age when `None`), else
    /// [`Error::Throttled`]. `None`: read Meta.
    fn answer_from_cache<T>(
        &self,
        cached: Option<Arc<T>>,
        age: Option<Duration>,
        max_staleness: Option<Duration>,
        scope: &Scope,
    ) -> Option<Result<Arc<T>, Error>> {
        let age = age.unwrap_or(Duration::MAX);
        if cached.is_some() && age < max_staleness.unwrap_or(self.ttl) {
            return cached.map(Ok);
        }
        let retry_after = self.throttled(scope)?;
        match cached.filter(|_| max_staleness.is_none_or(|max| age <= max)) {
            Some(stale) => Some(Ok(stale)),
            None => Some(Err(Error::Throttled { retry_after })),
        }
    }

    fn throttled(&self, scope: &Scope) -> Option<Duration> {
        self.throttle
            .wait(std::slice::from_ref(scope), self.graph.usage())
    }

    async fn read_number(&self, id: String) -> Result<Arc<Snapshot>, Error> {
        let started = Instant::now();
        let route = self.keys.for_number(&id).await?;
        let read = async {
            let credential = route.credential();
            Ok(self.graph.phone_number(&id, &credential, None).await?)
        };
        match routed(&self.keys, &route, read).await {
            Ok(number) => Ok(self.took(number, started)),
            Err(e) => {
                self.note(&e, self.scope_of(&id));
                Err(e)
            }
        }
    }

    /// Learns from a failed read whether Meta throttles `scope`.
    fn note(&self, e: &Error, scope: Scope) {
        if let Error::Upstream(e) = e {
            self.throttle.note(e, scope);
        }
    }

    async fn read_page(&self, key: PageKey) -> Result<Arc<Page>, Error> {
        let started = Instant::now();
        let generation = self.generation(&key.waba_id);
        let route = self.keys.for_waba(&key.waba_id).await?;
        let read = async {
            let credential = route.credential();
            let (waba_id, size, cursor) = (&key.waba_id, key.page_size, key.cursor.as_deref());
            Ok(self
                .graph
                .list_phone_numbers(waba_id, &credential, size, cursor, None)
                .await?)
        };
        let listed = match routed(&self.keys, &route, read).await {
            Ok(listed) => listed,
            Err(e) => {
                self.note(&e, Scope::Waba(key.waba_id.clone()));
                return Err(e);
            }
        };
        let ids: Vec<String> = listed.numbers.iter().map(|n| n.id.clone()).collect();
        self.keys.learn(&key.waba_id, &ids);
        let numbers: Vec<Arc<Snapshot>> = listed
            .numbers
            .into_iter()
            .map(|n| Arc::new(self.snapshot(n, started)))
            .collect();
        for snapshot in &numbers {
            self.directory.learn(snapshot);
            self.keep(snapshot, started);
        }
        let page = Arc::new(Page {
            numbers,
            next_cursor: listed.next_cursor,
            seen: Instant::now(),
            generation,
        });
        // A push or write landing meanwhile makes it invalid (a newer generation).
        if !self.ttl.is_zero() {
            self.pages.insert(key, page.clone());
        }
        Ok(page)
    }

    /// Reads `ids` in one batch request, with the token `route` names.
    async fn read_batch(&self, ids: &[String], route: &Route) -> Vec<Result<Arc<Snapshot>, Error>> {
        let started = Instant::now();
        let read = async {
            let credential = route.credential();
            Ok(self
                .graph
                .phone_numbers_batch(ids, &credential, None)
                .await?)
        };
        let results = match routed(&self.keys, route, read).await {
            Ok(results) => results,
            Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut answers = Vec::with_capacity(ids.len());
        for (id, result) in ids.iter().zip(results) {
            let answer = match result {
                Ok(number) => Ok(self.took(number, started)),
                Err(e) => {
                    let e = rejected(&self.keys, route, e.into()).await;
                    self.note(&e, self.scope_of(id));
                    Err(e)
                }
            };
            answers.push(answer);
        }
        answers
    }

    /// A number read alone (its WABA not said) by a read that started at `started`:
    /// learnt, cached, and returned as a snapshot.
    fn took(&self, number: PhoneNumber, started: Instant) -> Arc<Snapshot> {
        let snapshot = Arc::new(self.snapshot(number, started));
        self.directory.learn(&snapshot);
        self.keep(&snapshot, started);
        snapshot
    }

    /// A snapshot of what a read that started at `started` found, with its windows.
    fn snapshot(&self, mut number: PhoneNumber, started: Instant) -> Snapshot {
        self.deadlines.stamp(&mut number);
        Snapshot::read(number, started)
    }

    /// Whether a push or write to the number landed at or after `since`.
    fn touched_since(&self, id: &str, since: Instant) -> bool {
        self.touched.get(id).is_some_and(|at| at >= since)
    }

    /// Caches a snapshot whose read started at `started`, unless a push or a write to
    /// the number landed meanwhile (then it may predate them: what they left stays).
    fn keep(&self, snapshot: &Arc<Snapshot>, started: Instant) {
        let id = &snapshot.number.id;
        if self.ttl.is_zero() || self.touched_since(id, started) {
            return;
        }
        self.numbers.insert(id.clone(), snapshot.clone());
        if self.touched_since(id, started) {
            self.numbers.invalidate(id); // raced with a push or write: keep nothing
        }
    }

    fn generation(&self, waba_id: &str) -> u64 {
        let generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        generations.get(waba_id).copied().unwrap_or_default()
    }

    /// A push or write to the WABA: its cached pages, and page reads in flight, no longer
    /// count.
    fn forget_pages_of(&self, waba_id: &str) {
        {
            let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
            *generations.entry(waba_id.to_owned()).or_default() += 1;
        }
        self.page_reads.forget_if(|key| key.waba_id == waba_id);
    }
}
