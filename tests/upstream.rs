//! Against a fake Graph API (wiremock): the exact requests Meta would get, and what a
//! client sees for each of Meta's answers.

use crate::support::{
    FBTRACE, FIELDS, NUMBER, Service, TOKEN, WABA, assert_invalid, error_info, fake_graph,
    get_status, get_status_within, graph_error, graph_error_body, graph_never_called, list,
    list_numbers, number_json, number_read, ok, received, register, register_call, settings,
    throttled, with_token,
};
use serde_json::json;
use std::time::Duration;
use tonic::{Code, IntoRequest, Request, Response, Status};
use tonic_types::StatusExt;
use waba_numbers::graph::TokenSource;
use waba_numbers::pb::{
    GetStatusRequest, NameStatus, PhoneNumber, QualityRating, RegisterRequest, RegisterResponse,
};
use wiremock::matchers::{any, body_json, header, method, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What a client calling GetStatus with `request` sees from the service on a fake
/// Graph API that answers as `meta` says.
async fn get_status_against(
    meta: impl IntoIterator<Item = Mock>,
    request: impl IntoRequest<GetStatusRequest>,
) -> Result<PhoneNumber, Status> {
    let graph = fake_graph(meta).await;
    let service = Service::on_fake(&graph).await;
    let answer = service.client().get_status(request).await;
    answer.map(Response::into_inner)
}

/// What a client calling Register with `request` sees from the service on a fake
/// Graph API that answers as `meta` says.
async fn register_against(
    meta: impl IntoIterator<Item = Mock>,
    request: RegisterRequest,
) -> Result<RegisterResponse, Status> {
    let graph = fake_graph(meta).await;
    let service = Service::on_fake(&graph).await;
    let answer = service.client().register(request).await;
    answer.map(Response::into_inner)
}

/// Register `NUMBER` with `pin` under the idempotency key `request_id`.
fn keyed(request_id: &str, pin: &str) -> RegisterRequest {
    RegisterRequest {
        request_id: request_id.into(),
        ..register(NUMBER, pin)
    }
}

#[tokio::test]
async fn get_status_sends_version_fields_bearer_token_and_appsecret_proof() {
    let meta = number_read(TOKEN)
        .respond_with(ok(number_json(NUMBER)))
        .expect(1);
    let n = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap();
    assert_eq!(n.id, NUMBER);
    assert_eq!(n.verified_name, "Jaspers Market");
    assert_eq!(n.name_status(), NameStatus::Approved);
    assert_eq!(n.last_onboarded_time.unwrap().seconds, 1_692_731_153);
}

#[tokio::test]
async fn values_meta_adds_later_map_to_unspecified_and_stay_readable() {
    let mut body = number_json(NUMBER);
    body["quality_rating"] = "PURPLE".into();
    body["name_status"] = "UNDER_APPEAL".into();
    body["brand_new_field"] = json!({"x": 1});
    let meta = number_read(TOKEN).respond_with(ok(body));
    let n = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap();
    assert_eq!(n.quality_rating(), QualityRating::Unspecified);
    assert_eq!(n.quality_rating_raw, "PURPLE");
    assert_eq!(n.name_status(), NameStatus::Unspecified);
    assert_eq!(n.name_status_raw, "UNDER_APPEAL");
}

#[tokio::test]
async fn list_numbers_wraps_metas_cursor_in_an_opaque_page_token() {
    let full_list = || {
        with_token(list(), TOKEN)
            .and(query_param("fields", FIELDS))
            .and(query_param("limit", "100"))
    };
    let graph = fake_graph([
        full_list()
            .and(query_param_is_missing("after"))
            .respond_with(ok(json!({
                "data": [number_json("1"), number_json("2")],
                "paging": {"cursors": {"before": "QVFIUb", "after": "QVFIUa"},
                           "next": "https://graph.facebook.com/v25.0/x/phone_numbers?after=QVFIUa"}
            })))
            .expect(1),
        full_list()
            .and(query_param("after", "QVFIUa"))
            .respond_with(ok(json!({
                "data": [number_json("3")],
                "paging": {"cursors": {"before": "QVFIUc", "after": "QVFIUd"}}
            })))
            .expect(1),
    ])
    .await;

    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let request = |page_token: &str| list_numbers(WABA, 500, page_token); // capped at 100
    let first = client.list_numbers(request("")).await.unwrap().into_inner();
    assert_eq!(first.phone_numbers.len(), 2);
    assert!(
        !first.next_page_token.contains("QVFIUa"),
        "the cursor is not exposed"
    );
    let last = client
        .list_numbers(request(&first.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.phone_numbers[0].id, "3");
    assert_eq!(last.next_page_token, "", "empty on the last page");
}

#[tokio::test]
async fn register_posts_exactly_metas_body_once() {
    let meta = with_token(register_call(NUMBER), TOKEN)
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "pin": "123456",
            "data_localization_region": "IN"
        })))
        .respond_with(ok(json!({"success": true})))
        .expect(1);
    let mut request = register(NUMBER, "123456");
    request.data_localization_region = "IN".into();
    request.request_id = "order-42".into();
    let reply = register_against([meta], request).await.unwrap();
    assert!(reply.success);
    assert_eq!(reply.phone_number_id, NUMBER);
}

