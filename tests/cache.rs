//! The read path against a fake Graph API that counts calls: cached snapshots and pages,
//! single-flight, invalidation by writes and webhooks, throttle memory, and the
//! watchers' reads serving GetStatus.

use crate::support::{
    Client, N1, N2, Service, WABA, calls, error_info, fake_graph, get_status, get_status_within,
    graph_error, list, list_numbers, name_update, next, number_json, numbers, ok, page,
    paused_clock_settings, post_signed, read, register, register_call, settings, throttled, usage,
};
use serde_json::json;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;
use waba_numbers::pb::{GetStatusRequest, NameStatus, PhoneNumber};
use wiremock::MockServer;

fn list_request() -> waba_numbers::pb::ListNumbersRequest {
    list_numbers(WABA, 100, "")
}

/// A fake Graph API where `N1` reads as `number_json`, exactly `times` times.
async fn n1_read_times(times: u64) -> MockServer {
    fake_graph([read(N1).respond_with(ok(number_json(N1))).expect(times)]).await
}

/// GetStatus as a client sees it, when it answers.
async fn got(client: &mut Client, request: GetStatusRequest) -> PhoneNumber {
    client.get_status(request).await.unwrap().into_inner()
}

/// `after` was observed later than `before`.
fn assert_later(before: &PhoneNumber, after: &PhoneNumber) {
    let (a, b) = (before.observed_at.unwrap(), after.observed_at.unwrap());
    assert!(
        (b.seconds, b.nanos) > (a.seconds, a.nanos),
        "{a:?} then {b:?}"
    );
}

#[tokio::test]
async fn a_second_get_status_within_the_ttl_makes_no_call_and_keeps_its_observed_at() {
    let graph = n1_read_times(1).await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let first = got(&mut client, get_status(N1)).await;
    let second = got(&mut client, get_status(N1)).await;
    assert!(first.observed_at.is_some());
    assert_eq!(second, first, "the same snapshot, observed_at included");
}

