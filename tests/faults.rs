//! Upstream faults: for each way the Graph API (or the road to it) can fail, the code a
//! client gets, that the server goes on serving, and that no write is sent twice.
//!
//! Reads are retried on what may pass (3 attempts in all, jittered backoff from 200 ms);
//! Register reaches Meta once whatever happens (`expect(1)`).

use crate::support::{
    NUMBER, RawFault, RawGraph, Service, UntrustedTls, error_info, fake_graph, get_status,
    get_status_within, graph_error, graph_error_body, number_json, ok, read, register,
    register_call, settings, usage, with_token,
};
use serde_json::json;
use std::time::Duration;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;
use waba_numbers::graph::TokenSource;
use wiremock::{Mock, ResponseTemplate};

const SERVICE: &str = "waba-numbers";
const GRAPH: &str = "graph.facebook.com";
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// What a client sees: the code, ErrorInfo's domain and reason, RetryInfo's delay.
#[derive(Debug, PartialEq)]
struct Seen {
    code: Code,
    domain: String,
    reason: String,
    retry: Option<Duration>,
}

fn seen(status: &Status) -> Seen {
    let info = error_info(status);
    Seen {
        code: status.code(),
        domain: info.domain,
        reason: info.reason,
        retry: status
            .get_details_retry_info()
            .map(|r| r.retry_delay.expect("RetryInfo without a delay")),
    }
}

fn expect(code: Code, domain: &str, reason: &str, retry: Option<Duration>) -> Seen {
    Seen {
        code,
        domain: domain.into(),
        reason: reason.into(),
        retry,
    }
}

/// What the read after the fault does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    /// It reaches Meta and succeeds.
    Serves,
    /// Meta said to wait: it is held back without a call (RESOURCE_EXHAUSTED).
    HeldBack,
}

/// The server answers health checks.
async fn assert_serving(service: &Service) {
    let channel = crate::support::channel(service.addr).await;
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await;
    health.expect("the server stopped answering");
}

struct Case {
    name: &'static str,
    /// What the fake Graph API answers to the faulty calls (the read's and Register's).
    answer: ResponseTemplate,
    /// How many times the read reaches Meta.
    reads: u64,
    read: Seen,
    write: Seen,
    after: After,
}

