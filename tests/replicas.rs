//! Several replicas of the real binary on one PostgreSQL store (`WABA_TEST_POSTGRES_URL`;
//! without it these say so and pass, unless `WABA_TEST_POSTGRES_REQUIRED` is set, as in
//! CI), against one fake Graph API that counts calls: what one replica spends of a
//! number's limits, every replica counts. The PostgreSQL outages run on a server of
//! their own ([`OwnPostgres`]), stopped and started under the replicas.

use crate::support::{
    Client, CustomersClient, Engine, KeyFile, N1, NUMBER, OwnPostgres, StoreFixture, VERSION, WABA,
    assert_register_guard, channel, error_info, fake_graph, get_status_within, list, name_update,
    next, number, number_json, numbers, ok, page, read, register, register_call, sign,
    start_binary_on, terminate, waba, write_key,
};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::process::Child;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use waba_numbers::pb::{EventSource, ListCustomersRequest};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The gRPC service names health reports on.
const SERVICE: &str = "whatsapp.phonenumbers.v1.PhoneNumberService";
const CUSTOMER_SERVICE: &str = "whatsapp.phonenumbers.v1.CustomerService";

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

/// A gauge's value in a replica's `/metrics` (`name` with its labels, as rendered).
async fn gauge(http: SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until the replicas agree there are `replicas.len()` of them and lease all 64
/// shards between them, none holding more than its fair share.
async fn balanced(replicas: &[SocketAddr]) {
    let fair = 64_f64 / replicas.len() as f64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut shards = Vec::new();
        let mut agree = true;
        for http in replicas {
            agree &= gauge(*http, "waba_fleet_replicas").await == Some(replicas.len() as f64);
            shards.push(gauge(*http, "waba_fleet_shards").await.unwrap_or(0.0));
        }
        if agree && shards.iter().sum::<f64>() == 64.0 && shards.iter().all(|s| *s <= fair.ceil()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leases never settled: {shards:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The replicas (by index) that poll the WABA themselves.
async fn pollers(replicas: &[SocketAddr]) -> Vec<usize> {
    let mut pollers = Vec::new();
    for (i, http) in replicas.iter().enumerate() {
        if gauge(*http, "waba_watchers_polling{kind=\"waba\"}").await == Some(1.0) {
            pollers.push(i);
        }
    }
    pollers
}

async fn listings(graph: &wiremock::MockServer) -> usize {
    requests_to(graph, &format!("/{VERSION}/{WABA}/phone_numbers")).await
}

async fn reads(graph: &wiremock::MockServer, id: &str) -> usize {
    requests_to(graph, &format!("/{VERSION}/{id}")).await
}

async fn requests_to(graph: &wiremock::MockServer, listing: &str) -> usize {
    graph
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == listing)
        .count()
}

#[tokio::test]
async fn three_replicas_watching_one_waba_poll_it_as_one() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    let graph = fake_graph([
        list().respond_with(page(&[number(N1, "APPROVED")])),
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/{NUMBER}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(number_json(NUMBER))),
    ])
    .await;
    let replicas = replicas_with_http(3, &store, &graph.uri(), &["--watch-interval", "1s"]).await;
    let https: Vec<SocketAddr> = replicas.iter().map(|r| r.2).collect();
    waba_numbers::tls::install_provider();
    balanced(&https).await;
    // 100 subscribers to the WABA on each replica, and 20 to a lone number.
    let mut streams = Vec::new();
    for (_, grpc, _) in &replicas {
        let channel = channel(*grpc).await;
        for i in 0..120 {
            let mut client = Client::new(channel.clone());
            let request = if i < 100 {
                waba(WABA)
            } else {
                numbers(&[NUMBER])
            };
            streams.push(client.watch_status(request).await.unwrap().into_inner());
        }
    }
    for events in &mut streams {
        assert_eq!(next(events).await.source(), EventSource::Initial);
    }
    assert_eq!(pollers(&https).await.len(), 1, "one replica polls the WABA");
    // One replica alone polls once a second, give or take its 10 % jitter: 10 listings
    // and 10 reads of the number in 10 s. Three replicas each polling would make 30.
    let before = (listings(&graph).await, reads(&graph, NUMBER).await);
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let made = (
        listings(&graph).await - before.0,
        reads(&graph, NUMBER).await - before.1,
    );
    for (what, made) in [("listings", made.0), ("number reads", made.1)] {
        assert!(
            // At least a few (polling goes on; a loaded machine may delay some), at most
            // half again one replica's: three pollers would make 30.
            (3..=15).contains(&made),
            "{made} {what} in 10 s by three replicas watching at 1 s: one replica's would be 10"
        );
    }
    drop(streams);
    for (child, _, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}

#[tokio::test]
async fn when_the_polling_replica_is_killed_another_polls_within_a_lease() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    let graph = fake_graph([list().respond_with(page(&[number(N1, "PENDING_REVIEW")]))]).await;
    let mut replicas =
        replicas_with_http(3, &store, &graph.uri(), &["--watch-interval", "1s"]).await;
    let https: Vec<SocketAddr> = replicas.iter().map(|r| r.2).collect();
    waba_numbers::tls::install_provider();
    balanced(&https).await;
    let mut streams = Vec::new();
    for (_, grpc, _) in &replicas {
        let mut client = Client::new(channel(*grpc).await);
        let mut events = client.watch_status(waba(WABA)).await.unwrap().into_inner();
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
        streams.push(events);
    }
    let owner = match pollers(&https).await[..] {
        [owner] => owner,
        ref other => panic!("one replica should poll the WABA, not {other:?}"),
    };
    let (mut killed, _, _) = replicas.remove(owner);
    streams.remove(owner);
    killed.start_kill().unwrap();
    killed.wait().await.unwrap();
    let killed_at = tokio::time::Instant::now();
    // Meta approves the name: only a poll can tell the survivors' subscribers.
    list()
        .respond_with(page(&[number(N1, "APPROVED")]))
        .with_priority(1)
        .mount(&graph)
        .await;
    // The lease lapses within 10 s and a survivor takes it within a 3 s tick, then reads
    // at once: 13 s, bounded at twice the 15 s.
    for events in &mut streams {
        let event = tokio::time::timeout_at(
            killed_at + std::time::Duration::from_secs(30),
            events.message(),
        )
        .await
        .expect("a survivor polls within the lease period")
        .expect("the stream stays open")
        .expect("an event");
        assert_eq!(event.changed_fields, ["name_status"]);
        assert_eq!(event.phone_number.unwrap().name_status_raw, "APPROVED");
    }
    let taken = killed_at.elapsed();
    assert_eq!(pollers(&[replicas[0].2, replicas[1].2]).await.len(), 1);
    eprintln!("a survivor polled {taken:?} after the owner was killed");
    for (child, _, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}

/// The replica's health for `service` ("" for the server as a whole).
async fn health_of(addr: SocketAddr, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(channel(addr).await);
    let request = HealthCheckRequest {
        service: service.into(),
    };
    health.check(request).await.unwrap().into_inner().status()
}

/// The register calls the fake Graph API has had.
async fn register_calls(graph: &MockServer) -> usize {
    let requests = graph.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/register"))
        .count()
}

/// A fake Graph API that answers reads of `NUMBER` (with the partner's token) and
/// takes every register.
async fn graph_for_outages() -> MockServer {
    fake_graph([
        read(NUMBER).respond_with(ok(number(NUMBER, "APPROVED"))),
        register_call(NUMBER).respond_with(ok(json!({ "success": true }))),
    ])
    .await
}

/// One replica of the binary on `pg`, against `graph`.
async fn replica_on(pg: &OwnPostgres, key: &KeyFile, graph: &MockServer) -> (Child, SocketAddr) {
    let url = pg.url();
    let env = [
        ("WABA_STORE", url.as_str()),
        ("WABA_STORE_KEY_FILE", key.path.to_str().unwrap()),
        ("RUST_LOG", "info"),
    ];
    let (child, grpc, _) = start_binary_on(&graph.uri(), &[], &env).await;
    (child, grpc)
}

/// Polls `attempt` (every 200 ms, real time) until it gives `Some`, for at most `bound`.
async fn within<T, F, Fut>(bound: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let polled = tokio::time::timeout(bound, async {
        loop {
            if let Some(done) = attempt().await {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    polled
        .await
        .unwrap_or_else(|_| panic!("{what} within {bound:?}"))
}

/// Register with a request_id of its own: each call a new attempt.
fn keyed_register(n: usize) -> waba_numbers::pb::RegisterRequest {
    let mut request = register(NUMBER, "123456");
    request.request_id = format!("outage-{n}");
    request
}

#[tokio::test]
async fn postgres_stopped_under_a_replica_refuses_writes_keeps_reads_and_recovers() {
    let Some(pg) = OwnPostgres::init() else {
        return;
    };
    pg.start().await;
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "store.key");
    let graph = graph_for_outages().await;
    let (replica, addr) = replica_on(&pg, &key, &graph).await;
    let mut client = Client::new(channel(addr).await);
    assert_eq!(
        health_of(addr, CUSTOMER_SERVICE).await,
        ServingStatus::Serving
    );
    client
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap();
    client.register(keyed_register(0)).await.unwrap();
    assert_eq!(register_calls(&graph).await, 1);

    pg.stop().await;
    // Reads go on with the partner's token, straight from Meta (not the cache: max
    // staleness 0). The first waits for the pool to give up on the store (5 s).
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_status(get_status_within(NUMBER, 0)),
    );
    read.await.expect("a read within 10 s").unwrap();
    let start = std::time::Instant::now();
    client
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the next read does not wait for the store: {:?}",
        start.elapsed()
    );
    // A write the ledger guards is refused, and Meta hears nothing of it.
    for n in 1..=2 {
        let refused = client.register(keyed_register(n)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert_eq!(error_info(&refused).reason, "STORE_UNAVAILABLE");
    }
    let mut unkeyed = register(NUMBER, "123456");
    unkeyed.spend_reserve = true;
    let refused = client.register(unkeyed).await.unwrap_err();
    assert_eq!(error_info(&refused).reason, "STORE_UNAVAILABLE");
    assert_eq!(register_calls(&graph).await, 1, "no register reached Meta");

    // Back: the pool connects on the next call, without a restart. Target: the first
    // Register after it is back (one pool wait, 5 s); bound twice that.
    pg.start().await;
    let mut n = 10;
    within(
        Duration::from_secs(10),
        "a Register after PostgreSQL is back",
        || {
            n += 1;
            let mut client = client.clone();
            async move { client.register(keyed_register(n)).await.ok() }
        },
    )
    .await;
    assert_eq!(register_calls(&graph).await, 2);
    client
        .get_status(get_status_within(NUMBER, 0))
        .await
        .unwrap();
    let (_, log) = terminate(replica).await;
    assert!(log.contains("the store is down"), "{log}");
    assert!(log.contains("the store answers again"), "{log}");
}

#[tokio::test]
async fn a_replica_started_before_postgres_serves_partner_reads_then_customers_once_it_is_up() {
    let Some(pg) = OwnPostgres::init() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "store.key");
    let graph = graph_for_outages().await;
    // PostgreSQL is not started: the replica starts anyway.
    let (replica, addr) = replica_on(&pg, &key, &graph).await;
    assert_eq!(health_of(addr, "").await, ServingStatus::Serving);
    assert_eq!(health_of(addr, SERVICE).await, ServingStatus::Serving);
    assert_eq!(
        health_of(addr, CUSTOMER_SERVICE).await,
        ServingStatus::NotServing
    );
    let mut client = Client::new(channel(addr).await);
    let mut customers = CustomersClient::new(channel(addr).await);
    // A read the partner's token covers answers at once: the store is not asked.
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_status(get_status_within(NUMBER, 0)),
    );
    read.await.expect("a read within 2 s").unwrap();
    let refused = client.register(keyed_register(0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(error_info(&refused).reason, "STORE_UNAVAILABLE");
    let refused = customers
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error_info(&refused).reason, "STORE_UNAVAILABLE");
    assert_eq!(register_calls(&graph).await, 0, "no register reached Meta");

    pg.start().await;
    // Target: the replica's next attempt, at most 30 s apart (its backoff's longest
    // wait); bound twice that.
    within(
        Duration::from_secs(60),
        "CustomerService SERVING",
        || async {
            (health_of(addr, CUSTOMER_SERVICE).await == ServingStatus::Serving).then_some(())
        },
    )
    .await;
    let listed = customers
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.customers.is_empty(), "{listed:?}");
    client.register(keyed_register(1)).await.unwrap();
    assert_eq!(register_calls(&graph).await, 1);
    let (_, log) = terminate(replica).await;
    assert!(log.contains("the store cannot be reached"), "{log}");
    assert!(log.contains("the store is connected"), "{log}");
    assert!(!log.contains("postgres://"), "no URL in the log: {log}");
}

#[tokio::test]
async fn one_onboarding_sent_to_two_replicas_at_once_exchanges_the_code_once() {
    use crate::customers::{
        BUSINESS_TOKEN, CODE, debug_token, list_numbers, onboarding, subscribe, success,
    };
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    // Meta takes its time over the code: both calls are in flight together.
    let graph = fake_graph([
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/oauth/access_token")))
            .respond_with(
                ok(json!({ "access_token": BUSINESS_TOKEN, "token_type": "bearer" }))
                    .set_delay(Duration::from_millis(500)),
            )
            .expect(1),
        debug_token(BUSINESS_TOKEN, &[crate::support::CUSTOMER_A]),
        subscribe(BUSINESS_TOKEN).respond_with(success()),
        list_numbers(BUSINESS_TOKEN),
    ])
    .await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let env = [
            ("WABA_STORE", store.spec.as_str()),
            ("WABA_STORE_KEY_FILE", store.key.path.to_str().unwrap()),
            ("WABA_APP_ID", crate::support::APP_ID),
            ("RUST_LOG", "warn"),
        ];
        replicas.push(start_binary_on(&graph.uri(), &[], &env).await);
    }
    let calls = replicas.iter().map(|(_, grpc, _)| {
        let grpc = *grpc;
        tokio::spawn(async move {
            let mut client = CustomersClient::new(channel(grpc).await);
            client
                .onboard_customer(onboarding(CODE, "hand-off-1"))
                .await
                .map(|r| r.into_inner())
        })
    });
    let mut answers = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        answers.push(
            call.await
                .unwrap()
                .expect("both callers get the onboarded customer"),
        );
    }
    assert_eq!(answers[0].waba_id, answers[1].waba_id);
    assert_eq!(
        answers[0].steps, answers[1].steps,
        "the same steps, done once"
    );
    for (child, _, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
    // The fake's expectation (one exchange) is checked as it drops.
}

#[tokio::test]
async fn with_postgres_away_every_replica_polls_for_its_own_subscribers_until_it_is_back() {
    let Some(pg) = OwnPostgres::init() else {
        return;
    };
    pg.start().await;
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "store.key");
    let graph = fake_graph([list().respond_with(page(&[number(N1, "PENDING_REVIEW")]))]).await;
    let url = pg.url();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let env = [
            ("WABA_STORE", url.as_str()),
            ("WABA_STORE_KEY_FILE", key.path.to_str().unwrap()),
            ("RUST_LOG", "info"),
        ];
        replicas.push(start_binary_on(&graph.uri(), &["--watch-interval", "1s"], &env).await);
    }
    let https: Vec<SocketAddr> = replicas.iter().map(|r| r.2).collect();
    waba_numbers::tls::install_provider();
    balanced(&https).await;
    let mut streams = Vec::new();
    for (_, grpc, _) in &replicas {
        let mut client = Client::new(channel(*grpc).await);
        let mut events = client.watch_status(waba(WABA)).await.unwrap().into_inner();
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
        streams.push(events);
    }
    assert_eq!(pollers(&https).await.len(), 1);

    pg.stop().await;
    // A lease (10 s) of failed ticks, then each polls for itself: bounded at twice 13 s.
    within(Duration::from_secs(26), "both replicas polling", || async {
        (pollers(&https).await.len() == 2).then_some(())
    })
    .await;
    // Meta approves the name: each replica's own poll tells its subscribers.
    list()
        .respond_with(page(&[number(N1, "APPROVED")]))
        .with_priority(1)
        .mount(&graph)
        .await;
    for events in &mut streams {
        let event = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("an event while the store is away")
            .expect("the stream stays open")
            .expect("an event");
        assert_eq!(event.changed_fields, ["name_status"]);
    }

    pg.start().await;
    // The next tick that goes through (every 3 s; the pool reconnects) makes one poller again.
    within(Duration::from_secs(20), "one poller again", || async {
        (pollers(&https).await.len() == 1).then_some(())
    })
    .await;
    for (child, _, _) in replicas {
        terminate(child).await;
    }
}

