//! The store: one suite of cases, each run on every backend (`memory`, a SQLite file,
//! PostgreSQL when `WABA_TEST_POSTGRES_URL` is set), plus what only the SQL backends
//! have: encryption at rest, key rotation, restarts, migrations run twice and at once.
//!
//! No case waits for time: timestamps are the database's, checked for order only.

use crate::support::{
    CUSTOMER_A, CUSTOMER_B, CUSTOMER_C, Engine, N1, N2, N3, StoreFixture, write_key,
};
use secrecy::{ExposeSecret, SecretString};
use std::num::NonZeroU32;
use std::time::Duration;
use waba_numbers::model::{OnboardingStep, TokenState};
use waba_numbers::store::{Cas, Change, Error, StepFailure, Store, StoreConfig, TickPlan};

const TOKEN_A: &str = "EAAGcustomer-a-business-token-4f1c9e7a2b";
const TOKEN_B: &str = "EAAGcustomer-b-business-token-8d2e6f0c3a";
const TOKEN_C: &str = "EAAGcustomer-c-business-token-1a7b5c9d0e";

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn page(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Each case as three tests (`case::memory`, `case::sqlite`, `case::postgres`), on a
/// multi-threaded runtime so concurrent cases really run at once.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::run(super::Engine::Memory, super::$case).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::run(super::Engine::Sqlite, super::$case).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::run(super::Engine::Postgres, super::$case).await
            }
        }
    )*};
}

/// The cases that need a database: as `on_every_store!`, without `memory`.
macro_rules! on_sql_stores {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::run(super::Engine::Sqlite, super::$case).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::run(super::Engine::Postgres, super::$case).await
            }
        }
    )*};
}

async fn run<F, Fut>(engine: Engine, case: F)
where
    F: FnOnce(StoreFixture) -> Fut,
    Fut: std::future::Future<Output = StoreFixture>,
{
    if let Some(fixture) = StoreFixture::new(engine).await {
        case(fixture).await.finish().await;
    }
}

on_every_store!(
    a_new_token_makes_an_unchecked_customer,
    a_new_token_replaces_the_old_and_starts_its_onboarding_over,
    customers_page_in_waba_id_order,
    delete_says_whether_there_was_one,
    changes_are_recorded,
    onboarding_steps_and_their_failures,
    changes_to_nobody_change_nothing,
    a_stale_version_changes_nothing,
    of_racing_writers_exactly_one_wins,
    numbers_are_indexed_by_waba,
    a_token_an_onboarding_exchanged_starts_two_steps_in,
    the_ledger_counts_attempts_in_their_window,
    of_racing_spenders_the_ledger_lets_exactly_the_budget_through,
    of_racing_claims_on_an_idempotency_key_exactly_one_wins,
    a_token_check_is_claimed_once_per_window,
    a_claim_retried_as_itself_finds_its_own_record,
    a_claim_given_up_frees_its_key,
);

on_sql_stores!(
    a_restart_keeps_everything,
    a_token_moved_to_another_waba_does_not_decrypt,
    old_keys_decrypt_after_rotation_and_rekey_moves_everything,
    without_its_key_a_token_is_an_error_not_a_leak,
);

async fn a_new_token_makes_an_unchecked_customer(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    assert_eq!(store.customer(CUSTOMER_A).await.unwrap(), None);
    assert!(store.token(CUSTOMER_A).await.unwrap().is_none());
    let customer = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    assert_eq!(customer.waba_id, CUSTOMER_A);
    assert_eq!(customer.token_state, TokenState::Unchecked);
    assert_eq!(customer.version.get(), 1);
    assert_eq!(
        (
            customer.business_id.as_deref(),
            customer.webhooks_subscribed
        ),
        (None, false)
    );
    assert!(customer.progress.done().is_empty() && customer.progress.failure.is_none());
    assert_eq!(
        (customer.onboarded_at, customer.token_expires_at),
        (None, None)
    );
    assert_eq!(customer.created_at, customer.updated_at);
    assert_eq!(
        store.customer(CUSTOMER_A).await.unwrap(),
        Some(customer.clone())
    );
    let token = store.token(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), TOKEN_A);
    let debug = format!("{store:?} {customer:?} {token:?}");
    assert!(!debug.contains(TOKEN_A), "{debug}");
    assert!(!debug.contains(&f.key.base64), "{debug}");
    f
}

