//! The windows of a number's life on every PhoneNumber (register within 14 days of
//! Embedded Signup, register again within 14 days of an approved name change), and
//! finding a number by the digits webhooks and people know.

use crate::support::{
    N1, N2, N3, Service, WABA, assert_invalid, calls, fake_graph, get_status, get_status_within,
    list, list_numbers, name_update, next, number, number_json, numbers, ok, post_signed, read,
    register, register_call,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use waba_numbers::pb::{EventSource, ListNumbersRequest, NameStatus};
use wiremock::matchers::{query_param, query_param_is_missing};

fn seconds(t: &str) -> i64 {
    t.parse::<DateTime<Utc>>().unwrap().timestamp()
}

fn unregistered(id: &str) -> Value {
    let mut n = number_json(id);
    n["platform_type"] = "NOT_APPLICABLE".into();
    n["last_onboarded_time"] = "2026-11-20T10:00:00+0000".into();
    n
}

#[tokio::test]
async fn the_register_deadline_is_14_days_after_onboarding_90_when_pre_verified() {
    let mut preverified = unregistered(N2);
    preverified["is_preverified_number"] = true.into();
    let graph = fake_graph([
        read(N1).respond_with(ok(unregistered(N1))),
        read(N2).respond_with(ok(preverified)),
        read(N3).respond_with(ok(number_json(N3))),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let deadline = |id: &'static str| {
        let mut client = client.clone();
        async move {
            let n = client
                .get_status(get_status(id))
                .await
                .unwrap()
                .into_inner();
            n.register_deadline.map(|t| t.seconds)
        }
    };
    assert_eq!(deadline(N1).await, Some(seconds("2026-12-04T10:00:00Z")));
    assert_eq!(deadline(N2).await, Some(seconds("2027-02-18T10:00:00Z")));
    assert_eq!(deadline(N3).await, None, "registered: no deadline");
    let n = client
        .get_status(get_status(N2))
        .await
        .unwrap()
        .into_inner();
    assert!(n.is_preverified_number && !n.is_on_biz_app);
    let budget = n.register_budget.unwrap();
    assert_eq!((budget.attempts_left, budget.reserve), (10, 1));
    assert_eq!(budget.blocked_until, None);
}

/// `N1` as Meta shows it with a requested new name "Jaspers Market" in `review`.
fn renaming(review: &str) -> Value {
    let mut n = number_json(N1);
    n["display_phone_number"] = "+1 555-010-0001".into();
    n["verified_name"] = "Old Market".into();
    n["new_display_name"] = "Jaspers Market".into();
    n["new_name_status"] = review.into();
    n
}

#[tokio::test]
async fn an_approved_name_change_opens_14_days_to_register_again_from_the_webhooks_time() {
    let graph = fake_graph([
        read(N1)
            .respond_with(ok(renaming("PENDING_REVIEW")))
            .up_to_n_times(1),
        read(N1).respond_with(ok(renaming("APPROVED"))),
        register_call(N1).respond_with(ok(json!({ "success": true }))),
    ])
    .await;
    let mut settings = crate::support::settings(&graph.uri());
    settings.watch.interval = Duration::from_secs(3600);
    let service = Service::start(settings).await;
    let mut events = service.watch(numbers(&[N1])).await;
    let initial = next(&mut events).await;
    assert_eq!(initial.source(), EventSource::Initial);
    assert_eq!(initial.phone_number.unwrap().reregister_deadline, None);

    let approved_at = Utc::now().timestamp() - 3600;
    assert_eq!(
        post_signed(&service, &name_update("APPROVED", approved_at)).await,
        200
    );
    let pushed = next(&mut events).await;
    assert_eq!(pushed.source(), EventSource::Webhook);
    assert!(
        pushed
            .changed_fields
            .iter()
            .any(|f| f == "reregister_deadline"),
        "{:?}",
        pushed.changed_fields
    );
    let n = pushed.phone_number.unwrap();
    assert_eq!(n.new_name_status(), NameStatus::Approved);
    assert_eq!(
        n.reregister_deadline.map(|t| t.seconds),
        Some(approved_at + 14 * 24 * 3600)
    );
    // Reads that see the approval later keep the webhook's time.
    let read = service
        .client()
        .get_status(get_status_within(N1, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.reregister_deadline, n.reregister_deadline);

    // Registered again: the change took effect, the window is closed.
    service
        .client()
        .register(register(N1, "123456"))
        .await
        .unwrap();
    let after = service
        .client()
        .get_status(get_status(N1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.reregister_deadline, None);
    assert_eq!(after.register_budget.unwrap().attempts_left, 9);
}

#[tokio::test]
async fn an_approval_first_seen_by_a_read_counts_from_that_read() {
    let graph = fake_graph([read(N1).respond_with(ok(renaming("APPROVED")))]).await;
    let service = Service::on_fake(&graph).await;
    let before = Utc::now().timestamp();
    let n = service
        .client()
        .get_status(get_status(N1))
        .await
        .unwrap()
        .into_inner();
    let deadline = n.reregister_deadline.unwrap().seconds;
    let window = 14 * 24 * 3600;
    assert!(deadline >= before + window && deadline <= Utc::now().timestamp() + window);
}

#[tokio::test]
async fn list_numbers_finds_a_number_by_its_digits_across_pages() {
    let graph = fake_graph([
        list()
            .and(query_param("limit", "100"))
            .and(query_param_is_missing("after"))
            .respond_with(ok(json!({
                "data": [number(N1, "APPROVED"), number(N2, "APPROVED")],
                "paging": { "cursors": { "after": "A1" }, "next": "https://x/?after=A1" }
            })))
            .expect(1),
        list()
            .and(query_param("after", "A1"))
            .respond_with(ok(json!({ "data": [number(N3, "APPROVED")] })))
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let find = |digits: &str| ListNumbersRequest {
        display_phone_number: digits.into(),
        ..list_numbers(WABA, 0, "")
    };
    let found = client
        .list_numbers(find("+1 (555) 010-2903"))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = found.phone_numbers.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, [N3]);
    assert!(found.next_page_token.is_empty());
    // From the cache while fresh; a number that is not there is an empty answer.
    let none = client
        .list_numbers(find("15550100000"))
        .await
        .unwrap()
        .into_inner();
    assert!(none.phone_numbers.is_empty());
    assert_eq!(calls(&graph).await, 2);

    let err = client.list_numbers(find("call me")).await.unwrap_err();
    assert_invalid(&err, "display_phone_number");
}

#[tokio::test]
async fn a_write_has_the_numbers_watchers_re_read_it_at_once() {
    let graph = fake_graph([
        read(N1).respond_with(ok(unregistered(N1))).up_to_n_times(1),
        read(N1).respond_with(ok(number_json(N1))),
        register_call(N1).respond_with(ok(json!({ "success": true }))),
    ])
    .await;
    let mut settings = crate::support::settings(&graph.uri());
    settings.watch.interval = Duration::from_secs(3600);
    let service = Service::start(settings).await;
    let mut events = service.watch(numbers(&[N1])).await;
    let initial = next(&mut events).await.phone_number.unwrap();
    assert!(initial.register_deadline.is_some());

    service
        .client()
        .register(register(N1, "123456"))
        .await
        .unwrap();
    // Well before the hour between polls: the write itself has the number re-read.
    let event = next(&mut events).await;
    assert_eq!(event.source(), EventSource::Poll);
    for field in ["platform_type", "register_deadline", "register_budget"] {
        assert!(
            event.changed_fields.iter().any(|f| f == field),
            "{field} in {:?}",
            event.changed_fields
        );
    }
    let n = event.phone_number.unwrap();
    assert_eq!(n.register_deadline, None);
    assert_eq!(n.register_budget.unwrap().attempts_left, 9);
}

#[tokio::test]
async fn a_write_whose_caller_gave_up_still_ends_with_its_watchers_re_reading() {
    let graph = fake_graph([
        read(N1).respond_with(ok(unregistered(N1))).up_to_n_times(1),
        read(N1).respond_with(ok(number_json(N1))),
        register_call(N1)
            .respond_with(ok(json!({ "success": true })).set_delay(Duration::from_millis(600)))
            .expect(1),
    ])
    .await;
    let mut settings = crate::support::settings(&graph.uri());
    settings.watch.interval = Duration::from_secs(3600);
    let service = Service::start(settings).await;
    let mut events = service.watch(numbers(&[N1])).await;
    next(&mut events).await;

    let mut impatient = tonic::Request::new(register(N1, "123456"));
    impatient.set_timeout(Duration::from_millis(100));
    let err = service.client().register(impatient).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    // The register went on to Meta's answer; then the number was re-read for its watchers.
    let event = next(&mut events).await;
    let n = event.phone_number.unwrap();
    assert_eq!(n.register_budget.unwrap().attempts_left, 9);
    assert_eq!(n.register_deadline, None);
}
