//! The gRPC listener: tonic's services on hyper's HTTP/2 server, tuned for many
//! long-lived streams.
//!
//! tonic's own server cannot set hyper's per-stream send buffer. hyper lets a stream
//! queue up to 400 KiB of encoded frames before it stops polling the response body, so
//! a WABA's first snapshot (32 events) is encoded and queued all at once, and ten
//! thousand streams opening together queue a hundred megabytes the allocator keeps
//! afterwards. Here a stream has at most one encoded message queued in the connection
//! and one in hand; the events still to send wait in the subscriber as a few pointers
//! each (see the README's benchmark).
//!
//! Otherwise this does what tonic's server did for us: HTTP/2 only, keepalive PINGs, a
//! stream limit per connection, a tracing span per call, the caller's `grpc-timeout`
//! bounding the call (until its response starts), and a graceful drain. Added: TCP_NODELAY
//! (tonic skips it for listeners it is handed), and a request larger than the services'
//! `max_decoding_message_size` answered RESOURCE_EXHAUSTED, as gRPC's status code guide
//! says, not tonic's OUT_OF_RANGE (see [`oversized_is_resource_exhausted`]). Not carried
//! over: the peer's address in request extensions, which nothing here reads.
//!
//! With TLS (src/tls.rs), each accepted connection's handshake runs on the connection's
//! own task, bounded by a timeout; a failed one is logged at debug and costs the accept
//! loop nothing. With mutual TLS the verified client certificate's subject alternative
//! names become a [`PeerIdentity`] in every request's extensions on that connection,
//! before the caller check ([`Gate::admit`]) reads them.

use super::auth::{Gate, Refused};
use super::peer::PeerIdentity;
use crate::callers::Caller;
use crate::tls::ServerTls;
use futures_util::FutureExt;
use futures_util::future::Either;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tonic::Status;
use tonic::service::Routes;
use tower::ServiceExt;
use tracing::Instrument;

/// At most this much of a stream's response is queued in the connection: one message
/// at a time. (Unary responses are one message, sent whole whatever their size.)
const STREAM_SEND_BUFFER: usize = 1;

/// How long a keepalive PING may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a gRPC connection behaves.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// PING interval on idle connections; `None` disables keepalive.
    pub keepalive: Option<Duration>,
    pub max_concurrent_streams: u32,
}

/// Serves `routes` on `listener` (over TLS when `tls` is given) until `shutdown`
/// completes, then stops accepting and waits for every open connection to finish its
/// calls (bound that wait with a timeout: streams do not end by themselves).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    gate: Gate,
    settings: Http2Settings,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_send_buf_size(STREAM_SEND_BUFFER)
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.keepalive)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let routes = routes.prepare();
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => socket,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "failed to accept a gRPC connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let connection = Connection {
            http2: http2.clone(),
            routes: routes.clone(),
            gate: gate.clone(),
            // Counted from now: a shutdown waits for handshakes under way too (each
            // bounded by the handshake timeout).
            watcher: connections.watcher(),
        };
        match &tls {
            None => {
                tokio::spawn(connection.serve(TokioIo::new(socket), None));
            }
            Some(tls) => {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let stream = match tls.accept(socket).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let peer = match crate::tls::client_sans(&stream) {
                        None => None,
                        Some(Ok(sans)) => {
                            tracing::debug!(?sans, "TLS client certificate");
                            Some(PeerIdentity::new(sans))
                        }
                        Some(Err(e)) => {
                            // Verified by rustls, yet unreadable here: vouch for nothing.
                            tracing::debug!(error = %e, "unreadable client certificate: closing");
                            return;
                        }
                    };
                    connection.serve(TokioIo::new(stream), peer).await;
                });
            }
        }
    }
    // Closes the listening socket now: new clients are refused rather than left hanging.
    drop(listener);
    connections.shutdown().await;
}

/// One accepted connection, about to be served.
struct Connection {
    http2: http2::Builder<TokioExecutor>,
    routes: Routes,
    gate: Gate,
    watcher: Watcher,
}