async fn a_new_token_replaces_the_old_and_starts_its_onboarding_over(
    f: StoreFixture,
) -> StoreFixture {
    let store = f.open().await;
    let first = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    let expires = chrono::DateTime::from_timestamp(1_900_000_000, 0);
    let checked = Change::TokenChecked {
        business_id: Some("301000000000001".into()),
        expires_at: expires,
    };
    store.update(CUSTOMER_A, checked).await.unwrap().unwrap();
    store
        .record_step_done(CUSTOMER_A, OnboardingStep::KeepToken)
        .await
        .unwrap();
    let replaced = store
        .put_token(CUSTOMER_A, &secret(TOKEN_B), None)
        .await
        .unwrap();
    assert_eq!(replaced.token_state, TokenState::Unchecked);
    assert_eq!(replaced.token_expires_at, None, "the old token's expiry");
    assert_eq!(replaced.business_id.as_deref(), Some("301000000000001"));
    assert!(
        replaced.progress.done().is_empty(),
        "the old token's steps say nothing of the new one"
    );
    assert_eq!(replaced.created_at, first.created_at);
    assert!(replaced.updated_at >= first.updated_at);
    assert_eq!(replaced.version.get(), 4);
    let token = store.token(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), TOKEN_B);
    f
}

async fn customers_page_in_waba_id_order(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let ids = ["205", "201", "204", "203", "202"];
    for id in ids {
        store.put_token(id, &secret(TOKEN_A), None).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = store.list(page(2), after.as_deref()).await.unwrap();
        pages += 1;
        assert!(p.customers.len() <= 2);
        seen.extend(p.customers.iter().map(|c| c.waba_id.clone()));
        match p.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last(), "the cursor is the last id");
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["201", "202", "203", "204", "205"]);
    assert_eq!(pages, 3);
    let all = store.list(page(5), None).await.unwrap();
    assert_eq!(
        (all.customers.len(), all.next),
        (5, None),
        "an exact page is the last"
    );
    let empty = store.list(page(10), Some("205")).await.unwrap();
    assert!(empty.customers.is_empty() && empty.next.is_none());
    f
}

async fn delete_says_whether_there_was_one(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    store
        .put_token(CUSTOMER_B, &secret(TOKEN_B), None)
        .await
        .unwrap();
    store
        .index_numbers(CUSTOMER_A, &[N1.to_owned()])
        .await
        .unwrap();
    assert!(store.delete(CUSTOMER_A).await.unwrap());
    assert!(!store.delete(CUSTOMER_A).await.unwrap());
    assert_eq!(store.customer(CUSTOMER_A).await.unwrap(), None);
    assert!(store.token(CUSTOMER_A).await.unwrap().is_none());
    assert!(store.customer(CUSTOMER_B).await.unwrap().is_some());
    assert_eq!(
        store.waba_of(N1).await.unwrap().as_deref(),
        Some(CUSTOMER_A),
        "its numbers still belong to its WABA"
    );
    f
}