#[tokio::test]
async fn max_staleness_zero_reads_meta_now() {
    let graph = n1_read_times(2).await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let first = got(&mut client, get_status(N1)).await;
    let fresh = got(&mut client, get_status_within(N1, 0)).await;
    assert_later(&first, &fresh);
    // A negative staleness is refused without a call.
    let err = client
        .get_status(get_status_within(N1, -1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "max_staleness"
    );
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_older_than_the_ttl_is_read_again() {
    let graph = n1_read_times(2).await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut client = service.client();
    client.get_status(get_status(N1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(14)).await;
    client.get_status(get_status(N1)).await.unwrap();
    assert_eq!(calls(&graph).await, 1, "still fresh at 14 s of a 15 s TTL");
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.get_status(get_status(N1)).await.unwrap();
}

#[tokio::test]
async fn a_ttl_of_zero_disables_the_cache() {
    let graph = n1_read_times(3).await;
    let mut settings = settings(&graph.uri());
    settings.cache.ttl = Duration::ZERO;
    let service = Service::start(settings).await;
    let mut client = service.client();
    for _ in 0..3 {
        client.get_status(get_status(N1)).await.unwrap();
    }
}

#[tokio::test]
async fn a_thousand_concurrent_reads_make_one_call_whatever_their_staleness() {
    let graph = fake_graph([read(N1)
        .respond_with(ok(number_json(N1)).set_delay(Duration::from_millis(300)))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let mut client = service.client();
            let request = if i % 2 == 0 {
                get_status(N1)
            } else {
                get_status_within(N1, 0)
            };
            tokio::spawn(async move { client.get_status(request).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().into_inner().id, N1);
    }
}

#[tokio::test]
async fn list_numbers_is_served_from_cache_and_fills_the_numbers_snapshots() {
    let graph = fake_graph([
        list()
            .respond_with(page(&[number_json(N1), number_json(N2)]))
            .expect(1),
        read(N1).respond_with(ok(number_json(N1))).expect(0),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let first = client
        .list_numbers(list_request())
        .await
        .unwrap()
        .into_inner();
    let again = client
        .list_numbers(list_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    let listed_at = first.phone_numbers[0].observed_at;
    assert!(listed_at.is_some());
    // The listing's snapshot answers GetStatus too.
    let n1 = got(&mut client, get_status(N1)).await;
    assert_eq!(n1.observed_at, listed_at);
}

#[tokio::test]
async fn register_drops_the_numbers_snapshot_and_its_wabas_pages() {
    let graph = fake_graph([
        list().respond_with(page(&[number_json(N1)])).expect(2),
        read(N1).respond_with(ok(number_json(N1))).expect(1),
        register_call(N1)
            .respond_with(ok(json!({ "success": true })))
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    client.list_numbers(list_request()).await.unwrap();
    client.get_status(get_status(N1)).await.unwrap(); // from the listing
    client.register(register(N1, "123456")).await.unwrap();
    client.get_status(get_status(N1)).await.unwrap(); // read again
    client.list_numbers(list_request()).await.unwrap(); // listed again
}

#[tokio::test]
async fn a_webhook_updates_the_cached_snapshot_and_its_observed_at_at_once() {
    let mut pending = number_json(N1);
    pending["display_phone_number"] = "+1 555-010-0001".into(); // N1_DIGITS
    pending["name_status"] = "PENDING_REVIEW".into();
    let graph = fake_graph([read(N1).respond_with(ok(pending)).expect(1)]).await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let before = got(&mut client, get_status(N1)).await;
    assert_eq!(before.name_status(), NameStatus::PendingReview);

    let approved = name_update("APPROVED", 1_739_321_024);
    assert_eq!(post_signed(&service, &approved).await, 200);

    let after = got(&mut client, get_status(N1)).await;
    assert_eq!(after.name_status(), NameStatus::Approved);
    assert_later(&before, &after);
}

#[tokio::test]
async fn while_meta_throttles_a_number_no_call_goes_out() {
    let graph = fake_graph([
        read(N1).respond_with(ok(number_json(N1))).up_to_n_times(1),
        read(N1).respond_with(throttled(19)),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let cached = got(&mut client, get_status(N1)).await;
    // Meta's own refusal, passed on.
    let err = client
        .get_status(get_status_within(N1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(calls(&graph).await, 2);

    // A read that may be stale gets the cached snapshot, with its old observed_at.
    let stale = got(&mut client, get_status(N1)).await;
    assert_eq!(stale.observed_at, cached.observed_at);
    // One that may not is refused here, with Meta's wait, without a call.
    let err = client
        .get_status(get_status_within(N1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let wait = err.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(
        wait > Duration::from_secs(18 * 60) && wait <= Duration::from_secs(19 * 60),
        "{wait:?}"
    );
    assert_eq!(calls(&graph).await, 2, "no call while throttled");
}

#[tokio::test]
async fn a_throttled_waba_holds_back_reads_of_all_its_numbers() {
    let graph = fake_graph([
        list()
            .respond_with(page(&[number_json(N1), number_json(N2)]))
            .expect(1),
        read(N1).respond_with(throttled(5)).expect(1),
        read(N2).respond_with(ok(number_json(N2))).expect(0),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    client.list_numbers(list_request()).await.unwrap(); // N1 and N2 belong to WABA
    let err = client
        .get_status(get_status_within(N1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Another number of the throttled WABA: no call, and its listed snapshot when allowed.
    let err = client
        .get_status(get_status_within(N2, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.get_details_retry_info().is_some());
    let listed = got(&mut client, get_status(N2)).await;
    assert_eq!(listed.id, N2);
}

#[tokio::test]
async fn usage_headers_saying_a_waba_is_throttled_hold_back_its_reads() {
    let graph = fake_graph([
        list()
            .respond_with(
                page(&[number_json(N1)]).insert_header("x-business-use-case-usage", usage(100, 3)),
            )
            .expect(1),
        read(N1).respond_with(ok(number_json(N1))).expect(0),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    client.list_numbers(list_request()).await.unwrap();
    let err = client
        .get_status(get_status_within(N1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}

#[tokio::test]
async fn get_status_within_the_ttl_of_a_watchers_read_makes_no_call() {
    let graph = n1_read_times(1).await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let mut events = service.watch(numbers(&[N1])).await;
    let first = next(&mut events).await;
    let watched = first.phone_number.unwrap();
    assert!(watched.observed_at.is_some());
    let answered = got(&mut client, get_status(N1)).await;
    assert_eq!(
        answered.observed_at, watched.observed_at,
        "the watcher's snapshot"
    );
}

#[tokio::test]
async fn a_read_in_flight_when_register_lands_does_not_refill_the_cache() {
    let mut before = number_json(N1);
    before["platform_type"] = "NOT_APPLICABLE".into();
    let graph = fake_graph([
        read(N1)
            .respond_with(ok(before).set_delay(Duration::from_millis(500)))
            .up_to_n_times(1),
        read(N1).respond_with(ok(number_json(N1))).expect(1),
        register_call(N1).respond_with(ok(json!({ "success": true }))),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut slow = service.client();
    let in_flight = tokio::spawn(async move { slow.get_status(get_status(N1)).await });
    while calls(&graph).await == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service
        .client()
        .register(register(N1, "123456"))
        .await
        .unwrap();
    let old = in_flight.await.unwrap().unwrap().into_inner();
    assert_eq!(
        old.platform_type_raw, "NOT_APPLICABLE",
        "read before the write"
    );
    // What that read found predates the write: it was not cached.
    let now = service.client().get_status(get_status(N1)).await.unwrap();
    assert_eq!(now.into_inner().platform_type_raw, "CLOUD_API");
}

#[tokio::test]
async fn an_app_wide_throttle_holds_back_reads_of_every_number() {
    let graph = fake_graph([
        read(N1)
            .respond_with(graph_error(
                400,
                4,
                None,
                "(#4) Application request limit reached",
            ))
            .expect(1),
        read(N2).respond_with(ok(number_json(N2))).expect(0),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let err = client.get_status(get_status(N1)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Code 4 is the app's own limit: a number of any WABA waits, with no call.
    let err = client.get_status(get_status(N2)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&err).domain, "waba-numbers");
    assert!(err.get_details_retry_info().is_some());
}

#[tokio::test(start_paused = true)]
async fn list_numbers_is_served_stale_while_the_waba_is_throttled() {
    let graph = fake_graph([
        list()
            .respond_with(page(&[number_json(N1)]))
            .up_to_n_times(1),
        list().respond_with(throttled(30)).expect(1),
    ])
    .await;
    let service = Service::start(paused_clock_settings(&graph.uri())).await;
    let mut client = service.client();
    let first = client
        .list_numbers(list_request())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_secs(20)).await; // past the TTL
    let err = client.list_numbers(list_request()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "Meta's refusal");
    // While throttled, the old page (with its old observed_at) rather than another call.
    let stale = client
        .list_numbers(list_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stale, first);
    assert_eq!(calls(&graph).await, 2);
}
