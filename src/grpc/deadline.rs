//! The caller's gRPC deadline, read from the `grpc-timeout` header, so upstream calls
//! never outlive the call that asked for them.

use crate::model::Deadline;
use std::time::Duration;
use tokio::time::Instant;

/// The caller's deadline, a little early (see [`answer_within`]).
pub fn of<T>(request: &tonic::Request<T>) -> Deadline {
    Some(Instant::now() + answer_within(request.metadata().as_ref())?)
}

/// How long the server has to answer a call with this `grpc-timeout`: a little less, so
/// that the answer (DEADLINE_EXCEEDED, say) reaches the client before its own timer gives
/// up with a bare CANCELLED.
pub fn answer_within(headers: &http::HeaderMap) -> Option<Duration> {
    let timeout = parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)?;
    let margin = (timeout / 10).min(Duration::from_millis(100));
    Some(timeout - margin)
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
