//! Hostile input: what a careless or malicious caller, or someone posing as Meta, sends.
//! Every id, PIN, code and page token that is not what the service issued or Meta would
//! accept is INVALID_ARGUMENT with a BadRequest violation naming the field, and the fake
//! Graph API gets no request at all; an oversized message is RESOURCE_EXHAUSTED; webhook
//! bodies that are huge, nested, not JSON or not Meta's are refused and change nothing.

use crate::support::{
    APP_SECRET, CustomersClient, N1, Service, WABA, assert_invalid, calls, fake_graph, list,
    name_update, next, number_json, ok, quality_update, read, settings, sign, with_customers,
};
use serde_json::{Value, json};
use std::time::Duration;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use waba_numbers::pb::{
    AddNumberRequest, AddPreverifiedNumberRequest, DeletePreverifiedNumberRequest,
    DeregisterRequest, EventSource, GetCustomerRequest, GetStatusRequest, ListCustomersRequest,
    ListNumbersRequest, ListPreverifiedNumbersRequest, OnboardCustomerRequest, RegisterRequest,
    RemoveCustomerRequest, RequestDisplayNameChangeRequest, RequestVerificationCodeRequest,
    SetTwoStepPinRequest, VerifyCodeRequest, WatchStatusRequest,
};
use waba_numbers::store::StoreConfig;
use wiremock::MockServer;
use wiremock::matchers::{method, path};

/// The business whose pre-verified pool is listed.
const BUSINESS: &str = "104996122399160";
/// Another WABA, for tokens replayed against it.
const OTHER_WABA: &str = "102290129340399";

/// Ids a client might send: path and query characters, an encoded slash, traversal,
/// whitespace, digits that are not ASCII, control characters, and 1 KB strings.
fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "",
        "106540352242901/register",
        "106540352242901?fields=access_token",
        "106540352242901#",
        "106540352242901%2Fregister",
        "%2F",
        "..",
        "106540352242901/../me",
        "../106540352242901",
        " 106540352242901",
        "106540352242901 ",
        "106540352242901\n",
        "1065403 52242901",
        "\t",
        "١٠٦٥٤٠٣٥٢٢٤٢٩٠١",                // Arabic-Indic digits
        "１０６５４０３５２２４２９０１", // fullwidth digits
        "106540352242901\u{0}",
        "106540352242901\u{200b}",
        "0106540352242901",
        "-106540352242901",
        "+106540352242901",
        "1.0e15",
        "me",
    ]
    .map(String::from)
    .to_vec();
    ids.push("1".repeat(1024));
    ids.push("a".repeat(1024));
    ids.push("é".repeat(512));
    ids
}

/// PINs of the wrong length or with non-digits.
fn hostile_pins() -> Vec<String> {
    let mut pins: Vec<String> = [
        "",
        "12345",
        "1234567",
        "12345a",
        "12 456",
        " 123456",
        "123456\n",
        "+12345",
        "-12345",
        "12-456",
        "١٢٣٤٥٦",
        "１２３４５６",
        "12345\u{0}",
    ]
    .map(String::from)
    .to_vec();
    pins.push("1".repeat(1024));
    pins
}

/// Verification codes of the wrong length or with non-digits.
fn hostile_codes() -> Vec<String> {
    let mut codes: Vec<String> = [
        "",
        "12345",
        "1234567",
        "12345x",
        "12-3456",
        "1234-56",
        "123_456",
        "123--456",
        "123 456",
        "١٢٣٤٥٦",
        "１２３４５６",
        "123456\u{0}",
    ]
    .map(String::from)
    .to_vec();
    codes.push("4".repeat(1024));
    codes
}

/// One call of any RPC, as a client sends it.
#[derive(Debug, Clone)]
enum Call {
    List(ListNumbersRequest),
    Get(GetStatusRequest),
    Register(RegisterRequest),
    Add(AddNumberRequest),
    RequestCode(RequestVerificationCodeRequest),
    Verify(VerifyCodeRequest),
    Deregister(DeregisterRequest),
    SetPin(SetTwoStepPinRequest),
    DisplayName(RequestDisplayNameChangeRequest),
    AddPreverified(AddPreverifiedNumberRequest),
    ListPreverified(ListPreverifiedNumbersRequest),
    DeletePreverified(DeletePreverifiedNumberRequest),
    Watch(WatchStatusRequest),
    Onboard(OnboardCustomerRequest),
    GetCustomer(GetCustomerRequest),
    ListCustomers(ListCustomersRequest),
    RemoveCustomer(RemoveCustomerRequest),
}

