//! Fake Graph APIs below HTTP, for the faults wiremock cannot make: a connection reset
//! in the middle of a body, a body that does not end, a certificate no client trusts.
//! Each counts the connections it had (one per request: its answers close them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a [`RawGraph`] does with a connection, once it has read the request.
#[derive(Clone, Copy, Debug)]
pub enum RawFault {
    /// A 200 with `Content-Length: 1000`, 100 bytes of JSON, then a reset (RST).
    ResetMidBody,
    /// A 200 whose body is `total` bytes; chunked, or announced by Content-Length.
    Huge { total: usize, announced: bool },
}

/// A fake Graph API on 127.0.0.1 that answers its first `faults` connections with a
/// [`RawFault`], and every later one with `ok` (a 200 with a JSON body).
pub struct RawGraph {
    pub url: String,
    connections: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawGraph {
    pub async fn start(fault: RawFault, faults: usize, ok: serde_json::Value) -> RawGraph {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let ok = ok.to_string();
        let task = tokio::spawn({
            let (connections, written) = (connections.clone(), written.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    let written = written.clone();
                    let ok = ok.clone();
                    tokio::spawn(async move {
                        match n < faults {
                            true => answer_with(fault, stream, &written).await,
                            false => answer_ok(stream, &ok).await,
                        }
                    });
                }
            }
        });
        RawGraph {
            url,
            connections,
            written,
            task,
        }
    }

    /// Connections (so requests) so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Body bytes the faults managed to write before the client hung up.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }
}

impl Drop for RawGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request: its head, then as many body bytes as its Content-Length says.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(())
}

async fn answer_ok(mut stream: TcpStream, body: &str) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn answer_with(fault: RawFault, mut stream: TcpStream, written: &AtomicUsize) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    match fault {
        RawFault::ResetMidBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        content-length: 1000\r\n\r\n";
            let part = format!("{{\"id\":\"{}\",\"verified_name\":\"", super::NUMBER);
            let part = format!("{part}{}", "x".repeat(100 - part.len()));
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(part.as_bytes()).await;
            let _ = stream.flush().await;
            // Let the client read what came, then reset rather than close.
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.set_zero_linger().unwrap();
            drop(stream);
        }
        RawFault::Huge { total, announced } => {
            let framing = match announced {
                true => format!("content-length: {total}"),
                false => "transfer-encoding: chunked".to_owned(),
            };
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece = vec![b'x'; 64 << 10];
            let mut sent = 0;
            while sent < total {
                let n = piece.len().min(total - sent);
                let wrote = match announced {
                    true => stream.write_all(&piece[..n]).await,
                    false => {
                        let mut chunk = format!("{n:x}\r\n").into_bytes();
                        chunk.extend_from_slice(&piece[..n]);
                        chunk.extend_from_slice(b"\r\n");
                        stream.write_all(&chunk).await
                    }
                };
                if wrote.is_err() {
                    return;
                }
                sent += n;
                written.fetch_add(n, Ordering::SeqCst);
            }
            if !announced {
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        }
    }
}

/// An HTTPS server on 127.0.0.1 whose certificate (for `127.0.0.1` and `localhost`) is
/// self-signed, made here: no client trusts it. It counts the connections it had; none
/// gets past the handshake.
pub struct UntrustedTls {
    pub url: String,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl UntrustedTls {
    pub async fn start() -> UntrustedTls {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // The client aborts the handshake; were it to finish, say nothing.
                        let _ = acceptor.accept(stream).await;
                    });
                }
            }
        });
        UntrustedTls {
            url,
            connections,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for UntrustedTls {
    fn drop(&mut self) {
        self.task.abort();
    }
}
