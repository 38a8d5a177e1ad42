//! gRPC call metrics: `waba_grpc_requests_total{method,code,caller}` and latency.

use std::sync::Arc;
use tonic::Code;

/// Counts a gRPC call when it ends, or as CANCELLED if it is dropped first (the client
/// went away or its deadline passed).
pub struct CallTimer {
    method: &'static str,
    /// The caller's name (`-` without a callers file).
    caller: Arc<str>,
    started: std::time::Instant,
    done: bool,
}

impl CallTimer {
    pub fn start<T>(method: &'static str, request: &tonic::Request<T>) -> Self {
        Self {
            method,
            caller: super::auth::name_of(super::auth::caller_of(request).as_ref()),
            started: std::time::Instant::now(),
            done: false,
        }
    }

    pub fn method(&self) -> &'static str {
        self.method
    }

    pub fn finish(mut self, code: Code) {
        self.done = true;
        grpc_call(
            self.method,
            &self.caller,
            code,
            self.started.elapsed().as_secs_f64(),
        );
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if !self.done {
            grpc_call(
                self.method,
                &self.caller,
                Code::Cancelled,
                self.started.elapsed().as_secs_f64(),
            );
        }
    }
}

/// A call the caller check refused before it reached its service:
/// `waba_grpc_refused_total{code,caller}` (UNAUTHENTICATED with caller `-`,
/// PERMISSION_DENIED with the caller's name).
pub fn refused(code: Code, caller: &str) {
    metrics::counter!(
        "waba_grpc_refused_total",
        "code" => code_name(code),
        "caller" => caller.to_owned()
    )
    .increment(1);
}

/// A finished gRPC call: `waba_grpc_requests_total{method,code,caller}` and its latency.
pub fn grpc_call(method: &'static str, caller: &str, code: Code, seconds: f64) {
    metrics::counter!(
        "waba_grpc_requests_total",
        "method" => method,
        "code" => code_name(code),
        "caller" => caller.to_owned()
    )
    .increment(1);
    metrics::histogram!("waba_grpc_request_duration_seconds", "method" => method).record(seconds);
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
