//! The customer RPCs on a SQLite store: the hand-off's secrets (the Embedded Signup
//! code and the app secret in the exchange URL, the business token in `debug_token`'s
//! URL and then on every call, the app token), the PIN of the number it registers, the
//! store key: in no log, answer, metric, nor in clear in the store's file; nor, when Meta
//! cannot be reached, in the errors that name its URL.

use super::{Running, Secrets, Seen, echo};
use crate::support::{
    APP_ID, APP_SECRET, CUSTOMER_A, CUSTOMER_B, CUSTOMER_C, Client, CustomersClient, NUMBER, TOKEN,
    VERSION, channel, fake_graph, free_port, get_status_within, number_json, ok, page, proof_for,
    register, with_token, write_key,
};
use serde_json::json;
use tonic::Code;
use waba_numbers::pb::{
    GetCustomerRequest, ListCustomersRequest, OnboardCustomerRequest, RegisterRequest,
    RemoveCustomerRequest, SetTwoStepPinRequest,
};
use wiremock::matchers::{any, body_string_contains, method, path, query_param};
use wiremock::{Mock, MockBuilder};

const SIGNUP_CODE: &str = "AQBsecret-signup-code-61f0";
const BUSINESS_TOKEN: &str = "EAAGsecret-business-token-d41d";
/// A code Meta refuses (already used), echoing it and the app secret.
const USED_CODE: &str = "AQBsecret-signup-code-used-9c2";
/// A second customer's hand-off, whose token `debug_token` refuses.
const SIGNUP_CODE_B: &str = "AQBsecret-signup-code-b-7d18";
const BUSINESS_TOKEN_B: &str = "EAAGsecret-business-token-b-2e90";
/// A code sent with a bad PIN: refused before any call.
const UNSENT_CODE: &str = "AQBsecret-signup-code-unsent-44a";
const CUSTOMER_NUMBER: &str = "201000000000011";
const PIN: &str = "246813";
/// The two-step PIN SetTwoStepPin sets.
const NEW_PIN: &str = "864209";

fn exchange(code: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/oauth/access_token")))
        .and(query_param("client_id", APP_ID))
        .and(query_param("client_secret", APP_SECRET))
        .and(query_param("code", code))
}

fn edge(verb: &str, node: &str) -> MockBuilder {
    Mock::given(method(verb)).and(path(format!("/{VERSION}/{node}")))
}

fn granted(wabas: &[&str]) -> serde_json::Value {
    json!({ "data": { "app_id": APP_ID, "is_valid": true, "granular_scopes": [
        { "scope": "whatsapp_business_management", "target_ids": wabas }
    ]}})
}

