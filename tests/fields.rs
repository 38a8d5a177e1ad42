//! The fields reads ask Meta for: the messaging limit Meta serves now, the deprecated
//! tier while it lasts, and a field Meta stops serving dropped instead of failing reads.

use crate::support::{
    FIELDS, NUMBER, Service, VERSION, WABA, batch, error_info, fake_graph, get_status_within,
    graph_error, next, number_json, numbers, ok, read,
};
use serde_json::{Value, json};
use tonic::Code;
use waba_numbers::pb::MessagingLimitTier;
use waba_numbers::sandbox::{self, DEMO_WABA_ID, SandboxOptions};
use wiremock::matchers::query_param;
use wiremock::{Request, ResponseTemplate};

const NEW_LIMIT: &str = "whatsapp_business_manager_messaging_limit";

/// Meta's error 100 for a field `node_type` (Meta's name for it) does not have.
fn no_such_field(field: &str, node_type: &str) -> ResponseTemplate {
    let message =
        format!("(#100) Tried accessing nonexisting field ({field}) on node type ({node_type})");
    graph_error(400, 100, None, &message)
}

#[tokio::test]
async fn the_portfolio_messaging_limit_is_read_beside_the_deprecated_tier() {
    let mut body = number_json(NUMBER);
    body["messaging_limit_tier"] = Value::Null; // as v24.0+ answers
    body[NEW_LIMIT] = "UNTIERED".into();
    let graph = fake_graph([read(NUMBER)
        .and(query_param("fields", FIELDS))
        .respond_with(ok(body))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let n = service
        .client()
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.messaging_limit(), MessagingLimitTier::Untiered);
    assert_eq!(n.messaging_limit_raw, "UNTIERED");
    assert_eq!(n.messaging_limit_tier_raw, "");
}

/// Answers Graph batch requests like Meta, checking no operation asks for `NEW_LIMIT`.
fn batch_without_the_new_limit(request: &Request) -> ResponseTemplate {
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let form = reqwest::Url::parse(&format!("http://x/?{body}")).unwrap();
    let operations = form.query_pairs().find(|(k, _)| k == "batch").unwrap().1;
    let operations: Vec<Value> = serde_json::from_str(&operations).unwrap();
    let items: Vec<Value> = operations
        .iter()
        .map(|op| {
            let (id, fields) = op["relative_url"]
                .as_str()
                .unwrap()
                .split_once("?fields=")
                .unwrap();
            assert!(!fields.contains(NEW_LIMIT), "{fields}");
            json!({ "code": 200, "body": number_json(id).to_string() })
        })
        .collect();
    ok(Value::Array(items))
}

#[tokio::test]
async fn a_field_meta_refuses_is_dropped_once_and_reads_go_on_without_it() {
    let without: Vec<&str> = FIELDS.split(',').filter(|f| *f != NEW_LIMIT).collect();
    let graph = fake_graph([
        read(NUMBER)
            .and(query_param("fields", FIELDS))
            .respond_with(no_such_field(NEW_LIMIT, "WhatsAppBusinessPhoneNumber"))
            .expect(1),
        read(NUMBER)
            .and(query_param("fields", without.join(",")))
            .respond_with(ok(number_json(NUMBER)))
            .expect(2),
        // The watchers' reads (batches included) ask for the shorter list too.
        batch().respond_with(batch_without_the_new_limit).expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    for _ in 0..2 {
        let n = client
            .get_status(get_status_within(NUMBER, 0))
            .await
            .unwrap();
        assert_eq!(n.into_inner().id, NUMBER);
    }
    let mut events = service
        .watch(numbers(&["106540352242923", "106540352242924"]))
        .await;
    next(&mut events).await;
}

#[tokio::test]
async fn an_id_of_another_kind_is_invalid_and_keeps_the_field_list_whole() {
    let graph = fake_graph([
        read(WABA)
            .respond_with(no_such_field(
                "display_phone_number",
                "WhatsAppBusinessAccount",
            ))
            .expect(1),
        read(NUMBER)
            .and(query_param("fields", FIELDS))
            .respond_with(ok(number_json(NUMBER)))
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let err = client
        .get_status(get_status_within(WABA, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(error_info(&err).reason, "WRONG_OBJECT_TYPE");
    // The next read still asks for every field.
    client
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sandbox_serves_the_messaging_limit_and_refuses_username_as_meta_does() {
    let url = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let get = |fields: &str| {
        reqwest::Client::new()
            .get(format!("{url}/{VERSION}/{DEMO_WABA_ID}/phone_numbers"))
            .bearer_auth("any")
            .query(&[("fields", fields), ("limit", "1")])
            .send()
    };
    let listed: Value = get(FIELDS).await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0][NEW_LIMIT], "TIER_2K");
    let refused = get("id,username").await.unwrap();
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], 100);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nonexisting field (username)"),
        "{message}"
    );
}
