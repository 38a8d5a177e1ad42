//! The caller's gRPC deadline, read from the `grpc-timeout` header, so upstream calls
//! never outlive the call that asked for them.

use crate::graph::Deadline;
use std::time::Duration;
use tokio::time::Instant;

/// The caller's deadline, a little early: the answer (DEADLINE_EXCEEDED, say) must
/// reach the client before it gives up, and before the transport's own bound on the call
/// (see [`timeout_of`]) cuts it short.
pub fn of<T>(request: &tonic::Request<T>) -> Deadline {
    let timeout = timeout_of(request.metadata().as_ref())?;
    let margin = (timeout / 10).min(Duration::from_millis(100));
    Some(Instant::now() + (timeout - margin))
}

/// The time the caller gives the call, from its `grpc-timeout` header.
pub fn timeout_of(headers: &http::HeaderMap) -> Option<Duration> {
    parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("3H"), Some(Duration::from_secs(10800)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        for bad in ["", "S", "12", "123456789S", "-1S", "1x", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