#[tokio::test]
async fn customer_rpcs_keep_every_secret_out_of_logs_answers_metrics_and_the_store_file() {
    let app_token = format!("{APP_ID}|{APP_SECRET}");
    let app_proof = proof_for(&app_token);
    let business_proof = proof_for(BUSINESS_TOKEN);
    // What a call with the business token carries, echoed back.
    let as_customer = |extra: &[&str]| {
        let mut carried = vec![BUSINESS_TOKEN, business_proof.as_str(), APP_SECRET];
        carried.extend_from_slice(extra);
        carried.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let refuse = |code: i64, carried: Vec<String>| {
        echo(
            code,
            &carried.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let graph = fake_graph([
        exchange(SIGNUP_CODE).respond_with(ok(json!({ "access_token": BUSINESS_TOKEN }))),
        exchange(SIGNUP_CODE_B).respond_with(ok(json!({ "access_token": BUSINESS_TOKEN_B }))),
        exchange(USED_CODE).respond_with(echo(100, &[USED_CODE, APP_SECRET])),
        with_token(edge("GET", "debug_token"), &app_token)
            .and(query_param("input_token", BUSINESS_TOKEN))
            .respond_with(ok(granted(&[CUSTOMER_A]))),
        with_token(edge("GET", "debug_token"), &app_token)
            .and(query_param("input_token", BUSINESS_TOKEN_B))
            .respond_with(echo(
                190,
                &[BUSINESS_TOKEN_B, &app_token, &app_proof, APP_SECRET],
            )),
        with_token(
            edge("POST", &format!("{CUSTOMER_A}/subscribed_apps")),
            BUSINESS_TOKEN,
        )
        .respond_with(ok(json!({ "success": true }))),
        with_token(
            edge("GET", &format!("{CUSTOMER_A}/phone_numbers")),
            BUSINESS_TOKEN,
        )
        .respond_with(page(&[number_json(CUSTOMER_NUMBER)])),
        edge("POST", &format!("{CUSTOMER_NUMBER}/register"))
            .respond_with(refuse(100, as_customer(&[PIN]))),
        edge("GET", CUSTOMER_NUMBER).respond_with(refuse(100, as_customer(&[]))),
        edge("POST", CUSTOMER_NUMBER)
            .and(body_string_contains(NEW_PIN))
            .respond_with(refuse(100, as_customer(&[NEW_PIN]))),
        edge("DELETE", &format!("{CUSTOMER_A}/subscribed_apps"))
            .respond_with(refuse(190, as_customer(&[]))),
        // Anything else, asked with the partner's token, refused the same way.
        Mock::given(any()).respond_with(echo(100, &[TOKEN, &proof_for(TOKEN), APP_SECRET])),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "store.key");
    let file = dir.path().join("store.db");
    let store = format!("sqlite:{}", file.display());
    let service = Running::start(
        &graph.uri(),
        &["--app-id", APP_ID],
        &[
            ("WABA_STORE", store.as_str()),
            ("WABA_STORE_KEY_FILE", key.path.to_str().unwrap()),
        ],
    )
    .await;
    let mut customers = CustomersClient::new(channel(service.grpc).await);
    let mut client = Client::new(channel(service.grpc).await);
    let mut seen = Seen::default();
    let onboarding = |code: &str, waba_id: &str, request_id: &str| OnboardCustomerRequest {
        code: code.into(),
        waba_id: waba_id.into(),
        request_id: request_id.into(),
        ..OnboardCustomerRequest::default()
    };

    let with_number = OnboardCustomerRequest {
        phone_number_id: CUSTOMER_NUMBER.into(),
        pin: PIN.into(),
        ..onboarding(SIGNUP_CODE, CUSTOMER_A, "hand-off-1")
    };
    // The register step fails, with Meta echoing the PIN and the business token.
    let onboarded = customers.onboard_customer(with_number).await;
    seen.answer("OnboardCustomer", onboarded);
    let used = customers
        .onboard_customer(onboarding(USED_CODE, CUSTOMER_A, "hand-off-2"))
        .await;
    assert!(used.is_err());
    seen.answer("OnboardCustomer with a used code", used);
    let refused = customers
        .onboard_customer(onboarding(SIGNUP_CODE_B, CUSTOMER_B, "hand-off-3"))
        .await;
    assert!(refused.is_err());
    seen.answer("OnboardCustomer refused by debug_token", refused);
    let bad_pin = OnboardCustomerRequest {
        phone_number_id: CUSTOMER_NUMBER.into(),
        pin: format!("{PIN}0"),
        ..onboarding(UNSENT_CODE, CUSTOMER_C, "hand-off-4")
    };
    let invalid = customers.onboard_customer(bad_pin).await;
    assert_eq!(invalid.as_ref().unwrap_err().code(), Code::InvalidArgument);
    seen.answer("OnboardCustomer with a bad PIN", invalid);

    let get = |waba_id: &str| GetCustomerRequest {
        waba_id: waba_id.into(),
    };
    let recorded = customers.get_customer(get(CUSTOMER_A)).await;
    assert!(recorded.is_ok(), "{recorded:?}");
    seen.answer("GetCustomer", recorded);
    let unknown = customers.get_customer(get(CUSTOMER_C)).await;
    assert_eq!(unknown.as_ref().unwrap_err().code(), Code::NotFound);
    seen.answer("GetCustomer of no customer", unknown);
    let list = |page_token: &str| ListCustomersRequest {
        page_size: 1,
        page_token: page_token.into(),
    };
    let listed = customers.list_customers(list("")).await;
    assert!(listed.is_ok(), "{listed:?}");
    seen.answer("ListCustomers", listed);
    let bad_page = customers.list_customers(list("not-a-page-token")).await;
    seen.answer("ListCustomers with a bad page token", bad_page);
    // A number of the customer's, read with its token.
    let read = client
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await;
    assert!(read.is_err());
    seen.answer("GetStatus with the business token", read);
    // Writes with a request_id leave an idempotency record (and Register a ledger entry)
    // in the store: the PINs must not be in it.
    let again = RegisterRequest {
        request_id: "register-1".into(),
        ..register(CUSTOMER_NUMBER, PIN)
    };
    let registered = client.register(again).await;
    assert!(registered.is_err());
    seen.answer("Register with a request_id", registered);
    let set_pin = SetTwoStepPinRequest {
        phone_number_id: CUSTOMER_NUMBER.into(),
        pin: NEW_PIN.into(),
        request_id: "set-pin-1".into(),
    };
    let pin_set = client.set_two_step_pin(set_pin).await;
    assert!(pin_set.is_err());
    seen.answer("SetTwoStepPin with a request_id", pin_set);

    let remove = || RemoveCustomerRequest {
        waba_id: CUSTOMER_A.into(),
    };
    let removed = customers
        .remove_customer(remove())
        .await
        .unwrap()
        .into_inner();
    let why = removed
        .unsubscribe_error
        .clone()
        .expect("Meta's refusal kept");
    seen.push("RemoveCustomer's unsubscribe_error message", &why.message);
    for detail in &why.details {
        seen.push("RemoveCustomer's unsubscribe_error details", &detail.value);
    }
    seen.push("RemoveCustomer", format!("{removed:?}"));
    let again = customers.remove_customer(remove()).await;
    assert_eq!(again.as_ref().unwrap_err().code(), Code::NotFound);
    seen.answer("RemoveCustomer of no customer", again);

    let metrics = service.metrics().await;
    let logs = service.stop().await;
    let mut secrets = Secrets::default();
    for (name, value) in [
        ("partner token", TOKEN),
        ("app secret", APP_SECRET),
        ("app token", app_token.as_str()),
        ("app token's appsecret_proof", app_proof.as_str()),
        ("Embedded Signup code", SIGNUP_CODE),
        ("used Embedded Signup code", USED_CODE),
        ("second Embedded Signup code", SIGNUP_CODE_B),
        ("unsent Embedded Signup code", UNSENT_CODE),
        ("business token", BUSINESS_TOKEN),
        ("business token's appsecret_proof", business_proof.as_str()),
        ("refused business token", BUSINESS_TOKEN_B),
        ("PIN", PIN),
        ("SetTwoStepPin's PIN", NEW_PIN),
        ("store key", key.base64.as_str()),
    ] {
        secrets.add(name, value);
    }
    secrets.add("app token in a URL", app_token.replace('|', "%7C"));
    secrets.add("partner token's appsecret_proof", proof_for(TOKEN));
    secrets.assert_none_in(&seen);
    secrets.assert_no_secret(&metrics, "the metrics");
    secrets.assert_no_secret(&logs, "the logs");
    let answered: Vec<u8> = seen.0.iter().flat_map(|(_, b)| b.clone()).collect();
    let answered = String::from_utf8_lossy(&answered);
    assert!(answered.contains("[redacted]"), "{answered}");

    // The store's file: no secret in clear, nor the key's own bytes.
    secrets.add("store key's bytes", key.bytes);
    for name in ["store.db", "store.db-wal", "store.db-shm"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        secrets.assert_no_secret(&bytes, name);
    }
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
}

/// reqwest's errors name the URL, and the exchange's URL holds the code and the app
/// secret (every URL holds an appsecret_proof): a Meta that cannot be reached must not
/// bring them into an answer or a log.
#[tokio::test]
async fn when_meta_cannot_be_reached_no_error_carries_a_secret() {
    let closed = free_port().await; // nothing listens there once it is dropped
    let service = Running::start(
        &format!("http://{closed}"),
        &["--app-id", APP_ID],
        &[("WABA_STORE", "memory")],
    )
    .await;
    let mut customers = CustomersClient::new(channel(service.grpc).await);
    let mut client = Client::new(channel(service.grpc).await);
    let mut seen = Seen::default();
    let hand_off = OnboardCustomerRequest {
        code: SIGNUP_CODE.into(),
        waba_id: CUSTOMER_A.into(),
        request_id: "hand-off-1".into(),
        ..OnboardCustomerRequest::default()
    };
    let onboarded = customers.onboard_customer(hand_off).await;
    assert!(onboarded.is_err());
    seen.answer("OnboardCustomer", onboarded);
    let read = client.get_status(get_status_within(NUMBER, 0)).await;
    assert!(read.is_err());
    seen.answer("GetStatus", read);
    let registered = client.register(register(NUMBER, PIN)).await;
    assert!(registered.is_err());
    seen.answer("Register", registered);

    let logs = service.stop().await;
    assert!(logs.contains("Graph API call failed"), "{logs}");
    let mut secrets = Secrets::default();
    secrets.add("partner token", TOKEN);
    secrets.add("partner token's appsecret_proof", proof_for(TOKEN));
    secrets.add("app secret", APP_SECRET);
    secrets.add("Embedded Signup code", SIGNUP_CODE);
    secrets.add("PIN", PIN);
    secrets.assert_none_in(&seen);
    secrets.assert_no_secret(&logs, "the logs");
}
