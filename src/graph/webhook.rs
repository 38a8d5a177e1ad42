//! Meta's webhooks as Meta sends them: the `X-Hub-Signature-256` check and the payload.

use crate::model::{Push, PushKind, digits};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of the raw `body` keyed by the
/// app secret. Compared in constant time.
pub fn signature_is_valid(app_secret: &SecretString, body: &[u8], signature: Option<&str>) -> bool {
    let Some(given) = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|hex_digits| hex::decode(hex_digits).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes())
        .expect("any key length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: String,
    #[serde(default)]
    time: Option<i64>,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: Value,
}

/// The changes a notification carries that concern phone numbers. Unknown fields and
/// events are skipped, not errors; `now` stands in for a missing entry time.
pub fn pushes(body: &[u8], now: i64) -> Result<Vec<Push>, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    if envelope.object != "whatsapp_business_account" {
        return Ok(Vec::new());
    }
    let mut pushes = Vec::new();
    for entry in envelope.entry {
        for change in entry.changes {
            let text = |key: &str| {
                change
                    .value
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let number = text("display_phone_number")
                .map(|d| digits(&d))
                .filter(|d| !d.is_empty());
            let kind = match (change.field.as_str(), number) {
                ("phone_number_name_update", Some(digits)) => PushKind::NameDecision {
                    digits,
                    decision: text("decision").unwrap_or_default(),
                    requested_name: text("requested_verified_name"),
                },
                ("phone_number_quality_update", Some(digits)) => PushKind::Quality {
                    digits,
                    event: text("event").unwrap_or_default(),
                    limit: text("max_daily_conversations_per_business")
                        .or_else(|| text("current_limit")),
                },
                ("security", Some(digits)) => PushKind::Security {
                    digits,
                    event: text("event").unwrap_or_default(),
                },
                ("account_update", _) => PushKind::Account {
                    event: text("event").unwrap_or_default(),
                },
                _ => continue,
            };
            pushes.push(Push {
                waba_id: entry.id.clone(),
                time: entry.time.filter(|t| *t > 0).unwrap_or(now),
                kind,
            });
        }
    }
    Ok(pushes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_checked_over_the_raw_body() {
        let secret = SecretString::from("app-secret");
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"app-secret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_is_valid(&secret, body, Some(&good)));
        assert!(!signature_is_valid(&secret, b"{ }", Some(&good)));
        assert!(!signature_is_valid(&secret, body, Some("sha256=00")));
        assert!(!signature_is_valid(
            &secret,
            body,
            Some(&good.replace("sha256=", "sha1="))
        ));
        assert!(!signature_is_valid(&secret, body, None));
    }

    #[test]
    fn reads_metas_phone_number_changes_and_skips_the_rest() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102","time":1739321024,"changes":[
          {"field":"phone_number_name_update","value":{"display_phone_number":"15550783881","decision":"APPROVED","requested_verified_name":"Lucky Shrub","rejection_reason":null}},
          {"field":"phone_number_quality_update","value":{"display_phone_number":"+1 555-078-3881","event":"THROUGHPUT_UPGRADE","old_limit":"TIER_2K","current_limit":"TIER_UNLIMITED","max_daily_conversations_per_business":"TIER_UNLIMITED"}},
          {"field":"security","value":{"display_phone_number":"15550783881","event":"PIN_CHANGED"}},
          {"field":"account_update","value":{"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":"DISABLE"}}},
          {"field":"messages","value":{"messaging_product":"whatsapp"}},
          {"field":"phone_number_name_update","value":{"decision":"APPROVED"}}
        ]}]}"#;
        let pushes = pushes(body, 5).unwrap();
        assert_eq!(pushes.len(), 4);
        assert!(
            pushes
                .iter()
                .all(|p| p.waba_id == "102" && p.time == 1739321024)
        );
        assert_eq!(pushes[1].digits(), Some("15550783881"));
        assert!(
            matches!(&pushes[1].kind, PushKind::Quality { limit: Some(l), .. } if l == "TIER_UNLIMITED")
        );
        assert!(
            matches!(&pushes[3].kind, PushKind::Account { event } if event == "DISABLED_UPDATE")
        );
        let other = pushes_of(br#"{"object":"page","entry":[]}"#);
        assert!(other.is_empty());
    }

    fn pushes_of(body: &[u8]) -> Vec<Push> {
        pushes(body, 0).unwrap()
    }
}