async fn changes_are_recorded(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let created = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    let expires = chrono::DateTime::from_timestamp_millis(1_900_000_000_123);
    let c = store
        .update(
            CUSTOMER_A,
            Change::TokenChecked {
                business_id: Some("301000000000001".into()),
                expires_at: expires,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.token_state, TokenState::Active);
    assert_eq!(c.business_id.as_deref(), Some("301000000000001"));
    assert_eq!(c.token_expires_at, expires, "milliseconds kept");
    let c = store
        .update(CUSTOMER_A, Change::WebhooksSubscribed(true))
        .await
        .unwrap()
        .unwrap();
    assert!(c.webhooks_subscribed);
    let c = store
        .update(CUSTOMER_A, Change::Onboarded)
        .await
        .unwrap()
        .unwrap();
    let onboarded = c.onboarded_at.expect("onboarded_at set");
    assert!(onboarded >= created.created_at);
    let c = store
        .update(CUSTOMER_A, Change::Onboarded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.onboarded_at, Some(onboarded), "the first time stays");
    assert!(
        store
            .set_token_state(CUSTOMER_A, TokenState::ReauthRequired)
            .await
            .unwrap()
    );
    let c = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(c.token_state, TokenState::ReauthRequired);
    assert_eq!(c.version.get(), 6, "every change is a version");
    assert!(c.updated_at >= c.created_at);
    assert!(
        c.webhooks_subscribed && c.business_id.is_some(),
        "earlier changes kept"
    );
    f
}

async fn onboarding_steps_and_their_failures(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    for step in [
        OnboardingStep::ExchangeCode,
        OnboardingStep::KeepToken,
        OnboardingStep::CheckToken,
    ] {
        assert!(store.record_step_done(CUSTOMER_A, step).await.unwrap());
    }
    let failure = StepFailure {
        step: OnboardingStep::SubscribeWebhooks,
        code: 14,
        message: "Meta answered 500 (code 2): try again".into(),
    };
    assert!(
        store
            .record_step_failed(CUSTOMER_A, failure.clone())
            .await
            .unwrap()
    );
    let c = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(
        c.progress.done(),
        [
            OnboardingStep::ExchangeCode,
            OnboardingStep::KeepToken,
            OnboardingStep::CheckToken
        ]
    );
    assert_eq!(c.progress.failure, Some(failure.clone()));
    // Another step done leaves the failure; the failed step done clears it.
    store
        .record_step_done(CUSTOMER_A, OnboardingStep::IndexNumbers)
        .await
        .unwrap();
    let c = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(c.progress.failure, Some(failure));
    store
        .record_step_done(CUSTOMER_A, OnboardingStep::SubscribeWebhooks)
        .await
        .unwrap();
    let c = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(c.progress.failure, None);
    assert!(c.progress.is_done(OnboardingStep::SubscribeWebhooks));
    assert!(!c.progress.is_done(OnboardingStep::RegisterNumber));
    // A step that fails after it was done is not done any more.
    let failure = StepFailure {
        step: OnboardingStep::CheckToken,
        code: 7,
        message: "the token is not scoped to this WABA".into(),
    };
    store
        .record_step_failed(CUSTOMER_A, failure.clone())
        .await
        .unwrap();
    let c = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert!(!c.progress.is_done(OnboardingStep::CheckToken));
    assert_eq!(c.progress.failure, Some(failure));
    f
}

async fn changes_to_nobody_change_nothing(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    assert_eq!(
        store.update(CUSTOMER_A, Change::Onboarded).await.unwrap(),
        None
    );
    assert!(
        !store
            .set_token_state(CUSTOMER_A, TokenState::Active)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_step_done(CUSTOMER_A, OnboardingStep::KeepToken)
            .await
            .unwrap()
    );
    let version = store
        .put_token(CUSTOMER_B, &secret(TOKEN_B), None)
        .await
        .unwrap()
        .version;
    assert_eq!(
        store
            .update_if(CUSTOMER_A, version, Change::Onboarded)
            .await
            .unwrap(),
        Cas::Missing
    );
    assert_eq!(store.customer(CUSTOMER_A).await.unwrap(), None);
    f
}

async fn a_stale_version_changes_nothing(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let v1 = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap()
        .version;
    let Cas::Applied(c) = store
        .update_if(CUSTOMER_A, v1, Change::WebhooksSubscribed(true))
        .await
        .unwrap()
    else {
        panic!("the current version applies");
    };
    assert!(c.version > v1);
    assert_eq!(
        store
            .update_if(
                CUSTOMER_A,
                v1,
                Change::TokenState(TokenState::ReauthRequired)
            )
            .await
            .unwrap(),
        Cas::Stale
    );
    let now = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(now, c, "nothing changed");
    f
}

async fn of_racing_writers_exactly_one_wins(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let version = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap()
        .version;
    // Two replicas are two stores on one database.
    let other = match f.engine {
        Engine::Memory => store.clone(),
        _ => f.open().await,
    };
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                let state = if i % 3 == 0 {
                    TokenState::Active
                } else {
                    TokenState::ReauthRequired
                };
                store
                    .update_if(CUSTOMER_A, version, Change::TokenState(state))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    for writer in writers {
        match writer.await.unwrap() {
            Cas::Applied(c) => won.push(c),
            Cas::Stale => {}
            Cas::Missing => panic!("the customer exists"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let now = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(now, won[0]);
    assert_eq!(now.version.get(), version.get() + 1);
    f
}

async fn numbers_are_indexed_by_waba(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    assert_eq!(store.waba_of(N1).await.unwrap(), None);
    let numbers = [N1, N2, N3].map(str::to_owned);
    store.index_numbers(CUSTOMER_A, &numbers).await.unwrap();
    store.index_numbers(CUSTOMER_A, &numbers).await.unwrap();
    for n in [N1, N2, N3] {
        assert_eq!(store.waba_of(n).await.unwrap().as_deref(), Some(CUSTOMER_A));
    }
    assert_eq!(store.numbers_of(CUSTOMER_A).await.unwrap(), numbers);
    // A number moved to another WABA moves in the index.
    store
        .index_numbers(CUSTOMER_B, &[N2.to_owned()])
        .await
        .unwrap();
    assert_eq!(
        store.waba_of(N2).await.unwrap().as_deref(),
        Some(CUSTOMER_B)
    );
    assert_eq!(store.numbers_of(CUSTOMER_A).await.unwrap(), [N1, N3]);
    assert_eq!(store.numbers_of(CUSTOMER_B).await.unwrap(), [N2]);
    store.index_numbers(CUSTOMER_C, &[]).await.unwrap();
    assert!(store.numbers_of(CUSTOMER_C).await.unwrap().is_empty());
    f
}

async fn a_restart_keeps_everything(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    store
        .update(CUSTOMER_A, Change::WebhooksSubscribed(true))
        .await
        .unwrap();
    store
        .record_step_done(CUSTOMER_A, OnboardingStep::CheckToken)
        .await
        .unwrap();
    store
        .index_numbers(CUSTOMER_A, &[N1.to_owned()])
        .await
        .unwrap();
    let before = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    store.close().await;
    drop(store);
    // Opening again runs the migrations again: they are already applied.
    for _ in 0..2 {
        let store = f.open().await;
        assert_eq!(
            store.customer(CUSTOMER_A).await.unwrap(),
            Some(before.clone())
        );
        let token = store.token(CUSTOMER_A).await.unwrap().unwrap();
        assert_eq!(token.expose_secret(), TOKEN_A);
        assert_eq!(
            store.waba_of(N1).await.unwrap().as_deref(),
            Some(CUSTOMER_A)
        );
        store.close().await;
    }
    f
}

async fn a_token_moved_to_another_waba_does_not_decrypt(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    store
        .put_token(CUSTOMER_B, &secret(TOKEN_B), None)
        .await
        .unwrap();
    f.tamper(&format!(
        "UPDATE customers SET \
         token_ciphertext = (SELECT token_ciphertext FROM customers WHERE waba_id = '{CUSTOMER_A}'), \
         token_nonce = (SELECT token_nonce FROM customers WHERE waba_id = '{CUSTOMER_A}') \
         WHERE waba_id = '{CUSTOMER_B}'"
    ))
    .await;
    let error = store.token(CUSTOMER_B).await.unwrap_err();
    assert!(matches!(error, Error::Decrypt { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(CUSTOMER_B), "{message}");
    assert!(!message.contains(TOKEN_A) && !message.contains(&f.key.base64));
    // A's own row still decrypts.
    let token = store.token(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), TOKEN_A);
    f
}

async fn old_keys_decrypt_after_rotation_and_rekey_moves_everything(
    f: StoreFixture,
) -> StoreFixture {
    let store = f.open().await;
    let old_id = store.current_key_id().unwrap().to_owned();
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    store
        .put_token(CUSTOMER_B, &secret(TOKEN_B), None)
        .await
        .unwrap();
    store.close().await;

    // Rotate: a new current key, the old one moved to the old keys' folder.
    let old_dir = f.dir.path().join("old-keys");
    std::fs::create_dir(&old_dir).unwrap();
    std::fs::copy(&f.key.path, old_dir.join("2026-01.key")).unwrap();
    let new_key = write_key(f.dir.path(), "new.key");
    let store = f.open_with(&new_key.path, Some(&old_dir)).await.unwrap();
    let new_id = store.current_key_id().unwrap().to_owned();
    assert_ne!(old_id, new_id);
    for (waba, token) in [(CUSTOMER_A, TOKEN_A), (CUSTOMER_B, TOKEN_B)] {
        let read = store.token(waba).await.unwrap().unwrap();
        assert_eq!(
            read.expose_secret(),
            token,
            "an old ciphertext reads with the old key"
        );
    }
    store
        .put_token(CUSTOMER_C, &secret(TOKEN_C), None)
        .await
        .unwrap();
    let before = store.customer(CUSTOMER_A).await.unwrap().unwrap();
    let done = store.rekey().await.unwrap();
    assert_eq!(
        (done.changed, done.total),
        (2, 3),
        "C is under the new key already"
    );
    assert_eq!(
        store.customer(CUSTOMER_A).await.unwrap().unwrap(),
        before,
        "re-encryption is not a change of the customer"
    );
    store.close().await;

    // The old key gone: everything reads with the new key alone.
    let store = f.open_with(&new_key.path, None).await.unwrap();
    for (waba, token) in [
        (CUSTOMER_A, TOKEN_A),
        (CUSTOMER_B, TOKEN_B),
        (CUSTOMER_C, TOKEN_C),
    ] {
        let read = store.token(waba).await.unwrap().unwrap();
        assert_eq!(read.expose_secret(), token);
    }
    let again = store.rekey().await.unwrap();
    assert_eq!((again.changed, again.left), (0, 0), "nothing left to move");
    store.close().await;
    f
}

async fn without_its_key_a_token_is_an_error_not_a_leak(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let id = store.current_key_id().unwrap().to_owned();
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    store.close().await;
    let other = write_key(f.dir.path(), "other.key");
    let store = f.open_with(&other.path, None).await.unwrap();
    // The customer is readable; its token is not, and the error names the key by id.
    assert!(store.customer(CUSTOMER_A).await.unwrap().is_some());
    let error = store.token(CUSTOMER_A).await.unwrap_err();
    assert!(matches!(error, Error::UnknownKey { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&id) && message.contains("WABA_STORE_OLD_KEYS_DIR"),
        "{message}"
    );
    for secret in [TOKEN_A, &f.key.base64, &other.base64] {
        assert!(!message.contains(secret), "{message}");
    }
    // Rekey skips it, says so, and counts it as not moved: the old key is still needed.
    let done = store.rekey().await.unwrap();
    assert_eq!(done.unreadable, [CUSTOMER_A]);
    assert_eq!((done.changed, done.left), (0, 1));
    store.close().await;
    f
}

/// The SQLite file and its journals never hold a token in clear, nor the key.
#[tokio::test]
async fn the_sqlite_file_holds_no_token_in_clear() {
    let f = StoreFixture::new(Engine::Sqlite).await.unwrap();
    let store = f.open().await;
    let tokens: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "EAAGsecret-business-token-{i:04}-{:032x}",
                rand::random::<u128>()
            )
        })
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        let waba = format!("2020000000{i:05}");
        store.put_token(&waba, &secret(token), None).await.unwrap();
    }
    // Every file SQLite keeps: the database, its write-ahead log, its index.
    let search = |when: &str| {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = format!("{}{suffix}", f.sqlite_file().display());
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in tokens
                .iter()
                .map(|t| t.as_bytes())
                .chain([f.key.base64.as_bytes(), &f.key.bytes[..]])
            {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{when}: a secret in clear in {path}"
                );
            }
            all.extend(bytes);
        }
        // The search would find a token: the WABA ids beside them are found.
        let waba = b"202000000000000";
        assert!(
            all.windows(waba.len()).any(|w| w == waba),
            "{when}: the search finds what is there"
        );
    };
    search("written");
    // Everything moved from the log into the database file, deterministically (a close
    // checkpoints too, but on SQLite's own threads, after `close` returns).
    f.tamper("PRAGMA wal_checkpoint(TRUNCATE)").await;
    search("checkpointed");
    store.close().await;
}

