//! TLS on the gRPC port, mutual TLS and the identity it gives a connection, certificate
//! rotation, and the plaintext health and metrics ports beside it.

use crate::support::{
    Ca, Client, Identity, Service, StartOptions, TEST_RELOAD_INTERVAL, TlsFiles, channel,
    list_numbers, on_sandbox_settings, presented_certificate, tls_channel,
};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service as _, ServiceExt};
use waba_numbers::grpc::peer::PeerIdentity;
use waba_numbers::grpc::transport::{self, Http2Settings};
use waba_numbers::sandbox::{DEMO_WABA_ID, SandboxOptions};
use waba_numbers::tls::{ServerTls, ServerTlsSettings};

const SPIFFE_ID: &str = "spiffe://example.org/ns/billing/sa/api";

/// Whether a ListNumbers call on `channel` succeeds.
async fn lists(channel: Channel) -> Result<(), tonic::Status> {
    lists_on(Client::new(channel)).await
}

async fn lists_on(mut client: Client) -> Result<(), tonic::Status> {
    let page = client
        .list_numbers(list_numbers(DEMO_WABA_ID, 2, ""))
        .await?
        .into_inner();
    assert_eq!(page.phone_numbers.len(), 2);
    Ok(())
}

/// A health check on a client connected with `connect`: refused at the handshake, or
/// at the first call.
async fn refused(connect: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = connect else { return true };
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest::default());
    tokio::time::timeout(Duration::from_secs(5), check)
        .await
        .expect("a refused client is not left hanging")
        .is_err()
}

#[tokio::test]
async fn tls_serves_calls_and_refuses_plaintext_clients() {
    let ca = Ca::new("test CA");
    let files = TlsFiles::write(&ca.server_identity(), None);
    let service = Service::on_sandbox_tls(&files, &ca, None).await;
    lists_on(service.client()).await.unwrap();

    let plaintext = Channel::from_shared(format!("http://{}", service.addr))
        .unwrap()
        .connect()
        .await;
    assert!(refused(plaintext).await);
    // The accept loop lives on: another TLS client is served.
    lists(tls_channel(service.addr, &ca, None).await.unwrap())
        .await
        .unwrap();
    // A client that trusts another CA does not get in either.
    assert!(refused(tls_channel(service.addr, &Ca::new("other CA"), None).await).await);
}

#[tokio::test]
async fn mutual_tls_admits_only_certificates_from_the_client_ca() {
    let ca = Ca::new("test CA");
    let files = TlsFiles::write(&ca.server_identity(), Some(&ca));
    let client = ca.client_identity(SPIFFE_ID);
    let service = Service::on_sandbox_tls(&files, &ca, Some(&client)).await;
    lists_on(service.client()).await.unwrap();

    assert!(refused(tls_channel(service.addr, &ca, None).await).await);
    let stranger = Ca::new("another CA").client_identity(SPIFFE_ID);
    assert!(refused(tls_channel(service.addr, &ca, Some(&stranger)).await).await);
    lists(tls_channel(service.addr, &ca, Some(&client)).await.unwrap())
        .await
        .unwrap();
}

/// Answers every call OK, with the SANs of the connection's [`PeerIdentity`] in an
/// `x-peer-sans` header (`none` without one).
#[derive(Clone)]
struct PeerEcho;

impl NamedService for PeerEcho {
    const NAME: &'static str = "test.PeerEcho";
}

impl tower::Service<http::Request<Body>> for PeerEcho {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let sans = match request.extensions().get::<PeerIdentity>() {
            Some(peer) => peer.sans.join(","),
            None => "none".into(),
        };
        let mut response = tonic::Status::ok("").into_http::<Body>();
        response
            .headers_mut()
            .insert("x-peer-sans", sans.parse().unwrap());
        ready(Ok(response))
    }
}