impl Call {
    /// Sends the call; its error, or a panic naming the call if it succeeded.
    async fn refused(self, service: &Service) -> Status {
        let (mut client, mut customers): (_, CustomersClient) =
            (service.client(), service.customers.clone());
        let label = format!("{self:?}");
        let outcome = match self {
            Call::List(r) => client.list_numbers(r).await.map(drop),
            Call::Get(r) => client.get_status(r).await.map(drop),
            Call::Register(r) => client.register(r).await.map(drop),
            Call::Add(r) => client.add_number(r).await.map(drop),
            Call::RequestCode(r) => client.request_verification_code(r).await.map(drop),
            Call::Verify(r) => client.verify_code(r).await.map(drop),
            Call::Deregister(r) => client.deregister(r).await.map(drop),
            Call::SetPin(r) => client.set_two_step_pin(r).await.map(drop),
            Call::DisplayName(r) => client.request_display_name_change(r).await.map(drop),
            Call::AddPreverified(r) => client.add_preverified_number(r).await.map(drop),
            Call::ListPreverified(r) => client.list_preverified_numbers(r).await.map(drop),
            Call::DeletePreverified(r) => client.delete_preverified_number(r).await.map(drop),
            Call::Watch(r) => client.watch_status(r).await.map(drop),
            Call::Onboard(r) => customers.onboard_customer(r).await.map(drop),
            Call::GetCustomer(r) => customers.get_customer(r).await.map(drop),
            Call::ListCustomers(r) => customers.list_customers(r).await.map(drop),
            Call::RemoveCustomer(r) => customers.remove_customer(r).await.map(drop),
        };
        match outcome {
            Err(status) => status,
            Ok(()) => panic!("accepted: {}", shorten(&label)),
        }
    }
}

/// A label short enough to read when one of the 1 KB cases fails.
fn shorten(label: &str) -> String {
    if label.chars().count() <= 300 {
        return label.to_owned();
    }
    let head: String = label.chars().take(300).collect();
    format!("{head}…")
}