/// Two replicas starting at once on a fresh PostgreSQL database both migrate safely.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_on_postgres_migrate_once() {
    let Some(f) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        f.open_with(&f.key.path, None),
        f.open_with(&f.key.path, None),
        f.open_with(&f.key.path, None)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    a.put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    let token = b.token(CUSTOMER_A).await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), TOKEN_A);
    assert!(c.customer(CUSTOMER_A).await.unwrap().is_some());
    for store in [a, b, c] {
        store.close().await;
    }
    f.finish().await;
}

#[tokio::test]
async fn a_sql_store_needs_a_good_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("store.db").display());
    let error = StoreConfig::parse(&db, None, None).unwrap_err();
    assert!(error.to_string().contains("WABA_STORE_KEY_FILE"), "{error}");
    assert!(
        StoreConfig::parse("memory", None, None).is_ok(),
        "memory needs none"
    );
    let secret_text = "c2VjcmV0LWJ1dC1zaG9ydA=="; // "secret-but-short"
    for (name, content) in [
        ("short.key", secret_text),
        ("text.key", "my-store-key-is-not-base64!"),
        ("empty.key", ""),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let config = StoreConfig::parse(&db, Some(path.clone()), None).unwrap();
        let error = Store::open(&config).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Key { .. }), "{message}");
        assert!(message.contains(name), "{message}");
        assert!(
            content.is_empty() || !message.contains(content),
            "{message}"
        );
        assert!(!message.contains("secret-but-short"), "{message}");
    }
    let missing = dir.path().join("missing.key");
    let config = StoreConfig::parse(&db, Some(missing), None).unwrap();
    assert!(matches!(Store::open(&config).await, Err(Error::Key { .. })));
    // A bad file among the old keys is refused too, by name.
    let good = write_key(dir.path(), "good.key");
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("broken.key"), secret_text).unwrap();
    let config = StoreConfig::parse(&db, Some(good.path.clone()), Some(old.clone())).unwrap();
    let message = Store::open(&config).await.unwrap_err().to_string();
    assert!(message.contains("broken.key"), "{message}");
    // The same key as current and old is fine; hidden files (a mounted secret's `..data`)
    // are skipped.
    std::fs::remove_file(old.join("broken.key")).unwrap();
    std::fs::copy(&good.path, old.join("same.key")).unwrap();
    std::fs::write(old.join(".hidden"), "not a key").unwrap();
    let config = StoreConfig::parse(&db, Some(good.path), Some(old)).unwrap();
    let store = Store::open(&config).await.unwrap();
    assert!(!format!("{store:?}").contains(&good.base64));
    store.close().await;
}

