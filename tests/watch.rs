//! WatchStatus against a fake Graph API that counts the upstream calls. Where time
//! matters the tests run on tokio's paused clock: the watchers' waits pass instantly,
//! in order, and what happened meanwhile is read off the virtual clock.

use crate::support::{
    Client, FIELDS, Service, TOKEN, VERSION, channel, graph_error, number_json,
    paused_clock_settings, proof_for,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};
use waba_numbers::pb::{EventSource, NameStatus, StatusEvent, WatchStatusRequest};
use waba_numbers::watch::{HubStats, NUDGE_GAP};
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, Request, Respond, ResponseTemplate};

const WABA: &str = "102290129340398";
const N1: &str = "106540352242901";
const N2: &str = "106540352242902";
const N3: &str = "106540352242903";

fn numbers(ids: &[&str]) -> WatchStatusRequest {
    WatchStatusRequest {
        phone_number_ids: ids.iter().map(|id| id.to_string()).collect(),
        waba_id: String::new(),
    }
}

fn waba() -> WatchStatusRequest {
    WatchStatusRequest {
        phone_number_ids: Vec::new(),
        waba_id: WABA.into(),
    }
}

/// A number with its own display number and the given display-name status.
fn number(id: &str, name_status: &str) -> Value {
    let mut n = number_json(id);
    n["display_phone_number"] = format!("+1 555-010-{}", &id[id.len() - 4..]).into();
    n["name_status"] = name_status.into();
    n
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn read(id: &str) -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/{VERSION}/{id}")))
}

fn list() -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("/{VERSION}/{WABA}/phone_numbers")))
}

fn page(numbers: &[Value]) -> ResponseTemplate {
    ok(json!({ "data": numbers }))
}

/// `X-Business-Use-Case-Usage` for the demo WABA.
fn usage(percent: u32, regain_minutes: u32) -> String {
    json!({ WABA: [{ "type": "whatsapp_business_management", "call_count": percent,
        "total_cputime": 10, "total_time": 10, "estimated_time_to_regain_access": regain_minutes }] })
    .to_string()
}

/// Meta throttling with 80007, saying when access comes back.
fn throttled(regain_minutes: u32) -> ResponseTemplate {
    graph_error(400, 80007, None, "(#80007) Rate limit hit")
        .insert_header("x-business-use-case-usage", usage(100, regain_minutes))
}

async fn next(events: &mut Streaming<StatusEvent>) -> StatusEvent {
    events.message().await.unwrap().expect("the stream ended")
}

async fn next_error(events: &mut Streaming<StatusEvent>) -> Status {
    match events.message().await {
        Err(status) => status,
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_event_is_a_snapshot_then_only_changes_with_their_fields() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "PENDING_REVIEW")))
        .up_to_n_times(2)
        .expect(2)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();

    let first = next(&mut events).await;
    assert_eq!(first.source(), EventSource::Initial);
    assert!(first.changed_fields.is_empty());
    let n = first.phone_number.unwrap();
    assert_eq!(
        (n.id.as_str(), n.name_status()),
        (N1, NameStatus::PendingReview)
    );
    assert!(first.observed_at.is_some());

    // The second poll found nothing new and said nothing; the third found the approval.
    let change = next(&mut events).await;
    assert_eq!(change.source(), EventSource::Poll);
    assert_eq!(change.changed_fields, ["name_status"]);
    assert_eq!(
        change.phone_number.unwrap().name_status(),
        NameStatus::Approved
    );
}

/// Real time, with polls 200 ms (± 10 %) apart: a thousand pollers would make thousands
/// of calls; one shared watcher makes at most one per interval elapsed. (Counting polls
/// on the paused clock is not reliable: the HTTP client's own timers move it.)
#[tokio::test]
async fn a_thousand_subscribers_cost_the_upstream_calls_of_one() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    let mut settings = crate::support::settings(&graph.uri());
    settings.watch.interval = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let service = Service::start(settings).await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        let client = Client::new(channel(service.addr).await);
        for _ in 0..100 {
            let stream = client.clone().watch_status(numbers(&[N1])).await.unwrap();
            streams.push(stream.into_inner());
        }
    }
    for events in &mut streams {
        assert_eq!(next(events).await.source(), EventSource::Initial);
    }
    let expected = HubStats {
        waba_watchers: 0,
        number_watchers: 1,
        subscriptions: 1000,
    };
    assert_eq!(service.hub.stats(), expected);

    // Let a few polls happen, then count.
    let polled = async {
        while graph.received_requests().await.unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), polled)
        .await
        .expect("no polls");
    let calls = graph.received_requests().await.unwrap().len();
    let intervals = (started.elapsed().as_millis() / 180) as usize;
    assert!(
        calls <= intervals + 2,
        "{calls} upstream calls in {intervals} intervals"
    );
}

