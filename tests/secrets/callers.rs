//! API keys: a callers file with two callers, calls with the right keys, a wrong key, a
//! near miss and a caller lacking the scope. No key (nor its digest) in a log, an
//! answer or the metrics.

use super::{Running, Secrets, Seen, echo};
use crate::support::{
    APP_SECRET, Client, CustomersClient, NUMBER, TOKEN, VERSION, WABA, by_key, channel, fake_graph,
    get_status, key_digest, list_numbers, number_json, numbers, ok, proof_for, read, register,
    with_token,
};
use tonic::Code;
use waba_numbers::pb::{ListCustomersRequest, SetTwoStepPinRequest};
use wiremock::Mock;
use wiremock::matchers::{any, method, path};

/// `ops`: every scope.
const OPS: &str = "ops-api-key-5f0c7e3a9b21";
/// `reader`: read only.
const READER: &str = "reader-api-key-8d4412c0e6f7";
const WRONG: &str = "wrong-api-key-1a2b3c4d5e6f";
const PIN: &str = "975313";

#[tokio::test]
async fn api_keys_never_reach_logs_answers_or_metrics() {
    let proof = proof_for(TOKEN);
    let graph = fake_graph([
        with_token(read(NUMBER), TOKEN).respond_with(ok(number_json(NUMBER))),
        Mock::given(method("POST"))
            .and(path(format!("/{VERSION}/{NUMBER}/register")))
            .respond_with(echo(100, &[TOKEN, &proof, APP_SECRET, PIN])),
        Mock::given(any()).respond_with(echo(100, &[TOKEN, &proof, APP_SECRET])),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callers.toml");
    let callers = format!(
        "[[caller]]\nname = \"ops\"\napi_key_sha256 = \"{}\"\n\
         scopes = [\"read\", \"watch\", \"write\", \"onboard\"]\n\n\
         [[caller]]\nname = \"reader\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n",
        key_digest(OPS),
        key_digest(READER)
    );
    std::fs::write(&file, callers).unwrap();
    let service = Running::start(
        &graph.uri(),
        &[],
        &[("WABA_CALLERS_FILE", file.to_str().unwrap())],
    )
    .await;
    let mut client = Client::new(channel(service.grpc).await);
    let mut customers = CustomersClient::new(channel(service.grpc).await);
    let mut seen = Seen::default();

    for key in [OPS, READER] {
        let read = client.get_status(by_key(key, get_status(NUMBER))).await;
        assert!(read.is_ok(), "{read:?}");
        seen.answer("GetStatus with a right key", read);
    }
    let near_miss = format!("{}x", &OPS[..OPS.len() - 1]);
    for key in [WRONG, near_miss.as_str(), &OPS[..OPS.len() - 1]] {
        let refused = client.get_status(by_key(key, get_status(NUMBER))).await;
        assert_eq!(refused.as_ref().unwrap_err().code(), Code::Unauthenticated);
        seen.answer("GetStatus with a wrong key", refused);
        let refused = client
            .list_numbers(by_key(key, list_numbers(WABA, 0, "")))
            .await;
        assert_eq!(refused.as_ref().unwrap_err().code(), Code::Unauthenticated);
        seen.answer("ListNumbers with a wrong key", refused);
    }
    let anonymous = client.get_status(get_status(NUMBER)).await;
    assert_eq!(
        anonymous.as_ref().unwrap_err().code(),
        Code::Unauthenticated
    );
    seen.answer("GetStatus without a key", anonymous);

    // The reader lacks the scopes: refused before Meta is asked, the PIN not echoed.
    let denied = client.register(by_key(READER, register(NUMBER, PIN))).await;
    assert_eq!(denied.as_ref().unwrap_err().code(), Code::PermissionDenied);
    seen.answer("Register without the write scope", denied);
    let set_pin = SetTwoStepPinRequest {
        phone_number_id: NUMBER.into(),
        pin: PIN.into(),
        request_id: String::new(),
    };
    let denied = client.set_two_step_pin(by_key(READER, set_pin)).await;
    assert_eq!(denied.as_ref().unwrap_err().code(), Code::PermissionDenied);
    seen.answer("SetTwoStepPin without the write scope", denied);
    let denied = client
        .watch_status(by_key(READER, numbers(&[NUMBER])))
        .await;
    assert_eq!(denied.as_ref().unwrap_err().code(), Code::PermissionDenied);
    seen.answer(
        "WatchStatus without the watch scope",
        denied.map(|r| r.map(|_| ())),
    );
    let listed = customers
        .list_customers(by_key(READER, ListCustomersRequest::default()))
        .await;
    seen.answer("ListCustomers without a store", listed);
    // The caller with the scope reaches Meta, which echoes the PIN back.
    let refused = client.register(by_key(OPS, register(NUMBER, PIN))).await;
    assert!(refused.is_err());
    seen.answer("Register with the write scope", refused);

    let metrics = service.metrics().await;
    assert!(metrics.contains("ops"), "the caller is named: {metrics}");
    let logs = service.stop().await;
    let mut secrets = Secrets::default();
    for (name, value) in [
        ("ops's API key", OPS),
        ("reader's API key", READER),
        ("wrong API key", WRONG),
        ("near-miss API key", near_miss.as_str()),
        ("truncated API key", &OPS[..OPS.len() - 1]),
        ("ops's API key's digest", &key_digest(OPS)),
        ("reader's API key's digest", &key_digest(READER)),
        ("PIN", PIN),
        ("partner token", TOKEN),
        ("partner token's appsecret_proof", &proof),
        ("app secret", APP_SECRET),
    ] {
        secrets.add(name, value);
    }
    secrets.assert_none_in(&seen);
    secrets.assert_no_secret(&metrics, "the metrics");
    secrets.assert_no_secret(&logs, "the logs");
}