/// The memory store is what `Store::memory()` gives too, and needs no key.
#[tokio::test]
async fn memory_needs_no_key() {
    let store = Store::open(&StoreConfig::memory()).await.unwrap();
    assert_eq!(store.backend_name(), "memory");
    assert_eq!(store.current_key_id(), None);
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    assert_eq!(store.rekey().await.unwrap().changed, 0);
    assert_eq!(
        Store::memory().customer(CUSTOMER_A).await.unwrap(),
        None,
        "fresh"
    );
}

async fn a_token_an_onboarding_exchanged_starts_two_steps_in(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let kept = store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), Some("hand-off-1"))
        .await
        .unwrap();
    assert_eq!(
        kept.progress.done(),
        [OnboardingStep::ExchangeCode, OnboardingStep::KeepToken],
        "recorded in the same write as the token"
    );
    assert_eq!(kept.onboarding_request_id.as_deref(), Some("hand-off-1"));
    store
        .record_step_done(CUSTOMER_A, OnboardingStep::CheckToken)
        .await
        .unwrap();
    let again = store
        .put_token(CUSTOMER_A, &secret(TOKEN_B), Some("hand-off-2"))
        .await
        .unwrap();
    assert_eq!(
        again.progress.done(),
        [OnboardingStep::ExchangeCode, OnboardingStep::KeepToken]
    );
    assert_eq!(again.onboarding_request_id.as_deref(), Some("hand-off-2"));
    let by_hand = store
        .put_token(CUSTOMER_A, &secret(TOKEN_C), None)
        .await
        .unwrap();
    assert!(by_hand.progress.done().is_empty());
    assert_eq!(by_hand.onboarding_request_id, None);
    assert_eq!(store.customer(CUSTOMER_A).await.unwrap(), Some(by_hand));
    f
}

