//! Every RPC through a real client against the embedded sandbox, as a new user would;
//! then the simulated Graph API alone, as any Graph client calls Meta.

use crate::support::{
    APP_SECRET, Service, TOKEN, assert_invalid, assert_register_guard, error_info, get_status,
    list_numbers, paused_clock_settings, register, settings, unbounded, waba,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;
use waba_numbers::pb::{
    self, ConnectionStatus, GetStatusRequest, ListNumbersRequest, NameStatus, PlatformType,
    VerificationStatus,
};
use waba_numbers::sandbox::{
    self, BENCH_WABA_ID, CALLS_PATH, DEMO_PIN, DEMO_WABA_ID, SANDBOX_APP_ID, SandboxOptions,
    bench_number_id,
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
async fn the_guard_keeps_the_last_of_ten_register_attempts_for_a_person() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    for _ in 0..9 {
        client
            .register(register(REGISTERED, DEMO_PIN))
            .await
            .unwrap();
    }
    let err = client
        .register(register(REGISTERED, DEMO_PIN))
        .await
        .unwrap_err();
    assert_register_guard(&err, REGISTERED, 71);

    let number = client
        .get_status(get_status(REGISTERED))
        .await
        .unwrap()
        .into_inner();
    let budget = number.register_budget.unwrap();
    assert_eq!((budget.attempts_left, budget.reserve), (1, 1));
    assert!(budget.blocked_until.is_some());
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
            "preverified_numbers": 0, "tokens": 0, "subscribed_apps": 0, "batch": 0,
            "batch_items": 0, "other": 0 },
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
            "preverified_numbers": 0, "tokens": 0, "subscribed_apps": 0, "batch": 1,
            "batch_items": 3, "other": 1 },
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
            ..ListNumbersRequest::default()
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

// The simulated Graph API alone, called as any Graph client calls Meta: query strings,
// form bodies, JSON bodies, trailing slashes, the token in a header or in the body.

/// A Graph client of a sandbox that checks `TOKEN` and the app secret.
struct Graph {
    /// The versioned base, `http://127.0.0.1:port/v25.0`.
    url: String,
    /// The server's root, for the sandbox's own paths.
    root: String,
    http: reqwest::Client,
}

/// A Graph answer: its HTTP status and JSON body.
type Answered = (u16, Value);

impl Graph {
    async fn start(options: SandboxOptions) -> Graph {
        let url = sandbox::spawn(SandboxOptions {
            access_token: Some(TOKEN.into()),
            app_secret: Some(APP_SECRET.into()),
            ..options
        })
        .await
        .unwrap();
        Graph {
            url: format!("{url}/v25.0"),
            root: url,
            http: reqwest::Client::new(),
        }
    }

