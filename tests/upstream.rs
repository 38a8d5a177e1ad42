//! Against a fake Graph API (wiremock): the exact requests Meta would get, and what a
//! client sees for each of Meta's answers.

use crate::support::{
    FBTRACE, FIELDS, Service, TOKEN, VERSION, error_info, graph_error, graph_error_body,
    number_json, proof_for, settings,
};
use serde_json::json;
use std::time::Duration;
use tonic::{Code, Request};
use tonic_types::StatusExt;
use waba_numbers::graph::TokenSource;
use waba_numbers::pb::{
    GetStatusRequest, ListNumbersRequest, NameStatus, QualityRating, RegisterRequest,
};
use wiremock::matchers::{
    any, body_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WABA: &str = "102290129340398";
const NUMBER: &str = "106540352242922";

fn get_status(id: &str) -> GetStatusRequest {
    GetStatusRequest {
        phone_number_id: id.into(),
        max_staleness: None,
    }
}

fn register(id: &str, pin: &str) -> RegisterRequest {
    RegisterRequest {
        phone_number_id: id.into(),
        pin: pin.into(),
        ..RegisterRequest::default()
    }
}

/// A GET of the number node carrying everything Meta requires.
fn number_read(token: &str) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/{NUMBER}")))
        .and(query_param("fields", FIELDS))
        .and(query_param("appsecret_proof", proof_for(token)))
        .and(header("authorization", format!("Bearer {token}")))
}

#[tokio::test]
async fn get_status_sends_version_fields_bearer_token_and_appsecret_proof() {
    let graph = MockServer::start().await;
    number_read(TOKEN)
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let n = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.id, NUMBER);
    assert_eq!(n.verified_name, "Jaspers Market");
    assert_eq!(n.name_status(), NameStatus::Approved);
    assert_eq!(n.last_onboarded_time.unwrap().seconds, 1_692_731_153);
}

#[tokio::test]
async fn values_meta_adds_later_map_to_unspecified_and_stay_readable() {
    let graph = MockServer::start().await;
    let mut body = number_json(NUMBER);
    body["quality_rating"] = "PURPLE".into();
    body["name_status"] = "UNDER_APPEAL".into();
    body["brand_new_field"] = json!({"x": 1});
    number_read(TOKEN)
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let n = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.quality_rating(), QualityRating::Unspecified);
    assert_eq!(n.quality_rating_raw, "PURPLE");
    assert_eq!(n.name_status(), NameStatus::Unspecified);
    assert_eq!(n.name_status_raw, "UNDER_APPEAL");
}

#[tokio::test]
async fn list_numbers_wraps_metas_cursor_in_an_opaque_page_token() {
    let graph = MockServer::start().await;
    let list = || {
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/{WABA}/phone_numbers")))
            .and(query_param("fields", FIELDS))
            .and(query_param("limit", "100"))
            .and(query_param("appsecret_proof", proof_for(TOKEN)))
            .and(header("authorization", format!("Bearer {TOKEN}")))
    };
    list()
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [number_json("1"), number_json("2")],
            "paging": {"cursors": {"before": "QVFIUb", "after": "QVFIUa"},
                       "next": "https://graph.facebook.com/v25.0/x/phone_numbers?after=QVFIUa"}
        })))
        .expect(1)
        .mount(&graph)
        .await;
    list()
        .and(query_param("after", "QVFIUa"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [number_json("3")],
            "paging": {"cursors": {"before": "QVFIUc", "after": "QVFIUd"}}
        })))
        .expect(1)
        .mount(&graph)
        .await;

    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let request = |page_token: String| ListNumbersRequest {
        waba_id: WABA.into(),
        page_size: 500, // capped at 100
        page_token,
    };
    let first = client
        .list_numbers(request(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.phone_numbers.len(), 2);
    assert!(
        !first.next_page_token.contains("QVFIUa"),
        "the cursor is not exposed"
    );
    let last = client
        .list_numbers(request(first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.phone_numbers[0].id, "3");
    assert_eq!(last.next_page_token, "", "empty on the last page");
}

#[tokio::test]
async fn register_posts_exactly_metas_body_once() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/{NUMBER}/register")))
        .and(query_param("appsecret_proof", proof_for(TOKEN)))
        .and(header("authorization", format!("Bearer {TOKEN}")))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "pin": "123456",
            "data_localization_region": "IN"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut request = register(NUMBER, "123456");
    request.data_localization_region = "IN".into();
    request.request_id = "order-42".into();
    let reply = service
        .client()
        .register(request)
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success);
    assert_eq!(reply.phone_number_id, NUMBER);
}

#[tokio::test]
async fn register_is_never_retried_even_on_a_transient_error() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(graph_error(500, 131000, None, "Something went wrong"))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .register(register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
}

#[tokio::test]
async fn reads_are_retried_on_transient_errors() {
    let graph = MockServer::start().await;
    number_read(TOKEN)
        .respond_with(graph_error(503, 2, None, "Service temporarily unavailable"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    number_read(TOKEN)
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_5xx_without_a_body_is_unavailable_after_bounded_retries() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502))
        .expect(3)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.get_details_retry_info().is_some());
}