const HOURS_72: std::time::Duration = std::time::Duration::from_secs(72 * 3600);

async fn the_ledger_counts_attempts_in_their_window(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let empty = store.ledger_view(N1, "register", HOURS_72).await.unwrap();
    assert!(empty.attempts.is_empty() && empty.blocked_until.is_none());
    let (_, first) = store
        .ledger_spend(N1, "register", HOURS_72, |_| true)
        .await
        .unwrap();
    let (seen, second) = store
        .ledger_spend(N1, "register", HOURS_72, |v| v.attempts.len() == 1)
        .await
        .unwrap();
    assert!(first.is_some() && second.is_some());
    assert_eq!(
        seen.attempts.len(),
        2,
        "the new attempt is in the view it returns"
    );
    assert!(
        seen.attempts.windows(2).all(|w| w[0] <= w[1]),
        "oldest first"
    );
    let (refused, none) = store
        .ledger_spend(N1, "register", HOURS_72, |_| false)
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(refused.attempts.len(), 2, "a refusal counts nothing");
    // Per number and per limit.
    let other = store.ledger_view(N2, "register", HOURS_72).await.unwrap();
    let names = store
        .ledger_view(N1, "display_name", HOURS_72)
        .await
        .unwrap();
    assert!(other.attempts.is_empty() && names.attempts.is_empty());

    store.ledger_refund(&second.unwrap()).await.unwrap();
    assert_eq!(
        store
            .ledger_view(N1, "register", HOURS_72)
            .await
            .unwrap()
            .attempts
            .len(),
        1
    );
    store.ledger_block(N1, "register", HOURS_72).await.unwrap();
    store
        .ledger_block(N1, "register", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let blocked = store.ledger_view(N1, "register", HOURS_72).await.unwrap();
    let until = blocked.blocked_until.expect("Meta's block is kept");
    assert!(
        until - blocked.now > chrono::Duration::hours(71),
        "the later block stays"
    );
    // A window that ended now holds nothing.
    let (gone, _) = store
        .ledger_spend(N1, "register", std::time::Duration::ZERO, |_| false)
        .await
        .unwrap();
    assert!(gone.attempts.is_empty());
    f
}

async fn of_racing_spenders_the_ledger_lets_exactly_the_budget_through(
    f: StoreFixture,
) -> StoreFixture {
    let store = f.open().await;
    let spenders = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let (_, spent) = store
                .ledger_spend(N3, "register", HOURS_72, |v| v.attempts.len() < 10)
                .await
                .unwrap();
            spent.is_some()
        })
    });
    let mut through = 0;
    for spender in spenders.collect::<Vec<_>>() {
        through += usize::from(spender.await.unwrap());
    }
    assert_eq!(through, 10);
    let view = store.ledger_view(N3, "register", HOURS_72).await.unwrap();
    assert_eq!(view.attempts.len(), 10);
    f
}

