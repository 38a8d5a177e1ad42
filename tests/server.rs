//! Health checking, server reflection and graceful shutdown, as probes and grpcurl see them.

use crate::support::{Service, channel, fake_graph, get_status, number_json, ok, settings};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::pb::{v1, v1alpha};
use wiremock::Mock;
use wiremock::matchers::any;

const SERVICE: &str = "whatsapp.phonenumbers.v1.PhoneNumberService";

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_service() {
    let service = Service::on_sandbox().await;
    let mut health = HealthClient::new(channel(service.addr).await);
    for name in ["", SERVICE] {
        let status = health
            .check(check(name))
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{name:?}");
    }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_service_and_health() {
    let service = Service::on_sandbox().await;

    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(channel(service.addr).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&SERVICE.to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    // grpcurl 1.8 speaks only v1alpha, and decodes error details through reflection.
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(service.addr).await);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "google.rpc.ErrorInfo".into(),
            ),
        ),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    assert!(
        matches!(
            reply,
            v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_)
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_lets_in_flight_calls_finish() {
    let slow =
        Mock::given(any()).respond_with(ok(number_json("1")).set_delay(Duration::from_millis(500)));
    let graph = fake_graph([slow]).await;
    let mut settings = settings(&graph.uri());
    settings.shutdown_grace = Duration::from_secs(5);
    let service = Service::start(settings).await;

    let mut health = HealthClient::new(channel(service.addr).await);
    let mut watch = health.watch(check("")).await.unwrap().into_inner();
    let first: HealthCheckResponse = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let mut client = service.client();
    let in_flight = tokio::spawn(async move { client.get_status(get_status("1")).await });
    tokio::time::sleep(Duration::from_millis(100)).await; // let the call reach the fake Graph API
    let stopped = tokio::spawn(service.stop());

    let next = watch.next().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    assert_eq!(in_flight.await.unwrap().unwrap().into_inner().id, "1");
    // The open health Watch stream does not hold shutdown beyond the grace period.
    stopped.await.unwrap().unwrap();
}