#[tokio::test(start_paused = true)]
async fn watching_a_waba_covers_numbers_added_later() {
    let graph = MockServer::start().await;
    let (n1, n2, n3) = (
        number(N1, "APPROVED"),
        number(N2, "APPROVED"),
        number(N3, "PENDING_REVIEW"),
    );
    list()
        .and(query_param("fields", FIELDS))
        .and(query_param("limit", "100"))
        .respond_with(page(&[n1.clone(), n2.clone()]))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    list().respond_with(page(&[n1, n2, n3])).mount(&graph).await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(waba())
        .await
        .unwrap()
        .into_inner();

    let mut initial = [next(&mut events).await, next(&mut events).await];
    initial.sort_by_key(|e| e.phone_number.as_ref().unwrap().id.clone());
    assert_eq!(initial[0].phone_number.as_ref().unwrap().id, N1);
    assert_eq!(initial[1].phone_number.as_ref().unwrap().id, N2);
    // A number added to the WABA later starts with its own snapshot.
    let added = next(&mut events).await;
    assert_eq!(added.source(), EventSource::Initial);
    assert_eq!(added.phone_number.unwrap().id, N3);
}

#[tokio::test(start_paused = true)]
async fn polls_thin_out_as_usage_rises_and_pause_while_meta_throttles() {
    let graph = MockServer::start().await;
    list()
        .respond_with(
            page(&[number(N1, "PENDING_REVIEW")])
                .insert_header("x-business-use-case-usage", usage(95, 0)),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    list()
        .respond_with(throttled(19))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    list()
        .respond_with(page(&[number(N1, "APPROVED")]))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(waba())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    let started = Instant::now();

    let change = next(&mut events).await;
    assert_eq!(change.changed_fields, ["name_status"]);
    // At 95 % usage the next poll waits 8 intervals (60 s, jittered ±10 %); then Meta's
    // throttle holds every poll for the 19 minutes it announced.
    let waited = started.elapsed();
    let least = Duration::from_secs(8 * 54 + 19 * 60);
    assert!(
        waited >= least,
        "the change came after {waited:?}, before {least:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_without_ending_the_stream() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "PENDING_REVIEW")))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(graph_error(503, 2, None, "Service temporarily unavailable"))
        .up_to_n_times(6)
        .expect(6)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    // Two polls fail (three attempts each); the stream lives on to see the change.
    let change = next(&mut events).await;
    assert_eq!(change.changed_fields, ["name_status"]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_stream_with_its_status() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(graph_error(400, 100, Some(33), "Object does not exist"))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    assert_eq!(next_error(&mut events).await.code(), Code::NotFound);
    assert!(
        events.message().await.unwrap().is_none(),
        "the stream is over"
    );
}

#[tokio::test]
async fn bad_ids_fail_before_the_stream_starts() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(graph_error(400, 100, Some(33), "Object does not exist"))
        .expect(1)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let err = client.watch_status(numbers(&[N1])).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for request in [
        numbers(&["123/../me"]),
        numbers(&[]),
        WatchStatusRequest {
            phone_number_ids: vec![N1.into()],
            waba_id: WABA.into(),
        },
        WatchStatusRequest {
            phone_number_ids: Vec::new(),
            waba_id: "me".into(),
        },
    ] {
        let err = client.watch_status(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}

/// Answers Graph batch requests like Meta, recording each batch's size.
struct Batches(Arc<Mutex<Vec<usize>>>);

impl Respond for Batches {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form = reqwest::Url::parse(&format!(
            "http://x/?{}",
            String::from_utf8_lossy(&request.body)
        ))
        .unwrap();
        let batch = form.query_pairs().find(|(k, _)| k == "batch").unwrap().1;
        let operations: Vec<Value> = serde_json::from_str(&batch).unwrap();
        self.0.lock().unwrap().push(operations.len());
        let items: Vec<Value> = operations
            .iter()
            .map(|op| {
                assert_eq!(op["method"], "GET");
                let relative = op["relative_url"].as_str().unwrap();
                let (id, fields) = relative.split_once("?fields=").unwrap();
                assert_eq!(fields, FIELDS);
                json!({ "code": 200, "body": number(id, "APPROVED").to_string() })
            })
            .collect();
        ok(Value::Array(items))
    }
}

#[tokio::test]
async fn lone_numbers_are_read_in_batches_of_at_most_fifty() {
    let graph = MockServer::start().await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/")))
        .and(header("authorization", format!("Bearer {TOKEN}")))
        .and(query_param("appsecret_proof", proof_for(TOKEN)))
        .respond_with(Batches(sizes.clone()))
        .expect(2)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let ids: Vec<String> = (0..60).map(|i| format!("1065403522430{i:02}")).collect();
    let request = WatchStatusRequest {
        phone_number_ids: ids,
        waba_id: String::new(),
    };
    let mut events = service
        .client()
        .watch_status(request)
        .await
        .unwrap()
        .into_inner();
    for _ in 0..60 {
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    }
    let mut sizes = sizes.lock().unwrap().clone();
    sizes.sort();
    assert_eq!(sizes, [10, 50]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_frees_its_subscription_and_the_watcher_stops() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    list()
        .respond_with(page(&[number(N2, "APPROVED")]))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut client = service.client();
    let mut one = client
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    let mut all = client.watch_status(waba()).await.unwrap().into_inner();
    next(&mut one).await;
    next(&mut all).await;
    assert_eq!(service.hub.stats().subscriptions, 2);

    drop((one, all));
    while service.hub.stats().subscriptions > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // At once: no poll needed to notice.
    let idle = HubStats {
        waba_watchers: 0,
        number_watchers: 0,
        subscriptions: 0,
    };
    let mut stats = service.hub.stats();
    for _ in 0..1000 {
        if stats == idle || stats.waba_watchers == 0 {
            break;
        }
        tokio::task::yield_now().await; // the WABA task retires on its next turn
        stats = service.hub.stats();
    }
    assert_eq!(stats, idle);
    // Several intervals later: both watchers are gone, and neither called Meta again.
    let calls = graph.received_requests().await.unwrap().len();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(graph.received_requests().await.unwrap().len(), calls);
    let idle = HubStats {
        waba_watchers: 0,
        number_watchers: 0,
        subscriptions: 0,
    };
    assert_eq!(service.hub.stats(), idle);
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    next(&mut events).await;
    let stopped = tokio::spawn(service.stop());
    assert_eq!(next_error(&mut events).await.code(), Code::Unavailable);
    // Open streams do not hold the shutdown for its grace period.
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// In real time: on the paused clock every wait for the fake Graph API would let the
/// clock jump to the next timer, and the jump is what this test must not see.
#[tokio::test]
async fn a_new_lone_number_is_read_at_once_even_right_after_a_pass() {
    let graph = MockServer::start().await;
    for id in [N1, N2] {
        read(id)
            .respond_with(ok(number(id, "APPROVED")))
            .expect(1)
            .mount(&graph)
            .await;
    }
    let service = Service::on_fake(&graph).await;
    let mut first = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    next(&mut first).await;
    // A pass has just run: a webhook's re-read would now wait NUDGE_GAP; a first
    // snapshot, which a caller is waiting for, does not.
    let asked = std::time::Instant::now();
    let mut second = service
        .client()
        .watch_status(numbers(&[N2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut second).await.phone_number.unwrap().id, N2);
    let waited = asked.elapsed();
    assert!(waited < NUDGE_GAP / 2, "the first snapshot took {waited:?}");
}

#[tokio::test]
async fn shutdown_ends_calls_still_waiting_for_their_first_snapshot() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(ok(number(N1, "APPROVED")).set_delay(Duration::from_secs(3600)))
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let call = tokio::spawn(async move { client.watch_status(numbers(&[N1])).await });
    while service.hub.stats().subscriptions == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopped = tokio::spawn(service.stop());
    let status = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends with the shutdown")
        .unwrap()
        .expect_err("no snapshot was ever read");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The waiting call does not hold the shutdown for its grace period.
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_throttled_lone_number_waits_as_long_as_meta_says() {
    let graph = MockServer::start().await;
    read(N1)
        .respond_with(ok(number(N1, "PENDING_REVIEW")))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(throttled(15))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    read(N1)
        .respond_with(ok(number(N1, "APPROVED")))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    let started = Instant::now();
    // The poll after the throttle waits the 15 minutes Meta announced (and the poller
    // sleeps meanwhile: a busy loop would never let the paused clock move).
    let change = next(&mut events).await;
    assert_eq!(change.changed_fields, ["name_status"]);
    assert!(
        started.elapsed() >= Duration::from_secs(54 + 15 * 60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttled_batch_pauses_every_lone_number() {
    let graph = MockServer::start().await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let batch = || Mock::given(method("POST")).and(path(format!("/{VERSION}/")));
    batch()
        .respond_with(Batches(sizes.clone()))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    batch()
        .respond_with(throttled(20))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    batch()
        .respond_with(Batches(sizes.clone()))
        .mount(&graph)
        .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut events = service
        .client()
        .watch_status(numbers(&[N1, N2]))
        .await
        .unwrap()
        .into_inner();
    next(&mut events).await;
    next(&mut events).await;
    let started = Instant::now();
    let polls_before = sizes.lock().unwrap().len();
    // Wait until a batch after the throttled one went through.
    while sizes.lock().unwrap().len() == polls_before {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(54 + 20 * 60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_ids_are_invalid_and_never_reach_meta() {
    let graph = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&graph)
        .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .watch_status(numbers(&[N1, "12a"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
