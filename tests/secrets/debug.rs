//! `Debug` of what holds secrets, as a careless `tracing::debug!(?settings)` would show
//! it: the settings built from flags and secrets, with a callers file and a store; the
//! callers and each caller; the open store; a customer's credential.

use super::Secrets;
use crate::support::{APP_ID, APP_SECRET, TOKEN, write_key};
use clap::Parser;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use waba_numbers::callers::Callers;
use waba_numbers::config::{Cli, Secrets as EnvSecrets};
use waba_numbers::graph::Credential;
use waba_numbers::store::{Store, StoreConfig};

const KEY: &str = "debug-api-key-4e1f0a77";
const VERIFY_TOKEN: &str = "verify-token-of-the-webhook-91aa";
const STORE_PASSWORD: &str = "store-password-0d3c";
const BUSINESS_TOKEN: &str = "EAAGbusiness-token-for-debug-6a0b";

fn sha(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[tokio::test]
async fn settings_callers_store_and_credentials_show_no_secret_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    let callers_file = dir.path().join("callers.toml");
    std::fs::write(
        &callers_file,
        format!(
            "[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n\n\
             [[caller]]\nname = \"mesh\"\ntls_san = \"spiffe://mesh/ops\"\nscopes = [\"read\"]\n",
            sha(KEY)
        ),
    )
    .unwrap();
    let key = write_key(dir.path(), "store.key");
    let mut secrets = Secrets::default();
    secrets.add("partner token", TOKEN);
    secrets.add("app secret", APP_SECRET);
    secrets.add("webhook verify token", VERIFY_TOKEN);
    secrets.add("store password", STORE_PASSWORD);
    secrets.add("store key", &key.base64);
    secrets.add("API key", KEY);
    secrets.add("API key's digest", sha(KEY));
    secrets.add("business token", BUSINESS_TOKEN);

    // The settings as the binary builds them: flags, then the environment's secrets.
    let cli = Cli::try_parse_from([
        "waba-numbers",
        "--app-id",
        APP_ID,
        "--callers-file",
        callers_file.to_str().unwrap(),
    ])
    .unwrap();
    let env = EnvSecrets {
        access_token: Some(TOKEN.into()),
        app_secret: Some(APP_SECRET.into()),
        webhook_verify_token: Some(VERIFY_TOKEN.into()),
        store: Some(format!("postgres://app:{STORE_PASSWORD}@db/waba").into()),
        store_key_file: Some(key.path.clone()),
        ..EnvSecrets::default()
    };
    let settings = cli.serve.settings(&env).unwrap();
    assert!(settings.callers_file.is_some() && settings.store.is_some());
    secrets.assert_no_secret(format!("{settings:?}"), "Settings' Debug");
    secrets.assert_no_secret(format!("{settings:#?}"), "Settings' pretty Debug");
    secrets.assert_no_secret(format!("{cli:?} {env:?}"), "the Cli's and Secrets' Debug");

    let callers = Callers::load(&callers_file).unwrap();
    let current = callers.current();
    let caller = current.by_key(KEY).expect("the key names ops");
    let debug = format!("{callers:?} {current:?} {caller:?} {caller:#?}");
    assert!(debug.contains("ops") && debug.contains("mesh"), "{debug}");
    secrets.assert_no_secret(&debug, "the callers' Debug");

    let sqlite = format!("sqlite:{}", dir.path().join("store.db").display());
    let config = StoreConfig::parse(&sqlite, Some(key.path.clone()), None).unwrap();
    let store = Store::open(&config).await.unwrap();
    secrets.assert_no_secret(format!("{config:?} {store:?}"), "the store's Debug");

    let credential = Credential::Business(Arc::new(BUSINESS_TOKEN.into()));
    secrets.assert_no_secret(format!("{credential:?}"), "a Credential's Debug");
}
