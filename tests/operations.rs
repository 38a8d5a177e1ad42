//! What operators see: Prometheus metrics and structured logs.

use crate::support::{Service, get_status, list_numbers, waba};
use waba_numbers::sandbox::DEMO_WABA_ID;

pub(crate) async fn scrape(service: &Service) -> String {
    let url = format!("http://{}/metrics", service.http_addr);
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_calls_upstream_usage_streams_watchers_and_token_age() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    let list = list_numbers(DEMO_WABA_ID, 5, "");
    client.list_numbers(list).await.unwrap();
    client.get_status(get_status("123")).await.unwrap_err();
    let mut stream = service.watch(waba(DEMO_WABA_ID)).await;
    stream.message().await.unwrap();

    let text = scrape(&service).await;
    for expected in [
        r#"waba_grpc_requests_total{method="ListNumbers",code="OK",caller="-"}"#,
        r#"waba_grpc_requests_total{method="GetStatus",code="NOT_FOUND",caller="-"}"#,
        r#"waba_grpc_request_duration_seconds_bucket{method="ListNumbers",le="0.005"}"#,
        r#"waba_graph_requests_total{endpoint="phone_numbers",token="partner",result="ok"}"#,
        r#"waba_graph_requests_total{endpoint="phone_number",token="partner",result="graph_100"}"#,
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
