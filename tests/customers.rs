//! Customers: onboarding from Embedded Signup's hand-off against a fake Graph API that
//! asserts each step's exact request and token, then every call about the customer's
//! WABA carried by its business token; resuming, refusing, re-authorising, removing, a
//! restart on the same SQLite file; and the whole of it against the sandbox.

use crate::support::{
    APP_ID, APP_SECRET, CUSTOMER_A, FBTRACE, Service, TOKEN, VERSION, error_info, fake_graph,
    get_status_within, graph_error, graph_never_called, number_json, ok, page,
    paused_clock_settings, read, settings, unbounded, waba, with_customers, with_token, write_key,
};
use serde_json::json;
use std::time::Duration;
use tonic::Code;
use waba_numbers::pb::{
    Customer, GetCustomerRequest, ListCustomersRequest, ListNumbersRequest, OnboardCustomerRequest,
    OnboardingStep, RemoveCustomerRequest, StepState, TokenState,
};
use waba_numbers::sandbox;
use waba_numbers::store::StoreConfig;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

/// The code Embedded Signup gave, and the business token it exchanges for.
pub(crate) const CODE: &str = "AQBx-embedded-signup-code-7f3e";
pub(crate) const BUSINESS_TOKEN: &str = "EAAGbusiness-token-of-customer-a-51c2";
/// A second hand-off for the same customer (after its token died).
const CODE_2: &str = "AQBx-embedded-signup-code-9a41";
const BUSINESS_TOKEN_2: &str = "EAAGbusiness-token-of-customer-a-88d0";
/// The customer's business portfolio and its number.
const BUSINESS: &str = "301000000000001";
const CUSTOMER_NUMBER: &str = "201000000000011";
const PIN: &str = "246810";

fn exchange(code: &str, token: &str) -> Mock {
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/oauth/access_token")))
        .and(query_param("client_id", APP_ID))
        .and(query_param("client_secret", APP_SECRET))
        .and(query_param("code", code))
        .and(|r: &Request| !r.headers.contains_key("authorization"))
        .respond_with(ok(json!({ "access_token": token, "token_type": "bearer" })))
}

/// `debug_token` about `token`, asked with the app token, vouching for `wabas`.
pub(crate) fn debug_token(token: &str, wabas: &[&str]) -> Mock {
    let app_token = format!("{APP_ID}|{APP_SECRET}");
    with_token(
        Mock::given(method("GET"))
            .and(path(format!("/{VERSION}/debug_token")))
            .and(query_param("input_token", token)),
        &app_token,
    )
    .respond_with(ok(token_info(true, wabas)))
}

fn token_info(valid: bool, wabas: &[&str]) -> serde_json::Value {
    json!({ "data": {
        "app_id": APP_ID, "type": "SYSTEM_USER", "is_valid": valid, "expires_at": 0,
        "scopes": ["whatsapp_business_management", "whatsapp_business_messaging", "business_management"],
        "granular_scopes": [
            { "scope": "whatsapp_business_management", "target_ids": wabas },
            { "scope": "business_management", "target_ids": [BUSINESS] }
        ]
    }})
}

pub(crate) fn subscribe(token: &str) -> MockBuilder {
    with_token(
        Mock::given(method("POST")).and(path(format!("/{VERSION}/{CUSTOMER_A}/subscribed_apps"))),
        token,
    )
}

pub(crate) fn list_numbers(token: &str) -> Mock {
    with_token(
        Mock::given(method("GET")).and(path(format!("/{VERSION}/{CUSTOMER_A}/phone_numbers"))),
        token,
    )
    .respond_with(page(&[number_json(CUSTOMER_NUMBER)]))
}

pub(crate) fn success() -> ResponseTemplate {
    ok(json!({ "success": true }))
}

pub(crate) fn onboarding(code: &str, request_id: &str) -> OnboardCustomerRequest {
    OnboardCustomerRequest {
        code: code.into(),
        waba_id: CUSTOMER_A.into(),
        request_id: request_id.into(),
        ..OnboardCustomerRequest::default()
    }
}

