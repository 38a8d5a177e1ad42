//! The Graph calls of Embedded Signup's hand-off, against a fake Graph API: the exact
//! requests (which token, which proof, nothing but the parameters on the code exchange)
//! and that no secret survives in what a failure says.

use crate::support::{
    APP_SECRET, FBTRACE, VERSION, WABA, fake_graph, graph_error_body, graph_settings, ok, proof_for,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use waba_numbers::graph::{Error, GraphClient};
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const APP_ID: &str = "1234567890123456";
const CODE: &str = "es-code-0123456789abcdef";
const BUSINESS_TOKEN: &str = "EAAB-business-token-of-the-customer";

async fn client(graph: &MockServer, app_id: Option<&str>) -> GraphClient {
    let mut settings = graph_settings(&graph.uri());
    settings.app_id = app_id.map(str::to_owned);
    GraphClient::new(settings).await.unwrap()
}

fn app_token() -> String {
    format!("{APP_ID}|{APP_SECRET}")
}

/// The exchange carries no token and no proof: only its parameters.
fn bare(request: &Request) -> bool {
    !request.headers.contains_key("authorization")
        && !request
            .url
            .query_pairs()
            .any(|(k, _)| k == "appsecret_proof")
}

#[tokio::test]
async fn the_code_is_exchanged_with_the_apps_credentials_and_nothing_else() {
    let graph = fake_graph([Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/oauth/access_token")))
        .and(query_param("client_id", APP_ID))
        .and(query_param("client_secret", APP_SECRET))
        .and(query_param("code", CODE))
        .and(bare)
        .respond_with(ok(
            json!({ "access_token": BUSINESS_TOKEN, "token_type": "bearer" }),
        ))
        .expect(1)])
    .await;
    let graph_client = client(&graph, Some(APP_ID)).await;
    let token = graph_client
        .exchange_code(&SecretString::from(CODE), None)
        .await
        .unwrap();
    assert_eq!(token.expose_secret(), BUSINESS_TOKEN);
}

#[tokio::test]
async fn without_an_app_id_nothing_is_sent() {
    let graph = crate::support::graph_never_called().await;
    let graph_client = client(&graph, None).await;
    let err = graph_client
        .exchange_code(&SecretString::from(CODE), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AppCredentialsMissing), "{err:?}");
    assert!(err.was_not_sent());
}

#[tokio::test]
async fn a_refused_exchange_is_sent_once_and_says_no_secret() {
    // A careless answer echoing the code and the secret.
    let body = graph_error_body(
        100,
        Some(36009),
        &format!("code {CODE} was used; client_secret={APP_SECRET}"),
    );
    let graph = fake_graph([Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(body))
        .expect(1)])
    .await;
    let graph_client = client(&graph, Some(APP_ID)).await;
    let err = graph_client
        .exchange_code(&SecretString::from(CODE), None)
        .await
        .unwrap_err();
    let said = format!("{err} {err:?}");
    assert!(!said.contains(CODE) && !said.contains(APP_SECRET), "{said}");
    assert_eq!(err.graph().unwrap().fbtrace_id.as_deref(), Some(FBTRACE));
}

#[tokio::test]
async fn debug_token_asks_with_the_app_token_and_reads_what_the_token_reaches() {
    let graph = fake_graph([Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/debug_token")))
        .and(query_param("input_token", BUSINESS_TOKEN))
        .and(header("authorization", format!("Bearer {}", app_token())))
        .and(query_param("appsecret_proof", proof_for(&app_token())))
        .respond_with(ok(json!({ "data": {
            "app_id": APP_ID, "type": "SYSTEM_USER", "is_valid": true,
            "expires_at": 0, "data_access_expires_at": 1_900_000_000,
            "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
            "granular_scopes": [
                { "scope": "whatsapp_business_management", "target_ids": [WABA] },
                { "scope": "whatsapp_business_messaging", "target_ids": [WABA] },
                { "scope": "business_management", "target_ids": ["104996122399160"] }
            ],
            "user_id": "1000"
        }})))
        .expect(1)])
    .await;
    let info = client(&graph, Some(APP_ID))
        .await
        .debug_token(&SecretString::from(BUSINESS_TOKEN), None)
        .await
        .unwrap();
    assert!(info.is_valid);
    assert_eq!(info.expires_at, None, "0 is never");
    assert_eq!(info.managed_wabas, [WABA]);
    assert_eq!(info.businesses, ["104996122399160"]);
}

#[tokio::test]
async fn subscriptions_carry_the_customers_token_and_its_own_proof() {
    let customer = |verb: &str| {
        Mock::given(method(verb))
            .and(path(format!("/{VERSION}/{WABA}/subscribed_apps")))
            .and(header("authorization", format!("Bearer {BUSINESS_TOKEN}")))
            .and(query_param("appsecret_proof", proof_for(BUSINESS_TOKEN)))
            .respond_with(ok(json!({ "success": true })))
            .expect(1)
    };
    let graph = fake_graph([customer("POST"), customer("DELETE")]).await;
    let graph_client = client(&graph, Some(APP_ID)).await;
    let token = SecretString::from(BUSINESS_TOKEN);
    assert!(
        graph_client
            .subscribe_app(WABA, &token, None)
            .await
            .unwrap()
    );
    assert!(
        graph_client
            .unsubscribe_app(WABA, &token, None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_dead_customer_token_is_not_retried_with_the_partners() {
    let graph = fake_graph([Mock::given(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error_body(
            190,
            Some(460),
            "Error validating access token",
        )))
        .expect(1)])
    .await;
    let graph_client = client(&graph, Some(APP_ID)).await;
    let err = graph_client
        .subscribe_app(WABA, &SecretString::from(BUSINESS_TOKEN), None)
        .await
        .unwrap_err();
    assert_eq!(err.graph().unwrap().code, 190);
}

/// The service's Graph client and the sandbox are two independent readings of Meta's
/// contract: they must agree on the whole hand-off.
#[tokio::test]
async fn the_hand_off_works_against_the_sandbox() {
    use waba_numbers::sandbox::{self, SandboxOptions};
    let url = sandbox::spawn(SandboxOptions {
        app_secret: Some(APP_SECRET.into()),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let mut settings = graph_settings(&url);
    settings.app_id = Some(sandbox::SANDBOX_APP_ID.into());
    let graph_client = GraphClient::new(settings).await.unwrap();

    let code = SecretString::from("es-acme");
    let token = graph_client.exchange_code(&code, None).await.unwrap();
    assert_eq!(token.expose_secret(), sandbox::business_token("es-acme"));
    let again = graph_client.exchange_code(&code, None).await.unwrap_err();
    assert_eq!(again.graph().unwrap().subcode, Some(sandbox::CODE_USED));

    let info = graph_client.debug_token(&token, None).await.unwrap();
    let waba = sandbox::customer_waba_id("es-acme").unwrap();
    assert!(info.is_valid);
    assert_eq!(info.managed_wabas, std::slice::from_ref(&waba));
    assert_eq!(
        info.businesses,
        [sandbox::customer_business_id("es-acme").unwrap()]
    );
    assert!(
        graph_client
            .subscribe_app(&waba, &token, None)
            .await
            .unwrap()
    );
    // The customer's token reaches its own WABA only.
    let elsewhere = graph_client
        .subscribe_app(WABA, &token, None)
        .await
        .unwrap_err();
    assert_eq!(elsewhere.graph().unwrap().code, 200);
    assert!(
        graph_client
            .unsubscribe_app(&waba, &token, None)
            .await
            .unwrap()
    );
}
