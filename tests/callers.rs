//! The callers file: only the callers it names may call, each within its scopes and
//! WABAs, with its own allowance of reads that bypass the cache; health stays open and
//! reflection is as `--reflection` says. Real tonic clients over TCP; the fake Graph API
//! proves what Meta was (not) asked.

use crate::support::{N1, N2, N3, NUMBER, WABA, by_key, key_digest};
use crate::support::{Service, channel, settings};
use crate::support::{calls, fake_graph, graph_never_called, list, number, ok, page, read};
use crate::support::{get_status, get_status_within, list_numbers, numbers, register, waba};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1;
use tonic_types::StatusExt;
use waba_numbers::grpc::auth::Reflection;
use waba_numbers::pb::{
    AddNumberRequest, GetCustomerRequest, ListCustomersRequest, ListPreverifiedNumbersRequest,
    OnboardCustomerRequest,
};
use waba_numbers::server::Settings;
use wiremock::MockServer;
use wiremock::ResponseTemplate;

/// A WABA of the partner's that the `billing` caller may not see.
const OTHER_WABA: &str = "102290129340399";
/// `billing`: read and watch, its one WABA.
const BILLING: &str = "billing-key-0123456789";
/// `ops`: every scope, every WABA.
const OPS: &str = "ops-key-0123456789";
/// `reader`: read only, every WABA, 2 forced reads a minute.
const READER: &str = "reader-key-0123456789";
/// `writer`: every scope, its one WABA.
const WRITER: &str = "writer-key-0123456789";

fn callers_toml() -> String {
    format!(
        r#"
[[caller]]
name = "billing"
api_key_sha256 = "{}"
scopes = ["read", "watch"]
wabas = ["{WABA}"]

[[caller]]
name = "ops"
api_key_sha256 = "{}"
scopes = ["read", "watch", "write", "onboard"]

[[caller]]
name = "reader"
api_key_sha256 = "{}"
scopes = ["read"]
forced_reads_per_minute = 2

[[caller]]
name = "writer"
api_key_sha256 = "{}"
scopes = ["read", "watch", "write", "onboard"]
wabas = ["{WABA}"]
"#,
        key_digest(BILLING),
        key_digest(OPS),
        key_digest(READER),
        key_digest(WRITER)
    )
}

/// `settings` with a callers file holding `text` (kept in the returned folder), checked
/// for changes every 100 ms.
fn with_callers(mut settings: Settings, text: &str) -> (Settings, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callers.toml");
    std::fs::write(&path, text).unwrap();
    settings.callers_file = Some(path);
    settings.callers_reload = Duration::from_millis(100);
    (settings, dir)
}

async fn start(graph: &MockServer) -> (Service, TempDir) {
    let (settings, dir) = with_callers(settings(&graph.uri()), &callers_toml());
    (Service::start(settings).await, dir)
}

fn reflection_request() -> v1::ServerReflectionRequest {
    v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    }
}

/// The code a reflection stream answers with (the call's, or its first message's).
async fn reflection_code(service: &Service, key: Option<&str>) -> Code {
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(channel(service.addr).await);
    let stream = tokio_stream::iter([reflection_request()]);
    let request = match key {
        Some(key) => by_key(key, stream),
        None => Request::new(stream),
    };
    match client.server_reflection_info(request).await {
        Err(status) => status.code(),
        Ok(replies) => {
            let mut replies = replies.into_inner();
            match replies.message().await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            }
        }
    }
}

