//! The real binary, as operators run it: what it logs and answers must never carry the
//! access token, app secret, appsecret_proof, a PIN or a verification code; startup and
//! SIGTERM behave.

use crate::support::{
    APP_ID, APP_SECRET, CUSTOMER_A, Client, CustomersClient, NUMBER, TOKEN, VERSION, binary,
    channel, fake_graph, free_port, get_status, graph_error_body, number_json, ok, proof_for, read,
    received, register, start_binary, start_binary_with, start_binary_with_env, terminate,
    write_key,
};
use serde_json::json;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;
use waba_numbers::pb::{
    GetCustomerRequest, OnboardCustomerRequest, SetTwoStepPinRequest, VerifyCodeRequest,
};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PIN: &str = "975310";
/// The two-step PIN SetTwoStepPin sets, and the code VerifyCode checks.
const NEW_PIN: &str = "864201";
const CODE: &str = "531642";

#[tokio::test]
async fn secrets_never_reach_logs_or_error_messages() {
    let proof = proof_for(TOKEN);
    let bearer = format!("Bearer {TOKEN}");
    // A careless upstream that echoes credentials back must not carry them any further.
    let echo = |secret: &str| {
        let mut echo = graph_error_body(133005, None, &format!("{secret} wrong for token {TOKEN}"));
        echo["error"]["error_data"] =
            json!({ "details": format!("proof {proof}, secret {APP_SECRET}") });
        ResponseTemplate::new(400).set_body_json(echo)
    };
    let graph = fake_graph([
        read(NUMBER)
            .and(header("authorization", bearer.as_str()))
            .respond_with(ok(number_json(NUMBER))),
        Mock::given(method("POST"))
            .and(path(format!("/{VERSION}/{NUMBER}/register")))
            .respond_with(echo(PIN)),
        Mock::given(method("POST"))
            .and(path(format!("/{VERSION}/{NUMBER}")))
            .respond_with(echo(NEW_PIN)),
        Mock::given(method("POST"))
            .and(path(format!("/{VERSION}/{NUMBER}/verify_code")))
            .respond_with(echo(CODE)),
    ])
    .await;

    let (child, addr) = start_binary(&graph.uri()).await;
    let mut client = Client::new(channel(addr).await);
    client.get_status(get_status(NUMBER)).await.unwrap();
    let err = client.register(register(NUMBER, PIN)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let bad_pin = register(NUMBER, &format!("{PIN}9"));
    let invalid = client.register(bad_pin).await.unwrap_err();
    let set_pin = SetTwoStepPinRequest {
        phone_number_id: NUMBER.into(),
        pin: NEW_PIN.into(),
        request_id: String::new(),
    };
    let pin_err = client.set_two_step_pin(set_pin).await.unwrap_err();
    let verify = VerifyCodeRequest {
        phone_number_id: NUMBER.into(),
        code: CODE.into(),
    };
    let code_err = client.verify_code(verify).await.unwrap_err();
    let bad_code = VerifyCodeRequest {
        phone_number_id: NUMBER.into(),
        code: format!("{CODE}7"),
    };
    let invalid_code = client.verify_code(bad_code).await.unwrap_err();

    let (_, logs) = terminate(child).await;
    assert!(
        logs.contains("Graph API call"),
        "debug logs were captured:\n{logs}"
    );
    let info = err.get_details_error_info().unwrap();
    let answered = [&err, &invalid, &pin_err, &code_err, &invalid_code]
        .map(|e| format!("{} {:?}", e.message(), e.get_details_error_info()))
        .join(" ");
    assert!(info.metadata.contains_key("graph_code"));
    for secret in [TOKEN, APP_SECRET, proof.as_str(), PIN, NEW_PIN, CODE] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        assert!(
            !answered.contains(secret),
            "{secret} in an answer: {answered}"
        );
    }
    // Redaction keeps what is not secret.
    assert!(answered.contains("[redacted]"), "{answered}");
}

