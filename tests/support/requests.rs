//! What clients send: the service's request messages, built short.

use waba_numbers::pb::{GetStatusRequest, ListNumbersRequest, RegisterRequest, WatchStatusRequest};

/// GetStatus for the number `id`, as fresh as the cache TTL says.
pub fn get_status(id: &str) -> GetStatusRequest {
    GetStatusRequest {
        phone_number_id: id.into(),
        max_staleness: None,
    }
}

/// GetStatus for the number `id`, accepting nothing older than `secs` (0: read Meta now).
pub fn get_status_within(id: &str, secs: i64) -> GetStatusRequest {
    GetStatusRequest {
        max_staleness: Some(prost_types::Duration {
            seconds: secs,
            nanos: 0,
        }),
        ..get_status(id)
    }
}

/// Register the number `id` with `pin`, without a request_id or region.
pub fn register(id: &str, pin: &str) -> RegisterRequest {
    RegisterRequest {
        phone_number_id: id.into(),
        pin: pin.into(),
        ..RegisterRequest::default()
    }
}

/// One page of `waba_id`'s numbers.
pub fn list_numbers(waba_id: &str, page_size: i32, page_token: &str) -> ListNumbersRequest {
    ListNumbersRequest {
        waba_id: waba_id.into(),
        page_size,
        page_token: page_token.into(),
        ..ListNumbersRequest::default()
    }
}

/// WatchStatus for the numbers `ids`.
pub fn numbers(ids: &[&str]) -> WatchStatusRequest {
    WatchStatusRequest {
        phone_number_ids: ids.iter().map(|id| id.to_string()).collect(),
        waba_id: String::new(),
    }
}

/// WatchStatus for every number in `waba_id`, those added later too.
pub fn waba(waba_id: &str) -> WatchStatusRequest {
    WatchStatusRequest {
        phone_number_ids: Vec::new(),
        waba_id: waba_id.into(),
    }
}

/// `message`, sent with `key` as its API key (`authorization: Bearer <key>`).
pub fn by_key<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// What a callers file holds of `key`: its SHA-256, in hex.
pub fn key_digest(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}