    /// `method` on `path` with the token as a bearer and its proof in the query.
    fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.call_as(TOKEN, method, path)
    }

    /// `method` on `path` with `token` as a bearer and its proof in the query.
    fn call_as(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let proof = crate::support::proof_for(token);
        self.http
            .request(method, format!("{}/{path}", self.url))
            .bearer_auth(token)
            .query(&[("appsecret_proof", proof)])
    }

    /// `GET /oauth/access_token` with `query` and no token, as a partner's backend
    /// exchanges an Embedded Signup code.
    async fn exchange(&self, query: &[(&str, &str)]) -> Answered {
        let url = format!("{}/oauth/access_token", self.url);
        answered(self.http.get(url).query(query)).await
    }

    /// Exchanges `code` with the app's credentials; the business token.
    async fn business_token(&self, code: &str) -> String {
        let (status, body) = self.exchange(&credentials(code)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "bearer", "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET /debug_token?input_token=` authorised by `app_token`.
    async fn debug_token(&self, app_token: &str, input: &str) -> Answered {
        let url = format!("{}/debug_token", self.url);
        let request = self.http.get(url).bearer_auth(app_token);
        answered(request.query(&[("input_token", input)])).await
    }

    /// `POST /_sandbox/revoke?waba_id=`: the customer removes the app.
    async fn revoke(&self, waba_id: &str) -> Answered {
        let url = format!("{}{}", self.root, sandbox::REVOKE_PATH);
        answered(self.http.post(url).query(&[("waba_id", waba_id)])).await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answered {
        answered(self.call(reqwest::Method::GET, path).query(query)).await
    }

    /// A POST with its parameters in the query string.
    async fn post_query(&self, path: &str, query: &[(&str, &str)]) -> Answered {
        answered(self.call(reqwest::Method::POST, path).query(query)).await
    }

    /// A POST with a JSON body.
    async fn post_json(&self, path: &str, body: Value) -> Answered {
        answered(self.call(reqwest::Method::POST, path).json(&body)).await
    }

    /// A POST with a form body carrying the token and its proof too, and no header.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Answered {
        let proof = crate::support::proof_for(TOKEN);
        let mut form = form.to_vec();
        form.extend([("access_token", TOKEN), ("appsecret_proof", &proof)]);
        let request = self.http.post(format!("{}/{path}", self.url)).form(&form);
        answered(request).await
    }

    async fn delete(&self, path: &str) -> Answered {
        answered(self.call(reqwest::Method::DELETE, path)).await
    }

    /// The fields of the node `id`, read through a trailing-slash path.
    async fn node(&self, id: &str, fields: &str) -> Value {
        let (status, body) = self.get(&format!("{id}/"), &[("fields", fields)]).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn answered(request: reqwest::RequestBuilder) -> Answered {
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// Asserts `answer` is Meta's error envelope with `code` (and `subcode` if given).
fn assert_error(answer: &Answered, code: i64, subcode: Option<i64>) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["error_subcode"].as_i64(), subcode, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        error["type"].is_string() && error["fbtrace_id"].is_string(),
        "{body}"
    );
}

fn assert_success(answer: &Answered) {
    assert_eq!(answer, &(200, json!({ "success": true })));
}

const STATE: &str = "code_verification_status,platform_type,status,name_status,verified_name";

#[tokio::test]
async fn a_new_number_is_added_verified_registered_and_deregistered() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let edge = format!("{DEMO_WABA_ID}/phone_numbers");
    let add = [
        ("cc", "1"),
        ("phone_number", "5550100777"),
        ("verified_name", "Lucky Shrub"),
    ];
    let (status, added) = graph.post_form(&edge, &add).await;
    assert_eq!(status, 200, "{added}");
    // The id is a documented function of the WABA and the digits: the README's walk.
    let id = "106406749783033";
    assert_eq!(added, json!({ "id": id }));
    assert_eq!(id, sandbox::phone_number_id(DEMO_WABA_ID, "15550100777"));
    let fresh = graph.node(id, STATE).await;
    assert_eq!(fresh["code_verification_status"], "NOT_VERIFIED");
    assert_eq!(fresh["platform_type"], "NOT_APPLICABLE");
    assert_eq!(fresh["status"], "PENDING");
    // The same digits again (with the country code this time): Meta's 2388012.
    let again = json!({ "cc": "1", "phone_number": "15550100777", "verified_name": "Lucky Shrub" });
    assert_error(&graph.post_json(&edge, again).await, 100, Some(2388012));

    let request_code = format!("{id}/request_code");
    let verify_code = format!("{id}/verify_code");
    let code = sandbox::VERIFICATION_CODE;
    // No code sent yet; then a wrong one, and the right one hyphenated: 136025.
    assert_error(
        &graph.post_form(&verify_code, &[("code", code)]).await,
        136025,
        None,
    );
    let sms = [("code_method", "SMS"), ("language", "en_US")];
    assert_error(&graph.post_query(&request_code, &sms[..1]).await, 100, None);
    assert_success(&graph.post_query(&request_code, &sms).await);
    for wrong in ["111111", "424-242"] {
        let answer = graph
            .post_json(&verify_code, json!({ "code": wrong }))
            .await;
        assert_error(&answer, 136025, None);
    }
    assert_success(&graph.post_form(&verify_code, &[("code", code)]).await);
    assert_eq!(
        graph.node(id, STATE).await["code_verification_status"],
        "VERIFIED"
    );

    let register = json!({ "messaging_product": "whatsapp", "pin": "246810" });
    assert_success(&graph.post_json(&format!("{id}/register"), register).await);
    let registered = graph.node(id, STATE).await;
    assert_eq!(
        (&registered["platform_type"], &registered["status"]),
        (&json!("CLOUD_API"), &json!("CONNECTED"))
    );
    assert_success(&graph.post_form(&format!("{id}/deregister"), &[]).await);
    let deregistered = graph.node(id, STATE).await;
    assert_eq!(
        (&deregistered["platform_type"], &deregistered["status"]),
        (&json!("NOT_APPLICABLE"), &json!("DISCONNECTED"))
    );
}

#[tokio::test]
async fn a_number_migrates_into_the_demo_waba() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let edge = format!("{DEMO_WABA_ID}/phone_numbers");
    let (cc, national) = sandbox::MIGRATABLE_NUMBER;
    // Without migrate_phone_number it is another WABA's number.
    let plain = [
        ("cc", cc),
        ("phone_number", national),
        ("verified_name", "Mine"),
    ];
    assert_error(&graph.post_form(&edge, &plain).await, 100, Some(2388103));
    let migrate = json!({ "cc": cc, "phone_number": national, "migrate_phone_number": true });
    let (status, added) = graph.post_json(&edge, migrate).await;
    assert_eq!(status, 200, "{added}");
    let id = added["id"].as_str().unwrap();
    let moved = graph.node(id, STATE).await;
    assert_eq!(moved["verified_name"], "Moving Shop");
    assert_eq!(moved["code_verification_status"], "NOT_VERIFIED");

    let sms = [("code_method", "SMS"), ("language", "en")];
    assert_success(&graph.post_form(&format!("{id}/request_code"), &sms).await);
    let code = [("code", sandbox::VERIFICATION_CODE)];
    assert_success(&graph.post_form(&format!("{id}/verify_code"), &code).await);
    let register = [("messaging_product", "whatsapp"), ("pin", "246810")];
    assert_success(&graph.post_form(&format!("{id}/register"), &register).await);
    assert_eq!(graph.node(id, STATE).await["status"], "CONNECTED");
    // The source number has left: MIGRATED, off the Cloud API.
    let (_, source) = graph
        .get(
            &format!("{}/phone_numbers", sandbox::MIGRATION_WABA_ID),
            &[("fields", STATE)],
        )
        .await;
    assert_eq!(source["data"][0]["status"], "MIGRATED", "{source}");
    assert_eq!(source["data"][0]["platform_type"], "NOT_APPLICABLE");

    // A number with a two-step PIN cannot be migrated: 2388001.
    let with_pin = [
        ("cc", "1"),
        ("phone_number", "5550100001"),
        ("migrate_phone_number", "true"),
    ];
    let edge = format!("{}/phone_numbers", sandbox::MIGRATION_WABA_ID);
    assert_error(&graph.post_form(&edge, &with_pin).await, 100, Some(2388001));
}