/// Every RPC that takes an id, with `id` in that field and valid values elsewhere.
fn with_id(id: &str) -> Vec<(Call, String)> {
    let id = id.to_owned();
    let onboard = OnboardCustomerRequest {
        code: "es-acme".into(),
        waba_id: WABA.into(),
        phone_number_id: N1.into(),
        pin: "246810".into(),
        request_id: "signup-1".into(),
    };
    let add = AddNumberRequest {
        waba_id: WABA.into(),
        country_code: "1".into(),
        phone_number: "555 010 0777".into(),
        verified_name: "Acme Support".into(),
        ..AddNumberRequest::default()
    };
    let watch_many = vec![N1.to_owned(), id.clone()];
    vec![
        (
            Call::List(ListNumbersRequest {
                waba_id: id.clone(),
                ..ListNumbersRequest::default()
            }),
            "waba_id",
        ),
        (
            Call::Get(GetStatusRequest {
                phone_number_id: id.clone(),
                max_staleness: None,
            }),
            "phone_number_id",
        ),
        (
            Call::Register(RegisterRequest {
                phone_number_id: id.clone(),
                pin: "246810".into(),
                ..RegisterRequest::default()
            }),
            "phone_number_id",
        ),
        (
            Call::Add(AddNumberRequest {
                waba_id: id.clone(),
                ..add.clone()
            }),
            "waba_id",
        ),
        (
            Call::Add(AddNumberRequest {
                preverified_id: id.clone(),
                ..add
            }),
            "preverified_id",
        ),
        (
            Call::RequestCode(RequestVerificationCodeRequest {
                phone_number_id: id.clone(),
                ..RequestVerificationCodeRequest::default()
            }),
            "phone_number_id",
        ),
        (
            Call::Verify(VerifyCodeRequest {
                phone_number_id: id.clone(),
                code: "424242".into(),
            }),
            "phone_number_id",
        ),
        (
            Call::Deregister(DeregisterRequest {
                phone_number_id: id.clone(),
                ..DeregisterRequest::default()
            }),
            "phone_number_id",
        ),
        (
            Call::SetPin(SetTwoStepPinRequest {
                phone_number_id: id.clone(),
                pin: "246810".into(),
                ..SetTwoStepPinRequest::default()
            }),
            "phone_number_id",
        ),
        (
            Call::DisplayName(RequestDisplayNameChangeRequest {
                phone_number_id: id.clone(),
                display_name: "Acme Express".into(),
                ..RequestDisplayNameChangeRequest::default()
            }),
            "phone_number_id",
        ),
        (
            Call::AddPreverified(AddPreverifiedNumberRequest {
                business_id: id.clone(),
                phone_number: "+1 555 010 0801".into(),
            }),
            "business_id",
        ),
        (
            Call::ListPreverified(ListPreverifiedNumbersRequest {
                business_id: id.clone(),
                ..ListPreverifiedNumbersRequest::default()
            }),
            "business_id",
        ),
        (
            Call::DeletePreverified(DeletePreverifiedNumberRequest {
                preverified_id: id.clone(),
            }),
            "preverified_id",
        ),
        (
            Call::Watch(WatchStatusRequest {
                waba_id: id.clone(),
                phone_number_ids: Vec::new(),
            }),
            if id.is_empty() {
                "phone_number_ids"
            } else {
                "waba_id"
            },
        ),
        (
            Call::Watch(WatchStatusRequest {
                waba_id: String::new(),
                phone_number_ids: watch_many,
            }),
            "phone_number_ids[1]",
        ),
        (
            Call::Onboard(OnboardCustomerRequest {
                waba_id: id.clone(),
                ..onboard.clone()
            }),
            "waba_id",
        ),
        (
            Call::Onboard(OnboardCustomerRequest {
                phone_number_id: id.clone(),
                ..onboard
            }),
            "phone_number_id",
        ),
        (
            Call::GetCustomer(GetCustomerRequest {
                waba_id: id.clone(),
            }),
            "waba_id",
        ),
        (
            Call::RemoveCustomer(RemoveCustomerRequest { waba_id: id }),
            "waba_id",
        ),
    ]
    .into_iter()
    // An empty preverified_id is no claim at all: that AddNumber is valid.
    .filter(|(call, _)| match call {
        Call::Add(r) => !(r.preverified_id.is_empty() && r.waba_id == WABA),
        _ => true,
    })
    .map(|(call, field)| (call, field.to_owned()))
    .collect()
}

/// Every RPC that takes a PIN, with `pin` in it.
fn with_pin(pin: &str) -> Vec<(Call, String)> {
    vec![
        (Call::Register(crate::support::register(N1, pin)), "pin"),
        (
            Call::SetPin(SetTwoStepPinRequest {
                phone_number_id: N1.into(),
                pin: pin.into(),
                ..SetTwoStepPinRequest::default()
            }),
            "pin",
        ),
        (
            Call::Onboard(OnboardCustomerRequest {
                code: "es-acme".into(),
                waba_id: WABA.into(),
                phone_number_id: N1.into(),
                pin: pin.into(),
                request_id: "signup-1".into(),
            }),
            // An empty PIN with a phone_number_id is refused as missing.
            "pin",
        ),
    ]
    .into_iter()
    .map(|(call, field)| (call, field.to_owned()))
    .collect()
}

/// The mocks that issue one genuine page token of each list: a page of `WABA`'s
/// numbers and of `BUSINESS`'s pool, each saying another page exists.
fn first_pages() -> Vec<wiremock::Mock> {
    let paging = json!({ "cursors": { "after": "QVFIUkNVUlNPUg" }, "next": "https://graph.facebook.com/next" });
    vec![
        list().respond_with(ok(json!({ "data": [number_json(N1)], "paging": paging }))),
        wiremock::Mock::given(method("GET"))
            .and(path(format!(
                "/{}/{BUSINESS}/preverified_numbers",
                crate::support::VERSION
            )))
            .respond_with(ok(json!({
                "data": [{ "id": "107009838817086", "phone_number": "+1 555-010-0801", "code_verification_status": "VERIFIED" }],
                "paging": paging
            }))),
    ]
}