/// The hand-off's secrets: the code (in the exchange URL, with the app secret), the
/// business token (in `debug_token`'s URL, then on every call), the store key.
#[tokio::test]
async fn onboarding_secrets_never_reach_logs_answers_or_the_store_file() {
    const SIGNUP_CODE: &str = "AQBsecret-signup-code-61f0";
    const USED_CODE: &str = "AQBsecret-signup-code-used-9c2";
    const BUSINESS_TOKEN: &str = "EAAGsecret-business-token-d41d";
    let app_token = format!("{APP_ID}|{APP_SECRET}");
    let graph = fake_graph([
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/oauth/access_token")))
            .and(query_param("code", SIGNUP_CODE))
            .respond_with(ok(json!({ "access_token": BUSINESS_TOKEN }))),
        // A careless refusal echoing the code and the app secret.
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/oauth/access_token")))
            .respond_with(ResponseTemplate::new(400).set_body_json(graph_error_body(
                100,
                Some(36009),
                &format!("code {USED_CODE} was used (client_secret={APP_SECRET})"),
            ))),
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/debug_token")))
            .respond_with(ok(json!({ "data": { "is_valid": true, "granular_scopes": [
                { "scope": "whatsapp_business_management", "target_ids": [CUSTOMER_A] }
            ]}}))),
        Mock::given(method("POST"))
            .and(path(format!("/{VERSION}/{CUSTOMER_A}/subscribed_apps")))
            .respond_with(ok(json!({ "success": true }))),
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/{CUSTOMER_A}/phone_numbers")))
            .respond_with(ok(json!({ "data": [number_json(NUMBER)] }))),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "store.key");
    let file = dir.path().join("store.db");
    let store = format!("sqlite:{}", file.display());
    let (child, addr) = start_binary_with_env(
        &graph.uri(),
        &["--app-id", APP_ID],
        &[
            ("WABA_STORE", store.as_str()),
            ("WABA_STORE_KEY_FILE", key.path.to_str().unwrap()),
        ],
    )
    .await;
    let mut customers = CustomersClient::new(channel(addr).await);
    let onboarding = |code: &str, request_id: &str| OnboardCustomerRequest {
        code: code.into(),
        waba_id: CUSTOMER_A.into(),
        request_id: request_id.into(),
        ..OnboardCustomerRequest::default()
    };
    let customer = customers
        .onboard_customer(onboarding(SIGNUP_CODE, "hand-off-1"))
        .await
        .unwrap()
        .into_inner();
    let refused = customers
        .onboard_customer(onboarding(USED_CODE, "hand-off-2"))
        .await
        .unwrap_err();
    let recorded = customers
        .get_customer(GetCustomerRequest {
            waba_id: CUSTOMER_A.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, logs) = terminate(child).await;
    assert!(
        logs.contains("Graph API call"),
        "debug logs were captured:\n{logs}"
    );
    let answered = format!(
        "{customer:?} {} {:?} {recorded:?}",
        refused.message(),
        refused.get_details_error_info()
    );
    assert!(answered.contains("[redacted]"), "{answered}");
    let stored = std::fs::read(&file).unwrap();
    let wal = std::fs::read(dir.path().join("store.db-wal")).unwrap_or_default();
    for secret in [
        SIGNUP_CODE,
        USED_CODE,
        BUSINESS_TOKEN,
        APP_SECRET,
        app_token.as_str(),
        key.base64.as_str(),
        &proof_for(BUSINESS_TOKEN),
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        assert!(
            !answered.contains(secret),
            "{secret} in an answer: {answered}"
        );
        let found = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(
            !found(&stored) && !found(&wal),
            "{secret} in the store file"
        );
    }
}

#[tokio::test]
async fn without_a_token_it_exits_naming_the_variables() {
    let output = binary().output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["WABA_ACCESS_TOKEN", "WABA_ACCESS_TOKEN_FILE", "--sandbox"] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_call_finish_then_exits_cleanly() {
    let slow = Mock::given(method("GET"))
        .respond_with(ok(number_json(NUMBER)).set_delay(Duration::from_millis(700)));
    let graph = fake_graph([slow]).await;
    let (child, addr) = start_binary(&graph.uri()).await;
    let mut client = Client::new(channel(addr).await);
    let call = tokio::spawn(async move { client.get_status(get_status(NUMBER)).await });
    tokio::time::sleep(Duration::from_millis(200)).await; // the call is at the fake Graph API
    let (clean_exit, logs) = terminate(child).await;
    assert_eq!(call.await.unwrap().unwrap().into_inner().id, NUMBER);
    assert!(clean_exit, "exit status not 0:\n{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_metas_fbtrace_id() {
    let mut error = graph_error_body(100, Some(33), "Object does not exist");
    error["error"]["fbtrace_id"] = "TraceFromMeta42".into();
    let not_found =
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(400).set_body_json(error));
    let graph = fake_graph([not_found]).await;
    let (child, addr) = start_binary_with(&graph.uri(), &["--log-format", "json"]).await;
    let mut client = Client::new(channel(addr).await);
    let mut request = tonic::Request::new(get_status(NUMBER));
    request
        .metadata_mut()
        .insert("x-request-id", "req-7f3a".parse().unwrap());
    assert_eq!(
        client.get_status(request).await.unwrap_err().code(),
        Code::NotFound
    );

    let (_, logs) = terminate(child).await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let upstream = lines
        .iter()
        .find(|l| l["fields"]["message"] == "Graph API error")
        .unwrap_or_else(|| panic!("no Graph API error line in:\n{logs}"));
    assert_eq!(upstream["fields"]["fbtrace_id"], "TraceFromMeta42");
    assert_eq!(upstream["span"]["request_id"], "req-7f3a");
    assert_eq!(
        upstream["span"]["method"],
        "/whatsapp.phonenumbers.v1.PhoneNumberService/GetStatus"
    );
    for secret in [TOKEN, APP_SECRET, proof_for(TOKEN).as_str()] {
        assert!(!logs.contains(secret), "{secret} in the JSON logs");
    }
}

#[tokio::test]
async fn sandbox_graph_alone_delivers_signed_webhooks() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(wiremock::matchers::header_exists("x-hub-signature-256"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let listen = free_port().await.to_string();
    let hook = format!("{}/hook", receiver.uri());
    let child = binary()
        .args(["sandbox-graph", "--listen", &listen, "--webhook-url", &hook])
        .env("WABA_APP_SECRET", APP_SECRET)
        .spawn()
        .unwrap();
    // The demo numbers change every 4 s, and some changes are announced.
    let waited = tokio::time::timeout(Duration::from_secs(30), received(&receiver, 1)).await;
    let (_, logs) = terminate(child).await;
    waited.unwrap_or_else(|_| panic!("no webhook within 30 s; logs:\n{logs}"));
    assert!(!logs.contains("panicked"), "{logs}");
}