/// Faults wiremock can answer: Register then GetStatus against the fault, then another
/// GetStatus. Register reaches Meta exactly once, the read `reads` times.
#[tokio::test]
async fn each_answer_that_cannot_be_used_has_its_code_and_no_write_is_repeated() {
    let unavailable = || {
        expect(
            Code::Unavailable,
            SERVICE,
            "GRAPH_UNAVAILABLE",
            Some(SECOND),
        )
    };
    let unreadable = || expect(Code::Internal, SERVICE, "GRAPH_UNEXPECTED_RESPONSE", None);
    let outcome_unknown = || expect(Code::Unavailable, SERVICE, "REGISTER_OUTCOME_UNKNOWN", None);
    let raw = |http: u16, body: &str, mime: &str| {
        ResponseTemplate::new(http).set_body_raw(body.as_bytes().to_vec(), mime)
    };
    let html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let limited = |code: i64| graph_error(400, code, None, "(#x) Rate limit hit");
    let rate_limited = |retry| expect(Code::ResourceExhausted, GRAPH, "GRAPH_RATE_LIMITED", retry);
    let cases = vec![
        Case {
            name: "502 without a body",
            answer: ResponseTemplate::new(502),
            reads: 3,
            read: unavailable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "500 with a plain-text body",
            answer: raw(500, "upstream connect error", "text/plain"),
            reads: 3,
            read: unavailable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "503 with Meta's body (code 2)",
            answer: graph_error(503, 2, None, "Service temporarily unavailable"),
            reads: 3,
            read: expect(Code::Unavailable, GRAPH, "GRAPH_UNAVAILABLE", Some(SECOND)),
            write: expect(Code::Unavailable, GRAPH, "GRAPH_UNAVAILABLE", None),
            after: After::Serves,
        },
        Case {
            name: "a proxy's HTML error page, 502",
            answer: raw(502, html, "text/html"),
            reads: 3,
            read: unavailable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "a proxy's HTML page, 404",
            answer: raw(404, html, "text/html"),
            reads: 1,
            read: unreadable(),
            write: unreadable(),
            after: After::Serves,
        },
        Case {
            name: "an HTML page, 200",
            answer: raw(200, html, "text/html"),
            reads: 1,
            read: unreadable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "truncated JSON",
            answer: raw(
                200,
                r#"{"id":"106540352242922","verified_na"#,
                "application/json",
            ),
            reads: 1,
            read: unreadable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "garbage",
            answer: ResponseTemplate::new(200)
                .set_body_raw(vec![0, 0xff, 0xfe, b'{', 7], "application/json"),
            reads: 1,
            read: unreadable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "JSON of the wrong shape",
            answer: ok(json!([{"id": 106540352242922_u64, "success": "yes"}])),
            reads: 1,
            read: unreadable(),
            write: outcome_unknown(),
            after: After::Serves,
        },
        Case {
            name: "an error envelope of the wrong shape",
            answer: ResponseTemplate::new(400).set_body_json(json!({"error": "nope"})),
            reads: 1,
            read: unreadable(),
            write: unreadable(),
            after: After::Serves,
        },
        Case {
            name: "429 with Retry-After and no body",
            answer: ResponseTemplate::new(429).insert_header("retry-after", "7"),
            reads: 1,
            read: expect(
                Code::ResourceExhausted,
                SERVICE,
                "GRAPH_RATE_LIMITED",
                Some(7 * SECOND),
            ),
            write: expect(
                Code::ResourceExhausted,
                SERVICE,
                "GRAPH_RATE_LIMITED",
                Some(7 * SECOND),
            ),
            after: After::HeldBack,
        },
        Case {
            name: "429 with an HTML page and no Retry-After",
            answer: raw(429, "<html>Too Many Requests</html>", "text/html"),
            reads: 1,
            read: expect(
                Code::ResourceExhausted,
                SERVICE,
                "GRAPH_RATE_LIMITED",
                Some(MINUTE),
            ),
            write: expect(
                Code::ResourceExhausted,
                SERVICE,
                "GRAPH_RATE_LIMITED",
                Some(MINUTE),
            ),
            after: After::HeldBack,
        },
        Case {
            name: "code 4 as a 429 with Retry-After",
            answer: graph_error(429, 4, None, "(#4) Application request limit reached")
                .insert_header("retry-after", "30"),
            reads: 1,
            read: rate_limited(Some(30 * SECOND)),
            write: rate_limited(Some(30 * SECOND)),
            after: After::HeldBack,
        },
        Case {
            name: "code 17",
            answer: limited(17),
            reads: 1,
            read: rate_limited(Some(MINUTE)),
            write: rate_limited(Some(MINUTE)),
            after: After::HeldBack,
        },
        Case {
            name: "code 80007 with the usage header",
            answer: limited(80007).insert_header("x-business-use-case-usage", usage(100, 19)),
            reads: 1,
            read: rate_limited(Some(19 * MINUTE)),
            write: rate_limited(Some(19 * MINUTE)),
            after: After::HeldBack,
        },
        Case {
            name: "code 80008",
            answer: limited(80008),
            reads: 1,
            read: rate_limited(Some(MINUTE)),
            write: rate_limited(Some(MINUTE)),
            after: After::HeldBack,
        },
        Case {
            name: "code 130429",
            answer: limited(130429),
            reads: 1,
            read: rate_limited(Some(MINUTE)),
            write: rate_limited(Some(MINUTE)),
            after: After::HeldBack,
        },
    ];
    for case in cases {
        let name = case.name;
        let serves = u64::from(case.after == After::Serves);
        let graph = fake_graph([
            register_call(NUMBER)
                .respond_with(case.answer.clone())
                .expect(1)
                .named(format!("{name}: Register")),
            read(NUMBER)
                .respond_with(case.answer)
                .up_to_n_times(case.reads)
                .expect(case.reads)
                .named(format!("{name}: the read")),
            read(NUMBER)
                .respond_with(ok(number_json(NUMBER)))
                .expect(serves)
                .named(format!("{name}: the read after")),
        ])
        .await;
        let service = Service::on_fake(&graph).await;
        let mut client = service.client();

        let write = client.register(register(NUMBER, "123456")).await;
        let write = write.expect_err(name);
        assert_eq!(seen(&write), case.write, "{name}, Register: {write:?}");
        let read = client.get_status(get_status(NUMBER)).await.expect_err(name);
        assert_eq!(seen(&read), case.read, "{name}, GetStatus: {read:?}");
        let again = client.get_status(get_status_within(NUMBER, 0)).await;
        match case.after {
            After::Serves => assert_eq!(again.expect(name).into_inner().id, NUMBER, "{name}"),
            After::HeldBack => {
                let held = again.expect_err(name);
                assert_eq!(held.code(), Code::ResourceExhausted, "{name}: {held:?}");
                assert!(held.get_details_retry_info().is_some(), "{name}: {held:?}");
            }
        }
        assert_serving(&service).await;
        graph.verify().await;
    }
}

/// Settings on `url`, everything else as usual.
async fn service_on(url: &str) -> Service {
    Service::start(settings(url)).await
}

