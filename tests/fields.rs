//! The fields reads ask Meta for: the messaging limit Meta serves now, the deprecated
//! tier while it lasts, and a field Meta stops serving dropped instead of failing reads.

use crate::support::{FIELDS, Service, VERSION, graph_error, number_json};
use serde_json::json;
use waba_numbers::pb::{GetStatusRequest, MessagingLimitTier};
use waba_numbers::sandbox::{self, DEMO_WABA_ID, SandboxOptions};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NUMBER: &str = "106540352242922";
const NEW_LIMIT: &str = "whatsapp_business_manager_messaging_limit";

fn fresh(id: &str) -> GetStatusRequest {
    GetStatusRequest {
        phone_number_id: id.into(),
        max_staleness: Some(prost_types::Duration::default()),
    }
}

#[tokio::test]
async fn the_portfolio_messaging_limit_is_read_beside_the_deprecated_tier() {
    let graph = MockServer::start().await;
    let mut body = number_json(NUMBER);
    body["messaging_limit_tier"] = serde_json::Value::Null; // as v24.0+ answers
    body[NEW_LIMIT] = "UNTIERED".into();
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/{NUMBER}")))
        .and(query_param("fields", FIELDS))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let n = service
        .client()
        .get_status(fresh(NUMBER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.messaging_limit(), MessagingLimitTier::Untiered);
    assert_eq!(n.messaging_limit_raw, "UNTIERED");
    assert_eq!(n.messaging_limit_tier_raw, "");
}

#[tokio::test]
async fn a_field_meta_refuses_is_dropped_once_and_reads_go_on_without_it() {
    let graph = MockServer::start().await;
    let without: String = FIELDS
        .split(',')
        .filter(|f| *f != NEW_LIMIT)
        .collect::<Vec<_>>()
        .join(",");
    let refusal = format!(
        "(#100) Tried accessing nonexisting field ({NEW_LIMIT}) on node type (WhatsAppBusinessPhoneNumber)"
    );
    Mock::given(method("GET"))
        .and(query_param("fields", FIELDS))
        .respond_with(graph_error(400, 100, None, &refusal))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/{NUMBER}")))
        .and(query_param("fields", without.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(2)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    for _ in 0..2 {
        let n = client.get_status(fresh(NUMBER)).await.unwrap().into_inner();
        assert_eq!(n.id, NUMBER);
    }
    // The watchers' reads (batches included) ask for the shorter list too.
    Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/")))
        .respond_with(move |request: &wiremock::Request| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let form = reqwest::Url::parse(&format!("http://x/?{body}")).unwrap();
            let batch = form.query_pairs().find(|(k, _)| k == "batch").unwrap().1;
            let operations: Vec<serde_json::Value> = serde_json::from_str(&batch).unwrap();
            let items: Vec<_> = operations
                .iter()
                .map(|op| {
                    let url = op["relative_url"].as_str().unwrap();
                    let (id, fields) = url.split_once("?fields=").unwrap();
                    assert!(!fields.contains(NEW_LIMIT), "{fields}");
                    json!({ "code": 200, "body": number_json(id).to_string() })
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(items)
        })
        .expect(1)
        .mount(&graph)
        .await;
    let watch = waba_numbers::pb::WatchStatusRequest {
        phone_number_ids: vec!["106540352242923".into(), "106540352242924".into()],
        waba_id: String::new(),
    };
    let mut events = client.watch_status(watch).await.unwrap().into_inner();
    events.message().await.unwrap().unwrap();
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
    let listed: serde_json::Value = get(FIELDS).await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0][NEW_LIMIT], "TIER_2K");
    let refused = get("id,username").await.unwrap();
    assert_eq!(refused.status(), 400);
    let error: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], 100);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nonexisting field (username)"),
        "{message}"
    );
}

#[tokio::test]
async fn an_id_of_another_kind_is_invalid_and_keeps_the_field_list_whole() {
    let graph = MockServer::start().await;
    let waba = "102290129340398";
    let refusal = "(#100) Tried accessing nonexisting field (display_phone_number) on node type (WhatsAppBusinessAccount)";
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/{waba}")))
        .respond_with(graph_error(400, 100, None, refusal))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/{NUMBER}")))
        .and(query_param("fields", FIELDS))
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let err = client.get_status(fresh(waba)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(crate::support::error_info(&err).reason, "WRONG_OBJECT_TYPE");
    // The next read still asks for every field.
    client.get_status(fresh(NUMBER)).await.unwrap();
}
