//! TLS for tests: certificates made on the spot (rcgen, ring), the server's PEM files in
//! a temporary folder, and clients that connect over TLS, with or without a client
//! certificate.
//!
//! ```ignore
//! let ca = Ca::new("test CA");
//! let files = TlsFiles::write(&ca.server_identity(), Some(&ca)); // mutual TLS
//! let client = ca.client_identity("spiffe://example.org/billing");
//! let service = Service::on_sandbox_tls(&files, &ca, Some(&client)).await;
//! // service.client speaks TLS with that identity; another caller:
//! let channel = tls_channel(service.addr, &ca, Some(&ca.client_identity("spiffe://x/y")))
//!     .await
//!     .unwrap();
//! ```

use super::{Service, StartOptions, on_sandbox_settings};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};
use waba_numbers::sandbox::SandboxOptions;
use waba_numbers::tls::ServerTlsSettings;

/// How often a test's server checks its certificate files.
pub const TEST_RELOAD_INTERVAL: Duration = Duration::from_millis(50);

/// A certificate authority of the test's own.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM: what clients trust, or the server's `--tls-client-ca`.
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
}

/// A certificate the CA issued, with its key.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server_identity(&self) -> Identity {
        self.issue(
            vec![
                SanType::DnsName("localhost".try_into().unwrap()),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose one subject alternative name is the URI `uri` (a
    /// SPIFFE id, say).
    pub fn client_identity(&self, uri: &str) -> Identity {
        self.client_identity_with(vec![SanType::URI(uri.try_into().unwrap())])
    }

    /// A client certificate with these subject alternative names.
    pub fn client_identity_with(&self, sans: Vec<SanType>) -> Identity {
        self.issue(sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, "test");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        }
    }
}

/// The server's PEM files in a folder that lives as long as this.
pub struct TlsFiles {
    dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Writes `server`'s certificate and key, and `client_ca`'s certificate (mutual TLS).
    pub fn write(server: &Identity, client_ca: Option<&Ca>) -> TlsFiles {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            client_ca: client_ca.map(|_| dir.path().join("client-ca.crt")),
            dir,
        };
        files.replace(server);
        if let (Some(path), Some(ca)) = (&files.client_ca, client_ca) {
            std::fs::write(path, &ca.cert_pem).unwrap();
        }
        files
    }

    /// Replaces the certificate and key, each file at once (written aside, renamed).
    pub fn replace(&self, server: &Identity) {
        self.replace_with(&server.cert_pem, &server.key_pem);
    }

    /// Replaces the files with these contents (garbage, say).
    pub fn replace_with(&self, cert_pem: &str, key_pem: &str) {
        for (path, pem) in [(&self.cert, cert_pem), (&self.key, key_pem)] {
            let aside = self.dir.path().join("aside");
            std::fs::write(&aside, pem).unwrap();
            std::fs::rename(&aside, path).unwrap();
        }
    }

    /// Server settings for these files, checked every [`TEST_RELOAD_INTERVAL`].
    pub fn settings(&self) -> ServerTlsSettings {
        let mut tls = ServerTlsSettings::new(&self.cert, &self.key);
        tls.client_ca = self.client_ca.clone();
        tls.reload_interval = TEST_RELOAD_INTERVAL;
        tls.handshake_timeout = Duration::from_secs(5);
        tls
    }
}

/// A client configuration trusting `ca` only, offering ALPN h2, presenting `identity`.
pub fn client_config(ca: &Ca, identity: Option<&Identity>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder
            .with_client_auth_cert(
                vec![identity.cert_der.clone()],
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// A TLS connection to `addr` (as `localhost`), its handshake done: for what the server
/// presented (`stream.get_ref().1.peer_certificates()`).
pub async fn tls_connect(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Identity>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(Arc::new(client_config(ca, identity)));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The certificate the server at `addr` presents to a new connection now.
pub async fn presented_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let stream = tls_connect(addr, ca, None).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A gRPC channel to `addr` over TLS, trusting `ca`, presenting `identity` (mutual TLS).
/// The handshake happens here; with TLS 1.3 a server refuses a client certificate only
/// after it, so a refused identity may show as the first call's error instead.
pub async fn tls_channel(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Identity>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = TlsConnector::from(Arc::new(client_config(ca, identity)));
    let connect = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::from_shared(format!("http://localhost:{}", addr.port()))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connect)
        .await
}

impl Service {
    /// The service on the embedded sandbox, its gRPC port on TLS from `files`; its
    /// clients trust `ca` and present `identity`. (Any settings: `settings.tls =
    /// Some(files.settings())` and [`Service::start_with`] with `StartOptions::tls`.)
    pub async fn on_sandbox_tls(files: &TlsFiles, ca: &Ca, identity: Option<&Identity>) -> Service {
        let (mut settings, http) = on_sandbox_settings(SandboxOptions::default()).await;
        settings.tls = Some(files.settings());
        Service::start_with(
            settings,
            StartOptions {
                http: Some(http),
                tls: Some((ca, identity)),
                ..StartOptions::default()
            },
        )
        .await
    }
}