#[tokio::test]
async fn the_preverified_pool_lists_pages_verifies_claims_and_deletes() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let business = sandbox::DEMO_BUSINESS_ID;
    let pool = format!("{business}/preverified_numbers");
    let (status, added) = graph
        .post_form(
            &format!("{business}/add_phone_numbers"),
            &[("phone_number", "15550100803")],
        )
        .await;
    assert_eq!(status, 200, "{added}");
    let added = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added, sandbox::preverified_id(business, "15550100803"));
    let twice = graph
        .post_query(
            &format!("{business}/add_phone_numbers"),
            &[("phone_number", "15550100803")],
        )
        .await;
    assert_error(&twice, 100, None);

    // Three entries, one a page, both ways.
    let (_, first) = graph
        .get(&pool, &[("limit", "1"), ("summary", "true")])
        .await;
    assert_eq!(first["summary"]["total_count"], 3);
    assert!(first["paging"].get("previous").is_none(), "{first}");
    let after = first["paging"]["cursors"]["after"].as_str().unwrap();
    let (_, second) = graph.get(&pool, &[("limit", "1"), ("after", after)]).await;
    assert!(second["paging"]["next"].is_string(), "{second}");
    let previous = second["paging"]["previous"].as_str().unwrap();
    let (_, back) = answered(
        graph
            .http
            .get(previous)
            .bearer_auth(TOKEN)
            .query(&[("appsecret_proof", crate::support::proof_for(TOKEN))]),
    )
    .await;
    assert_eq!(back["data"], first["data"], "{back}");
    let verified = first["data"][0].clone();
    assert_eq!(verified["code_verification_status"], "VERIFIED");
    let time = verified["code_verification_time"].as_str().unwrap();
    assert!(time.ends_with("+0000") && time.len() == 24, "{time}");
    assert!(verified["verification_expiry_time"].is_string());

    let filtered = [
        ("code_verification_status", "NOT_VERIFIED"),
        ("fields", "id,phone_number"),
    ];
    let (_, unverified) = graph.get(&pool, &filtered).await;
    let phones: Vec<&Value> = unverified["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["phone_number"])
        .collect();
    assert_eq!(phones, [&json!("15550100802"), &json!("15550100803")]);
    assert!(
        unverified["data"][0]
            .get("code_verification_status")
            .is_none()
    );

    // The added one is verified by IVR, then deleted.
    let ivr = [("code_method", "IVR"), ("language", "en_US")];
    assert_success(
        &graph
            .post_query(&format!("{added}/request_code"), &ivr)
            .await,
    );
    let code = [("code", sandbox::VERIFICATION_CODE)];
    assert_success(
        &graph
            .post_form(&format!("{added}/verify_code"), &code)
            .await,
    );
    let read = graph
        .node(&added, "code_verification_status,verification_expiry_time")
        .await;
    assert_eq!(read["code_verification_status"], "VERIFIED");
    assert_success(&graph.delete(&added).await);
    assert_error(&graph.delete(&added).await, 100, Some(33));

    // The verified one is claimed into the demo WABA: a new phone number, out of the pool.
    let pv = verified["id"].as_str().unwrap();
    let claim = [("preverified_id", pv), ("verified_name", "Claimed Shop")];
    let (status, claimed) = graph
        .post_form(&format!("{DEMO_WABA_ID}/phone_numbers"), &claim)
        .await;
    assert_eq!(status, 200, "{claimed}");
    let number = graph
        .node(
            claimed["id"].as_str().unwrap(),
            "is_preverified_number,code_verification_status,display_phone_number",
        )
        .await;
    assert_eq!(number["is_preverified_number"], true);
    assert_eq!(number["code_verification_status"], "VERIFIED");
    assert_eq!(number["display_phone_number"], "+1 555-010-0801");
    assert_error(&graph.get(pv, &[]).await, 100, Some(33));
}