/// Page tokens changed in every way a client could: a character flipped, cut short,
/// lengthened, re-padded, re-encoded, or made up.
fn tampered(token: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let flip = |i: usize| {
        let mut chars: Vec<char> = token.chars().collect();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let n = token.len();
    for i in [0, 1, n / 3, n / 2, n - 2, n - 1] {
        tokens.push(flip(i));
    }
    for keep in [1, 10, n / 2, n - 1] {
        tokens.push(token[..keep].to_owned());
    }
    tokens.push(format!("{token}A"));
    tokens.push(format!("{token}=="));
    tokens.push(format!(" {token}"));
    tokens.push(token.replace('-', "+").replace('_', "/") + "/");
    tokens.push(format!("{token}%2F"));
    tokens.push(token.chars().rev().collect());
    tokens.extend(
        [
            "!!",
            "..",
            "%2F",
            "e30",                                                 // base64 of {}
            "QVFIUkNVUlNPUg",                                      // Meta's cursor itself
            "eyJ3IjoiMTAyMjkwMTI5MzQwMzk4IiwibiI6MTAsImMiOiJ4In0", // an unsigned payload
            "日本語",
        ]
        .map(String::from),
    );
    tokens.push("A".repeat(1024));
    tokens
}

/// Every RPC that takes an id answers INVALID_ARGUMENT naming the field, for every
/// hostile id, PIN, code and page token, and the fake Graph API gets no request at all.
/// A genuine token, checked last, does reach Meta: the refusals are for the tokens.
#[tokio::test]
async fn hostile_ids_pins_codes_and_page_tokens_are_refused_before_any_graph_call() {
    let graph = fake_graph(first_pages()).await;
    let service = Service::start(with_customers(
        settings(&graph.uri()),
        StoreConfig::memory(),
    ))
    .await;
    let mut client = service.client();
    // The genuine tokens: a second page of WABA's numbers, 10 a page, and of the pool.
    let numbers_token = client
        .list_numbers(crate::support::list_numbers(WABA, 10, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let pool_request = ListPreverifiedNumbersRequest {
        business_id: BUSINESS.into(),
        page_size: 10,
        ..ListPreverifiedNumbersRequest::default()
    };
    let pool_token = client
        .list_preverified_numbers(pool_request.clone())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!numbers_token.is_empty() && !pool_token.is_empty());
    // From here on no mock answers and every request Meta would get is counted.
    graph.reset().await;

    let mut cases: Vec<(Call, String)> = Vec::new();
    for id in hostile_ids() {
        cases.extend(with_id(&id));
    }
    for pin in hostile_pins() {
        cases.extend(with_pin(&pin));
    }
    for code in hostile_codes() {
        let verify = VerifyCodeRequest {
            phone_number_id: N1.into(),
            code,
        };
        cases.push((Call::Verify(verify), "code".into()));
    }
    let page = |waba: &str, size: i32, token: &str| {
        Call::List(crate::support::list_numbers(waba, size, token))
    };
    let pool_page = |size: i32, token: &str, status: i32| {
        Call::ListPreverified(ListPreverifiedNumbersRequest {
            page_size: size,
            page_token: token.into(),
            code_verification_status: status,
            ..pool_request.clone()
        })
    };
    let customers_page = |token: &str| {
        Call::ListCustomers(ListCustomersRequest {
            page_size: 10,
            page_token: token.into(),
        })
    };
    for token in tampered(&numbers_token) {
        cases.push((page(WABA, 10, &token), "page_token".into()));
        cases.push((customers_page(&token), "page_token".into()));
    }
    for token in tampered(&pool_token) {
        cases.push((pool_page(10, &token, 0), "page_token".into()));
    }
    let elsewhere = [
        // Issued for another WABA, another page size (0 means 25), another list.
        (page(OTHER_WABA, 10, &numbers_token), "page_token"),
        (page(WABA, 25, &numbers_token), "page_token"),
        (page(WABA, 0, &numbers_token), "page_token"),
        (page(WABA, 500, &numbers_token), "page_token"),
        (page(WABA, 10, &pool_token), "page_token"),
        (pool_page(10, &numbers_token, 0), "page_token"),
        (pool_page(11, &pool_token, 0), "page_token"),
        // The same business with a filter is another request.
        (pool_page(10, &pool_token, 2), "page_token"),
        (customers_page(&numbers_token), "page_token"),
        (customers_page(&pool_token), "page_token"),
        // A negative size, and a token with a lookup that is one page.
        (page(WABA, -1, ""), "page_size"),
        (
            Call::List(ListNumbersRequest {
                display_phone_number: "+1 555 010 0001".into(),
                ..crate::support::list_numbers(WABA, 10, &numbers_token)
            }),
            "page_token",
        ),
    ];
    cases.extend(elsewhere.map(|(call, field)| (call, field.to_owned())));
    // Too many numbers at once, and other hostile values next to the ids.
    let many = WatchStatusRequest {
        phone_number_ids: vec![N1.to_owned(); 1001],
        waba_id: String::new(),
    };
    cases.push((Call::Watch(many), "phone_number_ids".into()));

    let total = cases.len();
    for (call, field) in cases {
        let label = shorten(&format!("{call:?}"));
        let status = call.refused(&service).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{label}: {status:?}");
        assert_invalid(&status, &field);
        // PINs and codes are never echoed.
        if field == "pin" || field == "code" {
            assert!(!status.message().contains("246810"), "{label}: {status:?}");
        }
    }
    assert_eq!(calls(&graph).await, 0, "{total} hostile calls reached Meta");

    // The genuine token for the very request it was issued for reaches Meta, with Meta's
    // cursor (the fake answers 404 now, so the call itself fails).
    let _ = client
        .list_numbers(crate::support::list_numbers(WABA, 10, &numbers_token))
        .await;
    let reached = graph.received_requests().await.unwrap();
    assert!(!reached.is_empty());
    assert!(
        reached[0]
            .url
            .query_pairs()
            .any(|(k, v)| k == "after" && v == "QVFIUkNVUlNPUg"),
        "{}",
        reached[0].url
    );
}

/// A request message over the limit (64 KiB by default) is RESOURCE_EXHAUSTED, not
/// tonic's OUT_OF_RANGE, reaches no handler and no Meta; the connection serves on.
#[tokio::test]
async fn a_request_over_the_message_size_limit_is_resource_exhausted_and_the_server_serves_on() {
    let graph = MockServer::start().await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let huge = "1".repeat(100 * 1024);
    let refused = client
        .get_status(crate::support::get_status(&huge))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("65536"), "{refused:?}");
    let refused = client
        .watch_status(crate::support::numbers(&[huge.as_str()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Under the limit, the same id is read and refused by the handler.
    let under = "1".repeat(60 * 1024);
    let status = client
        .get_status(crate::support::get_status(&under))
        .await
        .unwrap_err();
    assert_invalid(&status, "phone_number_id");
    // The same connection still serves, and so does health.
    let ready = HealthCheckRequest {
        service: String::new(),
    };
    HealthClient::new(crate::support::channel(service.addr).await)
        .check(ready)
        .await
        .unwrap();
    assert_eq!(calls(&graph).await, 0);
    service.stop().await.unwrap();
}

/// POSTs `body` to the webhook as bytes, with `signature` if any; the HTTP status.
async fn post_raw(service: &Service, body: Vec<u8>, signature: Option<String>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/whatsapp", service.http_addr))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

/// `X-Hub-Signature-256` of `body` under another app's secret.
fn signed_by_another_app(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"another-app-secret").unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Webhook bodies over the limit (413), nested 100,000 deep, not JSON, or signed with
/// another secret are refused; none reaches a watcher or the cache, nothing is re-read
/// from Meta, and the next genuine notification is the first thing subscribers hear.
#[tokio::test]
async fn hostile_webhook_bodies_are_refused_and_change_nothing() {
    let mut pending = number_json(N1);
    pending["display_phone_number"] = "+1 555-010-0001".into();
    pending["name_status"] = "PENDING_REVIEW".into();
    let graph = fake_graph([read(N1).respond_with(ok(pending))]).await;
    let mut settings = settings(&graph.uri());
    settings.watch.interval = Duration::from_secs(3600);
    let service = Service::start(settings).await;
    let mut events = service.watch(crate::support::numbers(&[N1])).await;
    assert_eq!(next(&mut events).await.source(), EventSource::Initial);
    let now = chrono::Utc::now().timestamp();
    let flagged = quality_update("FLAGGED", now);

    // Over the limit, signed as Meta would: 413, and the server stays up.
    let mut huge = flagged.clone();
    huge["padding"] = Value::String("x".repeat(waba_numbers::http::WEBHOOK_BODY_LIMIT));
    // (Over the limit by its other fields.)
    let huge = huge.to_string().into_bytes();
    let signature = sign(&huge);
    assert_eq!(post_raw(&service, huge, Some(signature)).await, 413);

    // Just under the limit (above axum's own 2 MB default) is read: a notification
    // about no number, padded, is accepted and changes nothing.
    let limit = waba_numbers::http::WEBHOOK_BODY_LIMIT;
    let padded = json!({ "object": "whatsapp_business_account", "entry": [],
        "padding": "x".repeat(limit - 1024) });
    let padded = padded.to_string().into_bytes();
    assert!(padded.len() < limit && padded.len() > 2 * 1024 * 1024);
    let signature = sign(&padded);
    assert_eq!(post_raw(&service, padded, Some(signature)).await, 200);

    // Nested far deeper than any parser should recurse, signed: unreadable, no crash.
    for nested in [
        "[".repeat(100_000),
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{WABA}","changes":[{{"field":"phone_number_quality_update","value":{}"#,
            "{\"a\":".repeat(100_000)
        ),
        format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
    ] {
        let body = nested.into_bytes();
        let signature = sign(&body);
        assert_eq!(post_raw(&service, body, Some(signature)).await, 400);
    }

    // Not JSON, or the wrong JSON, signed: unreadable.
    for junk in [
        b"\xff\xfe\x00garbage".to_vec(),
        Vec::new(),
        b"null".to_vec(),
        b"{\"object\":\"whatsapp_business_account\",\"entry\":{}}".to_vec(),
        b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"time\":1e999}]}".to_vec(),
        flagged.to_string().as_bytes()[..40].to_vec(),
    ] {
        let signature = sign(&junk);
        assert_eq!(post_raw(&service, junk, Some(signature)).await, 400);
    }

    // Meta's own notification, signed with another secret or not for this body: refused.
    let body = flagged.to_string().into_bytes();
    let other = signed_by_another_app(&body);
    assert_eq!(post_raw(&service, body.clone(), Some(other)).await, 403);
    let mut flipped = body.clone();
    flipped[10] ^= 1;
    let for_another_body = sign(&flipped);
    assert_eq!(
        post_raw(&service, body.clone(), Some(for_another_body)).await,
        403
    );
    let upper = sign(&body).replace("sha256=", "SHA256=");
    assert_eq!(post_raw(&service, body.clone(), Some(upper)).await, 403);
    let mut secret_as_signature = format!("sha256={}", hex::encode(APP_SECRET));
    assert_eq!(
        post_raw(&service, body.clone(), Some(secret_as_signature.clone())).await,
        403
    );
    secret_as_signature.push_str(&"0".repeat(100_000));
    assert_eq!(
        post_raw(&service, body, Some(secret_as_signature)).await,
        403
    );

    // Nothing was re-read from Meta: a push would have had the number read again.
    assert_eq!(calls(&graph).await, 1);
    // The first event subscribers hear is the genuine notification's, alone.
    let approved = name_update("APPROVED", now);
    assert_eq!(crate::support::post_signed(&service, &approved).await, 200);
    let pushed = next(&mut events).await;
    assert_eq!(pushed.source(), EventSource::Webhook);
    assert_eq!(pushed.changed_fields, ["name_status"]);
    let status = service
        .client()
        .get_status(crate::support::get_status(N1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.quality_rating_raw, "GREEN");
}