impl Connection {
    /// Serves HTTP/2 on `io` until the client leaves or the shutdown drains it; `peer`
    /// goes into every request's extensions.
    async fn serve<IO>(self, io: TokioIo<IO>, peer: Option<PeerIdentity>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            http2,
            routes,
            gate,
            watcher,
        } = self;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            let admitted = gate.admit(&mut request);
            let caller = match &admitted {
                Ok(caller) => caller.clone(),
                Err(refused) => refused.caller.clone(),
            };
            let caller = caller.as_ref();
            let span = call_span(&request, caller);
            let timeout = super::deadline::answer_within(request.headers());
            if let Err(Refused { status, .. }) = admitted {
                let _entered = span.enter();
                super::metrics::refused(status.code(), &super::auth::name_of(caller));
                tracing::info!(
                    status_message = status.message(),
                    code = super::metrics::code_name(status.code()),
                    "call refused"
                );
                return Either::Left(std::future::ready(Ok(status.into_http())));
            }
            let call = routes
                .clone()
                .oneshot(request)
                .map(|answer| answer.map(oversized_is_resource_exhausted));
            // The handlers answer a little before the deadline themselves; this is the
            // backstop for anything that does not (a caller waiting on a shared attempt).
            // Boxed: hyper's task for a stream is sized by this future for the stream's
            // life, and only calls with a deadline need the timer.
            let call = match timeout {
                Some(timeout) => {
                    Either::Left(Box::pin(tokio::time::timeout(timeout, call).map(|done| {
                        done.unwrap_or_else(|_| {
                            Ok(Status::deadline_exceeded("the call's deadline passed").into_http())
                        })
                    })))
                }
                None => Either::Right(call),
            };
            Either::Right(call.instrument(span))
        });
        if let Err(e) = watcher.watch(http2.serve_connection(io, service)).await {
            tracing::debug!(error = %e, "gRPC connection ended with an error");
        }
    }
}

/// tonic's decoder refuses a request message over the limit with OUT_OF_RANGE and this
/// message (tonic 0.14, `codec/decode.rs`); gRPC's status code guide says
/// RESOURCE_EXHAUSTED for a message larger than the server accepts. Only that refusal is
/// remapped: it is decided before the handler runs, so it arrives as a trailers-only
/// answer (the status in the headers), and no handler answers OUT_OF_RANGE.
const TOO_LARGE_PREFIX: &str = "Error, decoded message length too large";

fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").map(http::HeaderValue::as_bytes) != Some(b"11") {
        return response;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return response;
    };
    if status.code() != tonic::Code::OutOfRange || !status.message().starts_with(TOO_LARGE_PREFIX) {
        return response;
    }
    let limit = status
        .message()
        .rsplit_once("the limit is: ")
        .map_or("the limit", |(_, limit)| limit);
    let refused = Status::resource_exhausted(format!(
        "the request message is larger than this service accepts ({limit})"
    ));
    if refused.add_header(headers).is_err() {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Every log line of a call carries its method, its caller (`-` without a callers file)
/// and a request id: the client's `x-request-id` when it sends a sensible one, else a
/// fresh one.
fn call_span<B>(request: &Request<B>, caller: Option<&Arc<Caller>>) -> tracing::Span {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128);
    let request_id = match given {
        Some(id) => id.to_owned(),
        None => format!("{:016x}", rand::random::<u64>()),
    };
    tracing::info_span!(
        "grpc",
        method = %request.uri().path(),
        caller = %super::auth::name_of(caller),
        request_id = %request_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &Status) -> http::Response<()> {
        let mut response = http::Response::new(());
        status.add_header(response.headers_mut()).unwrap();
        response
    }

    #[test]
    fn only_tonics_too_large_refusal_becomes_resource_exhausted() {
        let too_large = Status::out_of_range(
            "Error, decoded message length too large: found 102410 bytes, the limit is: 65536 bytes",
        );
        let mapped = oversized_is_resource_exhausted(answer(&too_large));
        let status = Status::from_header_map(mapped.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("65536 bytes"), "{status:?}");
        for other in [
            Status::out_of_range("a page past the end"),
            Status::invalid_argument("Error, decoded message length too large"),
        ] {
            let kept = oversized_is_resource_exhausted(answer(&other));
            let status = Status::from_header_map(kept.headers()).unwrap();
            assert_eq!(
                (status.code(), status.message()),
                (other.code(), other.message())
            );
        }
        let ok = oversized_is_resource_exhausted(http::Response::new(()));
        assert!(ok.headers().is_empty());
    }
}