/// Fuzz targets: any POST to the webhook. See `src/fuzzing.rs`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "object",
        "entry",
        "id",
        "time",
        "changes",
        "field",
        "value",
        "display_phone_number",
        "decision",
        "requested_verified_name",
        "event",
        "current_limit",
        "max_daily_conversations_per_business",
        "phone_number_name_update",
        "phone_number_quality_update",
        "security",
        "account_update",
    ];

    fn signature(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// A notification shaped like Meta's, with arbitrary values where Meta puts its own.
    fn envelope() -> impl Strategy<Value = serde_json::Value> {
        let value = crate::fuzzing::json_value(KEYS);
        let field = prop_oneof![
            proptest::sample::select(&KEYS[13..]).prop_map(str::to_owned),
            any::<String>(),
        ];
        let change = (field, value.clone())
            .prop_map(|(field, value)| serde_json::json!({ "field": field, "value": value }));
        let entry = (
            value.clone(),
            value,
            proptest::collection::vec(change, 0..4),
        )
            .prop_map(|(id, time, changes)| serde_json::json!({ "id": id, "time": time, "changes": changes }));
        proptest::collection::vec(entry, 0..3).prop_map(|entries| {
            serde_json::json!({ "object": "whatsapp_business_account", "entry": entries })
        })
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config())]

        #[test]
        fn fuzz_webhook_arbitrary_bodies_and_signatures_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            header in any::<String>(),
            now in any::<i64>(),
        ) {
            let secret = SecretString::from("app-secret");
            prop_assert!(!signature_is_valid(&secret, &body, Some(&header)) || header.starts_with("sha256="));
            let hexed = format!("sha256={header}");
            let _ = signature_is_valid(&secret, &body, Some(&hexed));
            let _ = pushes(&body, now);
        }

        #[test]
        fn fuzz_webhook_shaped_payloads_never_panic(body in envelope(), now in any::<i64>()) {
            // An entry whose id is not a string, or whose time is not an integer, makes
            // the body unreadable (Meta sends neither); otherwise at most one push a change.
            if let Ok(pushes) = pushes(body.to_string().as_bytes(), now) {
                let changes: usize = body["entry"]
                    .as_array()
                    .map_or(0, |e| e.iter().map(|e| e["changes"].as_array().map_or(0, Vec::len)).sum());
                prop_assert!(pushes.len() <= changes);
            }
        }

        #[test]
        fn fuzz_webhook_correct_signature_verifies(secret in ".{1,64}", body in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let good = signature(&secret, &body);
            prop_assert!(signature_is_valid(&SecretString::from(secret), &body, Some(&good)));
        }

        #[test]
        fn fuzz_webhook_any_single_bit_flip_fails(
            secret in ".{1,64}",
            body in proptest::collection::vec(any::<u8>(), 1..1024),
            at in any::<proptest::sample::Index>(),
            bit in 0..8u8,
        ) {
            let good = signature(&secret, &body);
            let secret = SecretString::from(secret);
            // A bit of the body.
            let mut flipped = body.clone();
            flipped[at.index(body.len())] ^= 1 << bit;
            prop_assert!(!signature_is_valid(&secret, &flipped, Some(&good)));
            // A bit of the MAC.
            let mut mac = hex::decode(&good["sha256=".len()..]).unwrap();
            let i = at.index(mac.len());
            mac[i] ^= 1 << bit;
            let flipped_mac = format!("sha256={}", hex::encode(&mac));
            prop_assert!(!signature_is_valid(&secret, &body, Some(&flipped_mac)));
            // A bit of the header as sent: refused, unless it only changed a hex
            // letter's case (the same MAC: hex is read either way).
            let mut header = good.clone().into_bytes();
            let j = at.index(header.len());
            header[j] ^= 1 << bit;
            if let Ok(header) = String::from_utf8(header) {
                let same_mac = header.to_ascii_lowercase() == good && j >= "sha256=".len();
                prop_assert_eq!(signature_is_valid(&secret, &body, Some(&header)), same_mac);
            }
        }
    }
}