#[tokio::test]
async fn rate_limits_are_not_retried_and_carry_metas_wait_as_retry_info() {
    let graph = MockServer::start().await;
    let usage = json!({ WABA: [{"type": "whatsapp_business_management", "call_count": 100,
        "total_cputime": 10, "total_time": 10, "estimated_time_to_regain_access": 19}] });
    Mock::given(any())
        .respond_with(
            graph_error(400, 80007, None, "(#80007) Rate limit hit")
                .insert_header("x-business-use-case-usage", usage.to_string().as_str()),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let retry = err.get_details_retry_info().unwrap().retry_delay;
    assert_eq!(retry, Some(Duration::from_secs(19 * 60)));
}

#[tokio::test]
async fn each_graph_error_maps_to_its_grpc_code_with_error_info() {
    let cases: &[(u16, i64, Option<i64>, Code, &str)] = &[
        (
            401,
            190,
            Some(463),
            Code::Unauthenticated,
            "ACCESS_TOKEN_INVALID",
        ),
        (
            403,
            200,
            None,
            Code::PermissionDenied,
            "GRAPH_PERMISSION_DENIED",
        ),
        (400, 100, Some(33), Code::NotFound, "OBJECT_NOT_FOUND"),
        (
            400,
            100,
            None,
            Code::InvalidArgument,
            "GRAPH_INVALID_PARAMETER",
        ),
        (
            400,
            133010,
            None,
            Code::FailedPrecondition,
            "NOT_REGISTERED",
        ),
        (
            400,
            80008,
            None,
            Code::ResourceExhausted,
            "GRAPH_RATE_LIMITED",
        ),
        (503, 133004, None, Code::Unavailable, "GRAPH_UNAVAILABLE"),
        (500, 1, None, Code::Internal, "GRAPH_INTERNAL_ERROR"),
    ];
    for &(http, code, subcode, expected, reason) in cases {
        let graph = MockServer::start().await;
        let mut body = graph_error_body(code, subcode, "(#x) as Meta says it");
        body["error"]["error_data"] = json!({"messaging_product": "whatsapp", "details": "more"});
        body["error"]["is_transient"] = false.into();
        let answer = ResponseTemplate::new(http).set_body_json(body);
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&graph)
            .await;
        let service = Service::on_fake(&graph).await;
        let err = service
            .client()
            .register(register(NUMBER, "123456"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), expected, "Graph code {code}");
        let info = error_info(&err);
        assert_eq!(info.reason, reason, "Graph code {code}");
        assert_eq!(info.domain, "graph.facebook.com");
        assert_eq!(info.metadata["graph_code"], code.to_string());
        assert_eq!(
            info.metadata.get("graph_subcode"),
            subcode.map(|s| s.to_string()).as_ref()
        );
        assert_eq!(info.metadata["fbtrace_id"], FBTRACE);
        assert_eq!(info.metadata["details"], "more");
        assert!(
            err.message().contains("as Meta says it"),
            "{}",
            err.message()
        );
    }
}

