//! WatchStatus against a fake Graph API that counts the upstream calls. Where time
//! matters the tests run on tokio's paused clock: the watchers' waits pass instantly,
//! in order, and what happened meanwhile is read off the virtual clock. So stream reads
//! here have no time limit (`support::unbounded`): on that clock a timeout would fire
//! long before an event minutes away.

use crate::support::unbounded::{next, next_error};
use crate::support::{
    Client, FIELDS, N1, N2, N3, Service, TOKEN, WABA, batch, calls, channel, fake_graph,
    graph_error, graph_never_called, list, number, numbers, ok, page, read, received, throttled,
    usage, waba, with_token,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Streaming};
use waba_numbers::pb::{EventSource, NameStatus, StatusEvent, WatchStatusRequest};
use waba_numbers::watch::{HubStats, NUDGE_GAP};
use wiremock::matchers::{any, method, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// `N1` as Meta answers it: pending review at the first read, then as `meanwhile` says
/// (its `up_to_n_times`), then approved.
fn approved_after(meanwhile: Mock) -> [Mock; 3] {
    [
        read(N1)
            .respond_with(ok(number(N1, "PENDING_REVIEW")))
            .up_to_n_times(1),
        meanwhile,
        read(N1).respond_with(ok(number(N1, "APPROVED"))),
    ]
}

/// The service on `graph`, on the paused clock, and a stream watching `request` past its
/// first event, which must be a snapshot.
async fn past_the_snapshot(
    graph: &MockServer,
    request: WatchStatusRequest,
) -> (Service, Streaming<StatusEvent>) {
    let service = Service::on_fake_paused(graph).await;
    let mut events = service.watch(request).await;
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    (service, events)
}

#[tokio::test(start_paused = true)]
async fn the_first_event_is_a_snapshot_then_only_changes_with_their_fields() {
    let graph = fake_graph([
        read(N1)
            .respond_with(ok(number(N1, "PENDING_REVIEW")))
            .up_to_n_times(2)
            .expect(2),
        read(N1).respond_with(ok(number(N1, "APPROVED"))),
    ])
    .await;
    let service = Service::on_fake_paused(&graph).await;
    let mut events = service.watch(numbers(&[N1])).await;

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
    let n = change.phone_number.unwrap();
    assert_eq!(n.name_status(), NameStatus::Approved);
}

/// Real time, with polls 200 ms (± 10 %) apart: a thousand pollers would make thousands
/// of calls; one shared watcher makes at most one per interval elapsed. (Counting polls
/// on the paused clock is not reliable: the HTTP client's own timers move it.)
#[tokio::test]
async fn a_thousand_subscribers_cost_the_upstream_calls_of_one() {
    let graph = fake_graph([read(N1).respond_with(ok(number(N1, "APPROVED")))]).await;
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
        polling_waba_watchers: 0,
        polling_number_watchers: 1,
    };
    assert_eq!(service.hub.stats(), expected);

    // Let a few polls happen, then count.
    tokio::time::timeout(Duration::from_secs(30), received(&graph, 4))
        .await
        .expect("no polls");
    let made = calls(&graph).await;
    let intervals = (started.elapsed().as_millis() / 180) as usize;
    assert!(
        made <= intervals + 2,
        "{made} upstream calls in {intervals} intervals"
    );
}

