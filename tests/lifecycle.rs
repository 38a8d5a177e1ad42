//! The writes of a number's life against a fake Graph API (wiremock): the exact request
//! Meta gets for each, how Meta's answers map, that none is ever retried, the guards on
//! Meta's limits, and the windows every PhoneNumber carries.

use crate::support::{
    Client, NUMBER, Service, TOKEN, VERSION, WABA, assert_invalid, assert_register_guard, calls,
    error_info, fake_graph, get_status, graph_error, graph_never_called, number_json, ok, read,
    register, settings, with_token,
};
use serde_json::{Value, json};
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use waba_numbers::pb::{
    AddNumberRequest, AddPreverifiedNumberRequest, CodeMethod, DeletePreverifiedNumberRequest,
    DeregisterRequest, ListPreverifiedNumbersRequest, RequestDisplayNameChangeRequest,
    RequestVerificationCodeRequest, SetTwoStepPinRequest, VerificationStatus, VerifyCodeRequest,
};
use wiremock::matchers::{any, body_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const BUSINESS: &str = "104996122399160";
const PREVERIFIED: &str = "107009838817086";
const NEW_NUMBER: &str = "106406749783033";
const PIN: &str = "975310";

/// A request to `/{VERSION}/{node_path}` with `verb`, carrying the token as Meta requires.
fn meta(verb: &str, node_path: &str) -> MockBuilder {
    with_token(
        Mock::given(method(verb)).and(path(format!("/{VERSION}/{node_path}"))),
        TOKEN,
    )
}

fn success() -> ResponseTemplate {
    ok(json!({ "success": true }))
}

/// The JSON body of the `i`-th request the fake Graph API received (`Null` if none).
async fn body_of(graph: &MockServer, i: usize) -> Value {
    let requests = graph.received_requests().await.unwrap();
    serde_json::from_slice(&requests[i].body).unwrap_or(Value::Null)
}

/// The query parameters of the `i`-th request, `appsecret_proof` left out.
async fn query_of(graph: &MockServer, i: usize) -> Vec<(String, String)> {
    let requests = graph.received_requests().await.unwrap();
    let mut query: Vec<_> = requests[i]
        .url
        .query_pairs()
        .filter(|(k, _)| k != "appsecret_proof")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    query.sort();
    query
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

fn add_number() -> AddNumberRequest {
    AddNumberRequest {
        waba_id: WABA.into(),
        country_code: "+1".into(),
        phone_number: "555 010-0777".into(),
        verified_name: "Lucky Shrub".into(),
        ..AddNumberRequest::default()
    }
}

/// Each write, with valid arguments, as one value, so tables can cover them all.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Write {
    AddNumber,
    RequestCode,
    VerifyCode,
    Register,
    Deregister,
    SetPin,
    DisplayName,
    AddPreverified,
    DeletePreverified,
}

const WRITES: [Write; 9] = [
    Write::AddNumber,
    Write::RequestCode,
    Write::VerifyCode,
    Write::Register,
    Write::Deregister,
    Write::SetPin,
    Write::DisplayName,
    Write::AddPreverified,
    Write::DeletePreverified,
];

impl Write {
    /// Sends this write (under `request_id` where the RPC takes one).
    async fn send(self, client: &mut Client, request_id: &str) -> Result<(), Status> {
        let request_id = request_id.to_owned();
        match self {
            Write::AddNumber => client
                .add_number(AddNumberRequest {
                    request_id,
                    ..add_number()
                })
                .await
                .map(drop),
            Write::RequestCode => client
                .request_verification_code(RequestVerificationCodeRequest {
                    phone_number_id: NUMBER.into(),
                    request_id,
                    ..Default::default()
                })
                .await
                .map(drop),
            Write::VerifyCode => client
                .verify_code(VerifyCodeRequest {
                    phone_number_id: NUMBER.into(),
                    code: "123456".into(),
                })
                .await
                .map(drop),
            Write::Register => client
                .register(waba_numbers::pb::RegisterRequest {
                    request_id,
                    ..register(NUMBER, PIN)
                })
                .await
                .map(drop),
            Write::Deregister => client
                .deregister(DeregisterRequest {
                    phone_number_id: NUMBER.into(),
                    request_id,
                    spend_reserve: false,
                })
                .await
                .map(drop),
            Write::SetPin => client
                .set_two_step_pin(SetTwoStepPinRequest {
                    phone_number_id: NUMBER.into(),
                    pin: PIN.into(),
                    request_id,
                })
                .await
                .map(drop),
            Write::DisplayName => client
                .request_display_name_change(RequestDisplayNameChangeRequest {
                    phone_number_id: NUMBER.into(),
                    display_name: "Lucky Shrub Plus".into(),
                    request_id,
                })
                .await
                .map(drop),
            Write::AddPreverified => client
                .add_preverified_number(AddPreverifiedNumberRequest {
                    business_id: BUSINESS.into(),
                    phone_number: "+1 555-078-3881".into(),
                })
                .await
                .map(drop),
            Write::DeletePreverified => client
                .delete_preverified_number(DeletePreverifiedNumberRequest {
                    preverified_id: PREVERIFIED.into(),
                })
                .await
                .map(drop),
        }
    }
}

#[tokio::test]
async fn add_number_posts_metas_json_body_with_the_digits() {
    let graph = fake_graph([meta("POST", &format!("{WABA}/phone_numbers"))
        .and(body_json(json!({
            "cc": "1", "phone_number": "5550100777", "verified_name": "Lucky Shrub"
        })))
        .respond_with(ok(json!({ "id": NEW_NUMBER })))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let added = service.client().add_number(add_number()).await.unwrap();
    assert_eq!(added.into_inner().phone_number_id, NEW_NUMBER);
}

#[tokio::test]
async fn a_migration_or_a_pre_verified_claim_says_so_and_may_omit_the_name() {
    let graph = fake_graph([
        meta("POST", &format!("{WABA}/phone_numbers"))
            .and(body_json(json!({
                "cc": "1", "phone_number": "5550100900", "migrate_phone_number": true
            })))
            .respond_with(ok(json!({ "id": "106000000000001" })))
            .expect(1),
        meta("POST", &format!("{WABA}/phone_numbers"))
            .and(body_json(json!({ "preverified_id": PREVERIFIED })))
            .respond_with(ok(json!({ "id": "106000000000002" })))
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let migrated = AddNumberRequest {
        phone_number: "5550100900".into(),
        verified_name: String::new(),
        migrate: true,
        ..add_number()
    };
    let id = client.add_number(migrated).await.unwrap().into_inner();
    assert_eq!(id.phone_number_id, "106000000000001");
    // The pre-verified id names the number: its digits may be left out.
    let claimed = AddNumberRequest {
        country_code: String::new(),
        phone_number: String::new(),
        verified_name: String::new(),
        preverified_id: PREVERIFIED.into(),
        ..add_number()
    };
    let id = client.add_number(claimed).await.unwrap().into_inner();
    assert_eq!(id.phone_number_id, "106000000000002");
}

#[tokio::test]
async fn code_requests_and_checks_put_their_parameters_in_the_query() {
    let graph = fake_graph([
        meta("POST", &format!("{NUMBER}/request_code")).respond_with(success()),
        meta("POST", &format!("{NUMBER}/verify_code")).respond_with(success()),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();

    // Unspecified means SMS in en_US.
    let default = RequestVerificationCodeRequest {
        phone_number_id: NUMBER.into(),
        ..Default::default()
    };
    client.request_verification_code(default).await.unwrap();
    let voice = RequestVerificationCodeRequest {
        phone_number_id: NUMBER.into(),
        method: CodeMethod::Voice.into(),
        language: "pt_BR".into(),
        request_id: String::new(),
    };
    client.request_verification_code(voice).await.unwrap();
    // As people type it: the hyphen is not sent.
    let check = VerifyCodeRequest {
        phone_number_id: NUMBER.into(),
        code: "123-456".into(),
    };
    client.verify_code(check).await.unwrap();

    let expected = [
        pairs(&[("code_method", "SMS"), ("language", "en_US")]),
        pairs(&[("code_method", "VOICE"), ("language", "pt_BR")]),
        pairs(&[("code", "123456")]),
    ];
    for (i, query) in expected.iter().enumerate() {
        assert_eq!(&query_of(&graph, i).await, query, "request {i}");
        assert_eq!(
            body_of(&graph, i).await,
            Value::Null,
            "request {i} has no body"
        );
    }
}

#[tokio::test]
async fn deregister_pin_and_display_name_go_where_metas_samples_put_them() {
    let graph = fake_graph([
        meta("POST", &format!("{NUMBER}/deregister"))
            .respond_with(success())
            .expect(1),
        meta("POST", NUMBER)
            .and(body_json(json!({ "pin": PIN })))
            .respond_with(success())
            .expect(1),
        meta("POST", NUMBER)
            .and(query_param("new_display_name", "Lucky Shrub Plus"))
            .respond_with(success())
            .expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    for write in [Write::Deregister, Write::SetPin, Write::DisplayName] {
        write.send(&mut client, "").await.unwrap();
    }
    assert_eq!(query_of(&graph, 0).await, []);
    assert_eq!(body_of(&graph, 0).await, Value::Null);
    assert_eq!(query_of(&graph, 1).await, [], "the PIN is not in the URL");
    assert_eq!(body_of(&graph, 2).await, Value::Null);
}

const POOL_FIELDS: &str =
    "id,phone_number,code_verification_status,code_verification_time,verification_expiry_time";

fn pool_number(id: &str, digits: &str, status: &str) -> Value {
    json!({
        "id": id, "phone_number": digits, "code_verification_status": status,
        "code_verification_time": "2026-11-28T10:00:00+0000",
        "verification_expiry_time": "2027-02-26T10:00:00+0000"
    })
}

#[tokio::test]
async fn the_pre_verified_pool_is_added_to_listed_by_page_and_deleted() {
    let graph = fake_graph([
        meta("POST", &format!("{BUSINESS}/add_phone_numbers"))
            .and(query_param("phone_number", "15550783881"))
            .respond_with(ok(json!({ "id": PREVERIFIED })))
            .expect(1),
        meta("GET", PREVERIFIED)
            .and(query_param("fields", POOL_FIELDS))
            .respond_with(ok(json!({
                "id": PREVERIFIED, "phone_number": "15550783881",
                "code_verification_status": "NOT_VERIFIED"
            })))
            .expect(1),
        meta("GET", &format!("{BUSINESS}/preverified_numbers"))
            .and(query_param("fields", POOL_FIELDS))
            .and(query_param("limit", "1"))
            .and(query_param("code_verification_status", "VERIFIED"))
            .and(query_param_is_missing("after"))
            .respond_with(ok(json!({
                "data": [pool_number("107000000000001", "15550100801", "VERIFIED")],
                "paging": { "cursors": { "before": "B1", "after": "A1" }, "next": "https://x/?after=A1" }
            })))
            .expect(1),
        meta("GET", &format!("{BUSINESS}/preverified_numbers"))
            .and(query_param("after", "A1"))
            .and(query_param("code_verification_status", "VERIFIED"))
            .respond_with(ok(json!({
                "data": [pool_number("107000000000002", "15550100803", "VERIFIED")],
                "paging": { "cursors": { "before": "B2", "after": "A2" } }
            })))
            .expect(1),
        meta("DELETE", PREVERIFIED).respond_with(success()).expect(1),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();

    let added = AddPreverifiedNumberRequest {
        business_id: BUSINESS.into(),
        phone_number: "+1 555-078-3881".into(),
    };
    let added = client
        .add_preverified_number(added)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (added.id.as_str(), added.phone_number.as_str()),
        (PREVERIFIED, "15550783881")
    );
    assert_eq!(
        added.code_verification_status(),
        VerificationStatus::NotVerified
    );

    let first = ListPreverifiedNumbersRequest {
        business_id: BUSINESS.into(),
        page_size: 1,
        page_token: String::new(),
        code_verification_status: VerificationStatus::Verified.into(),
    };
    let page = client
        .list_preverified_numbers(first.clone())
        .await
        .unwrap()
        .into_inner();
    let number = &page.preverified_numbers[0];
    assert_eq!(number.phone_number, "15550100801");
    assert_eq!(number.code_verification_status_raw, "VERIFIED");
    assert_eq!(
        number.verification_expiry_time.as_ref().map(|t| t.seconds),
        Some(1_803_636_000)
    );
    assert!(!page.next_page_token.is_empty());
    // The token belongs to its filter: it is not Meta's cursor, nor valid for another.
    let unfiltered = ListPreverifiedNumbersRequest {
        page_token: page.next_page_token.clone(),
        code_verification_status: VerificationStatus::Unspecified.into(),
        ..first.clone()
    };
    let err = client
        .list_preverified_numbers(unfiltered)
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let second = ListPreverifiedNumbersRequest {
        page_token: page.next_page_token,
        ..first
    };
    let page = client
        .list_preverified_numbers(second)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.preverified_numbers[0].id, "107000000000002");
    assert!(page.next_page_token.is_empty());

    Write::DeletePreverified
        .send(&mut client, "")
        .await
        .unwrap();
}

#[tokio::test]
async fn metas_answers_to_writes_map_to_their_codes() {
    let cases = [
        (
            Write::VerifyCode,
            graph_error(400, 136025, None, "Verify code error"),
            Code::InvalidArgument,
            "VERIFY_CODE_REJECTED",
        ),
        (
            Write::AddNumber,
            graph_error(400, 100, Some(2388012), "Phone number already exists"),
            Code::AlreadyExists,
            "PHONE_NUMBER_ALREADY_EXISTS",
        ),
        (
            Write::AddNumber,
            graph_error(400, 100, Some(2388001), "Confirm ownership"),
            Code::FailedPrecondition,
            "MIGRATION_PRECONDITION_FAILED",
        ),
        (
            Write::RequestCode,
            graph_error(400, 136024, None, "Request code error"),
            Code::FailedPrecondition,
            "GRAPH_PRECONDITION_FAILED",
        ),
        (
            Write::Deregister,
            graph_error(400, 133016, None, "Rate limit exceeded"),
            Code::ResourceExhausted,
            "REGISTER_LIMIT_REACHED",
        ),
        (
            Write::SetPin,
            graph_error(400, 100, None, "(#100) Invalid parameter"),
            Code::InvalidArgument,
            "GRAPH_INVALID_PARAMETER",
        ),
        (
            Write::DeletePreverified,
            graph_error(400, 100, Some(33), "Object does not exist"),
            Code::NotFound,
            "OBJECT_NOT_FOUND",
        ),
    ];
    for (write, answer, code, reason) in cases {
        let graph = fake_graph([Mock::given(any()).respond_with(answer).expect(1)]).await;
        let service = Service::on_fake(&graph).await;
        let err = write.send(&mut service.client(), "").await.unwrap_err();
        assert_eq!(err.code(), code, "{write:?}: {err:?}");
        let info = error_info(&err);
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            (reason, "graph.facebook.com"),
            "{write:?}"
        );
        assert_eq!(info.metadata["fbtrace_id"], crate::support::FBTRACE);
    }
}

/// Every write that gets no answer comes back as Register does: UNAVAILABLE without
/// RetryInfo, and one call only.
#[tokio::test]
async fn no_write_is_retried_on_a_5xx_or_a_timeout() {
    let unanswered = [
        ResponseTemplate::new(502),
        graph_error(503, 2, None, "Service temporarily unavailable"),
        success().set_delay(Duration::from_secs(30)),
    ];
    for answer in unanswered {
        let graph = fake_graph([Mock::given(any()).respond_with(answer.clone())]).await;
        let mut settings = settings(&graph.uri());
        settings.graph.request_timeout = Some(Duration::from_millis(300));
        let service = Service::start(settings).await;
        for (i, write) in WRITES.into_iter().enumerate() {
            let err = write.send(&mut service.client(), "").await.unwrap_err();
            assert_eq!(calls(&graph).await, i + 1, "{write:?} was sent once");
            if err.code() == Code::Unavailable && error_info(&err).domain == "graph.facebook.com" {
                // Meta answered (code 2): a definite answer, never retried all the same.
                continue;
            }
            assert_eq!(err.code(), Code::Unavailable, "{write:?}: {err:?}");
            let reason = match write {
                Write::Register => "REGISTER_OUTCOME_UNKNOWN",
                _ => "WRITE_OUTCOME_UNKNOWN",
            };
            assert_eq!(error_info(&err).reason, reason, "{write:?}");
            assert!(
                err.get_details_retry_info().is_none(),
                "{write:?}: no invitation to retry blindly"
            );
        }
    }
}

#[tokio::test]
async fn a_request_id_sends_each_write_once_and_keys_are_per_rpc() {
    let graph = fake_graph([
        Mock::given(any()).respond_with(ok(json!({ "success": true, "id": NEW_NUMBER })))
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let keyed = [
        Write::AddNumber,
        Write::RequestCode,
        Write::Register,
        Write::Deregister,
        Write::SetPin,
        Write::DisplayName,
    ];
    for write in keyed {
        for _ in 0..3 {
            write.send(&mut service.client(), "same-key").await.unwrap();
        }
    }
    assert_eq!(calls(&graph).await, keyed.len(), "one call per RPC");

    // The same key with another request of the same RPC is refused.
    let other_pin = SetTwoStepPinRequest {
        phone_number_id: NUMBER.into(),
        pin: "111111".into(),
        request_id: "same-key".into(),
    };
    let err = service
        .client()
        .set_two_step_pin(other_pin)
        .await
        .unwrap_err();
    assert_invalid(&err, "request_id");
    assert!(!err.message().contains("111111"));
}

#[tokio::test]
async fn the_register_budget_guard_refuses_without_a_call_before_meta_would_block() {
    let graph = fake_graph([
        meta("POST", &format!("{NUMBER}/register"))
            .respond_with(success())
            .expect(6),
        meta("POST", &format!("{NUMBER}/deregister"))
            .respond_with(success())
            .expect(4),
        read(NUMBER).respond_with(ok(number_json(NUMBER))),
    ])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    // Register and deregister share the budget: 9 of 10, one kept for a person.
    for i in 0..9 {
        let write = if i % 2 == 0 {
            Write::Register
        } else {
            Write::Deregister
        };
        write.send(&mut client, "").await.unwrap();
    }
    for write in [Write::Register, Write::Deregister] {
        let err = write.send(&mut client, "").await.unwrap_err();
        assert_register_guard(&err, NUMBER, 71);
    }
    // The budget shows before a refusal, on every read of the number.
    let number = client
        .get_status(get_status(NUMBER))
        .await
        .unwrap()
        .into_inner();
    let budget = number.register_budget.unwrap();
    assert_eq!((budget.attempts_left, budget.reserve), (1, 1));
    assert!(budget.blocked_until.is_some());

    // A person may spend the last one, deliberately; then nothing is left.
    let deliberate = || waba_numbers::pb::RegisterRequest {
        spend_reserve: true,
        ..register(NUMBER, PIN)
    };
    client.register(deliberate()).await.unwrap();
    let err = client.register(deliberate()).await.unwrap_err();
    assert_register_guard(&err, NUMBER, 71);
}

#[tokio::test]
async fn metas_register_block_is_kept_and_refused_locally_until_it_ends() {
    let graph = fake_graph([meta("POST", &format!("{NUMBER}/deregister"))
        .respond_with(graph_error(400, 133016, None, "Rate limit exceeded"))
        .expect(1)])
    .await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    let err = Write::Deregister.send(&mut client, "").await.unwrap_err();
    assert_eq!(error_info(&err).reason, "REGISTER_LIMIT_REACHED");
    // Meta said 72 hours: no register or deregister reaches it meanwhile.
    for write in [Write::Register, Write::Deregister] {
        let err = write.send(&mut client, "").await.unwrap_err();
        let info = error_info(&err);
        assert_eq!(info.reason, "REGISTER_BUDGET_GUARD");
        assert_eq!(info.metadata["blocked_by_meta"], "true");
    }
}

#[tokio::test]
async fn display_name_changes_are_guarded_at_ten_per_thirty_days() {
    let graph = fake_graph([meta("POST", NUMBER).respond_with(success()).expect(10)]).await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();
    for _ in 0..10 {
        Write::DisplayName.send(&mut client, "").await.unwrap();
    }
    let err = Write::DisplayName.send(&mut client, "").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&err).reason, "DISPLAY_NAME_CHANGE_LIMIT");
    let retry = err.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(retry > Duration::from_secs(29 * 24 * 3600));
    assert!(err.get_details_quota_failure().is_some());
}

/// Bad input never reaches Meta, and is told field by field.
#[tokio::test]
async fn invalid_writes_are_refused_without_an_upstream_call() {
    let graph = graph_never_called().await;
    let service = Service::on_fake(&graph).await;
    let mut client = service.client();

    let adds = [
        (
            "waba_id",
            AddNumberRequest {
                waba_id: "me".into(),
                ..add_number()
            },
        ),
        (
            "country_code",
            AddNumberRequest {
                country_code: "1234".into(),
                ..add_number()
            },
        ),
        (
            "country_code",
            AddNumberRequest {
                country_code: "".into(),
                ..add_number()
            },
        ),
        (
            "phone_number",
            AddNumberRequest {
                phone_number: "555-CALL-NOW".into(),
                ..add_number()
            },
        ),
        (
            "phone_number",
            AddNumberRequest {
                phone_number: "".into(),
                ..add_number()
            },
        ),
        (
            "verified_name",
            AddNumberRequest {
                verified_name: " ".into(),
                ..add_number()
            },
        ),
        (
            "verified_name",
            AddNumberRequest {
                verified_name: "x".repeat(257),
                ..add_number()
            },
        ),
        (
            "preverified_id",
            AddNumberRequest {
                preverified_id: "abc".into(),
                ..add_number()
            },
        ),
    ];
    for (field, request) in adds {
        assert_invalid(&client.add_number(request).await.unwrap_err(), field);
    }

    let code_request = |language: &str, method: i32| RequestVerificationCodeRequest {
        phone_number_id: NUMBER.into(),
        method,
        language: language.into(),
        request_id: String::new(),
    };
    for (field, request) in [
        ("language", code_request("english", 0)),
        ("language", code_request("en-US", 0)),
        ("language", code_request("EN_us", 0)),
        ("method", code_request("en", 7)),
    ] {
        let err = client.request_verification_code(request).await.unwrap_err();
        assert_invalid(&err, field);
    }

    for code in ["", "98765", "9876543", "98a765", "12-3456", "424 242"] {
        let request = VerifyCodeRequest {
            phone_number_id: NUMBER.into(),
            code: code.into(),
        };
        let err = client.verify_code(request).await.unwrap_err();
        assert_invalid(&err, "code");
        assert!(
            code.is_empty() || !err.message().contains(code),
            "the code is never echoed"
        );
    }

    for pin in ["", "12345", "abcdef"] {
        let request = SetTwoStepPinRequest {
            phone_number_id: NUMBER.into(),
            pin: pin.into(),
            request_id: String::new(),
        };
        let err = client.set_two_step_pin(request).await.unwrap_err();
        assert_invalid(&err, "pin");
    }
    let nameless = RequestDisplayNameChangeRequest {
        phone_number_id: NUMBER.into(),
        display_name: String::new(),
        request_id: String::new(),
    };
    let err = client
        .request_display_name_change(nameless)
        .await
        .unwrap_err();
    assert_invalid(&err, "display_name");
    let err = client
        .deregister(DeregisterRequest {
            phone_number_id: "1/2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "phone_number_id");
    // One number, one spelling: a zero-padded id would have a budget of its own.
    let padded = waba_numbers::pb::RegisterRequest {
        phone_number_id: format!("0{NUMBER}"),
        ..register(NUMBER, PIN)
    };
    let err = client.register(padded).await.unwrap_err();
    assert_invalid(&err, "phone_number_id");
    let err = client
        .add_preverified_number(AddPreverifiedNumberRequest {
            business_id: BUSINESS.into(),
            phone_number: "+1 (555) 078-388x".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "phone_number");
    let err = client
        .delete_preverified_number(DeletePreverifiedNumberRequest {
            preverified_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "preverified_id");
    let err = client
        .list_preverified_numbers(ListPreverifiedNumbersRequest {
            business_id: BUSINESS.into(),
            code_verification_status: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "code_verification_status");
}
