//! Meta's webhooks at /webhooks/whatsapp: the handshake, the signature, and changes that
//! reach subscribers without waiting for a poll.

use crate::support::unbounded::next_error;
use crate::support::{
    N1, Service, VERIFY_TOKEN, WABA, fake_graph, name_update, next, number_json, numbers, ok, post,
    post_signed, quality_update, read, requests, sign, waba,
};
use serde_json::{Value, json};
use std::time::Duration;
use tonic::{Code, Streaming};
use waba_numbers::pb::{EventSource, NameStatus, StatusEvent};
use waba_numbers::sandbox::{DEMO_WABA_ID, SandboxOptions};
use wiremock::{Mock, MockServer};

/// `N1` as Meta returns it, its display number matching `N1_DIGITS`.
fn number(name_status: &str, quality: &str) -> Value {
    let mut n = number_json(N1);
    n["display_phone_number"] = "+1 555-010-0001".into();
    n["name_status"] = name_status.into();
    n["quality_rating"] = quality.into();
    n
}

/// `N1` at the watch's first read: pending review, quality green (answers once).
fn first_read_pending() -> Mock {
    read(N1)
        .respond_with(ok(number("PENDING_REVIEW", "GREEN")))
        .up_to_n_times(1)
}

/// The service with polls an hour apart: whatever arrives sooner came by webhook.
async fn watched(graph: &MockServer) -> (Service, Streaming<StatusEvent>) {
    let mut settings = crate::support::settings(&graph.uri());
    settings.watch.interval = Duration::from_secs(3600);
    let service = Service::start(settings).await;
    let mut events = service.watch(numbers(&[N1])).await;
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    (service, events)
}

/// Stops the service: the next thing the stream says must be the shutdown's UNAVAILABLE,
/// and the service must then stop cleanly.
async fn ends_with_the_shutdown(service: Service, mut events: Streaming<StatusEvent>) {
    let stopped = tokio::spawn(service.stop());
    let end = next_error(&mut events).await;
    assert_eq!(end.code(), Code::Unavailable);
    stopped.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_verification_handshake_echoes_the_challenge_only_for_our_token() {
    let graph = MockServer::start().await;
    let service = Service::on_fake(&graph).await;
    let handshake = |mode: &str, token: &str| {
        let url = format!(
            "http://{}/webhooks/whatsapp?hub.mode={mode}&hub.challenge=1158201444&hub.verify_token={token}",
            service.http_addr
        );
        async move {
            let answer = reqwest::get(url).await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    assert_eq!(
        handshake("subscribe", VERIFY_TOKEN).await,
        (200, "1158201444".into())
    );
    assert_eq!(handshake("subscribe", "wrong").await.0, 403);
    assert_eq!(handshake("unsubscribe", VERIFY_TOKEN).await.0, 403);
}

#[tokio::test]
async fn a_signed_change_reaches_subscribers_at_once_then_the_number_is_reread() {
    let graph = fake_graph([
        first_read_pending(),
        // Meta's truth after the review: approved, and meanwhile the quality moved. (The
        // re-read is slowed down so the webhook's own event surely comes first.)
        read(N1)
            .respond_with(ok(number("APPROVED", "YELLOW")).set_delay(Duration::from_millis(300)))
            .expect(1),
    ])
    .await;
    let (service, mut events) = watched(&graph).await;
    let now = chrono::Utc::now().timestamp();

    // Unsigned or wrongly signed: refused, and nothing happens: no event, no re-read.
    let flagged = quality_update("FLAGGED", now);
    assert_eq!(post(&service, &flagged, None).await, 403);
    let wrong = Some(sign(b"another body"));
    assert_eq!(post(&service, &flagged, wrong).await, 403);
    let garbage = Some("sha256=zz".to_owned());
    assert_eq!(post(&service, &flagged, garbage).await, 403);

    let approved = name_update("APPROVED", now);
    assert_eq!(post_signed(&service, &approved).await, 200);
    // The first event is the signed push's alone: the refused ones changed nothing.
    let pushed = next(&mut events).await;
    assert_eq!(pushed.source(), EventSource::Webhook);
    assert_eq!(pushed.changed_fields, ["name_status"]);
    assert_eq!(
        pushed.phone_number.unwrap().name_status(),
        NameStatus::Approved
    );
    // The prompt re-read brings what the webhook did not say.
    let reread = next(&mut events).await;
    assert_eq!(reread.source(), EventSource::Poll);
    assert_eq!(reread.changed_fields, ["quality_rating"]);
}

#[tokio::test]
async fn duplicate_and_out_of_order_deliveries_leave_no_wrong_state() {
    let graph = fake_graph([
        first_read_pending(),
        read(N1).respond_with(ok(number("APPROVED", "GREEN"))),
    ])
    .await;
    let (service, mut events) = watched(&graph).await;
    let now = chrono::Utc::now().timestamp();

    assert_eq!(
        post_signed(&service, &name_update("APPROVED", now + 10)).await,
        200
    );
    assert_eq!(
        post_signed(&service, &name_update("APPROVED", now + 10)).await,
        200
    );
    // Generated before the approval, delivered after it.
    assert_eq!(
        post_signed(&service, &name_update("PENDING", now + 5)).await,
        200
    );
    // Unknown fields and events are ignored, not errors.
    let other = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp"}},
        {"field": "account_update", "value": {"event": "SOMETHING_NEW"}}]}]});
    assert_eq!(post_signed(&service, &other).await, 200);

    let approved = next(&mut events).await;
    assert_eq!(approved.source(), EventSource::Webhook);
    assert_eq!(
        approved.phone_number.unwrap().name_status(),
        NameStatus::Approved
    );
    // Let the prompt re-reads finish (pushes close together share one), then stop: the
    // next thing the stream says is the shutdown, so no stale or repeated state was sent.
    requests(&graph, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ends_with_the_shutdown(service, events).await;
}

