//! Every RPC through a real client against the embedded sandbox, as a new user would.

use crate::support::{
    APP_SECRET, Service, TOKEN, assert_invalid, error_info, get_status, list_numbers,
    paused_clock_settings, register, settings, unbounded, waba,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;
use waba_numbers::pb::{
    self, ConnectionStatus, GetStatusRequest, ListNumbersRequest, NameStatus, PlatformType,
    VerificationStatus,
};
use waba_numbers::sandbox::{
    self, BENCH_WABA_ID, CALLS_PATH, DEMO_PIN, DEMO_WABA_ID, SandboxOptions, bench_number_id,
};

const REGISTERED: &str = "106540352242901"; // PIN set to DEMO_PIN
const UNREGISTERED: &str = "106540352242902"; // verified, no PIN yet, name under review
const NOT_VERIFIED: &str = "106540352242903";

/// GetStatus for `id`, which must succeed.
async fn get(service: &Service, id: &str) -> pb::PhoneNumber {
    service
        .client()
        .get_status(get_status(id))
        .await
        .unwrap()
        .into_inner()
}

/// A page of the demo WABA's numbers, which must be served.
async fn list_page(service: &Service, page_size: i32, page_token: &str) -> pb::ListNumbersResponse {
    let request = list_numbers(DEMO_WABA_ID, page_size, page_token);
    service
        .client()
        .list_numbers(request)
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn list_numbers_walks_every_page_of_the_demo_waba() {
    let service = Service::on_sandbox().await;
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list_page(&service, 10, &token).await;
        pages += 1;
        assert!(page.phone_numbers.len() <= 10);
        ids.extend(page.phone_numbers.into_iter().map(|n| n.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((pages, ids.len()), (4, 34));

    let first = list_page(&service, 0, "").await;
    assert_eq!(first.phone_numbers.len(), 25, "page_size 0 means 25");
    let capped = list_page(&service, 1000, "").await;
    assert_eq!(capped.phone_numbers.len(), 34, "page_size is capped at 100");
    assert!(capped.next_page_token.is_empty());
}

#[tokio::test]
async fn a_page_token_only_works_for_the_request_it_came_from() {
    let service = Service::on_sandbox().await;
    let page = list_page(&service, 10, "").await;
    let err = service
        .client()
        .list_numbers(list_numbers(DEMO_WABA_ID, 20, &page.next_page_token))
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
}

#[tokio::test]
async fn get_status_reports_the_numbers_state() {
    let service = Service::on_sandbox().await;
    let n = get(&service, UNREGISTERED).await;
    assert_eq!(n.id, UNREGISTERED);
    assert_eq!(n.display_phone_number, "+1 555-010-0002");
    assert_eq!(n.name_status(), NameStatus::PendingReview);
    assert_eq!(n.code_verification_status(), VerificationStatus::Verified);
    assert_eq!(n.platform_type(), PlatformType::NotApplicable);
    assert!(!n.is_pin_enabled);
    assert!(n.last_onboarded_time.is_some());
    assert_eq!(
        get(&service, NOT_VERIFIED)
            .await
            .code_verification_status_raw,
        "NOT_VERIFIED"
    );
}

#[tokio::test]
async fn register_connects_a_verified_number_and_sets_its_pin() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    let reply = client
        .register(register(UNREGISTERED, "246810"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success);
    assert_eq!(reply.phone_number_id, UNREGISTERED);

    let n = get(&service, UNREGISTERED).await;
    assert_eq!(n.platform_type(), PlatformType::CloudApi);
    assert_eq!(n.status(), ConnectionStatus::Connected);
    assert!(n.is_pin_enabled);

    // From now on the PIN is required.
    let err = client
        .register(register(UNREGISTERED, DEMO_PIN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_wrong_pin_is_invalid_argument_with_metas_code_and_trace() {
    let service = Service::on_sandbox().await;
    let err = service
        .client()
        .register(register(REGISTERED, "000000"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = error_info(&err);
    assert_eq!(info.reason, "PIN_MISMATCH");
    assert_eq!(info.domain, "graph.facebook.com");
    assert_eq!(info.metadata["graph_code"], "133005");
    assert!(!info.metadata["fbtrace_id"].is_empty());
    assert!(info.metadata["details"].contains("PIN"));
}

#[tokio::test]
async fn an_unverified_number_cannot_be_registered() {
    let service = Service::on_sandbox().await;
    let err = service
        .client()
        .register(register(NOT_VERIFIED, DEMO_PIN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(error_info(&err).metadata["graph_code"], "133006");
}

#[tokio::test]
async fn the_eleventh_register_in_72_hours_is_resource_exhausted_with_retry_info() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    for _ in 0..10 {
        client
            .register(register(REGISTERED, DEMO_PIN))
            .await
            .unwrap();
    }
    let err = client
        .register(register(REGISTERED, DEMO_PIN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&err).metadata["graph_code"], "133016");
    let retry = err.get_details_retry_info().unwrap().retry_delay;
    assert_eq!(retry, Some(Duration::from_secs(72 * 3600)));
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    let err = client
        .get_status(get_status("123456789"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let info = error_info(&err);
    assert_eq!(
        (
            info.metadata["graph_code"].as_str(),
            info.metadata["graph_subcode"].as_str()
        ),
        ("100", "33")
    );

    let request = list_numbers("42", 0, "");
    assert_eq!(
        client.list_numbers(request).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn watch_status_on_the_demo_waba_starts_with_every_numbers_snapshot() {
    let service = Service::on_sandbox().await;
    let mut events = service.watch(waba(DEMO_WABA_ID)).await;
    let mut ids = BTreeSet::new();
    for _ in 0..34 {
        let event = unbounded::next(&mut events).await;
        assert_eq!(event.source(), pb::EventSource::Initial);
        assert!(event.changed_fields.is_empty());
        ids.insert(event.phone_number.unwrap().id);
    }
    assert_eq!(ids.len(), 34);
}

/// The simulated Graph API alone (checking the test token and app secret), and the
/// service on it; returns the API's base URL too.
async fn on_own_sandbox(options: SandboxOptions) -> (String, Service) {
    let url = sandbox::spawn(SandboxOptions {
        access_token: Some(TOKEN.into()),
        app_secret: Some(APP_SECRET.into()),
        ..options
    })
    .await
    .unwrap();
    let service = Service::start(settings(&url)).await;
    (url, service)
}

async fn calls(url: &str) -> Value {
    let answer = reqwest::get(format!("{url}{CALLS_PATH}")).await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// `POST /v25.0/` with a batch of GETs of `id`, as the test app; the answer's items.
async fn batch_of(url: &str, id: &str, operations: usize) -> Vec<Value> {
    let op = json!({ "method": "GET", "relative_url": format!("{id}?fields=id") });
    let batch = Value::Array(vec![op; operations]).to_string();
    let proof = crate::support::proof_for(TOKEN);
    reqwest::Client::new()
        .post(format!("{url}/v25.0/?appsecret_proof={proof}"))
        .bearer_auth(TOKEN)
        .form(&[("batch", batch)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sandbox_counts_the_calls_it_answers_and_shows_them_without_a_token() {
    let (url, service) = on_own_sandbox(SandboxOptions::default()).await;
    let zero = json!({
        "total": 0, "requests": 0,
        "endpoints": { "node": 0, "phone_numbers": 0, "register": 0, "writes": 0,
            "preverified_numbers": 0, "batch": 0, "batch_items": 0, "other": 0 },
    });
    assert_eq!(
        calls(&url).await,
        zero,
        "starting the service calls nothing"
    );

    get(&service, REGISTERED).await;
    get(&service, UNREGISTERED).await;
    let mut client = service.client();
    client
        .list_numbers(list_numbers(DEMO_WABA_ID, 10, ""))
        .await
        .unwrap();
    client
        .register(register(UNREGISTERED, "246810"))
        .await
        .unwrap();
    let items = batch_of(&url, REGISTERED, 3).await;
    assert!(items.iter().all(|item| item["code"] == 200), "{items:?}");
    let http = reqwest::Client::new();
    let proof = crate::support::proof_for(TOKEN);
    let unknown: Value = http
        .get(format!("{url}/v25.0/1/2/3?appsecret_proof={proof}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(message.contains("Unsupported get request"), "{unknown}");
    // Refused before any endpoint: not counted. Only the counter needs no token.
    let no_token = http.get(format!("{url}/v25.0/{REGISTERED}")).send().await;
    let no_token: Value = no_token.unwrap().json().await.unwrap();
    assert_eq!(no_token["error"]["code"], 104);
    let unversioned: Value = http
        .get(format!("{url}/_sandbox/other"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unversioned["error"]["code"], 2500);

    let expected = json!({
        "total": 8, "requests": 6,
        "endpoints": { "node": 2, "phone_numbers": 1, "register": 1, "writes": 0,
            "preverified_numbers": 0, "batch": 1, "batch_items": 3, "other": 1 },
    });
    assert_eq!(calls(&url).await, expected);
}

#[tokio::test(start_paused = true)]
async fn the_sandbox_latency_delays_every_graph_answer() {
    let latency = Duration::from_millis(250);
    let url = sandbox::spawn(SandboxOptions {
        access_token: Some(TOKEN.into()),
        app_secret: Some(APP_SECRET.into()),
        latency,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    // Uncached, so every round calls the Graph API.
    let mut settings = paused_clock_settings(&url);
    settings.cache.ttl = Duration::ZERO;
    let service = Service::start(settings).await;
    let mut client = service.client();
    for round in 1..=3 {
        let start = tokio::time::Instant::now();
        let number = get(&service, REGISTERED).await;
        assert_eq!(number.id, REGISTERED);
        client
            .list_numbers(list_numbers(DEMO_WABA_ID, 10, ""))
            .await
            .unwrap();
        assert!(
            start.elapsed() >= latency * 2,
            "round {round}: two calls answered in {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn the_call_counter_answers_at_once_however_slow_the_graph_api_is() {
    let url = sandbox::spawn(SandboxOptions {
        latency: Duration::from_secs(60),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let _service = Service::start(settings(&url)).await; // installs the TLS provider
    let counted = tokio::time::timeout(Duration::from_secs(5), calls(&url));
    assert_eq!(counted.await.unwrap()["total"], 0);
    let read = reqwest::Client::new()
        .get(format!("{url}/v25.0/{REGISTERED}"))
        .bearer_auth(TOKEN)
        .send();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), read)
            .await
            .is_err(),
        "a Graph call waits for the latency"
    );
}

#[tokio::test]
async fn with_the_quota_off_the_sandbox_never_throttles() {
    // The demo WABA has registered numbers: 5,000 calls an hour; 101 batches of 50 are 5,050.
    for quota in [true, false] {
        let (url, _service) = on_own_sandbox(SandboxOptions {
            quota,
            ..SandboxOptions::default()
        })
        .await;
        let mut throttled = 0;
        for _ in 0..101 {
            for item in batch_of(&url, REGISTERED, 50).await {
                match item["code"].as_u64() {
                    Some(200) => {}
                    _ => {
                        let body: Value =
                            serde_json::from_str(item["body"].as_str().unwrap()).unwrap();
                        assert_eq!(body["error"]["code"], 80007, "{body}");
                        throttled += 1;
                    }
                }
            }
        }
        assert_eq!(calls(&url).await["endpoints"]["batch_items"], 5050);
        if quota {
            assert_eq!(throttled, 50, "the 5,001st call and after are refused");
        } else {
            assert_eq!(throttled, 0);
            let answer = reqwest::Client::new()
                .get(format!(
                    "{url}/v25.0/{REGISTERED}?appsecret_proof={}",
                    crate::support::proof_for(TOKEN)
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            let usage = answer.headers()["x-business-use-case-usage"]
                .to_str()
                .unwrap();
            let usage: Value = serde_json::from_str(usage).unwrap();
            assert_eq!(usage[DEMO_WABA_ID][0]["call_count"], 0);
        }
    }
}

#[tokio::test]
async fn the_bench_waba_lists_and_reads_its_generated_numbers() {
    let (_url, service) = on_own_sandbox(SandboxOptions {
        bench_numbers: 250,
        ..SandboxOptions::default()
    })
    .await;
    let mut client = service.client();
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListNumbersRequest {
            waba_id: BENCH_WABA_ID.into(),
            page_size: 100,
            page_token,
        };
        let page = client.list_numbers(request).await.unwrap().into_inner();
        ids.extend(page.phone_numbers.into_iter().map(|n| n.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = (1..=250).map(bench_number_id).collect();
    assert_eq!(ids, expected);
    let last = get(&service, &bench_number_id(250)).await;
    assert_eq!(last.platform_type(), PlatformType::CloudApi);
    assert_eq!(last.status(), ConnectionStatus::Connected);
    assert_eq!(last.name_status(), NameStatus::Approved);
    let err = client
        .get_status(GetStatusRequest {
            phone_number_id: bench_number_id(251),
            max_staleness: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