fn get_customer() -> GetCustomerRequest {
    GetCustomerRequest {
        waba_id: CUSTOMER_A.into(),
    }
}

fn step_states(customer: &Customer) -> Vec<(OnboardingStep, StepState)> {
    customer
        .steps
        .iter()
        .map(|s| (s.step(), s.state()))
        .collect()
}

fn all_done_but_register(register: StepState) -> Vec<(OnboardingStep, StepState)> {
    use OnboardingStep as S;
    vec![
        (S::ExchangeCode, StepState::Done),
        (S::KeepToken, StepState::Done),
        (S::CheckToken, StepState::Done),
        (S::SubscribeWebhooks, StepState::Done),
        (S::IndexNumbers, StepState::Done),
        (S::RegisterNumber, register),
    ]
}

/// Meta's side of the hand-off of `CODE` for `CUSTOMER_A`, each call answered however
/// often it comes (the tests about the hand-off itself count theirs).
fn hand_off() -> [Mock; 4] {
    [
        exchange(CODE, BUSINESS_TOKEN),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]),
        subscribe(BUSINESS_TOKEN).respond_with(success()),
        list_numbers(BUSINESS_TOKEN),
    ]
}

/// The service with no partner token (only the customer's can make a call), the customer
/// onboarded.
async fn onboarded_with_no_partner_token(graph: &MockServer) -> Service {
    let mut settings = with_customers(settings(&graph.uri()), StoreConfig::memory());
    settings.graph.token = None;
    let service = Service::start(settings).await;
    service
        .customers
        .clone()
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap();
    service
}

async fn on_fake_with_customers(graph: &MockServer) -> Service {
    Service::start(with_customers(
        settings(&graph.uri()),
        StoreConfig::memory(),
    ))
    .await
}

#[tokio::test]
async fn onboarding_sends_each_step_with_the_right_token_and_then_the_number_is_read_with_it() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]).expect(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()).expect(1),
        list_numbers(BUSINESS_TOKEN),
        with_token(
            Mock::given(method("POST"))
                .and(path(format!("/{VERSION}/{CUSTOMER_NUMBER}/register")))
                .and(body_json(
                    json!({ "messaging_product": "whatsapp", "pin": PIN }),
                )),
            BUSINESS_TOKEN,
        )
        .respond_with(success())
        .expect(1),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN)
            .respond_with(ok(number_json(CUSTOMER_NUMBER)))
            .expect(1),
    ])
    .await;
    let service = on_fake_with_customers(&graph).await;
    let request = OnboardCustomerRequest {
        phone_number_id: CUSTOMER_NUMBER.into(),
        pin: PIN.into(),
        ..onboarding(CODE, "hand-off-1")
    };
    let customer = service
        .customers
        .clone()
        .onboard_customer(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(customer.waba_id, CUSTOMER_A);
    assert_eq!(customer.business_id, BUSINESS, "from debug_token");
    assert_eq!(customer.token_state(), TokenState::Active);
    assert!(customer.webhooks_subscribed);
    assert_eq!(customer.phone_number_ids, [CUSTOMER_NUMBER]);
    assert!(customer.onboarded_at.is_some() && customer.token_expires_at.is_none());
    assert_eq!(
        step_states(&customer),
        all_done_but_register(StepState::Done)
    );

    // A number of the customer's WABA: read with the customer's token (the fake checks
    // bearer and proof), not the partner's.
    let number = service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(number.id, CUSTOMER_NUMBER);
    let listed = service
        .customers
        .clone()
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.customers, std::slice::from_ref(&customer));
    assert!(listed.next_page_token.is_empty());

    // Done is done: the same request_id again sends nothing.
    let before = graph.received_requests().await.unwrap().len();
    let again = service
        .customers
        .clone()
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, customer);
    assert_eq!(graph.received_requests().await.unwrap().len(), before);
}

