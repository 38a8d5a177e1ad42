//! What operators see: Prometheus metrics and structured logs.

use crate::support::Service;
use waba_numbers::pb::{GetStatusRequest, ListNumbersRequest, WatchStatusRequest};
use waba_numbers::sandbox::DEMO_WABA_ID;

async fn scrape(service: &Service) -> String {
    let url = format!("http://{}/metrics", service.http_addr);
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_calls_upstream_usage_streams_watchers_and_token_age() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    let list = ListNumbersRequest {
        waba_id: DEMO_WABA_ID.into(),
        page_size: 5,
        page_token: String::new(),
    };
    client.list_numbers(list).await.unwrap();
    let unknown = GetStatusRequest {
        phone_number_id: "123".into(),
        max_staleness: None,
    };
    client.get_status(unknown).await.unwrap_err();
    let watch = WatchStatusRequest {
        phone_number_ids: Vec::new(),
        waba_id: DEMO_WABA_ID.into(),
    };
    let mut stream = client.watch_status(watch).await.unwrap().into_inner();
    stream.message().await.unwrap();

    let text = scrape(&service).await;
    for expected in [
        r#"waba_grpc_requests_total{method="ListNumbers",code="OK"}"#,
        r#"waba_grpc_requests_total{method="GetStatus",code="NOT_FOUND"}"#,
        r#"waba_grpc_request_duration_seconds_bucket{method="ListNumbers",le="0.005"}"#,
        r#"waba_graph_requests_total{endpoint="phone_numbers",result="ok"}"#,
        r#"waba_graph_requests_total{endpoint="phone_number",result="graph_100"}"#,
        r#"waba_graph_request_duration_seconds_count{endpoint="phone_numbers"}"#,
        r#"waba_graph_usage_percent{business_id="102290129340398",use_case="whatsapp_business_management",metric="call_count"}"#,
        r#"waba_watchers{kind="waba"} "#,
        "waba_watch_streams ",
        "waba_watch_subscriptions ",
        "waba_access_token_age_seconds ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