async fn of_racing_claims_on_an_idempotency_key_exactly_one_wins(f: StoreFixture) -> StoreFixture {
    use waba_numbers::store::{Claim, ClaimId};
    let store = f.open().await;
    let lease = std::time::Duration::from_secs(15);
    let day = std::time::Duration::from_secs(24 * 3600);
    let claims = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .idem_claim(
                    "register",
                    "key-1",
                    &fp(b"request-a"),
                    &ClaimId::new(),
                    lease,
                    day,
                )
                .await
                .unwrap()
        })
    });
    let mut won = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        match claim.await.unwrap() {
            Claim::Won(id) => won.push(id),
            Claim::Held(record) => {
                assert!(record.lease_alive && record.outcome.is_none());
            }
        }
    }
    assert_eq!(won.len(), 1, "exactly one call sends the write");
    let claim = won.pop().unwrap();
    let held = store
        .idem_peek("register", "key-1", day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.fingerprint, fp(b"request-a"), "with the id of its key");
    assert_eq!(held.outcome_age, None);
    assert!(
        store
            .idem_renew("register", "key-1", &claim, lease)
            .await
            .unwrap()
    );
    // Per RPC: the same key of another RPC is another record.
    let other = store
        .idem_claim(
            "deregister",
            "key-1",
            &fp(b"x"),
            &ClaimId::new(),
            lease,
            day,
        )
        .await
        .unwrap();
    assert!(matches!(other, Claim::Won(_)));

    // A kept outcome is what later calls find.
    store
        .idem_finish("register", "key-1", &claim, r#"{"Ok":true}"#, false)
        .await
        .unwrap();
    assert!(
        !store
            .idem_renew("register", "key-1", &claim, lease)
            .await
            .unwrap()
    );
    match store
        .idem_claim("register", "key-1", &fp(b"request-a"), &claim, lease, day)
        .await
        .unwrap()
    {
        Claim::Held(record) => {
            assert_eq!(record.outcome.as_deref(), Some(r#"{"Ok":true}"#));
            assert!(!record.lease_alive);
            assert!(record.outcome_age.is_some(), "how long ago it was kept");
        }
        won => panic!("a kept outcome was replaced, even by its own claim: {won:?}"),
    }
    // A definite failure is replaced by the next call: a new attempt.
    let Claim::Won(second) = store
        .idem_claim("register", "key-2", &fp(b"b"), &ClaimId::new(), lease, day)
        .await
        .unwrap()
    else {
        panic!("a new key is free");
    };
    store
        .idem_finish("register", "key-2", &second, r#"{"Err":"no"}"#, true)
        .await
        .unwrap();
    let again = store
        .idem_claim("register", "key-2", &fp(b"b"), &ClaimId::new(), lease, day)
        .await
        .unwrap();
    assert!(matches!(again, Claim::Won(_)));
    // A lease not renewed in time: the record says its holder is gone.
    store
        .idem_claim(
            "register",
            "key-3",
            &fp(b"c"),
            &ClaimId::new(),
            std::time::Duration::ZERO,
            day,
        )
        .await
        .unwrap();
    let lapsed = store
        .idem_peek("register", "key-3", day)
        .await
        .unwrap()
        .unwrap();
    assert!(!lapsed.lease_alive && lapsed.outcome.is_none());
    f
}

fn tick<'a>(replica: &'a str, watching: Option<(&'a [String], &'a [i32])>) -> TickPlan<'a> {
    TickPlan {
        replica,
        shards: 64,
        ttl: Duration::from_secs(10),
        watching,
        interest: Duration::from_secs(60),
        tidy: true,
    }
}

/// Shard leases: the first replica takes all; a second makes the first give back half,
/// which the second then takes; a replica that leaves hands everything over; the owner
/// learns what others watch in its shards. One replica's stores have no leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_shards_and_learn_what_is_watched() {
    for engine in [Engine::Memory, Engine::Sqlite] {
        let f = StoreFixture::new(engine).await.unwrap();
        let store = f.open().await;
        assert_eq!(store.fleet_tick(tick("a", None)).await.unwrap(), None);
        assert_eq!(store.observations(&["waba:1".into()]).await.unwrap(), []);
        f.finish().await;
    }
    let Some(f) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    let store = f.open().await;
    let a = store.fleet_tick(tick("a", None)).await.unwrap().unwrap();
    assert_eq!((a.shards.len(), a.replicas), (64, 1));
    // b arrives: nothing is free yet.
    let b = store.fleet_tick(tick("b", None)).await.unwrap().unwrap();
    assert_eq!((b.shards.len(), b.replicas), (0, 2));
    // a keeps its fair share and gives back the rest, which b takes.
    let a = store.fleet_tick(tick("a", None)).await.unwrap().unwrap();
    assert_eq!(a.shards.len(), 32);
    // b says it watches a target of each of a's and its shards.
    let targets: Vec<String> = vec!["waba:on-a".into(), "waba:on-b".into()];
    let b = store
        .fleet_tick(tick("b", Some((&targets, &[a.shards[0] as i32, 63]))))
        .await
        .unwrap()
        .unwrap();
    let mut all: Vec<u32> = a.shards.iter().chain(&b.shards).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..64).collect::<Vec<_>>(),
        "every shard has one owner"
    );
    let owner_of_63 = if b.shards.contains(&63) { "b" } else { "a" };
    let a = store.fleet_tick(tick("a", None)).await.unwrap().unwrap();
    let expected_a: Vec<String> = if owner_of_63 == "a" {
        targets.clone()
    } else {
        vec!["waba:on-a".into()]
    };
    assert_eq!(a.watched, expected_a, "the owner learns what others watch");
    // a stops: b takes everything at its next tick.
    store.fleet_leave("a").await.unwrap();
    let b = store.fleet_tick(tick("b", None)).await.unwrap().unwrap();
    assert_eq!((b.shards.len(), b.replicas), (64, 1));
    assert_eq!(b.watched, targets);
    // Observations: versions rise, each told in the same transaction, and only kept
    // targets come back.
    let mut told = store.subscribe("test_observed").await.unwrap().unwrap();
    let payload = |version: i64| format!("v{version}");
    for (body, version) in [("{}", 1), ("[]", 2)] {
        let kept = store
            .put_observation("waba:on-a", body, "test_observed", &payload)
            .await
            .unwrap();
        assert_eq!(kept, Some(version));
        assert_eq!(
            told.next().await,
            waba_numbers::store::Heard::Payload(format!("v{version}"))
        );
    }
    assert_eq!(
        store
            .observation_versions(&["waba:on-a".into(), "waba:none".into()])
            .await
            .unwrap(),
        [("waba:on-a".to_owned(), 2)]
    );
    let kept = store
        .observations(&["waba:on-a".into(), "waba:none".into()])
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].version, kept[0].body.as_str()), (2, "[]"));
    store.close().await;
    f.finish().await;
}