#[tokio::test]
async fn a_display_name_change_is_approved_by_the_script_with_its_webhook() {
    let hooks = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let graph = Graph::start(SandboxOptions {
        webhook_url: Some(hooks.uri()),
        pace: Duration::from_millis(100),
        ..SandboxOptions::default()
    })
    .await;
    let rename = [("new_display_name", "Lucky Shrub")];
    assert_success(&graph.post_query(REGISTERED, &rename).await);
    let names = "verified_name,new_display_name,new_name_status";
    assert_eq!(
        graph.node(REGISTERED, names).await["new_name_status"],
        "PENDING_REVIEW"
    );

    let approved = async {
        loop {
            let requests = hooks.received_requests().await.unwrap();
            let found = requests.iter().find_map(|r| {
                let body: Value = serde_json::from_slice(&r.body).ok()?;
                let value = &body["entry"][0]["changes"][0]["value"];
                (value["requested_verified_name"] == "Lucky Shrub").then(|| body.clone())
            });
            if let Some(found) = found {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let webhook = tokio::time::timeout(Duration::from_secs(10), approved).await;
    let webhook = webhook.expect("no name-update webhook within 10 s");
    let change = &webhook["entry"][0]["changes"][0];
    assert_eq!(change["field"], "phone_number_name_update");
    assert_eq!(change["value"]["decision"], "APPROVED");
    assert_eq!(change["value"]["display_phone_number"], "15550100001");
    let decided = graph.node(REGISTERED, names).await;
    assert_eq!(
        (&decided["verified_name"], &decided["new_name_status"]),
        (&json!("Demo Shop 01"), &json!("APPROVED"))
    );
    // Registering again applies it.
    let register = json!({ "messaging_product": "whatsapp", "pin": DEMO_PIN });
    assert_success(
        &graph
            .post_json(&format!("{REGISTERED}/register"), register)
            .await,
    );
    let renamed = graph.node(REGISTERED, names).await;
    assert_eq!(renamed["verified_name"], "Lucky Shrub");
    assert_eq!(renamed["new_name_status"], "NONE");
    assert!(renamed.get("new_display_name").is_none(), "{renamed}");
}

#[tokio::test(start_paused = true)]
async fn the_life_script_approves_names_and_the_register_budget_is_shared() {
    let graph = Graph::start(SandboxOptions::default()).await;
    // Within a minute of start, the demo's pending change is approved, awaiting a register.
    let added = [
        ("cc", "1"),
        ("phone_number", "5550100778"),
        ("verified_name", "Late Shop"),
    ];
    let (_, added) = graph
        .post_form(&format!("{DEMO_WABA_ID}/phone_numbers"), &added)
        .await;
    tokio::time::advance(Duration::from_secs(60)).await;
    let awaiting = graph
        .node("106540352242934", "new_name_status,platform_type")
        .await;
    assert_eq!(awaiting["new_name_status"], "APPROVED");
    assert_eq!(awaiting["platform_type"], "CLOUD_API");
    let new = graph
        .node(added["id"].as_str().unwrap(), "name_status")
        .await;
    assert_eq!(new["name_status"], "APPROVED");
    let tomorrow = graph
        .node("106540352242933", "last_onboarded_time,platform_type")
        .await;
    assert_eq!(tomorrow["platform_type"], "NOT_APPLICABLE");

    // Five registers and five deregisters spend the 10 per 72 hours; the 11th of either is refused.
    let register = [("messaging_product", "whatsapp"), ("pin", DEMO_PIN)];
    for _ in 0..5 {
        assert_success(
            &graph
                .post_form(&format!("{REGISTERED}/register"), &register)
                .await,
        );
        assert_success(
            &graph
                .post_form(&format!("{REGISTERED}/deregister"), &[])
                .await,
        );
    }
    assert_error(
        &graph
            .post_form(&format!("{REGISTERED}/deregister"), &[])
            .await,
        133016,
        None,
    );
    assert_error(
        &graph
            .post_form(&format!("{REGISTERED}/register"), &register)
            .await,
        133016,
        None,
    );
    tokio::time::advance(Duration::from_secs(72 * 3600)).await;
    assert_success(
        &graph
            .post_form(&format!("{REGISTERED}/register"), &register)
            .await,
    );
}

#[tokio::test]
async fn every_documented_field_is_served_and_username_refused() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let fields = [
        "id",
        "display_phone_number",
        "verified_name",
        "code_verification_status",
        "name_status",
        "new_name_status",
        "quality_rating",
        "quality_score",
        "status",
        "platform_type",
        "throughput",
        "messaging_limit_tier",
        "whatsapp_business_manager_messaging_limit",
        "is_official_business_account",
        "account_mode",
        "is_pin_enabled",
        "is_on_biz_app",
        "is_preverified_number",
        "last_onboarded_time",
        "health_status",
        "certificate",
        "search_visibility",
        "eligibility_for_api_business_global_search",
        "webhook_configuration",
        "conversational_automation",
        "country_code",
        "country_dial_code",
    ];
    // new_display_name and new_certificate only when a change is requested / approved.
    let asked = format!("{},new_display_name,new_certificate", fields.join(","));
    let node = graph.node(REGISTERED, &asked).await;
    for field in fields {
        assert!(node.get(field).is_some(), "{field} missing from {node}");
    }
    assert_eq!(node["health_status"]["can_send_message"], "AVAILABLE");
    assert_eq!(
        node["health_status"]["entities"][0]["entity_type"],
        "PHONE_NUMBER"
    );
    assert_eq!(node["country_code"], "US");
    assert!(node["webhook_configuration"]["application"].is_string());
    let blocked = graph.node(UNREGISTERED, "health_status").await;
    assert_eq!(blocked["health_status"]["can_send_message"], "BLOCKED");

    let refused = graph.get(REGISTERED, &[("fields", "id,username")]).await;
    assert_error(&refused, 100, None);
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nonexisting field (username)"),
        "{message}"
    );
}

#[tokio::test]
async fn generic_clients_get_metas_paths_paging_and_errors() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let edge = format!("{DEMO_WABA_ID}/phone_numbers/");
    // summary=true, and paging both ways.
    let (_, first) = graph
        .get(
            &edge,
            &[("limit", "10"), ("summary", "true"), ("fields", "id")],
        )
        .await;
    assert_eq!(first["summary"]["total_count"], 34);
    assert!(first["paging"].get("previous").is_none());
    let after = first["paging"]["cursors"]["after"].as_str().unwrap();
    let (_, second) = graph
        .get(
            &edge,
            &[("limit", "10"), ("after", after), ("fields", "id")],
        )
        .await;
    let before = second["paging"]["cursors"]["before"].as_str().unwrap();
    assert!(
        second["paging"]["previous"]
            .as_str()
            .unwrap()
            .contains("before=")
    );
    let (_, back) = graph
        .get(
            &edge,
            &[("limit", "10"), ("before", before), ("fields", "id")],
        )
        .await;
    assert_eq!(back["data"], first["data"]);

    // Unknown paths and unsupported methods: Meta's envelope, never a bare 404 or 405.
    assert_error(
        &graph.get(&format!("{REGISTERED}/nope"), &[]).await,
        100,
        Some(33),
    );
    assert_error(&graph.get("1/2/3", &[]).await, 100, Some(33));
    assert_error(&graph.delete(REGISTERED).await, 100, Some(33));
    let put = answered(graph.call(reqwest::Method::PUT, REGISTERED)).await;
    assert_error(&put, 100, Some(33));
    assert_error(&graph.post_form(REGISTERED, &[]).await, 100, None);

    // A batch with trailing-slash reads and a write, its body form-encoded.
    let batch = json!([
        { "method": "GET", "relative_url": format!("{REGISTERED}/?fields=id,status") },
        { "method": "POST", "relative_url": format!("{UNREGISTERED}/"), "body": "pin=246810" },
        { "method": "GET", "relative_url": format!("/{UNREGISTERED}?fields=is_pin_enabled") },
    ]);
    let (status, items) = graph.post_form("", &[("batch", &batch.to_string())]).await;
    assert_eq!(status, 200, "{items}");
    let bodies: Vec<Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["code"], 200, "{item}");
            serde_json::from_str(item["body"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(
        bodies[0],
        json!({ "id": REGISTERED, "status": "CONNECTED" })
    );
    assert_eq!(bodies[1], json!({ "success": true }));
    assert_eq!(bodies[2]["is_pin_enabled"], true);
}

// Customers: Embedded Signup codes exchanged for business tokens, what a business token
// reaches, debug_token, subscribed_apps, and a customer removing the app.

/// The sandbox app's token, for debug_token.
fn app_token() -> String {
    format!("{SANDBOX_APP_ID}|{APP_SECRET}")
}

/// The exchange's query for `code`, with the app's credentials.
fn credentials(code: &str) -> [(&'static str, &str); 3] {
    [
        ("client_id", SANDBOX_APP_ID),
        ("client_secret", APP_SECRET),
        ("code", code),
    ]
}

#[tokio::test]
async fn a_business_token_from_a_code_reaches_its_waba_and_nothing_else() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let code = "es-acme";
    let token = graph.business_token(code).await;
    assert_eq!(
        token,
        sandbox::business_token(code),
        "predictable from the code"
    );
    let waba = sandbox::customer_waba_id(code).unwrap();
    let number = |i| sandbox::customer_number_id(code, i).unwrap();

    // Its WABA's edge and numbers, through a generic client's calls.
    let edge = format!("{waba}/phone_numbers");
    let list = answered(graph.call_as(&token, reqwest::Method::GET, &edge)).await;
    assert_eq!(list.0, 200, "{}", list.1);
    let ids: Vec<&str> = list.1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=sandbox::CUSTOMER_NUMBERS).map(number).collect();
    assert_eq!(ids, expected);
    let read = graph
        .call_as(&token, reqwest::Method::GET, &number(3))
        .query(&[("fields", STATE)]);
    let (status, unregistered) = answered(read).await;
    assert_eq!(status, 200, "{unregistered}");
    assert_eq!(unregistered["code_verification_status"], "VERIFIED");
    assert_eq!(unregistered["platform_type"], "NOT_APPLICABLE");
    let register = graph
        .call_as(
            &token,
            reqwest::Method::POST,
            &format!("{}/register", number(3)),
        )
        .json(&json!({ "messaging_product": "whatsapp", "pin": "246810" }));
    assert_success(&answered(register).await);

    // Elsewhere: Meta's permission error, on edges, nodes and writes alike.
    let permission = |answer: &Answered| {
        assert_eq!(answer.0, 403, "{}", answer.1);
        assert_eq!(answer.1["error"]["code"], 200, "{}", answer.1);
        assert_eq!(answer.1["error"]["message"], "(#200) Permissions error");
    };
    let demo_edge = format!("{DEMO_WABA_ID}/phone_numbers");
    permission(&answered(graph.call_as(&token, reqwest::Method::GET, &demo_edge)).await);
    permission(&answered(graph.call_as(&token, reqwest::Method::GET, REGISTERED)).await);
    let deregister = format!("{REGISTERED}/deregister");
    permission(&answered(graph.call_as(&token, reqwest::Method::POST, &deregister)).await);
    let demo_apps = format!("{DEMO_WABA_ID}/subscribed_apps");
    permission(&answered(graph.call_as(&token, reqwest::Method::GET, &demo_apps)).await);
    // An id that exists nowhere is still 100/33.
    let unknown = graph.call_as(&token, reqwest::Method::GET, "1234");
    assert_error(&answered(unknown).await, 100, Some(33));

    // The partner token reaches the customer's WABA too.
    let (status, by_partner) = graph.get(&edge, &[("fields", "id")]).await;
    assert_eq!(
        (status, by_partner["data"].as_array().unwrap().len()),
        (200, 3)
    );

    // appsecret_proof is the proof of the token presented, not of another.
    let wrong_proof = graph
        .http
        .get(format!("{}/{edge}", graph.url))
        .bearer_auth(&token)
        .query(&[("appsecret_proof", crate::support::proof_for(TOKEN))]);
    assert_error(&answered(wrong_proof).await, 100, None);
}

