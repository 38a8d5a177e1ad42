//! Every RPC through a real client against the embedded sandbox, as a new user would.

use crate::support::{
    Service, assert_invalid, error_info, get_status, list_numbers, register, unbounded, waba,
};
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;
use waba_numbers::pb::{self, ConnectionStatus, NameStatus, PlatformType, VerificationStatus};
use waba_numbers::sandbox::{DEMO_PIN, DEMO_WABA_ID};

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
    assert_eq!((pages, ids.len()), (4, 32));

    let first = list_page(&service, 0, "").await;
    assert_eq!(first.phone_numbers.len(), 25, "page_size 0 means 25");
    let capped = list_page(&service, 1000, "").await;
    assert_eq!(capped.phone_numbers.len(), 32, "page_size is capped at 100");
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
async fn the_eleventh_register_in_72_hours_is_resource_exhausted_with_retry_info() {
    let service = Service::on_sandbox().await;
    let mut client = service.client();
    for _ in 0..10 {
        client
            .register(register(REGISTERED, DEMO_PIN))
            .await
            .unwrap();
    }
    let err = client
        .register(register(REGISTERED, DEMO_PIN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_info(&err).metadata["graph_code"], "133016");
    let retry = err.get_details_retry_info().unwrap().retry_delay;
    assert_eq!(retry, Some(Duration::from_secs(72 * 3600)));
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
    for _ in 0..32 {
        let event = unbounded::next(&mut events).await;
        assert_eq!(event.source(), pb::EventSource::Initial);
        assert!(event.changed_fields.is_empty());
        ids.insert(event.phone_number.unwrap().id);
    }
    assert_eq!(ids.len(), 32);
}
