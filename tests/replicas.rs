//! Several replicas of the real binary on one PostgreSQL store (`WABA_TEST_POSTGRES_URL`;
//! without it these say so and pass, unless `WABA_TEST_POSTGRES_REQUIRED` is set, as in
//! CI), against one fake Graph API that counts calls: what one replica spends of a
//! number's limits, every replica counts.

use crate::support::{
    Client, Engine, N1, NUMBER, StoreFixture, VERSION, WABA, assert_register_guard, channel,
    fake_graph, list, name_update, next, number, page, register, sign, start_binary_on, terminate,
    waba,
};
use serde_json::json;
use std::net::SocketAddr;
use tokio::process::Child;
use tonic::Code;
use waba_numbers::pb::EventSource;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// `n` replicas of the binary on the fixture's store, against `graph_url` (logging
/// warnings only: nobody reads their output while they run).
async fn replicas(n: usize, store: &StoreFixture, graph_url: &str) -> Vec<(Child, SocketAddr)> {
    let mut started = Vec::new();
    for (child, grpc, _) in replicas_with_http(n, store, graph_url, &[]).await {
        started.push((child, grpc));
    }
    started
}

async fn replicas_with_http(
    n: usize,
    store: &StoreFixture,
    graph_url: &str,
    extra: &[&str],
) -> Vec<(Child, SocketAddr, SocketAddr)> {
    let mut started = Vec::new();
    for _ in 0..n {
        let env = [
            ("WABA_STORE", store.spec.as_str()),
            ("WABA_STORE_KEY_FILE", store.key.path.to_str().unwrap()),
            ("RUST_LOG", "warn"),
        ];
        started.push(start_binary_on(graph_url, extra, &env).await);
    }
    started
}

#[tokio::test]
async fn eleven_register_attempts_over_three_replicas_spend_the_budget_once() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    // Meta takes every register, slowly (so the calls overlap): only the shared ledger
    // can stop the 10th.
    let graph = fake_graph([Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/{NUMBER}/register")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "success": true }))
                .set_delay(std::time::Duration::from_millis(200)),
        )
        .expect(9)])
    .await;
    let replicas = replicas(3, &store, &graph.uri()).await;
    let mut clients = Vec::new();
    for (_, addr) in &replicas {
        clients.push(Client::new(channel(*addr).await));
    }
    // At once, spread over the three: 9 of Meta's 10 may be spent (the default reserve
    // keeps one for a person), whichever replica takes them.
    let calls = (0..11).map(|i| {
        let mut client = clients[i % 3].clone();
        tokio::spawn(async move {
            let mut request = register(NUMBER, "123456");
            request.request_id = format!("attempt-{i}");
            client.register(request).await
        })
    });
    let mut refused = Vec::new();
    let mut registered = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(_) => registered += 1,
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(registered, 9);
    assert_eq!(refused.len(), 2);
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_register_guard(status, NUMBER, 1);
    }
    for (child, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
    // The fake's expectation (exactly 9 upstream registers) is checked as it drops.
}

#[tokio::test]
async fn one_request_id_sent_to_two_replicas_at_once_registers_once() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    // Meta takes its time: both calls are in flight together.
    let graph = fake_graph([Mock::given(method("POST"))
        .and(path(format!("/{VERSION}/{NUMBER}/register")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "success": true }))
                .set_delay(std::time::Duration::from_millis(500)),
        )
        .expect(1)])
    .await;
    let replicas = replicas(2, &store, &graph.uri()).await;
    let calls = replicas.iter().map(|(_, addr)| {
        let addr = *addr;
        tokio::spawn(async move {
            let mut client = Client::new(channel(addr).await);
            let mut request = register(NUMBER, "123456");
            request.request_id = "signup-42-register".into();
            client.register(request).await.map(|r| r.into_inner())
        })
    });
    let mut answers = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        answers.push(call.await.unwrap().unwrap());
    }
    assert_eq!(answers[0], answers[1], "both callers get the same answer");
    // A retry later, on either replica, is the same answer, and no new call.
    let mut client = Client::new(channel(replicas[1].1).await);
    let mut again = register(NUMBER, "123456");
    again.request_id = "signup-42-register".into();
    assert_eq!(
        client.register(again).await.unwrap().into_inner(),
        answers[0]
    );
    // The same key for another request is refused, on any replica.
    let mut other = register(NUMBER, "654321");
    other.request_id = "signup-42-register".into();
    let reused = Client::new(channel(replicas[0].1).await)
        .register(other)
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    for (child, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}

#[tokio::test]
async fn a_webhook_on_one_replica_reaches_a_subscriber_on_another_at_once() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    // N1 as the webhook names it (+1 555-010-0001), its display name in review.
    let mut n1 = number(N1, "PENDING_REVIEW");
    n1["display_phone_number"] = "+1 555-010-0001".into();
    let graph = fake_graph([list().respond_with(page(&[n1]))]).await;
    let replicas = replicas_with_http(3, &store, &graph.uri(), &["--watch-interval", "1h"]).await;
    let mut watcher = Client::new(channel(replicas[2].1).await);
    let mut events = watcher.watch_status(waba(WABA)).await.unwrap().into_inner();
    let first = next(&mut events).await;
    assert_eq!(first.source(), EventSource::Initial);
    // Meta delivers the webhook to replica 1 alone.
    waba_numbers::tls::install_provider(); // for the test's own HTTP client
    let body = name_update("APPROVED", chrono::Utc::now().timestamp());
    let status = reqwest::Client::new()
        .post(format!("http://{}/webhooks/whatsapp", replicas[0].2))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body.to_string().as_bytes()))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(1), events.message())
        .await
        .expect("the webhook's event on replica 3 within 1 s")
        .unwrap()
        .unwrap();
    assert_eq!(pushed.source(), EventSource::Webhook);
    assert_eq!(pushed.changed_fields, ["name_status"]);
    for (child, _, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}