#[tokio::test]
async fn a_code_is_exchanged_once_and_only_with_the_apps_credentials() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let token = graph.business_token("es-once").await;
    let again = graph.exchange(&credentials("es-once")).await;
    assert_error(&again, 100, Some(sandbox::CODE_USED));
    assert_eq!(again.1["error"]["type"], "OAuthException");
    assert_error(&graph.exchange(&credentials("not-a-code")).await, 100, None);
    assert_error(&graph.exchange(&credentials("")).await, 100, None);
    let wrong_secret = [
        ("client_id", SANDBOX_APP_ID),
        ("client_secret", "not-the-secret"),
        ("code", "es-other"),
    ];
    assert_error(&graph.exchange(&wrong_secret).await, 1, None);
    let wrong_app = [
        ("client_id", "1"),
        ("client_secret", APP_SECRET),
        ("code", "es-other"),
    ];
    assert_error(&graph.exchange(&wrong_app).await, 101, None);
    // Refused exchanges used nothing up: the code still works.
    graph.business_token("es-other").await;

    // A later code for the same customer: a new token for the same WABA.
    let second = graph.business_token("es-once.2").await;
    assert_ne!(second, token);
    let waba = sandbox::customer_waba_id("es-once").unwrap();
    let edge = format!("{waba}/phone_numbers");
    let list = answered(graph.call_as(&second, reqwest::Method::GET, &edge)).await;
    assert_eq!(list.1["data"].as_array().unwrap().len(), 3, "{}", list.1);

    // The app token, by client credentials. Every exchange is counted under `tokens`,
    // and none draws on a WABA's budget (no usage header).
    let app = [
        ("client_id", SANDBOX_APP_ID),
        ("client_secret", APP_SECRET),
        ("grant_type", "client_credentials"),
    ];
    let (status, body) = graph.exchange(&app).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "access_token": app_token(), "token_type": "bearer" })
    );
    let counted = calls(&graph.root).await;
    assert_eq!(counted["endpoints"]["tokens"], 9, "{counted}");
    let exchanged = graph
        .http
        .get(format!("{}/oauth/access_token", graph.url))
        .query(&credentials("es-unmetered"))
        .send()
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 200);
    assert!(
        exchanged
            .headers()
            .get("x-business-use-case-usage")
            .is_none()
    );
}