#[tokio::test]
async fn a_number_added_to_a_customers_waba_is_written_with_the_customers_token() {
    const ADDED: &str = "201000000000012";
    let graph = fake_graph(
        hand_off().into_iter().chain([
            with_token(
                Mock::given(method("POST"))
                    .and(path(format!("/{VERSION}/{CUSTOMER_A}/phone_numbers"))),
                BUSINESS_TOKEN,
            )
            .respond_with(ok(json!({ "id": ADDED })))
            .expect(1),
            with_token(
                Mock::given(method("POST")).and(path(format!("/{VERSION}/{ADDED}/request_code"))),
                BUSINESS_TOKEN,
            )
            .respond_with(success())
            .expect(1),
        ]),
    )
    .await;
    let service = onboarded_with_no_partner_token(&graph).await;
    let added = service
        .client()
        .add_number(waba_numbers::pb::AddNumberRequest {
            waba_id: CUSTOMER_A.into(),
            country_code: "1".into(),
            phone_number: "5550100999".into(),
            verified_name: "Acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.phone_number_id, ADDED);
    service
        .client()
        .request_verification_code(waba_numbers::pb::RequestVerificationCodeRequest {
            phone_number_id: ADDED.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_customers_pre_verified_pool_is_worked_with_the_customers_token() {
    const PREVERIFIED: &str = "301000000000777";
    let graph = fake_graph(
        hand_off().into_iter().chain([
            with_token(
                Mock::given(method("GET"))
                    .and(path(format!("/{VERSION}/{BUSINESS}/preverified_numbers"))),
                BUSINESS_TOKEN,
            )
            .respond_with(ok(
                json!({ "data": [{ "id": PREVERIFIED, "phone_number": "15550100777",
            "code_verification_status": "NOT_VERIFIED" }] }),
            ))
            .expect(1),
            with_token(
                Mock::given(method("POST"))
                    .and(path(format!("/{VERSION}/{PREVERIFIED}/request_code"))),
                BUSINESS_TOKEN,
            )
            .respond_with(success())
            .expect(1),
            with_token(
                Mock::given(method("DELETE")).and(path(format!("/{VERSION}/{PREVERIFIED}"))),
                BUSINESS_TOKEN,
            )
            .respond_with(success())
            .expect(1),
        ]),
    )
    .await;
    let service = onboarded_with_no_partner_token(&graph).await;
    let mut client = service.client();
    let pool = client
        .list_preverified_numbers(waba_numbers::pb::ListPreverifiedNumbersRequest {
            business_id: BUSINESS.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pool.preverified_numbers[0].id, PREVERIFIED);
    client
        .request_verification_code(waba_numbers::pb::RequestVerificationCodeRequest {
            phone_number_id: PREVERIFIED.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .delete_preverified_number(waba_numbers::pb::DeletePreverifiedNumberRequest {
            preverified_id: PREVERIFIED.into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_retry_after_a_failed_step_resumes_there_and_never_exchanges_the_code_again() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]).expect(1),
        // Meta fails the subscription once, then takes it.
        subscribe(BUSINESS_TOKEN)
            .respond_with(graph_error(500, 2, None, "Service temporarily unavailable"))
            .up_to_n_times(1)
            .expect(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()).expect(1),
        list_numbers(BUSINESS_TOKEN),
    ])
    .await;
    let service = on_fake_with_customers(&graph).await;
    let mut customers = service.customers.clone();
    let status = customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = error_info(&status);
    assert_eq!(info.metadata["onboarding_step"], "subscribe_webhooks");
    assert_eq!(info.metadata["fbtrace_id"], FBTRACE, "Meta's details kept");

    let stopped = customers
        .get_customer(get_customer())
        .await
        .unwrap()
        .into_inner();
    use OnboardingStep as S;
    assert_eq!(
        step_states(&stopped),
        [
            (S::ExchangeCode, StepState::Done),
            (S::KeepToken, StepState::Done),
            (S::CheckToken, StepState::Done),
            (S::SubscribeWebhooks, StepState::Failed),
            (S::IndexNumbers, StepState::Pending),
            (S::RegisterNumber, StepState::Pending),
        ]
    );
    let why = stopped.steps[3].error.as_ref().unwrap();
    assert_eq!(why.code, Code::Unavailable as i32);
    assert!(
        why.message.contains("subscribe_webhooks"),
        "{}",
        why.message
    );
    assert!(!stopped.webhooks_subscribed && stopped.onboarded_at.is_none());

    let done = customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        step_states(&done),
        all_done_but_register(StepState::Skipped)
    );
    assert!(done.steps.iter().all(|s| s.error.is_none()));
    // The fake's expectations (one exchange, one check) are verified when it drops.
}

#[tokio::test]
async fn a_token_not_granted_on_the_waba_is_deleted_and_no_customer_remains() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        debug_token(BUSINESS_TOKEN, &["209999999999999"]).expect(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()).expect(0),
    ])
    .await;
    let service = on_fake_with_customers(&graph).await;
    let mut customers = service.customers.clone();
    let status = customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let info = error_info(&status);
    assert_eq!(info.reason, "TOKEN_NOT_GRANTED");
    assert_eq!(info.metadata["onboarding_step"], "check_token");
    assert!(
        status.message().contains("209999999999999"),
        "{}",
        status.message()
    );

    let gone = customers.get_customer(get_customer()).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let listed = customers
        .list_customers(ListCustomersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.customers.is_empty());
}

#[tokio::test]
async fn a_refused_new_hand_off_leaves_the_customer_as_it_was() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        // Another business's code, sent for this WABA by mistake.
        exchange(CODE_2, BUSINESS_TOKEN_2).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]),
        debug_token(BUSINESS_TOKEN_2, &["209999999999999"]).expect(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()).expect(1),
        list_numbers(BUSINESS_TOKEN),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN)
            .respond_with(ok(number_json(CUSTOMER_NUMBER)))
            .expect(1),
    ])
    .await;
    let service = on_fake_with_customers(&graph).await;
    let mut customers = service.customers.clone();
    let onboarded = customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap()
        .into_inner();
    let refused = customers
        .onboard_customer(onboarding(CODE_2, "hand-off-2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let after = customers
        .get_customer(get_customer())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, onboarded, "the customer is what it was");
    // Its calls still carry its own token.
    service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rejected_customer_token_needs_reauth_until_a_new_onboarding_heals_it() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        exchange(CODE_2, BUSINESS_TOKEN_2).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]),
        debug_token(BUSINESS_TOKEN_2, &[CUSTOMER_A]),
        subscribe(BUSINESS_TOKEN).respond_with(success()),
        subscribe(BUSINESS_TOKEN_2).respond_with(success()),
        list_numbers(BUSINESS_TOKEN),
        list_numbers(BUSINESS_TOKEN_2),
        // The customer removed the app: its token is dead, and read once.
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN)
            .respond_with(graph_error(
                400,
                190,
                Some(458),
                "Error validating access token: The user has not authorized application",
            ))
            .expect(1),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN_2)
            .respond_with(ok(number_json(CUSTOMER_NUMBER)))
            .expect(1),
    ])
    .await;
    let service = on_fake_with_customers(&graph).await;
    let mut customers = service.customers.clone();
    customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap();
    let mut events = service.watch(waba(CUSTOMER_A)).await;
    unbounded::next(&mut events).await;

    let status = service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let info = error_info(&status);
    assert_eq!(info.reason, "CUSTOMER_REAUTH_REQUIRED");
    assert_eq!(info.metadata["waba_id"], CUSTOMER_A);
    // The watch of its WABA ends with the same status, at once.
    let ended = tokio::time::timeout(Duration::from_secs(10), unbounded::next_error(&mut events))
        .await
        .expect("the watch ends within 10 s");
    assert_eq!(ended.code(), Code::Unauthenticated);
    assert_eq!(error_info(&ended).reason, "CUSTOMER_REAUTH_REQUIRED");

    // Nothing more is sent with the dead token.
    let again = service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap_err();
    assert_eq!(error_info(&again).reason, "CUSTOMER_REAUTH_REQUIRED");
    let marked = customers
        .get_customer(get_customer())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.token_state(), TokenState::ReauthRequired);

    // The customer goes through Embedded Signup again: a new code, a new request_id.
    let healed = customers
        .onboard_customer(onboarding(CODE_2, "hand-off-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(healed.token_state(), TokenState::Active);
    let number = service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(number.id, CUSTOMER_NUMBER);
}

#[tokio::test]
async fn customers_survive_a_restart_on_the_same_sqlite_file_which_holds_no_secret_in_clear() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]).expect(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()).expect(1),
        list_numbers(BUSINESS_TOKEN),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN)
            .respond_with(ok(number_json(CUSTOMER_NUMBER)))
            .expect(1),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "store.key");
    let file = dir.path().join("customers.db");
    let store = || {
        StoreConfig::parse(
            &format!("sqlite:{}", file.display()),
            Some(key.path.clone()),
            None,
        )
        .unwrap()
    };
    let first = Service::start(with_customers(settings(&graph.uri()), store())).await;
    let onboarded = first
        .customers
        .clone()
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap()
        .into_inner();
    first.stop().await.unwrap();

    let bytes = std::fs::read(&file).unwrap();
    let wal = std::fs::read(dir.path().join("customers.db-wal")).unwrap_or_default();
    for secret in [BUSINESS_TOKEN, CODE, APP_SECRET, TOKEN, key.base64.as_str()] {
        let found = |haystack: &[u8]| {
            haystack
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        };
        assert!(
            !found(&bytes) && !found(&wal),
            "the store file holds a secret in clear"
        );
    }

    let second = Service::start(with_customers(settings(&graph.uri()), store())).await;
    let kept = second
        .customers
        .clone()
        .get_customer(get_customer())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept, onboarded);
    // Its token came back from the file: the number is read with it.
    second
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap();
    second.stop().await.unwrap();
}