#[tokio::test]
async fn a_connection_refused_is_unavailable_and_the_next_call_passes_once_graph_is_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there now
    let service = service_on(&format!("http://{addr}")).await;
    let mut client = service.client();

    let failed = client.get_status(get_status(NUMBER)).await.unwrap_err();
    assert_eq!(
        seen(&failed),
        expect(
            Code::Unavailable,
            SERVICE,
            "GRAPH_UNAVAILABLE",
            Some(SECOND)
        ),
        "{failed:?}"
    );
    assert!(failed.message().contains("cannot reach"), "{failed:?}");
    let write = client
        .register(register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(
        seen(&write),
        expect(Code::Unavailable, SERVICE, "REGISTER_OUTCOME_UNKNOWN", None),
        "{write:?}"
    );

    // Graph comes back on the same port: the next call passes.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let graph = wiremock::MockServer::builder()
        .listener(listener)
        .start()
        .await;
    read(NUMBER)
        .respond_with(ok(number_json(NUMBER)))
        .expect(1)
        .mount(&graph)
        .await;
    let number = client.get_status(get_status(NUMBER)).await.unwrap();
    assert_eq!(number.into_inner().id, NUMBER);
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_unavailable_and_register_is_sent_once() {
    let mut body = number_json(NUMBER);
    body["success"] = true.into();
    // Register's one attempt, the read's three; then it answers.
    let graph = RawGraph::start(RawFault::ResetMidBody, 4, body).await;
    let service = service_on(&graph.url).await;
    let mut client = service.client();

    let write = client
        .register(register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(
        seen(&write),
        expect(Code::Unavailable, SERVICE, "REGISTER_OUTCOME_UNKNOWN", None),
        "{write:?}"
    );
    assert_eq!(graph.connections(), 1, "Register is sent once");
    let read = client.get_status(get_status(NUMBER)).await.unwrap_err();
    assert_eq!(
        seen(&read),
        expect(
            Code::Unavailable,
            SERVICE,
            "GRAPH_UNAVAILABLE",
            Some(SECOND)
        ),
        "{read:?}"
    );
    assert_eq!(graph.connections(), 4, "the read is tried three times");
    let number = client.get_status(get_status(NUMBER)).await.unwrap();
    assert_eq!(number.into_inner().id, NUMBER);
}

/// 50 MB, announced or streamed: refused at the 4 MiB cap, without reading the rest.
#[tokio::test]
async fn a_50_mb_answer_is_internal_and_not_read_to_its_end() {
    const TOTAL: usize = 50 << 20;
    for announced in [true, false] {
        let mut body = number_json(NUMBER);
        body["success"] = true.into();
        let fault = RawFault::Huge {
            total: TOTAL,
            announced,
        };
        let graph = RawGraph::start(fault, 2, body).await;
        let service = service_on(&graph.url).await;
        let mut client = service.client();

        let write = client
            .register(register(NUMBER, "123456"))
            .await
            .unwrap_err();
        assert_eq!(
            seen(&write),
            expect(Code::Unavailable, SERVICE, "REGISTER_OUTCOME_UNKNOWN", None),
            "announced {announced}: {write:?}"
        );
        let read = client.get_status(get_status(NUMBER)).await.unwrap_err();
        assert_eq!(
            seen(&read),
            expect(Code::Internal, SERVICE, "GRAPH_UNEXPECTED_RESPONSE", None),
            "announced {announced}: {read:?}"
        );
        assert!(read.message().contains("larger than"), "{read:?}");
        assert_eq!(graph.connections(), 2, "each sent once");
        let number = client.get_status(get_status(NUMBER)).await.unwrap();
        assert_eq!(number.into_inner().id, NUMBER);
        // What the fake could write before the client hung up: the cap and what the
        // sockets' buffers held, far from 50 MB (two answers' worth).
        let written = graph.written();
        eprintln!("announced {announced}: {written} body bytes written of 2 × {TOTAL}");
        assert!(written < 2 * (16 << 20), "announced {announced}: {written}");
    }
}

#[tokio::test]
async fn an_answer_slower_than_the_callers_deadline_is_deadline_exceeded() {
    let slow = || ok(json!({"success": true})).set_delay(Duration::from_secs(30));
    let graph = fake_graph([
        register_call(NUMBER)
            .respond_with(slow())
            .expect(1)
            .named("Register"),
        read(NUMBER)
            .respond_with(ok(number_json(NUMBER)).set_delay(Duration::from_secs(30)))
            .up_to_n_times(1)
            .expect(1)
            .named("the slow read"),
        read(NUMBER)
            .respond_with(ok(number_json(NUMBER)))
            .expect(1)
            .named("the read after"),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();

    let write = client
        .register(within(register(NUMBER, "123456"), 300))
        .await
        .unwrap_err();
    assert_eq!(write.code(), Code::DeadlineExceeded, "{write:?}");
    let read = client
        .get_status(within(get_status(NUMBER), 300))
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::DeadlineExceeded, "{read:?}");
    eprintln!("Register: {write:?}\nGetStatus: {read:?}");
    let number = client.get_status(get_status(NUMBER)).await.unwrap();
    assert_eq!(number.into_inner().id, NUMBER);
}

/// `message` with a deadline `ms` milliseconds away.
fn within<T>(message: T, ms: u64) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_millis(ms));
    request
}

/// Error 190 with a new token in the file: the call is sent again with it (a write too:
/// Meta refused the first unprocessed), and the calls after carry it from the start.
#[tokio::test]
async fn on_190_with_a_rotated_token_file_the_calls_after_use_the_new_token() {
    let expired = || graph_error(401, 190, Some(463), "Session has expired");
    let graph = fake_graph([
        with_token(register_call(NUMBER), "old-token")
            .respond_with(expired())
            .expect(1)
            .named("Register with the old token"),
        with_token(register_call(NUMBER), "new-token")
            .respond_with(ok(json!({"success": true})))
            .expect(1)
            .named("Register with the new token"),
        with_token(read(NUMBER), "old-token")
            .respond_with(expired())
            .expect(0)
            .named("a read with the old token"),
        with_token(read(NUMBER), "new-token")
            .respond_with(ok(number_json(NUMBER)))
            .expect(1)
            .named("the read with the new token"),
    ])
    .await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "old-token\n").unwrap();
    let mut settings = settings(&graph.uri());
    settings.graph.token = Some(TokenSource::File(file.path().to_owned()));
    settings.graph.token_recheck = Duration::MAX; // only a 190 makes it look again
    let service = Service::start(settings).await;
    let mut client = service.client();

    std::fs::write(file.path(), "new-token\n").unwrap();
    let reply = client.register(register(NUMBER, "123456")).await.unwrap();
    assert!(reply.into_inner().success);
    let number = client.get_status(get_status(NUMBER)).await.unwrap();
    assert_eq!(number.into_inner().id, NUMBER);
}