#[tokio::test]
async fn calls_without_a_known_key_are_unauthenticated_and_health_stays_open() {
    let graph = graph_never_called().await;
    let (service, _dir) = start(&graph).await;
    let mut client = service.client();

    let missing = client.get_status(get_status(NUMBER)).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(missing.message().contains("Bearer"), "{missing:?}");
    for key in ["not-a-key", " ", "billing-key-012345678"] {
        let status = client
            .get_status(by_key(key, get_status(NUMBER)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{key:?}: {status:?}");
        assert!(
            !status.message().contains(key.trim()) || key.trim().is_empty(),
            "{status:?}"
        );
    }
    let mut basic = Request::new(get_status(NUMBER));
    basic
        .metadata_mut()
        .insert("authorization", "Basic b3BzOm9wcw==".parse().unwrap());
    let status = client.get_status(basic).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Health: open to probes, credentials or not.
    let mut health = HealthClient::new(channel(service.addr).await);
    let check = HealthCheckRequest {
        service: String::new(),
    };
    health.check(check).await.unwrap();
    for stray in ["Bearer not-a-key", "Basic b3BzOm9wcw=="] {
        let mut check = Request::new(HealthCheckRequest {
            service: String::new(),
        });
        check
            .metadata_mut()
            .insert("authorization", stray.parse().unwrap());
        health.check(check).await.unwrap();
    }
    // Reflection: open by default.
    assert_eq!(reflection_code(&service, None).await, Code::Ok);
    assert_eq!(calls(&graph).await, 0);
}

#[tokio::test]
async fn reflection_can_require_a_caller_or_be_off() {
    let graph = graph_never_called().await;
    for (reflection, anonymous, known) in [
        (Reflection::Authenticated, Code::Unauthenticated, Code::Ok),
        (Reflection::Off, Code::Unauthenticated, Code::Unimplemented),
    ] {
        let (mut settings, _dir) = with_callers(settings(&graph.uri()), &callers_toml());
        settings.reflection = reflection;
        let service = Service::start(settings).await;
        assert_eq!(
            reflection_code(&service, None).await,
            anonymous,
            "{reflection:?}"
        );
        assert_eq!(
            reflection_code(&service, Some(BILLING)).await,
            known,
            "{reflection:?}"
        );
        service.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied_before_meta_is_asked() {
    let graph = graph_never_called().await;
    let (service, _dir) = start(&graph).await;
    let mut client = service.client();

    let denied = client
        .register(by_key(BILLING, register(N1, "123456")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("write"), "{denied:?}");

    let denied = client
        .watch_status(by_key(READER, waba(WABA)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("watch"), "{denied:?}");

    let onboard = OnboardCustomerRequest {
        code: "a-code".into(),
        waba_id: WABA.into(),
        ..OnboardCustomerRequest::default()
    };
    let denied = service
        .customers
        .clone()
        .onboard_customer(by_key(READER, onboard))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("onboard"), "{denied:?}");

    // The pre-verified pool is the business's: not for a caller limited to WABAs.
    let pool = ListPreverifiedNumbersRequest {
        business_id: "506914307656634".into(),
        ..ListPreverifiedNumbersRequest::default()
    };
    let denied = client
        .list_preverified_numbers(by_key(BILLING, pool))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(calls(&graph).await, 0);
    let text = crate::operations::scrape(&service).await;
    assert!(
        text.contains(r#"waba_grpc_refused_total{code="PERMISSION_DENIED",caller="billing"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_caller_sees_only_its_wabas_and_their_numbers() {
    let graph = fake_graph([
        list()
            .respond_with(page(&[number(N1, "APPROVED")]))
            .expect(1),
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path(format!(
                "/{}/{OTHER_WABA}/phone_numbers",
                crate::support::VERSION
            )))
            .respond_with(page(&[number(N2, "APPROVED")]))
            .expect(1),
    ])
    .await;
    let (service, _dir) = start(&graph).await;
    let mut client = service.client();

    // Another WABA, and its numbers, do not exist for billing: Meta is not asked.
    let hidden = client
        .list_numbers(by_key(BILLING, list_numbers(OTHER_WABA, 0, "")))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(calls(&graph).await, 0);

    let mine = client
        .list_numbers(by_key(BILLING, list_numbers(WABA, 0, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.phone_numbers[0].id, N1);
    let theirs = client
        .list_numbers(by_key(OPS, list_numbers(OTHER_WABA, 0, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.phone_numbers[0].id, N2);
    assert_eq!(calls(&graph).await, 2);

    // Its own WABA's number, from the cache; the other's, and one the index does not
    // place at all: NOT_FOUND, Meta not asked.
    client
        .get_status(by_key(BILLING, get_status(N1)))
        .await
        .unwrap();
    for id in [N2, N3] {
        let hidden = client
            .get_status(by_key(BILLING, get_status(id)))
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{id}: {hidden:?}");
        // Writes too, for a caller with the scope but not the WABA.
        let write = client
            .register(by_key(WRITER, register(id, "123456")))
            .await
            .unwrap_err();
        assert_eq!(write.code(), Code::NotFound, "{id}: {write:?}");
    }
    let elsewhere = AddNumberRequest {
        waba_id: OTHER_WABA.into(),
        country_code: "1".into(),
        phone_number: "5550100777".into(),
        verified_name: "Lucky Shrub".into(),
        ..AddNumberRequest::default()
    };
    let hidden = client
        .add_number(by_key(WRITER, elsewhere))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    // Claiming from the business's pre-verified pool is the business's, even into its WABA.
    let claim = AddNumberRequest {
        waba_id: WABA.into(),
        preverified_id: "107000000000001".into(),
        ..AddNumberRequest::default()
    };
    let denied = client.add_number(by_key(WRITER, claim)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(calls(&graph).await, 2);
    for request in [waba(OTHER_WABA), numbers(&[N1, N2])] {
        let hidden = client
            .watch_status(by_key(BILLING, request))
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    }
    client
        .get_status(by_key(OPS, get_status(N2)))
        .await
        .unwrap();
    assert_eq!(calls(&graph).await, 2);

    // Each caller is a label of the call metrics.
    let text = crate::operations::scrape(&service).await;
    for expected in [
        r#"waba_grpc_requests_total{method="ListNumbers",code="OK",caller="billing"}"#,
        r#"waba_grpc_requests_total{method="ListNumbers",code="NOT_FOUND",caller="billing"}"#,
        r#"waba_grpc_requests_total{method="GetStatus",code="OK",caller="ops"}"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[tokio::test]
async fn a_page_token_serves_only_the_caller_it_was_issued_to() {
    let graph = fake_graph([
        list()
            .and(wiremock::matchers::query_param_is_missing("after"))
            .respond_with(ok(json!({
                "data": [number(N1, "APPROVED")],
                "paging": { "cursors": { "before": "B1", "after": "A1" }, "next": "https://x/?after=A1" }
            })))
            .expect(1),
        list()
            .and(wiremock::matchers::query_param("after", "A1"))
            .respond_with(page(&[number(N2, "APPROVED")]))
            .expect(1),
    ])
    .await;
    let (service, _dir) = start(&graph).await;
    let mut client = service.client();
    let first = client
        .list_numbers(by_key(READER, list_numbers(WABA, 1, "")))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let stolen = client
        .list_numbers(by_key(
            BILLING,
            list_numbers(WABA, 1, &first.next_page_token),
        ))
        .await
        .unwrap_err();
    crate::support::assert_invalid(&stolen, "page_token");
    let second = client
        .list_numbers(by_key(
            READER,
            list_numbers(WABA, 1, &first.next_page_token),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.phone_numbers[0].id, N2);
}

#[tokio::test(start_paused = true)]
async fn forced_reads_are_limited_per_caller_and_waba_then_served_from_the_cache() {
    let graph = fake_graph([
        list()
            .respond_with(page(&[number(N1, "APPROVED"), number(N2, "APPROVED")]))
            .expect(1),
        read(N1).respond_with(ok(number(N1, "APPROVED"))).expect(3),
        read(N3).respond_with(ResponseTemplate::new(503)).expect(3),
    ])
    .await;
    let (mut settings, _dir) = with_callers(
        crate::support::paused_clock_settings(&graph.uri()),
        &callers_toml(),
    );
    settings.graph.read_attempts = 1;
    let service = Service::start(settings).await;
    let mut client = service.client();
    client
        .list_numbers(by_key(READER, list_numbers(WABA, 0, "")))
        .await
        .unwrap();

    // Two reads of WABA's numbers from Meta this minute...
    for _ in 0..2 {
        client
            .get_status(by_key(READER, get_status_within(N1, 0)))
            .await
            .unwrap();
    }
    // ...then the cached snapshots, however old, however small a max_staleness asks.
    client
        .get_status(by_key(READER, get_status_within(N1, 0)))
        .await
        .unwrap();
    let mut tiny = get_status(N2);
    tiny.max_staleness = Some(prost_types::Duration {
        seconds: 0,
        nanos: 1,
    });
    client.get_status(by_key(READER, tiny)).await.unwrap();
    assert_eq!(calls(&graph).await, 3);
    // Another caller has its own allowance.
    client
        .get_status(by_key(OPS, get_status_within(N1, 0)))
        .await
        .unwrap();
    assert_eq!(calls(&graph).await, 4);

    // A number not cached (its reads fail): RESOURCE_EXHAUSTED, with when to retry.
    for _ in 0..2 {
        let failed = client
            .get_status(by_key(READER, get_status_within(N3, 0)))
            .await
            .unwrap_err();
        assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    }
    let limited = client
        .get_status(by_key(READER, get_status_within(N3, 0)))
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    let retry = limited.get_details_retry_info().expect("RetryInfo");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d <= Duration::from_secs(60)),
        "{retry:?}"
    );
    assert_eq!(calls(&graph).await, 6);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let failed = client
        .get_status(by_key(READER, get_status_within(N3, 0)))
        .await
        .unwrap_err();
    assert_eq!(
        failed.code(),
        Code::Unavailable,
        "a minute later: {failed:?}"
    );
    assert_eq!(calls(&graph).await, 7);
}

#[tokio::test(start_paused = true)]
async fn the_callers_file_is_re_read_and_a_broken_one_keeps_the_last_good() {
    let graph = graph_never_called().await;
    let (settings, dir) = with_callers(settings(&graph.uri()), &callers_toml());
    let path = dir.path().join("callers.toml");
    let service = Service::start(settings).await;
    let mut client = service.client();
    let customer = || GetCustomerRequest {
        waba_id: WABA.into(),
    };
    let late = "late-key-0123456789";
    let status = service
        .customers
        .clone()
        .get_customer(by_key(late, customer()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let added = format!(
        "{}\n[[caller]]\nname = \"late\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n",
        callers_toml(),
        key_digest(late)
    );
    write(&path, &added);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the caller check: the customer RPCs say there is no store.
    let status = service
        .customers
        .clone()
        .get_customer(by_key(late, customer()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    write(&path, "[[caller]]\nname = \"late\"\nscopes = [\"read\"]\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = service
        .customers
        .clone()
        .get_customer(by_key(late, customer()))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "still the last good file: {status:?}"
    );
    let status = client
        .get_status(by_key(BILLING, get_status(NUMBER)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn the_service_will_not_start_with_a_broken_callers_file_or_without_a_required_one() {
    let graph = graph_never_called().await;
    let mut required = settings(&graph.uri());
    required.require_callers = true;
    let e = waba_numbers::server::Service::build(required)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("WABA_CALLERS_FILE"), "{e}");

    let key = "sk_pasted_raw_key_0123456789";
    let broken =
        format!("[[caller]]\nname = \"a\"\napi_key_sha256 = \"{key}\"\nscopes = [\"read\"]\n");
    let (broken, _dir) = with_callers(settings(&graph.uri()), &broken);
    let e = waba_numbers::server::Service::build(broken)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("api_key_sha256"), "{e}");
    assert!(!e.contains(key), "{e}");
}

#[tokio::test]
async fn a_caller_limited_to_wabas_lists_and_reads_only_its_customers() {
    let (settings, http) = crate::support::sandbox_customers_settings().await;
    let codes = ["es-acme", "es-globex", "es-initech"];
    let wabas: Vec<String> = codes
        .iter()
        .map(|code| waba_numbers::sandbox::customer_waba_id(code).unwrap())
        .collect();
    let text = format!(
        "{}\n[[caller]]\nname = \"two\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\nwabas = [\"{}\", \"{}\"]\n",
        callers_toml(),
        key_digest("two-key-0123456789"),
        wabas[0],
        wabas[2]
    );
    let (settings, _dir) = with_callers(settings, &text);
    let service = Service::start_on(settings, http).await;
    let mut customers = service.customers.clone();
    for (code, waba_id) in codes.iter().zip(&wabas) {
        let onboard = OnboardCustomerRequest {
            code: (*code).into(),
            waba_id: waba_id.clone(),
            request_id: format!("{code}-1"),
            ..OnboardCustomerRequest::default()
        };
        customers
            .onboard_customer(by_key(OPS, onboard))
            .await
            .unwrap();
    }
    let list = |page_token: &str| ListCustomersRequest {
        page_size: 1,
        page_token: page_token.into(),
    };
    let everyone = customers
        .list_customers(by_key(OPS, ListCustomersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everyone.customers.len(), 3);

    // Page by page, only its own two, in WABA id order.
    let mut mine = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = customers
            .list_customers(by_key("two-key-0123456789", list(&token)))
            .await
            .unwrap()
            .into_inner();
        mine.extend(page.customers.into_iter().map(|c| c.waba_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(mine, BTreeSet::from([wabas[0].clone(), wabas[2].clone()]));

    let hidden = customers
        .get_customer(by_key(
            "two-key-0123456789",
            GetCustomerRequest {
                waba_id: wabas[1].clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    customers
        .get_customer(by_key(
            "two-key-0123456789",
            GetCustomerRequest {
                waba_id: wabas[2].clone(),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_certificate_names_its_caller_over_mutual_tls() {
    use crate::support::{Ca, Client, StartOptions, TlsFiles, on_sandbox_settings, tls_channel};
    use waba_numbers::sandbox::{DEMO_WABA_ID, SandboxOptions};

    let ca = Ca::new("mesh CA");
    let files = TlsFiles::write(&ca.server_identity(), Some(&ca));
    let san = "spiffe://cluster.local/ns/partner/sa/onboarding";
    let text = format!(
        "{}\n[[caller]]\nname = \"onboarding\"\ntls_san = \"{san}\"\nscopes = [\"read\"]\n",
        callers_toml()
    );
    let (settings, http) = on_sandbox_settings(SandboxOptions::default()).await;
    let (mut settings, _dir) = with_callers(settings, &text);
    settings.tls = Some(files.settings());
    let onboarding = ca.client_identity(san);
    let service = Service::start_with(
        settings,
        StartOptions {
            http: Some(http),
            tls: Some((&ca, Some(&onboarding))),
            ..StartOptions::default()
        },
    )
    .await;

    // No key: the certificate says who calls, and its scopes hold.
    let mut client = service.client();
    client
        .list_numbers(list_numbers(DEMO_WABA_ID, 2, ""))
        .await
        .unwrap();
    let denied = client.register(register(N1, "123456")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("caller onboarding"), "{denied:?}");

    // A certificate of the CA that names no caller: UNAUTHENTICATED, unless a key is sent.
    let stranger = ca.client_identity("spiffe://cluster.local/ns/partner/sa/stranger");
    let mut stranger = Client::new(
        tls_channel(service.addr, &ca, Some(&stranger))
            .await
            .unwrap(),
    );
    let refused = stranger
        .list_numbers(list_numbers(DEMO_WABA_ID, 2, ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("certificate"), "{refused:?}");
    stranger
        .list_numbers(by_key(OPS, list_numbers(DEMO_WABA_ID, 2, "")))
        .await
        .unwrap();
}
