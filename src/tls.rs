//! TLS, all of it rustls on ring (no aws-lc C build): the provider every HTTP client the
//! process builds uses, and the gRPC port's server side.
//!
//! The server's certificate and key (and, for mutual TLS, the CA bundle client
//! certificates must chain to) are PEM files, read at start and then checked every few
//! seconds: a changed set is loaded into a new [`rustls::ServerConfig`] that the next
//! connection uses (open connections keep theirs). A set that does not load (a key that
//! does not match its certificate, a file half written) is logged and the previous one
//! stays; it is tried again once the files change again.
//!
//! Nothing of the crate is imported here: the gRPC listener (src/grpc/transport.rs)
//! turns [`client_sans`] into the identity it puts in requests.

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the certificate files are checked for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// reqwest is built without a default TLS provider: every HTTP client is built after
/// this installs rustls on ring, once per process.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means a provider was installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where the gRPC port's TLS comes from, and how it is checked.
#[derive(Debug, Clone)]
pub struct ServerTlsSettings {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Mutual TLS: every client must present a certificate chaining to one of these (PEM).
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for a change.
    pub reload_interval: Duration,
    /// How long a client has to complete its handshake.
    pub handshake_timeout: Duration,
}

impl ServerTlsSettings {
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            reload_interval: RELOAD_INTERVAL,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("{0}: no certificate in it")]
    NoCertificate(PathBuf),
    #[error("the certificate and key do not make a server identity: {0}")]
    Identity(rustls::Error),
    #[error("the client CA bundle cannot verify clients: {0}")]
    ClientCa(String),
}

/// The gRPC port's TLS: the current server configuration, swapped when the files change.
#[derive(Clone)]
pub struct ServerTls {
    config: watch::Receiver<Arc<rustls::ServerConfig>>,
    handshake_timeout: Duration,
    mutual: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.is_mutual())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files (failing if they do not make a configuration) and starts checking
    /// them every `reload_interval`, for as long as a clone of this lives.
    pub async fn load(settings: &ServerTlsSettings) -> Result<Self, TlsError> {
        let files = Files::read(settings).await?;
        let config = files.config()?;
        let (tx, rx) = watch::channel(config);
        tokio::spawn(reload(settings.clone(), files, tx));
        Ok(Self {
            config: rx,
            handshake_timeout: settings.handshake_timeout,
            mutual: settings.client_ca.is_some(),
        })
    }

    /// The configuration new connections get now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.config.borrow().clone()
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// The TLS handshake on `io`, within the handshake timeout.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let accept = TlsAcceptor::from(self.current()).accept(io);
        match tokio::time::timeout(self.handshake_timeout, accept).await {
            Ok(done) => done,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the TLS handshake took too long",
            )),
        }
    }
}

/// The subject alternative names (URI, then DNS, each in the certificate's order) of the
/// client certificate a connection presented; `None` without one. (rustls verified it
/// during the handshake when client certificates are required.)
pub fn client_sans<IO>(stream: &TlsStream<IO>) -> Option<Result<Vec<String>, String>> {
    let (_, connection) = stream.get_ref();
    let leaf = connection.peer_certificates()?.first()?;
    Some(subject_alt_names(leaf))
}

/// The URI and DNS subject alternative names of a DER certificate: URI names first (a
/// SPIFFE id is one), then DNS names, each in the certificate's order.
pub fn subject_alt_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_cert::der::Decode;
    use x509_cert::der::oid::AssociatedOid;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;

    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut uris = Vec::new();
    let mut dns = Vec::new();
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    for extension in extensions
        .iter()
        .filter(|e| e.extn_id == SubjectAltName::OID)
    {
        let names =
            SubjectAltName::from_der(extension.extn_value.as_bytes()).map_err(|e| e.to_string())?;
        for name in names.0 {
            match name {
                GeneralName::UniformResourceIdentifier(uri) => uris.push(uri.to_string()),
                GeneralName::DnsName(name) => dns.push(name.to_string()),
                _ => {}
            }
        }
    }
    uris.extend(dns);
    Ok(uris)
}

/// The files' contents as last read: a change is a difference in bytes, whatever the
/// files' times say (a Kubernetes Secret update swaps a symlink).
#[derive(PartialEq, Eq)]
struct Files {
    cert: (PathBuf, Vec<u8>),
    key: (PathBuf, Vec<u8>),
    client_ca: Option<(PathBuf, Vec<u8>)>,
}

impl Files {
    async fn read(settings: &ServerTlsSettings) -> Result<Self, TlsError> {
        async fn read(path: &Path) -> Result<(PathBuf, Vec<u8>), TlsError> {
            match tokio::fs::read(path).await {
                Ok(bytes) => Ok((path.to_owned(), bytes)),
                Err(source) => Err(TlsError::Read {
                    path: path.to_owned(),
                    source,
                }),
            }
        }
        Ok(Self {
            cert: read(&settings.cert).await?,
            key: read(&settings.key).await?,
            client_ca: match &settings.client_ca {
                Some(path) => Some(read(path).await?),
                None => None,
            },
        })
    }

    fn config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates(&self.cert)?;
        let (key_path, key_pem) = &self.key;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
            path: key_path.clone(),
            what: format!("no private key ({e})"),
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Identity)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(bundle) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(bundle)? {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::ClientCa(format!("{}: {e}", bundle.0.display())))?;
                }
                let verifier = client_verifier(roots, provider)?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(TlsError::Identity)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn client_verifier(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))
}

fn certificates(
    (path, pem): &(PathBuf, Vec<u8>),
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.clone(),
            what: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.clone()));
    }
    Ok(chain)
}

/// Every `reload_interval`, reads the files; a changed set that loads becomes the
/// current configuration. Stops once no [`ServerTls`] is left.
async fn reload(
    settings: ServerTlsSettings,
    mut last: Files,
    tx: watch::Sender<Arc<rustls::ServerConfig>>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.reload_interval) => {}
            () = tx.closed() => return,
        }
        let files = match Files::read(&settings).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(error = %e, "TLS files unreadable: keeping the current certificate");
                continue;
            }
        };
        if files == last {
            continue;
        }
        match files.config() {
            Ok(config) => {
                tracing::info!(cert = %settings.cert.display(), "TLS certificate reloaded");
                tx.send_replace(config);
            }
            Err(e) => {
                tracing::warn!(error = %e, "new TLS files do not load: keeping the current certificate")
            }
        }
        // Tried once: tried again when they change again.
        last = files;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    #[test]
    fn sans_are_the_uri_then_the_dns_names() {
        let mut params = CertificateParams::new(vec!["api.example.com".to_owned()]).unwrap();
        params.subject_alt_names.extend([
            SanType::URI("spiffe://example.org/ns/billing/sa/api".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::DnsName("b.example.com".try_into().unwrap()),
        ]);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()).unwrap(),
            [
                "spiffe://example.org/ns/billing/sa/api",
                "api.example.com",
                "b.example.com"
            ]
        );

        let none = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(subject_alt_names(none.der()).unwrap().is_empty());
        assert!(subject_alt_names(b"not a certificate").is_err());
    }
}
