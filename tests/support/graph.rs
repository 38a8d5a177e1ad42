//! The fake Graph API (wiremock): what Meta answers, as Meta spells it, and the mocks
//! that match Meta's endpoints.

use super::ids::{NUMBER, WABA};
use super::{APP_SECRET, VERSION};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;
use waba_numbers::graph::appsecret_proof;
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

/// The fbtrace_id in every error the fake Graph API answers.
pub const FBTRACE: &str = "AbCdEfGhIjK";

/// The exact field list Meta must receive on every phone-number read.
pub const FIELDS: &str = "id,display_phone_number,verified_name,name_status,new_name_status,\
new_display_name,code_verification_status,quality_rating,status,platform_type,throughput,\
messaging_limit_tier,whatsapp_business_manager_messaging_limit,account_mode,\
is_official_business_account,is_pin_enabled,last_onboarded_time,is_preverified_number,is_on_biz_app";

/// A fake Graph API with `mocks` mounted in order: where several match, the first one
/// not used up answers. Dropping it fails the test if a mock's `expect` was not met.
pub async fn fake_graph(mocks: impl IntoIterator<Item = Mock>) -> MockServer {
    let graph = MockServer::start().await;
    for mock in mocks {
        mock.mount(&graph).await;
    }
    graph
}

/// A fake Graph API that must not be called: it answers any request with a 500, and
/// fails the test when it drops if it had one.
pub async fn graph_never_called() -> MockServer {
    fake_graph([Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)])
    .await
}

/// How many requests `server` has had so far.
pub async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// Resolves once `server` has had `n` requests. No time limit of its own: wrap it in one.
pub async fn received(server: &MockServer, n: usize) {
    while calls(server).await < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 10 s, real time) until the fake Graph API has had `n` requests.
pub async fn requests(graph: &MockServer, n: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(10), received(graph, n)).await;
    waited.expect("too few upstream requests within 10 s");
}

/// A GET of the node `id` (a phone number), whatever its query.
pub fn read(id: &str) -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/{VERSION}/{id}")))
}

/// A GET of `WABA`'s phone numbers, whatever its query.
pub fn list() -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/{VERSION}/{WABA}/phone_numbers")))
}

/// A POST of a Graph batch, whatever its body.
pub fn batch() -> MockBuilder {
    Mock::given(method("POST")).and(path(format!("/{VERSION}/")))
}

/// A POST to the number `id`'s register edge, whatever its body.
pub fn register_call(id: &str) -> MockBuilder {
    Mock::given(method("POST")).and(path(format!("/{VERSION}/{id}/register")))
}

/// `mock`, matching only requests that carry `token` as Meta requires: as the bearer
/// token, and with its appsecret_proof.
pub fn with_token(mock: MockBuilder, token: &str) -> MockBuilder {
    mock.and(query_param("appsecret_proof", proof_for(token)))
        .and(header("authorization", format!("Bearer {token}")))
}

/// A GET of `NUMBER` carrying everything Meta requires: the exact field list, `token`
/// as the bearer token, and its appsecret_proof.
pub fn number_read(token: &str) -> MockBuilder {
    with_token(read(NUMBER).and(query_param("fields", FIELDS)), token)
}

/// The appsecret_proof Meta expects with `token`.
pub fn proof_for(token: &str) -> String {
    appsecret_proof(&SecretString::from(APP_SECRET), &SecretString::from(token))
}

/// A 200 answer with `body` as JSON.
pub fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// One page of a WABA's phone numbers, the last one (no paging).
pub fn page(numbers: &[Value]) -> ResponseTemplate {
    ok(json!({ "data": numbers }))
}

/// Meta's error envelope as the fake Graph API answers it.
pub fn graph_error(http: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_json(graph_error_body(code, subcode, message))
}

/// The body of Meta's error envelope, to adjust before answering it.
pub fn graph_error_body(code: i64, subcode: Option<i64>, message: &str) -> Value {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": FBTRACE,
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    json!({ "error": error })
}

/// `X-Business-Use-Case-Usage` for `WABA`: `percent` of the call budget used, access
/// back in `regain_minutes`.
pub fn usage(percent: u32, regain_minutes: u32) -> String {
    json!({ WABA: [{ "type": "whatsapp_business_management", "call_count": percent,
        "total_cputime": 10, "total_time": 10, "estimated_time_to_regain_access": regain_minutes }] })
    .to_string()
}

/// Meta throttling with 80007, saying when access comes back.
pub fn throttled(regain_minutes: u32) -> ResponseTemplate {
    graph_error(400, 80007, None, "(#80007) Rate limit hit")
        .insert_header("x-business-use-case-usage", usage(100, regain_minutes))
}

/// A phone-number node as Meta returns it.
pub fn number_json(id: &str) -> Value {
    json!({
        "id": id,
        "display_phone_number": "+1 555-555-5555",
        "verified_name": "Jaspers Market",
        "name_status": "APPROVED",
        "new_name_status": "NONE",
        "code_verification_status": "VERIFIED",
        "quality_rating": "GREEN",
        "status": "CONNECTED",
        "platform_type": "CLOUD_API",
        "throughput": { "level": "STANDARD" },
        "messaging_limit_tier": "TIER_1K",
        "whatsapp_business_manager_messaging_limit": "TIER_2K",
        "account_mode": "LIVE",
        "is_official_business_account": false,
        "is_pin_enabled": true,
        "last_onboarded_time": "2023-08-22T19:05:53+0000"
    })
}

/// A number with its own display number (from the last four digits of `id`) and the
/// given display-name status.
pub fn number(id: &str, name_status: &str) -> Value {
    let mut n = number_json(id);
    n["display_phone_number"] = format!("+1 555-010-{}", &id[id.len() - 4..]).into();
    n["name_status"] = name_status.into();
    n
}