#[tokio::test(start_paused = true)]
async fn watching_a_waba_covers_numbers_added_later() {
    let (n1, n2, n3) = (
        number(N1, "APPROVED"),
        number(N2, "APPROVED"),
        number(N3, "PENDING_REVIEW"),
    );
    let graph = fake_graph([
        list()
            .and(query_param("fields", FIELDS))
            .and(query_param("limit", "100"))
            .respond_with(page(&[n1.clone(), n2.clone()]))
            .up_to_n_times(1),
        list().respond_with(page(&[n1, n2, n3])),
    ])
    .await;
    let service = Service::on_fake_paused(&graph).await;
    let mut events = service.watch(waba(WABA)).await;

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
    let graph = fake_graph([
        list()
            .respond_with(
                page(&[number(N1, "PENDING_REVIEW")])
                    .insert_header("x-business-use-case-usage", usage(95, 0)),
            )
            .up_to_n_times(1)
            .expect(1),
        list()
            .respond_with(throttled(19))
            .up_to_n_times(1)
            .expect(1),
        list().respond_with(page(&[number(N1, "APPROVED")])),
    ])
    .await;
    let (_service, mut events) = past_the_snapshot(&graph, waba(WABA)).await;
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
    let unavailable = read(N1)
        .respond_with(graph_error(503, 2, None, "Service temporarily unavailable"))
        .up_to_n_times(6)
        .expect(6);
    let graph = fake_graph(approved_after(unavailable)).await;
    let (_service, mut events) = past_the_snapshot(&graph, numbers(&[N1])).await;
    // Two polls fail (three attempts each); the stream lives on to see the change.
    let change = next(&mut events).await;
    assert_eq!(change.changed_fields, ["name_status"]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_stream_with_its_status() {
    let graph = fake_graph([
        read(N1)
            .respond_with(ok(number(N1, "APPROVED")))
            .up_to_n_times(1),
        read(N1).respond_with(graph_error(400, 100, Some(33), "Object does not exist")),
    ])
    .await;
    let (_service, mut events) = past_the_snapshot(&graph, numbers(&[N1])).await;
    assert_eq!(next_error(&mut events).await.code(), Code::NotFound);
    assert!(
        events.message().await.unwrap().is_none(),
        "the stream is over"
    );
}

#[tokio::test]
async fn bad_ids_fail_before_the_stream_starts() {
    let graph = fake_graph([read(N1)
        .respond_with(graph_error(400, 100, Some(33), "Object does not exist"))
        .expect(1)])
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
            ..waba(WABA)
        },
        waba("me"),
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
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let graph = fake_graph([
        with_token(batch(), TOKEN)
            .respond_with(Batches(sizes.clone()))
            .expect(2),
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .expect(0),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let ids: Vec<String> = (0..60).map(|i| format!("1065403522430{i:02}")).collect();
    let request = WatchStatusRequest {
        phone_number_ids: ids,
        waba_id: String::new(),
    };
    let mut events = service.watch(request).await;
    for _ in 0..60 {
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    }
    let mut sizes = sizes.lock().unwrap().clone();
    sizes.sort();
    assert_eq!(sizes, [10, 50]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_frees_its_subscription_and_the_watcher_stops() {
    let graph = fake_graph([
        read(N1).respond_with(ok(number(N1, "APPROVED"))),
        list().respond_with(page(&[number(N2, "APPROVED")])),
    ])
    .await;
    let service = Service::on_fake_paused(&graph).await;
    let mut one = service.watch(numbers(&[N1])).await;
    let mut all = service.watch(waba(WABA)).await;
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
        polling_waba_watchers: 0,
        polling_number_watchers: 0,
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
    let made = calls(&graph).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(calls(&graph).await, made);
    assert_eq!(service.hub.stats(), idle);
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable() {
    let graph = fake_graph([Mock::given(any()).respond_with(ok(number(N1, "APPROVED")))]).await;
    let service = Service::on_fake(&graph).await;
    let mut events = service.watch(numbers(&[N1])).await;
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
    let graph =
        fake_graph([N1, N2].map(|id| read(id).respond_with(ok(number(id, "APPROVED"))).expect(1)))
            .await;
    let service = Service::on_fake(&graph).await;
    let mut first = service.watch(numbers(&[N1])).await;
    next(&mut first).await;
    // A pass has just run: a webhook's re-read would now wait NUDGE_GAP; a first
    // snapshot, which a caller is waiting for, does not.
    let asked = std::time::Instant::now();
    let mut second = service.watch(numbers(&[N2])).await;
    assert_eq!(next(&mut second).await.phone_number.unwrap().id, N2);
    let waited = asked.elapsed();
    assert!(waited < NUDGE_GAP / 2, "the first snapshot took {waited:?}");
}

#[tokio::test]
async fn shutdown_ends_calls_still_waiting_for_their_first_snapshot() {
    let graph = fake_graph([Mock::given(any())
        .respond_with(ok(number(N1, "APPROVED")).set_delay(Duration::from_secs(3600)))])
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
    let throttle = read(N1)
        .respond_with(throttled(15))
        .up_to_n_times(1)
        .expect(1);
    let graph = fake_graph(approved_after(throttle)).await;
    let (_service, mut events) = past_the_snapshot(&graph, numbers(&[N1])).await;
    let started = Instant::now();
    // The poll after the throttle waits the 15 minutes Meta announced (and the poller
    // sleeps meanwhile: a busy loop would never let the paused clock move).
    let change = next(&mut events).await;
    assert_eq!(change.changed_fields, ["name_status"]);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(54 + 15 * 60), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_throttled_batch_pauses_every_lone_number() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let graph = fake_graph([
        batch()
            .respond_with(Batches(sizes.clone()))
            .up_to_n_times(1),
        batch()
            .respond_with(throttled(20))
            .up_to_n_times(1)
            .expect(1),
        batch().respond_with(Batches(sizes.clone())),
    ])
    .await;
    let service = Service::on_fake_paused(&graph).await;
    let mut events = service.watch(numbers(&[N1, N2])).await;
    next(&mut events).await;
    next(&mut events).await;
    let started = Instant::now();
    let polls_before = sizes.lock().unwrap().len();
    // Wait until a batch after the throttled one went through.
    while sizes.lock().unwrap().len() == polls_before {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(54 + 20 * 60), "{waited:?}");
}

#[tokio::test]
async fn bad_ids_are_invalid_and_never_reach_meta() {
    let graph = graph_never_called().await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .watch_status(numbers(&[N1, "12a"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