/// Of replicas running the daily token check, one asks Meta about each token: a claim
/// holds for its window, a new token may be checked at once, nobody is not claimed.
async fn a_token_check_is_claimed_once_per_window(f: StoreFixture) -> StoreFixture {
    let store = f.open().await;
    let day = Duration::from_secs(24 * 3600);
    assert!(!store.claim_token_check(CUSTOMER_A, day).await.unwrap());
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_A), None)
        .await
        .unwrap();
    assert!(store.claim_token_check(CUSTOMER_A, day).await.unwrap());
    assert!(!store.claim_token_check(CUSTOMER_A, day).await.unwrap());
    // A zero window always claims (a check asked for by hand).
    assert!(
        store
            .claim_token_check(CUSTOMER_A, Duration::ZERO)
            .await
            .unwrap()
    );
    store
        .put_token(CUSTOMER_A, &secret(TOKEN_B), None)
        .await
        .unwrap();
    assert!(
        store.claim_token_check(CUSTOMER_A, day).await.unwrap(),
        "a new token is checked at the next run"
    );
    store.close().await;
    f
}

/// A fingerprint as a replica signs it: under the store's key `k1`.
fn fp(mac: &[u8]) -> waba_numbers::store::Fingerprint {
    waba_numbers::store::Fingerprint {
        key_id: Some("k1".into()),
        mac: mac.to_vec(),
    }
}

/// A claim made in the store whose reply was lost: its retry, as the same claim, wins it
/// again instead of waiting on itself; any other claim still finds it held.
async fn a_claim_retried_as_itself_finds_its_own_record(f: StoreFixture) -> StoreFixture {
    use waba_numbers::store::{Claim, ClaimId};
    let store = f.open().await;
    let lease = std::time::Duration::from_secs(15);
    let day = std::time::Duration::from_secs(24 * 3600);
    let ours = ClaimId::new();
    let claim = |claim: ClaimId| {
        let store = store.clone();
        async move {
            store
                .idem_claim("register", "lost", &fp(b"a"), &claim, lease, day)
                .await
                .unwrap()
        }
    };
    assert_eq!(claim(ours.clone()).await, Claim::Won(ours.clone()));
    // The reply of that one is lost: the caller tries again as the same claim.
    assert_eq!(claim(ours.clone()).await, Claim::Won(ours.clone()));
    match claim(ClaimId::new()).await {
        Claim::Held(record) => assert!(record.lease_alive && record.outcome.is_none()),
        won => panic!("another claim took a key held: {won:?}"),
    }
    assert!(
        store
            .idem_renew("register", "lost", &ours, lease)
            .await
            .unwrap()
    );
    f
}

/// A claim whose write was never sent is given up: the key is free for the next call.
/// Only the claim's own record, and only while it has no outcome.
async fn a_claim_given_up_frees_its_key(f: StoreFixture) -> StoreFixture {
    use waba_numbers::store::{Claim, ClaimId};
    let store = f.open().await;
    let lease = std::time::Duration::from_secs(15);
    let day = std::time::Duration::from_secs(24 * 3600);
    let (ours, other) = (ClaimId::new(), ClaimId::new());
    let claimed = store
        .idem_claim("register", "k", &fp(b"a"), &ours, lease, day)
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Won(ours.clone()));
    assert!(
        !store.idem_release("register", "k", &other).await.unwrap(),
        "not another claim's"
    );
    assert!(store.idem_release("register", "k", &ours).await.unwrap());
    assert_eq!(store.idem_peek("register", "k", day).await.unwrap(), None);
    assert!(
        !store.idem_release("register", "k", &ours).await.unwrap(),
        "once"
    );
    let next = store
        .idem_claim("register", "k", &fp(b"a"), &other, lease, day)
        .await
        .unwrap();
    assert_eq!(
        next,
        Claim::Won(other.clone()),
        "the next call claims the key"
    );
    store
        .idem_finish("register", "k", &other, r#"{"Ok":true}"#, false)
        .await
        .unwrap();
    assert!(
        !store.idem_release("register", "k", &other).await.unwrap(),
        "a kept outcome stays"
    );
    assert!(
        store
            .idem_peek("register", "k", day)
            .await
            .unwrap()
            .is_some()
    );
    f
}
