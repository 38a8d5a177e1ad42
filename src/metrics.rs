//! Prometheus metrics, rendered at `/metrics` on the HTTP listener.
//!
//! Recorded where things happen through the `metrics` facade; gauges that describe
//! state (watchers, token age) are read when Prometheus scrapes.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tonic::Code;

/// Latency buckets, in seconds, for gRPC calls and Graph API calls.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// A finished gRPC call: `waba_grpc_requests_total{method,code}` and its latency.
pub fn grpc_call(method: &'static str, code: Code, seconds: f64) {
    metrics::counter!("waba_grpc_requests_total", "method" => method, "code" => code_name(code))
        .increment(1);
    metrics::histogram!("waba_grpc_request_duration_seconds", "method" => method).record(seconds);
}

/// A Graph API call: `waba_graph_requests_total{endpoint,result}` and its latency.
pub fn graph_call(endpoint: &'static str, result: String, seconds: f64) {
    metrics::counter!("waba_graph_requests_total", "endpoint" => endpoint, "result" => result)
        .increment(1);
    metrics::histogram!("waba_graph_request_duration_seconds", "endpoint" => endpoint)
        .record(seconds);
}

/// `OK`, `INVALID_ARGUMENT`... as gRPC spells its codes.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