/// The `x-peer-sans` a [`PeerEcho`] call on `channel` answers.
async fn peer_sans(mut channel: Channel) -> String {
    let request = http::Request::post("http://localhost/test.PeerEcho/Who")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::empty())
        .unwrap();
    let response = channel.ready().await.unwrap().call(request).await.unwrap();
    response.headers()["x-peer-sans"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_client_certificate_s_sans_reach_every_request_as_peer_identity() {
    let ca = Ca::new("test CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = |listener, tls| {
        let settings = Http2Settings {
            keepalive: None,
            max_concurrent_streams: 10,
        };
        tokio::spawn(transport::serve(
            listener,
            Routes::new(PeerEcho),
            waba_numbers::grpc::auth::Gate::new(None, waba_numbers::grpc::auth::Reflection::Open),
            settings,
            tls,
            std::future::pending(),
        ))
    };

    let mutual = TlsFiles::write(&ca.server_identity(), Some(&ca));
    let _server = serve(
        listener,
        Some(ServerTls::load(&mutual.settings()).await.unwrap()),
    );
    let client = ca.client_identity_with(vec![
        rcgen::SanType::DnsName("billing.internal".try_into().unwrap()),
        rcgen::SanType::URI(SPIFFE_ID.try_into().unwrap()),
    ]);
    let channel = tls_channel(addr, &ca, Some(&client)).await.unwrap();
    // Every request on the connection carries it.
    for _ in 0..2 {
        assert_eq!(
            peer_sans(channel.clone()).await,
            format!("{SPIFFE_ID},billing.internal")
        );
    }

    // TLS without client certificates: no identity.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = TlsFiles::write(&ca.server_identity(), None);
    let _server = serve(
        listener,
        Some(ServerTls::load(&plain.settings()).await.unwrap()),
    );
    let channel = tls_channel(addr, &ca, Some(&client)).await.unwrap();
    assert_eq!(peer_sans(channel).await, "none");
}

/// Waits (a few seconds at most) until new connections to `addr` get `expected`.
async fn until_presented(addr: std::net::SocketAddr, ca: &Ca, expected: &Identity) {
    for _ in 0..100 {
        if presented_certificate(addr, ca).await == expected.cert_der {
            return;
        }
        tokio::time::sleep(TEST_RELOAD_INTERVAL).await;
    }
    panic!("the new certificate was not picked up");
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_connections_and_a_bad_one_is_ignored() {
    let ca = Ca::new("test CA");
    let first = ca.server_identity();
    let files = TlsFiles::write(&first, None);
    let service = Service::on_sandbox_tls(&files, &ca, None).await;
    assert_eq!(
        presented_certificate(service.addr, &ca).await,
        first.cert_der
    );

    let second = ca.server_identity();
    files.replace(&second);
    until_presented(service.addr, &ca, &second).await;
    // The connection opened before the change still works.
    lists_on(service.client()).await.unwrap();

    // A key that does not match its certificate: the current pair stays.
    let third = ca.server_identity();
    files.replace_with(&third.cert_pem, &first.key_pem);
    tokio::time::sleep(TEST_RELOAD_INTERVAL * 6).await;
    assert_eq!(
        presented_certificate(service.addr, &ca).await,
        second.cert_der
    );
    lists(tls_channel(service.addr, &ca, None).await.unwrap())
        .await
        .unwrap();
    // Fixed: picked up.
    files.replace(&third);
    until_presented(service.addr, &ca, &third).await;
}

#[tokio::test]
async fn a_start_with_unusable_certificate_files_fails() {
    let ca = Ca::new("test CA");
    let files = TlsFiles::write(&ca.server_identity(), None);
    let other = ca.server_identity();
    files.replace_with(&ca.server_identity().cert_pem, &other.key_pem);
    assert!(ServerTls::load(&files.settings()).await.is_err());
    let missing = ServerTlsSettings::new("/nonexistent/tls.crt", &files.key);
    let error = ServerTls::load(&missing).await.unwrap_err().to_string();
    assert!(error.contains("/nonexistent/tls.crt"), "{error}");
}

#[tokio::test]
async fn the_health_port_answers_in_plaintext_while_the_grpc_port_is_tls() {
    let ca = Ca::new("test CA");
    let files = TlsFiles::write(&ca.server_identity(), Some(&ca));
    let client = ca.client_identity(SPIFFE_ID);
    let (mut settings, http) = on_sandbox_settings(SandboxOptions::default()).await;
    settings.tls = Some(files.settings());
    settings.shutdown_grace = Duration::from_secs(2);
    let service = Service::start_with(
        settings,
        StartOptions {
            http: Some(http),
            health_port: true,
            tls: Some((&ca, Some(&client))),
            ..StartOptions::default()
        },
    )
    .await;
    let mut health = HealthClient::new(channel(service.health_addr.unwrap()).await);
    for name in ["", "whatsapp.phonenumbers.v1.PhoneNumberService"] {
        let check = HealthCheckRequest {
            service: name.into(),
        };
        let status = health.check(check).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "{name:?}");
    }
    // Health alone: the service's own RPCs are not there.
    let mut other = Client::new(channel(service.health_addr.unwrap()).await);
    let status = other
        .list_numbers(list_numbers(DEMO_WABA_ID, 2, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let stopped = tokio::spawn(service.stop());
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    stopped.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_metrics_port_serves_metrics_and_the_webhook_port_no_longer_does() {
    let (settings, http) = on_sandbox_settings(SandboxOptions::default()).await;
    let service = Service::start_with(
        settings,
        StartOptions {
            http: Some(http),
            metrics_port: true,
            ..StartOptions::default()
        },
    )
    .await;
    let mut client = service.client();
    client
        .list_numbers(list_numbers(DEMO_WABA_ID, 2, ""))
        .await
        .unwrap();

    let metrics = format!("http://{}/metrics", service.metrics_addr.unwrap());
    let answer = reqwest::get(metrics).await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    assert!(
        text.contains(r#"waba_grpc_requests_total{method="ListNumbers",code="OK",caller="-"}"#),
        "{text}"
    );
    assert!(text.contains("waba_watch_subscriptions"), "{text}");

    let webhook_port = format!("http://{}/metrics", service.http_addr);
    assert_eq!(reqwest::get(webhook_port).await.unwrap().status(), 404);
    // Webhooks are still there (a handshake without the token is refused, not missing).
    let handshake = format!("http://{}/webhooks/whatsapp", service.http_addr);
    assert_eq!(reqwest::get(handshake).await.unwrap().status(), 403);
}