#[tokio::test]
async fn the_sandbox_comes_alive_with_signed_webhooks() {
    let options = SandboxOptions {
        pace: Duration::from_millis(200),
        ..SandboxOptions::default()
    };
    let service = Service::on_sandbox_with(options).await;
    let mut events = service.watch(waba(DEMO_WABA_ID)).await;
    // Polls are a minute apart: a change within seconds came by webhook.
    let webhook = async {
        loop {
            let event = next(&mut events).await;
            if event.source() == EventSource::Webhook {
                assert!(!event.changed_fields.is_empty());
                break;
            }
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(20), webhook).await;
    waited.expect("no webhook event within 20 s");
}

#[tokio::test]
async fn a_read_in_flight_when_a_push_lands_does_not_overwrite_it() {
    // The re-read after the first push is slow: it starts before the second push lands,
    // and what it found is older than that push.
    let mut stale = number("PENDING_REVIEW", "GREEN");
    stale["status"] = "FLAGGED".into();
    let mut settled = number("APPROVED", "GREEN");
    settled["status"] = "FLAGGED".into();
    let graph = fake_graph([
        first_read_pending(),
        read(N1)
            .respond_with(ok(stale).set_delay(Duration::from_millis(800)))
            .up_to_n_times(1),
        read(N1).respond_with(ok(settled)),
    ])
    .await;
    let (service, mut events) = watched(&graph).await;
    let now = chrono::Utc::now().timestamp();

    assert_eq!(
        post_signed(&service, &quality_update("FLAGGED", now)).await,
        200
    );
    assert_eq!(next(&mut events).await.changed_fields, ["status"]);
    requests(&graph, 2).await; // the slow re-read is on its way
    assert_eq!(
        post_signed(&service, &name_update("APPROVED", now)).await,
        200
    );
    assert_eq!(next(&mut events).await.changed_fields, ["name_status"]);
    // The slow read lands, then the one after it: neither takes the approval back.
    requests(&graph, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ends_with_the_shutdown(service, events).await;
}