#[tokio::test]
async fn debug_token_is_valid_until_the_customer_removes_the_app() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let code = "es-debugged";
    let token = graph.business_token(code).await;
    let waba = sandbox::customer_waba_id(code).unwrap();
    let business = sandbox::customer_business_id(code).unwrap();

    let (status, debugged) = graph.debug_token(&app_token(), &token).await;
    assert_eq!(status, 200, "{debugged}");
    let data = &debugged["data"];
    assert_eq!(data["is_valid"], true);
    assert_eq!(data["app_id"], SANDBOX_APP_ID);
    assert_eq!(data["type"], "SYSTEM_USER");
    assert_eq!(
        (&data["expires_at"], &data["data_access_expires_at"]),
        (&json!(0), &json!(0))
    );
    assert!(
        data["user_id"].is_string() && data["issued_at"].is_i64(),
        "{data}"
    );
    let scopes = &data["granular_scopes"];
    assert_eq!(
        scopes,
        &json!([
            { "scope": "whatsapp_business_management", "target_ids": [waba] },
            { "scope": "whatsapp_business_messaging", "target_ids": [waba] },
            { "scope": "business_management", "target_ids": [business] },
        ])
    );
    assert_eq!(data["scopes"].as_array().unwrap().len(), 3);

    // Only the app may ask, and the token it asks about may be anything.
    assert_error(&graph.debug_token(&token, &token).await, 100, None);
    let other_app = format!("{SANDBOX_APP_ID}|not-the-secret");
    assert_error(&graph.debug_token(&other_app, &token).await, 190, None);
    let (_, unknown) = graph.debug_token(&app_token(), "EAAGnot-a-token").await;
    assert_eq!(unknown["data"]["is_valid"], false, "{unknown}");
    assert_eq!(unknown["data"]["error"]["code"], 190, "{unknown}");
    let (_, partner) = graph.debug_token(&app_token(), TOKEN).await;
    let partner_wabas = &partner["data"]["granular_scopes"][0]["target_ids"];
    assert!(
        partner_wabas.as_array().unwrap().contains(&json!(waba))
            && partner_wabas
                .as_array()
                .unwrap()
                .contains(&json!(DEMO_WABA_ID)),
        "{partner}"
    );
    // Meta's token endpoints answer without a version too.
    let unversioned = graph
        .http
        .get(format!("{}/debug_token", graph.root))
        .bearer_auth(app_token())
        .query(&[("input_token", &token)]);
    assert_eq!(answered(unversioned).await.1["data"]["is_valid"], true);

    // The customer removes the app.
    let (status, revoked) = graph.revoke(&waba).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked, json!({ "success": true, "revoked_tokens": 1 }));
    let (_, debugged) = graph.debug_token(&app_token(), &token).await;
    let data = &debugged["data"];
    assert_eq!(data["is_valid"], false, "{debugged}");
    assert_eq!(
        (&data["error"]["code"], &data["error"]["subcode"]),
        (&json!(190), &json!(sandbox::APP_NOT_INSTALLED))
    );
    let edge = format!("{waba}/phone_numbers");
    let refused = answered(graph.call_as(&token, reqwest::Method::GET, &edge)).await;
    assert_error(&refused, 190, Some(sandbox::APP_NOT_INSTALLED));
    let apps = format!("{waba}/subscribed_apps");
    let unsubscribe = answered(graph.call_as(&token, reqwest::Method::DELETE, &apps)).await;
    assert_error(&unsubscribe, 190, Some(sandbox::APP_NOT_INSTALLED));
    // Only customers' WABAs can be revoked.
    assert_error(&graph.revoke(DEMO_WABA_ID).await, 100, Some(33));

    // Embedded Signup again: a new code, a live token for the same WABA.
    let healed = graph.business_token("es-debugged.2").await;
    let (_, debugged) = graph.debug_token(&app_token(), &healed).await;
    assert_eq!(debugged["data"]["is_valid"], true);
}

