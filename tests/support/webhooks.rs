//! Meta's webhooks as the service receives them: notifications about `N1`, signed.

use super::{APP_SECRET, N1_DIGITS as DIGITS, Service, WABA};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A signed-to-be `phone_number_name_update` about `N1`, at Meta's `time`.
pub fn name_update(decision: &str, time: i64) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": WABA, "time": time, "changes": [{
            "field": "phone_number_name_update",
            "value": { "display_phone_number": DIGITS, "decision": decision,
                       "requested_verified_name": "Jaspers Market", "rejection_reason": null }
        }]}]
    })
}

/// A `phone_number_quality_update` about `N1`, at Meta's `time`.
pub fn quality_update(event: &str, time: i64) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": WABA, "time": time, "changes": [{
            "field": "phone_number_quality_update",
            "value": { "display_phone_number": DIGITS, "event": event, "current_limit": "TIER_2K" }
        }]}]
    })
}

/// `X-Hub-Signature-256` of `body`, as Meta signs it with the app secret.
pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a notification to the service's webhook, with `signature` if any; the HTTP status.
pub async fn post(service: &Service, body: &Value, signature: Option<String>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/whatsapp", service.http_addr))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

/// POSTs a notification signed as Meta would; the HTTP status.
pub async fn post_signed(service: &Service, body: &Value) -> u16 {
    post(service, body, Some(sign(body.to_string().as_bytes()))).await
}