/// Bad input never reaches Meta.
#[tokio::test]
async fn invalid_input_is_rejected_without_an_upstream_call() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();

    for id in ["", "123/../me", "abc", "12 3", "1%2F2", "１２３"] {
        let err = client.get_status(get_status(id)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}");
        let violations = err.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "phone_number_id");
    }
    for pin in ["", "12345", "1234567", "12345a", "12 456"] {
        let err = client.register(register(NUMBER, pin)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{pin:?}");
        assert!(
            !err.message().contains(pin) || pin.is_empty(),
            "the PIN is never echoed"
        );
    }
    let mut bad_region = register(NUMBER, "123456");
    bad_region.data_localization_region = "india".into();
    assert_eq!(
        client.register(bad_region).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let lists = [
        (
            "waba_id",
            ListNumbersRequest {
                waba_id: "me".into(),
                ..Default::default()
            },
        ),
        (
            "page_size",
            ListNumbersRequest {
                waba_id: WABA.into(),
                page_size: -1,
                ..Default::default()
            },
        ),
        (
            "page_token",
            ListNumbersRequest {
                waba_id: WABA.into(),
                page_size: 0,
                page_token: "QVFIUa".into(),
            },
        ),
    ];
    for (field, request) in lists {
        let err = client.list_numbers(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        let violations = err.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, field);
    }

    // Every problem is reported at once.
    let err = client.register(register("x", "1")).await.unwrap_err();
    assert_eq!(
        err.get_details_bad_request()
            .unwrap()
            .field_violations
            .len(),
        2
    );
}

fn token_file(name: &str, token: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("waba-numbers-{name}-{}", std::process::id()));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

#[tokio::test]
async fn on_error_190_the_token_is_reread_from_its_file_and_the_call_retried_once() {
    let graph = MockServer::start().await;
    number_read("old-token")
        .respond_with(graph_error(401, 190, Some(463), "Session has expired"))
        .expect(1)
        .mount(&graph)
        .await;
    number_read("new-token")
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let file = token_file("rotation", "old-token");
    let mut settings = settings(&graph.uri());
    settings.graph.token = TokenSource::File(file.clone());
    settings.graph.token_recheck = Duration::MAX; // only a 190 makes it look again
    let service = Service::start(settings).await;

    std::fs::write(&file, "new-token\n").unwrap();
    service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap();
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_changed_token_file_is_used_without_a_restart() {
    let graph = MockServer::start().await;
    number_read("first-token")
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    number_read("rotated-token-2")
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let file = token_file("reload", "first-token");
    let mut settings = settings(&graph.uri());
    settings.graph.token = TokenSource::File(file.clone());
    settings.graph.token_recheck = Duration::ZERO;
    let service = Service::start(settings).await;
    let mut client = service.client();

    client.get_status(get_status(NUMBER)).await.unwrap();
    std::fs::write(&file, "rotated-token-2\n").unwrap();
    let fresh = GetStatusRequest {
        max_staleness: Some(prost_types::Duration::default()), // past the cache
        ..get_status(NUMBER)
    };
    client.get_status(fresh).await.unwrap();
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_rejected_token_that_cannot_change_is_unauthenticated_after_one_call() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(graph_error(
            400,
            190,
            Some(467),
            "Invalid OAuth access token",
        ))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_upstream_call_is_bounded_by_the_callers_deadline() {
    let graph = MockServer::start().await;
    number_read(TOKEN)
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(number_json(NUMBER))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut request = Request::new(get_status(NUMBER));
    request.set_timeout(Duration::from_millis(300));
    let err = service.client().get_status(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
}

#[tokio::test]
async fn a_retry_waiting_on_a_shared_register_attempt_keeps_its_own_deadline() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/{NUMBER}/register")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true}))
                .set_delay(Duration::from_secs(1)),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let keyed = || RegisterRequest {
        request_id: "onboarding-8".into(),
        ..register(NUMBER, "123456")
    };
    let mut client = service.client();
    let first = tokio::spawn(async move { client.register(keyed()).await });
    while graph.received_requests().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The retry joins the attempt in flight, which runs under the first caller's (absent)
    // deadline; the retry's own deadline still ends its wait, with DEADLINE_EXCEEDED
    // from the server rather than the client's bare CANCELLED.
    let mut retry = Request::new(keyed());
    retry.set_timeout(Duration::from_millis(300));
    let err = service.client().register(retry).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // The attempt itself goes on for the first caller.
    assert!(first.await.unwrap().unwrap().into_inner().success);
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let graph = MockServer::start().await;
    let huge = format!(
        "{{\"id\":\"{NUMBER}\",\"verified_name\":\"{}\"}}",
        "x".repeat(5 << 20)
    );
    number_read(TOKEN)
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(error_info(&err).reason, "GRAPH_UNEXPECTED_RESPONSE");
}

#[tokio::test]
async fn without_an_app_secret_no_appsecret_proof_is_sent() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param_is_missing("appsecret_proof"))
        .and(header("authorization", format!("Bearer {TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let mut settings = settings(&graph.uri());
    settings.graph.app_secret = None;
    let service = Service::start(settings).await;
    service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_repeated_request_id_registers_once_and_failures_are_not_remembered() {
    let graph = MockServer::start().await;
    let register_path = || path(format!("/{VERSION}/{NUMBER}/register"));
    Mock::given(method("POST"))
        .and(register_path())
        .respond_with(graph_error(500, 131000, None, "Something went wrong"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(register_path())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let keyed = |pin: &str| RegisterRequest {
        request_id: "onboarding-7".into(),
        ..register(NUMBER, pin)
    };

    // A failure is not remembered: the retry is a new attempt...
    let err = service
        .client()
        .register(keyed("123456"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    // ...and concurrent retries with the key share that one attempt.
    let retries: Vec<_> = (0..5)
        .map(|_| {
            let mut client = service.client();
            let request = keyed("123456");
            tokio::spawn(async move { client.register(request).await })
        })
        .collect();
    for retry in retries {
        assert!(retry.await.unwrap().unwrap().into_inner().success);
    }
    // Once it succeeded, the key answers without calling Meta.
    assert!(
        service
            .client()
            .register(keyed("123456"))
            .await
            .unwrap()
            .into_inner()
            .success
    );

    // The key cannot be reused for a different request.
    let err = service
        .client()
        .register(keyed("654321"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let violations = err.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations[0].field, "request_id");
}

#[tokio::test]
async fn a_register_without_an_answer_is_never_retried_under_its_request_id() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let request = || RegisterRequest {
        request_id: "onboarding-8".into(),
        ..register(NUMBER, "123456")
    };
    for _ in 0..2 {
        let err = service.client().register(request()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(error_info(&err).reason, "REGISTER_OUTCOME_UNKNOWN");
        assert!(
            err.get_details_retry_info().is_none(),
            "no invitation to retry blindly"
        );
    }
}

#[tokio::test]
async fn metas_is_transient_false_overrides_the_code() {
    let graph = MockServer::start().await;
    let mut body = graph_error_body(2, None, "Service temporarily unavailable");
    body["error"]["is_transient"] = false.into();
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503).set_body_json(body))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
}