#[tokio::test]
async fn subscribed_apps_subscribes_lists_and_unsubscribes_the_app() {
    let graph = Graph::start(SandboxOptions::default()).await;
    let token = graph.business_token("es-hooks").await;
    let apps = format!(
        "{}/subscribed_apps",
        sandbox::customer_waba_id("es-hooks").unwrap()
    );
    let as_customer = |method| graph.call_as(&token, method, &apps);
    let none = json!({ "data": [] });
    assert_eq!(
        answered(as_customer(reqwest::Method::GET)).await,
        (200, none.clone())
    );

    assert_success(&answered(as_customer(reqwest::Method::POST)).await);
    let listed = json!({ "data": [{ "whatsapp_business_api_data": {
        "id": SANDBOX_APP_ID,
        "name": sandbox::SANDBOX_APP_NAME,
        "link": format!("https://www.facebook.com/games/?app_id={SANDBOX_APP_ID}"),
    }}]});
    assert_eq!(
        answered(as_customer(reqwest::Method::GET)).await,
        (200, listed)
    );

    // An override needs its verify token; it is listed.
    let uri = "https://partner.example/hooks";
    let no_verify = as_customer(reqwest::Method::POST).form(&[("override_callback_uri", uri)]);
    assert_error(&answered(no_verify).await, 100, None);
    let with_verify = as_customer(reqwest::Method::POST)
        .json(&json!({ "override_callback_uri": uri, "verify_token": "v" }));
    assert_success(&answered(with_verify).await);
    let (_, listed) = answered(as_customer(reqwest::Method::GET)).await;
    assert_eq!(listed["data"][0]["override_callback_uri"], uri, "{listed}");

    assert_success(&answered(as_customer(reqwest::Method::DELETE)).await);
    assert_eq!(
        answered(as_customer(reqwest::Method::GET)).await,
        (200, none)
    );
    assert_success(&answered(as_customer(reqwest::Method::DELETE)).await);

    // The demo WABA is subscribed from the start; unknown WABAs are 100/33.
    let (_, demo) = graph
        .get(&format!("{DEMO_WABA_ID}/subscribed_apps"), &[])
        .await;
    assert_eq!(
        demo["data"][0]["whatsapp_business_api_data"]["id"],
        SANDBOX_APP_ID
    );
    assert_error(&graph.get("1234/subscribed_apps", &[]).await, 100, Some(33));
}

#[tokio::test]
async fn webhooks_about_a_customer_waba_need_its_subscription() {
    let hooks = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let graph = Graph::start(SandboxOptions {
        webhook_url: Some(hooks.uri()),
        pace: Duration::from_millis(100),
        ..SandboxOptions::default()
    })
    .await;
    // Both customers have a name review approved 3 paces after their exchange.
    let subscribed = graph.business_token("es-listening").await;
    graph.business_token("es-silent").await;
    let apps = format!(
        "{}/subscribed_apps",
        sandbox::customer_waba_id("es-listening").unwrap()
    );
    assert_success(&answered(graph.call_as(&subscribed, reqwest::Method::POST, &apps)).await);

    let entries = || async {
        let requests = hooks.received_requests().await.unwrap();
        requests
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .map(|body| {
                body["entry"][0]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let listening = sandbox::customer_waba_id("es-listening").unwrap();
    let arrived = async {
        while !entries().await.contains(&listening) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("no webhook for the subscribed customer within 10 s");
    // Delivered in order from one outbox: the silent one's would have followed at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let silent = sandbox::customer_waba_id("es-silent").unwrap();
    assert!(!entries().await.contains(&silent));
}
