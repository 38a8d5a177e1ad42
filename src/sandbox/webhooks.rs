//! The sandbox's side of webhooks: what Meta would POST, signed as Meta signs it.

use super::state::{Announced, Announcement};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::mpsc;

/// Posts each announcement to `url`, signed with `app_secret`, until the outbox closes.
pub async fn deliver(
    mut outbox: mpsc::UnboundedReceiver<Announcement>,
    url: Option<String>,
    app_secret: Option<SecretString>,
) {
    crate::tls::install_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    while let Some(announcement) = outbox.recv().await {
        let Some(url) = &url else { continue };
        let body = notification(&announcement, chrono::Utc::now().timestamp()).to_string();
        let mut request = client.post(url).header("content-type", "application/json");
        if let Some(secret) = &app_secret {
            request = request.header("x-hub-signature-256", signature(secret, body.as_bytes()));
        }
        match request.body(body).send().await {
            Ok(answer) if answer.status().is_success() => {}
            Ok(answer) => tracing::warn!(status = %answer.status(), "sandbox webhook refused"),
            Err(e) => tracing::warn!(error = %e.without_url(), "sandbox webhook not delivered"),
        }
    }
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of the raw body, keyed by the app secret.
pub fn signature(app_secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes())
        .expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The notification Meta would send for one announcement.
pub fn notification(a: &Announcement, time: i64) -> Value {
    let (field, value) = match &a.what {
        Announced::NameDecision {
            decision,
            requested_verified_name,
        } => (
            "phone_number_name_update",
            json!({
                "display_phone_number": a.display_phone_number,
                "decision": decision,
                "requested_verified_name": requested_verified_name,
                "rejection_reason": if *decision == "REJECTED" { json!("NAME_FORMAT_UNACCEPTABLE") } else { Value::Null },
            }),
        ),
        Announced::Quality {
            event,
            current_limit,
        } => (
            "phone_number_quality_update",
            json!({
                "display_phone_number": a.display_phone_number,
                "event": event,
                "current_limit": current_limit,
                "max_daily_conversations_per_business": current_limit,
            }),
        ),
    };
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": a.waba_id, "time": time, "changes": [{ "field": field, "value": value }] }],
    })
}