#[tokio::test]
async fn register_is_never_retried_even_on_a_transient_error() {
    let meta = Mock::given(method("POST"))
        .respond_with(graph_error(500, 131000, None, "Something went wrong"))
        .expect(1);
    let err = register_against([meta], register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
}

#[tokio::test]
async fn reads_are_retried_on_transient_errors() {
    let meta = [
        number_read(TOKEN)
            .respond_with(graph_error(503, 2, None, "Service temporarily unavailable"))
            .up_to_n_times(1)
            .expect(1),
        number_read(TOKEN)
            .respond_with(ok(number_json(NUMBER)))
            .expect(1),
    ];
    get_status_against(meta, get_status(NUMBER)).await.unwrap();
}

#[tokio::test]
async fn a_5xx_without_a_body_is_unavailable_after_bounded_retries() {
    let meta = Mock::given(any())
        .respond_with(ResponseTemplate::new(502))
        .expect(3);
    let err = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.get_details_retry_info().is_some());
}

#[tokio::test]
async fn rate_limits_are_not_retried_and_carry_metas_wait_as_retry_info() {
    let meta = Mock::given(any()).respond_with(throttled(19)).expect(1);
    let err = get_status_against([meta], get_status(NUMBER))
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
        let mut body = graph_error_body(code, subcode, "(#x) as Meta says it");
        body["error"]["error_data"] = json!({"messaging_product": "whatsapp", "details": "more"});
        body["error"]["is_transient"] = false.into();
        let answer = ResponseTemplate::new(http).set_body_json(body);
        let meta = Mock::given(method("POST")).respond_with(answer);
        let err = register_against([meta], register(NUMBER, "123456"))
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
    let graph = graph_never_called().await;
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
        ("waba_id", list_numbers("me", 0, "")),
        ("page_size", list_numbers(WABA, -1, "")),
        ("page_token", list_numbers(WABA, 0, "QVFIUa")),
    ];
    for (field, request) in lists {
        let err = client.list_numbers(request).await.unwrap_err();
        assert_invalid(&err, field);
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

/// A token file holding `token`, named after the test that uses it.
fn token_file(name: &str, token: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("waba-numbers-{name}-{}", std::process::id()));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

/// The service on `graph`, reading its token from `file` and checking the file again
/// at most every `recheck`.
async fn on_token_file(graph: &MockServer, file: &std::path::Path, recheck: Duration) -> Service {
    let mut settings = settings(&graph.uri());
    settings.graph.token = Some(TokenSource::File(file.to_owned()));
    settings.graph.token_recheck = recheck;
    Service::start(settings).await
}

#[tokio::test]
async fn on_error_190_the_token_is_reread_from_its_file_and_the_call_retried_once() {
    let graph = fake_graph([
        number_read("old-token")
            .respond_with(graph_error(401, 190, Some(463), "Session has expired"))
            .expect(1),
        number_read("new-token")
            .respond_with(ok(number_json(NUMBER)))
            .expect(1),
    ])
    .await;
    let file = token_file("rotation", "old-token");
    // Only a 190 makes it look again.
    let service = on_token_file(&graph, &file, Duration::MAX).await;

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
    let graph = fake_graph(["first-token", "rotated-token-2"].map(|token| {
        number_read(token)
            .respond_with(ok(number_json(NUMBER)))
            .expect(1)
    }))
    .await;
    let file = token_file("reload", "first-token");
    let service = on_token_file(&graph, &file, Duration::ZERO).await;
    let mut client = service.client();

    client.get_status(get_status(NUMBER)).await.unwrap();
    std::fs::write(&file, "rotated-token-2\n").unwrap();
    // Past the cache: the second read must reach Meta, with the new token.
    client
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap();
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_rejected_token_that_cannot_change_is_unauthenticated_after_one_call() {
    let meta = Mock::given(any())
        .respond_with(graph_error(
            400,
            190,
            Some(467),
            "Invalid OAuth access token",
        ))
        .expect(1);
    let err = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_upstream_call_is_bounded_by_the_callers_deadline() {
    let meta =
        number_read(TOKEN).respond_with(ok(number_json(NUMBER)).set_delay(Duration::from_secs(30)));
    let mut request = Request::new(get_status(NUMBER));
    request.set_timeout(Duration::from_millis(300));
    let err = get_status_against([meta], request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
}

#[tokio::test]
async fn a_retry_waiting_on_a_shared_register_attempt_keeps_its_own_deadline() {
    let graph = fake_graph([register_call(NUMBER)
        .respond_with(ok(json!({"success": true})).set_delay(Duration::from_secs(1)))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let request = || keyed("onboarding-8", "123456");
    let mut client = service.client();
    let first = tokio::spawn(async move { client.register(request()).await });
    received(&graph, 1).await;
    // The retry joins the attempt in flight, which runs under the first caller's (absent)
    // deadline; the retry's own deadline still ends its wait, with DEADLINE_EXCEEDED
    // from the server rather than the client's bare CANCELLED.
    let mut retry = Request::new(request());
    retry.set_timeout(Duration::from_millis(300));
    let err = service.client().register(retry).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // The attempt itself goes on for the first caller.
    assert!(first.await.unwrap().unwrap().into_inner().success);
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let huge = format!(
        "{{\"id\":\"{NUMBER}\",\"verified_name\":\"{}\"}}",
        "x".repeat(5 << 20)
    );
    let meta = number_read(TOKEN)
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"));
    let err = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(error_info(&err).reason, "GRAPH_UNEXPECTED_RESPONSE");
}

#[tokio::test]
async fn without_an_app_secret_no_appsecret_proof_is_sent() {
    let graph = fake_graph([Mock::given(method("GET"))
        .and(query_param_is_missing("appsecret_proof"))
        .and(header("authorization", format!("Bearer {TOKEN}")))
        .respond_with(ok(number_json(NUMBER)))
        .expect(1)])
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
    let graph = fake_graph([
        register_call(NUMBER)
            .respond_with(graph_error(500, 131000, None, "Something went wrong"))
            .up_to_n_times(1)
            .expect(1),
        register_call(NUMBER)
            .respond_with(ok(json!({"success": true})).set_delay(Duration::from_millis(200)))
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;

    // A failure is not remembered: the retry is a new attempt...
    let err = service
        .client()
        .register(keyed("onboarding-7", "123456"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    // ...and concurrent retries with the key share that one attempt.
    let retries: Vec<_> = (0..5)
        .map(|_| {
            let mut client = service.client();
            let request = keyed("onboarding-7", "123456");
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
            .register(keyed("onboarding-7", "123456"))
            .await
            .unwrap()
            .into_inner()
            .success
    );

    // The key cannot be reused for a different request.
    let err = service
        .client()
        .register(keyed("onboarding-7", "654321"))
        .await
        .unwrap_err();
    assert_invalid(&err, "request_id");
}

#[tokio::test]
async fn a_register_without_an_answer_is_never_retried_under_its_request_id() {
    let graph = fake_graph([Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let request = || keyed("onboarding-8", "123456");
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
    let mut body = graph_error_body(2, None, "Service temporarily unavailable");
    body["error"]["is_transient"] = false.into();
    let meta = Mock::given(any())
        .respond_with(ResponseTemplate::new(503).set_body_json(body))
        .expect(1);
    let err = get_status_against([meta], get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
}