#[tokio::test]
async fn an_unresolvable_host_is_unavailable() {
    let service = service_on("http://does-not-exist.invalid").await;
    let mut client = service.client();
    for _ in 0..2 {
        let read = client.get_status(get_status(NUMBER)).await.unwrap_err();
        assert_eq!(
            seen(&read),
            expect(
                Code::Unavailable,
                SERVICE,
                "GRAPH_UNAVAILABLE",
                Some(SECOND)
            ),
            "{read:?}"
        );
        assert!(read.message().contains("dns error"), "{read:?}");
    }
    let write = client
        .register(register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");
    assert_serving(&service).await;
}

/// A certificate the client does not trust: UNAVAILABLE saying so, with no RetryInfo
/// (it will not pass by itself), and no retry even of a read.
#[tokio::test]
async fn an_untrusted_certificate_is_unavailable_without_retry_info() {
    let graph = UntrustedTls::start().await;
    let service = service_on(&graph.url).await;
    let mut client = service.client();
    let refused = || {
        expect(
            Code::Unavailable,
            SERVICE,
            "GRAPH_CERTIFICATE_REJECTED",
            None,
        )
    };

    let write = client
        .register(register(NUMBER, "123456"))
        .await
        .unwrap_err();
    assert_eq!(seen(&write), refused(), "{write:?}");
    assert!(
        write.message().contains("certificate was refused"),
        "{write:?}"
    );
    assert_eq!(graph.connections(), 1, "Register: one handshake");
    let read = client.get_status(get_status(NUMBER)).await.unwrap_err();
    assert_eq!(seen(&read), refused(), "{read:?}");
    assert!(
        read.message().contains("certificate was refused"),
        "{read:?}"
    );
    assert_eq!(graph.connections(), 2, "the read: one handshake, no retry");
    eprintln!("{}", read.message());
    assert_serving(&service).await;
}

/// A 429 that carries Meta's error envelope is Meta's answer: its code is kept, not
/// read as a bare 429.
#[tokio::test]
async fn a_429_with_metas_envelope_keeps_metas_code() {
    let body = graph_error_body(4, None, "(#4) Application request limit reached");
    let graph = fake_graph([Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(429).set_body_json(body))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let err = service
        .client()
        .get_status(get_status(NUMBER))
        .await
        .unwrap_err();
    assert_eq!(error_info(&err).metadata["graph_code"], "4");
    assert_eq!(err.code(), Code::ResourceExhausted);
}