/// Two replicas on one store: what one learns of a customer's token, the other finds.
#[tokio::test]
async fn a_customer_healed_on_one_replica_is_healed_on_the_other() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN).expect(1),
        exchange(CODE_2, BUSINESS_TOKEN_2).expect(1),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]),
        debug_token(BUSINESS_TOKEN_2, &[CUSTOMER_A]),
        subscribe(BUSINESS_TOKEN).respond_with(success()),
        subscribe(BUSINESS_TOKEN_2).respond_with(success()),
        list_numbers(BUSINESS_TOKEN),
        list_numbers(BUSINESS_TOKEN_2),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN).respond_with(graph_error(
            400,
            190,
            Some(458),
            "The user has not authorized application",
        )),
        with_token(read(CUSTOMER_NUMBER), BUSINESS_TOKEN_2)
            .respond_with(ok(number_json(CUSTOMER_NUMBER))),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "store.key");
    let spec = format!("sqlite:{}", dir.path().join("customers.db").display());
    let store = || StoreConfig::parse(&spec, Some(key.path.clone()), None).unwrap();
    let mut settings = with_customers(settings(&graph.uri()), store());
    settings.graph.token = None;
    let a = Service::start(settings.clone()).await;
    a.customers
        .clone()
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap();
    let b = Service::start(settings.clone()).await;
    // C holds the token too, and will not hear of its death until it meets it.
    let c = Service::start(settings).await;
    let read_on = |service: &Service| {
        let mut client = service.client();
        async move {
            client
                .get_status(get_status_within(CUSTOMER_NUMBER, 0))
                .await
        }
    };
    // B meets the dead token: the customer is marked, in the store too.
    let refused = read_on(&b).await.unwrap_err();
    assert_eq!(error_info(&refused).reason, "CUSTOMER_REAUTH_REQUIRED");
    let marked = a
        .customers
        .clone()
        .get_customer(get_customer())
        .await
        .unwrap();
    assert_eq!(
        marked.into_inner().token_state(),
        TokenState::ReauthRequired
    );
    // A heals it; B, which refused, finds the new token in the store.
    a.customers
        .clone()
        .onboard_customer(onboarding(CODE_2, "hand-off-2"))
        .await
        .unwrap();
    read_on(&b).await.unwrap();
    read_on(&a).await.unwrap();
    // C meets the dead token after the heal: that call fails, but the store's newer
    // token is not marked, and C's next call carries it.
    let stale = read_on(&c).await.unwrap_err();
    assert_eq!(error_info(&stale).reason, "CUSTOMER_REAUTH_REQUIRED");
    let healed = b
        .customers
        .clone()
        .get_customer(get_customer())
        .await
        .unwrap();
    assert_eq!(healed.into_inner().token_state(), TokenState::Active);
    read_on(&c).await.unwrap();
}