#[tokio::test]
async fn a_caller_waiting_on_a_replica_that_dies_mid_register_learns_the_outcome_is_unknown() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    // Meta never answers in time: the register is in flight when its replica dies.
    let graph = fake_graph([register_call(NUMBER)
        .respond_with(ok(json!({ "success": true })).set_delay(Duration::from_secs(120)))])
    .await;
    let mut replicas = replicas(2, &store, &graph.uri()).await;
    let keyed = || {
        let mut request = register(NUMBER, "123456");
        request.request_id = "signup-7-register".into();
        request
    };
    let holder = Client::new(channel(replicas[0].1).await);
    let first = tokio::spawn({
        let mut holder = holder.clone();
        let request = keyed();
        async move { holder.register(request).await }
    });
    within(
        Duration::from_secs(10),
        "the register sent to Meta",
        || async { (register_calls(&graph).await == 1).then_some(()) },
    )
    .await;
    // The same key on the other replica waits for the holder's outcome...
    let mut waiter = Client::new(channel(replicas[1].1).await);
    let waiting = tokio::spawn({
        let request = keyed();
        async move { waiter.register(request).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...and the holder dies.
    let (mut killed, _) = replicas.remove(0);
    killed.start_kill().unwrap();
    killed.wait().await.unwrap();
    let killed_at = tokio::time::Instant::now();
    assert!(first.await.unwrap().is_err());
    // Its lease (15 s) lapses, a second look 5 s later still finds it lapsed: 20 s, bounded
    // at twice that.
    let unknown = tokio::time::timeout(Duration::from_secs(40), waiting)
        .await
        .expect("the waiter answers once the lease lapses")
        .unwrap()
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unavailable, "{unknown:?}");
    assert_eq!(error_info(&unknown).reason, "REGISTER_OUTCOME_UNKNOWN");
    eprintln!(
        "outcome unknown {:?} after the holder died",
        killed_at.elapsed()
    );
    // The record stays: a retry under the key does not reach Meta blindly.
    let mut retry = Client::new(channel(replicas[0].1).await);
    let again = retry.register(keyed()).await.unwrap_err();
    assert_eq!(error_info(&again).reason, "REGISTER_OUTCOME_UNKNOWN");
    assert_eq!(
        register_calls(&graph).await,
        1,
        "Meta was sent one register"
    );
    for (child, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}

/// The replicas (by index) that poll the lone number themselves.
async fn number_pollers(replicas: &[SocketAddr]) -> Vec<usize> {
    let mut pollers = Vec::new();
    for (i, http) in replicas.iter().enumerate() {
        if gauge(*http, "waba_watchers_polling{kind=\"number\"}").await == Some(1.0) {
            pollers.push(i);
        }
    }
    pollers
}

#[tokio::test]
async fn a_follower_that_starts_polling_itself_reads_at_once() {
    let Some(pg) = OwnPostgres::init() else {
        return;
    };
    pg.start().await;
    let keys = tempfile::tempdir().unwrap();
    let key = write_key(keys.path(), "store.key");
    let graph = fake_graph([
        list().respond_with(page(&[number(N1, "PENDING_REVIEW")])),
        read(NUMBER).respond_with(ok(number(NUMBER, "PENDING_REVIEW"))),
    ])
    .await;
    let url = pg.url();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let env = [
            ("WABA_STORE", url.as_str()),
            ("WABA_STORE_KEY_FILE", key.path.to_str().unwrap()),
            ("RUST_LOG", "info"),
        ];
        // Polls an hour apart: only the read a watcher makes when it starts polling
        // can tell its subscribers anything in this test.
        replicas.push(start_binary_on(&graph.uri(), &["--watch-interval", "1h"], &env).await);
    }
    let https: Vec<SocketAddr> = replicas.iter().map(|r| r.2).collect();
    waba_numbers::tls::install_provider();
    balanced(&https).await;
    let (mut waba_streams, mut number_streams) = (Vec::new(), Vec::new());
    for (_, grpc, _) in &replicas {
        let mut client = Client::new(channel(*grpc).await);
        let mut events = client.watch_status(waba(WABA)).await.unwrap().into_inner();
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
        waba_streams.push(events);
        let mut events = client
            .watch_status(numbers(&[NUMBER]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
        number_streams.push(events);
    }
    let waba_follower = match pollers(&https).await[..] {
        [owner] => 1 - owner,
        ref other => panic!("one replica should poll the WABA, not {other:?}"),
    };
    let number_follower = match number_pollers(&https).await[..] {
        [owner] => 1 - owner,
        ref other => panic!("one replica should poll the number, not {other:?}"),
    };
    // Meta approves both names; nobody reads them for an hour...
    list()
        .respond_with(page(&[number(N1, "APPROVED")]))
        .with_priority(1)
        .mount(&graph)
        .await;
    read(NUMBER)
        .respond_with(ok(number(NUMBER, "APPROVED")))
        .with_priority(1)
        .mount(&graph)
        .await;
    // ...until the store goes away and each follower polls for itself, reading at once:
    // within the lease (10 s), bounded at twice 13 s.
    pg.stop().await;
    for (what, events) in [
        ("the WABA", &mut waba_streams[waba_follower]),
        ("the number", &mut number_streams[number_follower]),
    ] {
        let event = tokio::time::timeout(Duration::from_secs(26), events.message())
            .await
            .unwrap_or_else(|_| panic!("the follower of {what} reads it once it polls"))
            .expect("the stream stays open")
            .expect("an event");
        assert_eq!(event.changed_fields, ["name_status"], "{what}");
    }
    for (child, _, _) in replicas {
        terminate(child).await;
    }
}

#[tokio::test]
async fn an_observation_the_store_would_not_keep_reaches_the_followers_once_it_does() {
    let Some(store) = StoreFixture::new(Engine::Postgres).await else {
        return;
    };
    let graph = fake_graph([list().respond_with(page(&[number(N1, "PENDING_REVIEW")]))]).await;
    let replicas = replicas_with_http(2, &store, &graph.uri(), &["--watch-interval", "1s"]).await;
    let https: Vec<SocketAddr> = replicas.iter().map(|r| r.2).collect();
    waba_numbers::tls::install_provider();
    balanced(&https).await;
    let mut streams = Vec::new();
    for (_, grpc, _) in &replicas {
        let mut client = Client::new(channel(*grpc).await);
        let mut events = client.watch_status(waba(WABA)).await.unwrap().into_inner();
        assert_eq!(next(&mut events).await.source(), EventSource::Initial);
        streams.push(events);
    }
    let owner = match pollers(&https).await[..] {
        [owner] => owner,
        ref other => panic!("one replica should poll the WABA, not {other:?}"),
    };
    // The owner cannot keep observations for a while (the leases go on)...
    store
        .tamper("ALTER TABLE fleet_observations RENAME TO fleet_observations_away")
        .await;
    list()
        .respond_with(page(&[number(N1, "APPROVED")]))
        .with_priority(1)
        .mount(&graph)
        .await;
    let seen = tokio::time::timeout(Duration::from_secs(10), streams[owner].message())
        .await
        .expect("the owner's subscriber sees the change")
        .unwrap()
        .unwrap();
    assert_eq!(seen.changed_fields, ["name_status"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    store
        .tamper("ALTER TABLE fleet_observations_away RENAME TO fleet_observations")
        .await;
    // ...then can again: the change, offered again (every 5 s at most), reaches the
    // follower's subscriber. Bounded at twice that and a tick.
    let followed = tokio::time::timeout(Duration::from_secs(16), streams[1 - owner].message())
        .await
        .expect("the follower's subscriber gets the change once it is kept")
        .unwrap()
        .unwrap();
    assert_eq!(followed.changed_fields, ["name_status"]);
    for (child, _, _) in replicas {
        terminate(child).await;
    }
    store.finish().await;
}
