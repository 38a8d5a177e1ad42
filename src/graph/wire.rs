//! Graph API JSON, and its conversion into domain types. Nothing outside `graph/` sees it.

use crate::model::{NumbersPage, PhoneNumber, PreverifiedNumber, PreverifiedPage, TokenInfo};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Every field optional and `null`-tolerant: a missing or null value is the default.
#[derive(Debug, Deserialize)]
pub struct PhoneNumberJson {
    id: String,
    display_phone_number: Option<String>,
    verified_name: Option<String>,
    name_status: Option<String>,
    new_name_status: Option<String>,
    new_display_name: Option<String>,
    code_verification_status: Option<String>,
    quality_rating: Option<String>,
    status: Option<String>,
    platform_type: Option<String>,
    throughput: Option<ThroughputJson>,
    messaging_limit_tier: Option<String>,
    whatsapp_business_manager_messaging_limit: Option<String>,
    account_mode: Option<String>,
    is_official_business_account: Option<bool>,
    is_pin_enabled: Option<bool>,
    last_onboarded_time: Option<String>,
    is_preverified_number: Option<bool>,
    is_on_biz_app: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct PreverifiedJson {
    id: String,
    phone_number: Option<String>,
    code_verification_status: Option<String>,
    code_verification_time: Option<String>,
    verification_expiry_time: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PreverifiedListJson {
    data: Vec<PreverifiedJson>,
    #[serde(default)]
    paging: Option<PagingJson>,
}

/// The code exchange's answer.
#[derive(Deserialize)]
pub struct AccessTokenJson {
    pub access_token: String,
}

/// `debug_token`'s answer (its fields as graph-api.md §6.3 shows them).
#[derive(Debug, Deserialize)]
pub struct DebugTokenJson {
    data: DebugTokenData,
}

#[derive(Debug, Deserialize)]
struct DebugTokenData {
    #[serde(default)]
    is_valid: bool,
    /// Unix seconds; 0 for a token that never expires.
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    granular_scopes: Vec<GranularScopeJson>,
}

#[derive(Debug, Deserialize)]
struct GranularScopeJson {
    scope: String,
    #[serde(default)]
    target_ids: Vec<String>,
}

impl From<DebugTokenJson> for TokenInfo {
    fn from(j: DebugTokenJson) -> Self {
        let d = j.data;
        let targets = |scope: &str| -> Vec<String> {
            d.granular_scopes
                .iter()
                .filter(|s| s.scope == scope)
                .flat_map(|s| s.target_ids.iter().cloned())
                .collect()
        };
        TokenInfo {
            is_valid: d.is_valid,
            expires_at: d
                .expires_at
                .filter(|&t| t > 0)
                .and_then(|t| DateTime::from_timestamp(t, 0)),
            managed_wabas: targets("whatsapp_business_management"),
            businesses: targets("business_management"),
        }
    }
}

/// What creating an object answers.
#[derive(Debug, Deserialize)]
pub struct IdJson {
    pub id: String,
}

#[derive(Debug, Deserialize)]
struct ThroughputJson {
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListJson {
    data: Vec<PhoneNumberJson>,
    #[serde(default)]
    paging: Option<PagingJson>,
}

#[derive(Debug, Deserialize)]
struct PagingJson {
    #[serde(default)]
    cursors: Option<CursorsJson>,
    /// Present only when another page exists.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CursorsJson {
    #[serde(default)]
    after: Option<String>,
}

/// One operation's answer inside a batch response.
#[derive(Debug, Deserialize)]
pub struct BatchItem {
    pub code: u16,
    /// The operation's JSON answer, as a string.
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Deserialize)]
pub struct SuccessJson {
    #[serde(default)]
    pub success: bool,
}

#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorJson,
}

#[derive(Debug, Deserialize)]
pub struct ErrorJson {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub error_user_title: Option<String>,
    #[serde(default)]
    pub error_user_msg: Option<String>,
    /// An object with `details` (Cloud API), or sometimes a bare string.
    #[serde(default)]
    pub error_data: Option<serde_json::Value>,
    #[serde(default)]
    pub is_transient: Option<bool>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

impl ErrorJson {
    pub fn details(&self) -> Option<String> {
        match self.error_data.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(map) => map.get("details")?.as_str().map(str::to_owned),
            _ => None,
        }
    }
}

impl From<PhoneNumberJson> for PhoneNumber {
    fn from(j: PhoneNumberJson) -> Self {
        let last_onboarded_time = j.last_onboarded_time.as_deref().and_then(parse_graph_time);
        PhoneNumber {
            id: j.id,
            display_phone_number: j.display_phone_number.unwrap_or_default(),
            verified_name: j.verified_name.unwrap_or_default(),
            name_status: j.name_status.unwrap_or_default(),
            new_name_status: j.new_name_status.unwrap_or_default(),
            new_display_name: j.new_display_name.unwrap_or_default(),
            code_verification_status: j.code_verification_status.unwrap_or_default(),
            quality_rating: j.quality_rating.unwrap_or_default(),
            status: j.status.unwrap_or_default(),
            platform_type: j.platform_type.unwrap_or_default(),
            throughput_level: j.throughput.and_then(|t| t.level).unwrap_or_default(),
            messaging_limit_tier: j.messaging_limit_tier.unwrap_or_default(),
            messaging_limit: j
                .whatsapp_business_manager_messaging_limit
                .unwrap_or_default(),
            account_mode: j.account_mode.unwrap_or_default(),
            is_official_business_account: j.is_official_business_account.unwrap_or_default(),
            is_pin_enabled: j.is_pin_enabled.unwrap_or_default(),
            last_onboarded_time,
            is_preverified_number: j.is_preverified_number.unwrap_or_default(),
            is_on_biz_app: j.is_on_biz_app.unwrap_or_default(),
            windows: Default::default(),
        }
    }
}

impl From<PreverifiedJson> for PreverifiedNumber {
    fn from(j: PreverifiedJson) -> Self {
        let time = |t: Option<String>| t.as_deref().and_then(parse_graph_time);
        PreverifiedNumber {
            id: j.id,
            phone_number: j.phone_number.unwrap_or_default(),
            code_verification_status: j.code_verification_status.unwrap_or_default(),
            code_verification_time: time(j.code_verification_time),
            verification_expiry_time: time(j.verification_expiry_time),
        }
    }
}

impl From<PreverifiedListJson> for PreverifiedPage {
    fn from(j: PreverifiedListJson) -> Self {
        PreverifiedPage {
            numbers: j.data.into_iter().map(PreverifiedNumber::from).collect(),
            next_cursor: next_cursor(j.paging),
        }
    }
}

/// Meta's cursor for the next page, only when Meta says there is one.
fn next_cursor(paging: Option<PagingJson>) -> Option<String> {
    paging
        .filter(|p| p.next.is_some())
        .and_then(|p| p.cursors)
        .and_then(|c| c.after)
}

impl From<ListJson> for NumbersPage {
    fn from(j: ListJson) -> Self {
        NumbersPage {
            numbers: j.data.into_iter().map(PhoneNumber::from).collect(),
            next_cursor: next_cursor(j.paging),
        }
    }
}

/// Graph's timestamps look like `2025-02-04T17:40:07+0000` (no colon in the offset).
/// A time that does not parse is dropped rather than failing the whole read.
fn parse_graph_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
        .inspect_err(|_| tracing::warn!(value = s, "unparseable Graph timestamp ignored"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_full_response_fixture() {
        let json = r#"{
          "account_mode": "LIVE", "code_verification_status": "EXPIRED",
          "display_phone_number": "+593 99 999 9999", "is_official_business_account": false,
          "is_pin_enabled": true, "last_onboarded_time": "2025-02-04T17:40:07+0000",
          "messaging_limit_tier": "TIER_1K", "name_status": "APPROVED", "new_name_status": "NONE",
          "whatsapp_business_manager_messaging_limit": "TIER_2K",
          "platform_type": "CLOUD_API", "quality_score": {"date": 1739513802, "score": "GREEN"},
          "status": "CONNECTED", "throughput": {"level": "STANDARD"},
          "verified_name": "Business Phone Numbers Name", "id": "999999999999999",
          "some_future_field": {"x": 1}, "new_display_name": null
        }"#;
        let n: PhoneNumber = serde_json::from_str::<PhoneNumberJson>(json)
            .unwrap()
            .into();
        assert_eq!(n.id, "999999999999999");
        assert_eq!(n.throughput_level, "STANDARD");
        assert_eq!(
            (n.messaging_limit_tier.as_str(), n.messaging_limit.as_str()),
            ("TIER_1K", "TIER_2K")
        );
        assert_eq!(n.code_verification_status, "EXPIRED");
        assert!(n.is_pin_enabled);
        assert_eq!(
            n.last_onboarded_time.unwrap().to_rfc3339(),
            "2025-02-04T17:40:07+00:00"
        );
    }

    #[test]
    fn next_cursor_only_when_meta_says_there_is_a_next_page() {
        let last: ListJson = serde_json::from_str(
            r#"{"data":[{"id":"1"}],"paging":{"cursors":{"before":"b","after":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(NumbersPage::from(last).next_cursor, None);
        let more: ListJson = serde_json::from_str(
            r#"{"data":[],"paging":{"cursors":{"after":"a"},"next":"https://x/y?after=a"}}"#,
        )
        .unwrap();
        assert_eq!(NumbersPage::from(more).next_cursor.as_deref(), Some("a"));
    }

    #[test]
    fn error_data_may_be_an_object_or_a_string() {
        let obj: ErrorEnvelope = serde_json::from_str(
            r#"{"error":{"code":133005,"message":"m","error_data":{"details":"PIN mismatch"}}}"#,
        )
        .unwrap();
        assert_eq!(obj.error.details().as_deref(), Some("PIN mismatch"));
        let s: ErrorEnvelope =
            serde_json::from_str(r#"{"error":{"code":1,"error_data":"flat"}}"#).unwrap();
        assert_eq!(s.error.details().as_deref(), Some("flat"));
    }
}

/// Fuzz targets: whatever Meta (or anything between) answers, parsing never panics.
/// See `src/fuzzing.rs`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Every field name the response types read, so generated objects hit them.
    const KEYS: &[&str] = &[
        "id",
        "data",
        "paging",
        "cursors",
        "after",
        "before",
        "next",
        "display_phone_number",
        "verified_name",
        "name_status",
        "new_name_status",
        "new_display_name",
        "code_verification_status",
        "quality_rating",
        "status",
        "platform_type",
        "throughput",
        "level",
        "messaging_limit_tier",
        "whatsapp_business_manager_messaging_limit",
        "account_mode",
        "is_official_business_account",
        "is_pin_enabled",
        "last_onboarded_time",
        "is_preverified_number",
        "is_on_biz_app",
        "phone_number",
        "code_verification_time",
        "verification_expiry_time",
        "access_token",
        "is_valid",
        "expires_at",
        "granular_scopes",
        "scope",
        "target_ids",
        "code",
        "body",
        "success",
        "error",
        "message",
        "type",
        "error_subcode",
        "error_user_title",
        "error_user_msg",
        "error_data",
        "details",
        "is_transient",
        "fbtrace_id",
    ];

    /// Every way the client reads a Graph answer (`serde_json::from_slice` into the
    /// response types, then into domain types), on `body`.
    pub(super) fn parse_everything(body: &[u8]) {
        if let Ok(list) = serde_json::from_slice::<ListJson>(body) {
            let _ = NumbersPage::from(list);
        }
        if let Ok(number) = serde_json::from_slice::<PhoneNumberJson>(body) {
            let _ = PhoneNumber::from(number);
        }
        if let Ok(pool) = serde_json::from_slice::<PreverifiedListJson>(body) {
            let _ = PreverifiedPage::from(pool);
        }
        if let Ok(one) = serde_json::from_slice::<PreverifiedJson>(body) {
            let _ = PreverifiedNumber::from(one);
        }
        if let Ok(token) = serde_json::from_slice::<DebugTokenJson>(body) {
            let _ = TokenInfo::from(token);
        }
        let _ = serde_json::from_slice::<AccessTokenJson>(body);
        let _ = serde_json::from_slice::<IdJson>(body);
        let _ = serde_json::from_slice::<SuccessJson>(body);
        if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
            let _ = envelope.error.details();
        }
        // A batch: each item's body is itself a number's JSON or an error envelope.
        if let Ok(items) = serde_json::from_slice::<Vec<Option<BatchItem>>>(body) {
            for item in items.into_iter().flatten() {
                if let Ok(number) = serde_json::from_str::<PhoneNumberJson>(&item.body) {
                    let _ = PhoneNumber::from(number);
                }
                let _ = serde_json::from_str::<ErrorEnvelope>(&item.body);
            }
        }
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config())]

        #[test]
        fn fuzz_graph_responses_arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            parse_everything(&body);
        }

        #[test]
        fn fuzz_graph_responses_arbitrary_json_never_panics(value in crate::fuzzing::json_value(KEYS)) {
            parse_everything(value.to_string().as_bytes());
            // The same value as a list page's item, a batch item's body, an error.
            let wrapped = [
                serde_json::json!({ "data": [value.clone()], "paging": value.clone() }),
                serde_json::json!([{ "code": 200, "body": value.to_string() }, null]),
                serde_json::json!({ "error": value.clone() }),
                serde_json::json!({ "data": { "granular_scopes": [value.clone()] } }),
            ];
            for body in wrapped {
                parse_everything(body.to_string().as_bytes());
            }
        }

        #[test]
        fn fuzz_graph_timestamps_never_panic(s in any::<String>()) {
            let _ = parse_graph_time(&s);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        parse_everything(deep.as_bytes());
        let deep_in_a_field = format!(
            r#"{{"data":[{{"id":"1","throughput":{}"#,
            "{\"level\":".repeat(100_000)
        );
        parse_everything(deep_in_a_field.as_bytes());
    }
}