#[tokio::test]
async fn removing_a_customer_whose_token_is_dead_forgets_it_and_says_so() {
    let graph = fake_graph(
        hand_off().into_iter().chain([with_token(
            Mock::given(method("DELETE"))
                .and(path(format!("/{VERSION}/{CUSTOMER_A}/subscribed_apps"))),
            BUSINESS_TOKEN,
        )
        .respond_with(graph_error(
            400,
            190,
            Some(458),
            "The user has not authorized application",
        ))
        .expect(1)]),
    )
    .await;
    let service = on_fake_with_customers(&graph).await;
    let mut customers = service.customers.clone();
    customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap();
    let removed = customers
        .remove_customer(RemoveCustomerRequest {
            waba_id: CUSTOMER_A.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!removed.webhooks_unsubscribed);
    let why = removed.unsubscribe_error.unwrap();
    assert_eq!(why.code, Code::Unauthenticated as i32);
    assert!(!why.details.is_empty(), "Meta's ErrorInfo kept");
    let gone = customers.get_customer(get_customer()).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = customers
        .remove_customer(RemoveCustomerRequest {
            waba_id: CUSTOMER_A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn the_daily_check_marks_a_revoked_token_before_any_call_fails_on_it() {
    let graph = fake_graph([
        exchange(CODE, BUSINESS_TOKEN),
        debug_token(BUSINESS_TOKEN, &[CUSTOMER_A]).up_to_n_times(1),
        subscribe(BUSINESS_TOKEN).respond_with(success()),
        list_numbers(BUSINESS_TOKEN),
    ])
    .await;
    let mut settings = with_customers(paused_clock_settings(&graph.uri()), StoreConfig::memory());
    settings.token_check_interval = Some(Duration::from_secs(24 * 3600));
    let service = Service::start(settings).await;
    let mut customers = service.customers.clone();
    // Onboarded in real time, well within the minute before the first check...
    customers
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap();
    // ...then the customer removes the app, and the clock is the test's.
    Mock::given(method("GET"))
        .and(path(format!("/{VERSION}/debug_token")))
        .respond_with(ok(token_info(false, &[])))
        .expect(1)
        .mount(&graph)
        .await;
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(61)).await;
    // The check is under way (its call to Meta in flight): give it a few virtual seconds.
    let mut state = TokenState::Active;
    for _ in 0..100 {
        let customer = customers.get_customer(get_customer()).await.unwrap();
        state = customer.into_inner().token_state();
        if state != TokenState::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, TokenState::ReauthRequired);
    let status = service
        .client()
        .get_status(get_status_within(CUSTOMER_NUMBER, 0))
        .await
        .unwrap_err();
    assert_eq!(error_info(&status).reason, "CUSTOMER_REAUTH_REQUIRED");
    // A token known dead is not asked about again: the next day's check sends nothing
    // (the mock expects the one call).
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
}

#[tokio::test]
async fn without_a_store_the_customer_calls_name_the_setting() {
    let graph = graph_never_called().await;
    let service = Service::on_fake(&graph).await;
    let status = service
        .customers
        .clone()
        .onboard_customer(onboarding(CODE, "hand-off-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("WABA_STORE"),
        "{}",
        status.message()
    );
    assert_eq!(error_info(&status).reason, "STORE_NOT_CONFIGURED");
}

#[tokio::test]
async fn without_a_partner_token_a_waba_of_no_customer_has_no_credentials() {
    let graph = graph_never_called().await;
    let mut settings = with_customers(settings(&graph.uri()), StoreConfig::memory());
    settings.graph.token = None;
    let service = Service::start(settings).await;
    let status = service
        .client()
        .list_numbers(ListNumbersRequest {
            waba_id: "102290129340398".into(),
            ..ListNumbersRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(error_info(&status).reason, "NO_CREDENTIALS_FOR_WABA");
}

#[tokio::test]
async fn bad_hand_offs_are_refused_before_any_call() {
    let graph = graph_never_called().await;
    let service = Service::start(with_customers(
        settings(&graph.uri()),
        StoreConfig::memory(),
    ))
    .await;
    let cases = [
        (
            "code",
            OnboardCustomerRequest {
                code: String::new(),
                ..onboarding(CODE, "r")
            },
        ),
        (
            "code",
            OnboardCustomerRequest {
                code: "a b".into(),
                ..onboarding(CODE, "r")
            },
        ),
        (
            "waba_id",
            OnboardCustomerRequest {
                waba_id: "12/34".into(),
                ..onboarding(CODE, "r")
            },
        ),
        ("request_id", onboarding(CODE, "")),
        (
            "pin",
            OnboardCustomerRequest {
                phone_number_id: CUSTOMER_NUMBER.into(),
                ..onboarding(CODE, "r")
            },
        ),
        (
            "pin",
            OnboardCustomerRequest {
                phone_number_id: CUSTOMER_NUMBER.into(),
                pin: "12a456".into(),
                ..onboarding(CODE, "r")
            },
        ),
        (
            "phone_number_id",
            OnboardCustomerRequest {
                pin: PIN.into(),
                ..onboarding(CODE, "r")
            },
        ),
    ];
    for (field, request) in cases {
        let status = service
            .customers
            .clone()
            .onboard_customer(request)
            .await
            .unwrap_err();
        crate::support::assert_invalid(&status, field);
        assert!(!status.message().contains(CODE), "{}", status.message());
    }
}

#[tokio::test]
async fn a_sandbox_customer_is_onboarded_registered_and_its_numbers_read_with_its_token() {
    let service = Service::on_sandbox_with_customers().await;
    let code = "es-acme";
    let waba_id = sandbox::customer_waba_id(code).unwrap();
    let ready = sandbox::customer_number_id(code, 3).unwrap();
    let customer = service
        .customers
        .clone()
        .onboard_customer(OnboardCustomerRequest {
            code: code.into(),
            waba_id: waba_id.clone(),
            phone_number_id: ready.clone(),
            pin: PIN.into(),
            request_id: "acme-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(customer.token_state(), TokenState::Active);
    assert_eq!(
        customer.business_id,
        sandbox::customer_business_id(code).unwrap()
    );
    assert_eq!(customer.phone_number_ids.len(), sandbox::CUSTOMER_NUMBERS);
    assert_eq!(
        step_states(&customer)[5],
        (OnboardingStep::RegisterNumber, StepState::Done)
    );
    let number = service
        .client()
        .get_status(get_status_within(&ready, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        number.status(),
        waba_numbers::pb::ConnectionStatus::Connected
    );

    // The code worked once: a new hand-off with it is Meta's refusal.
    let reused = service
        .customers
        .clone()
        .onboard_customer(OnboardCustomerRequest {
            code: code.into(),
            waba_id: waba_id.clone(),
            request_id: "acme-2".into(),
            ..OnboardCustomerRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        error_info(&reused).metadata["onboarding_step"],
        "exchange_code"
    );
    assert_eq!(
        error_info(&reused).metadata["graph_subcode"],
        sandbox::CODE_USED.to_string()
    );

    let removed = service
        .customers
        .clone()
        .remove_customer(RemoveCustomerRequest { waba_id })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.webhooks_unsubscribed && removed.unsubscribe_error.is_none());
}
