//! The world as Meta's JSON: the phone-number and pre-verified-number nodes with
//! `fields=` honoured, and the `{data, paging, summary}` envelope of edges.

use super::customers::{
    Grant, PARTNER_SYSTEM_USER_ID, SANDBOX_APP_ID, SANDBOX_APP_NAME, Subscription,
    app_not_installed,
};
use super::lifecycle::country_of;
use super::params::Params;
use super::preverified::PreVerified;
use super::state::{DEMO_BUSINESS_ID, Fault, Number, graph_time};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Fields a phone-number node has in the sandbox: every one graph-api.md §2.1 lists but
/// `username`, which Meta refuses with error 100 "nonexisting field" since v24.0, as
/// the sandbox refuses any other.
pub const NUMBER_FIELDS: &[&str] = &[
    "id",
    "display_phone_number",
    "verified_name",
    "name_status",
    "new_name_status",
    "new_display_name",
    "code_verification_status",
    "quality_rating",
    "quality_score",
    "status",
    "platform_type",
    "throughput",
    "messaging_limit_tier",
    "whatsapp_business_manager_messaging_limit",
    "account_mode",
    "is_official_business_account",
    "is_pin_enabled",
    "is_on_biz_app",
    "is_preverified_number",
    "last_onboarded_time",
    "health_status",
    "certificate",
    "new_certificate",
    "search_visibility",
    "eligibility_for_api_business_global_search",
    "webhook_configuration",
    "conversational_automation",
    "country_code",
    "country_dial_code",
];

/// What Meta returns when `fields` is absent.
const NUMBER_DEFAULTS: &[&str] = &[
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "last_onboarded_time",
    "webhook_configuration",
    "id",
];

const PREVERIFIED_FIELDS: &[&str] = &[
    "id",
    "phone_number",
    "code_verification_status",
    "code_verification_time",
    "verification_expiry_time",
    "owner_business",
];

const PREVERIFIED_DEFAULTS: &[&str] = &[
    "id",
    "phone_number",
    "code_verification_status",
    "code_verification_time",
    "verification_expiry_time",
];

/// The kinds of node `fields=` applies to.
#[derive(Debug, Clone, Copy)]
pub enum Node {
    PhoneNumber,
    PreVerified,
}

impl Node {
    fn spec(
        self,
    ) -> (
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
    ) {
        match self {
            Node::PhoneNumber => (
                NUMBER_FIELDS,
                NUMBER_DEFAULTS,
                "WhatsAppBusinessPhoneNumber",
            ),
            Node::PreVerified => (
                PREVERIFIED_FIELDS,
                PREVERIFIED_DEFAULTS,
                "WhatsAppBusinessPreVerifiedPhoneNumber",
            ),
        }
    }
}

/// The fields asked for (`fields=a,b`), or the node's defaults; an unknown one is
/// Meta's error 100.
pub fn requested_fields(param: Option<&str>, node: Node) -> Result<Vec<&'static str>, Fault> {
    let (fields, defaults, node_type) = node.spec();
    let Some(param) = param.filter(|p| !p.trim().is_empty()) else {
        return Ok(defaults.to_vec());
    };
    param
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            fields.iter().copied().find(|f| *f == name).ok_or_else(|| {
                Fault::invalid_parameter(format!(
                    "Tried accessing nonexisting field ({name}) on node type ({node_type})"
                ))
            })
        })
        .collect()
}

/// What a phone-number node says about things outside it.
pub struct Context<'a> {
    /// The app's webhook callback (`webhook_configuration.application`).
    pub webhook_url: &'a str,
    /// The business portfolio owning the number's WABA.
    pub business_id: &'a str,
}

pub fn number_json(n: &Number, fields: &[&str], context: &Context) -> Value {
    let mut map = Map::new();
    let text = |s: &str| (!s.is_empty()).then(|| Value::from(s));
    for &field in fields {
        let value = match field {
            "id" => text(&n.id),
            "display_phone_number" => text(&n.display_phone_number),
            "verified_name" => text(&n.verified_name),
            "name_status" => text(&n.name_status),
            "new_name_status" => text(&n.new_name_status),
            "new_display_name" => text(&n.new_display_name),
            "code_verification_status" => text(&n.code_verification_status),
            "quality_rating" => text(&n.quality_rating),
            "quality_score" => Some(json!({ "score": n.quality_rating })),
            "status" => text(&n.status),
            "platform_type" => text(&n.platform_type),
            "throughput" => Some(json!({ "level": n.throughput_level })),
            "messaging_limit_tier" => text(&n.messaging_limit_tier),
            "whatsapp_business_manager_messaging_limit" => text(&n.messaging_limit),
            "account_mode" => text(&n.account_mode),
            "is_official_business_account" => Some(n.is_official_business_account.into()),
            "is_pin_enabled" => Some(n.is_pin_enabled().into()),
            "is_on_biz_app" => Some(false.into()),
            "is_preverified_number" => Some(n.is_preverified_number.into()),
            "last_onboarded_time" => text(&n.last_onboarded_time),
            "health_status" => Some(health_status(n, context)),
            "certificate" => matches!(
                n.name_status.as_str(),
                "APPROVED" | "AVAILABLE_WITHOUT_REVIEW"
            )
            .then(|| certificate(n, &n.verified_name)),
            "new_certificate" => {
                (n.new_name_status == "APPROVED").then(|| certificate(n, &n.new_display_name))
            }
            "search_visibility" => Some("NON_VISIBLE".into()),
            "eligibility_for_api_business_global_search" => {
                Some("NON_ELIGIBLE_NUMBER_OUTSIDE_ROLLOUT_COUNTRIES".into())
            }
            "webhook_configuration" => Some(json!({ "application": context.webhook_url })),
            "conversational_automation" => Some(json!({
                "enable_welcome_message": false,
                "prompts": [],
                "commands": [],
            })),
            "country_code" => country_of(&n.country_dial_code).map(Value::from),
            "country_dial_code" => text(&n.country_dial_code),
            _ => None,
        };
        if let Some(value) = value {
            map.insert(field.to_owned(), value);
        }
    }
    // Meta always answers with the id.
    map.insert("id".into(), n.id.clone().into());
    Value::Object(map)
}

/// A made-up display-name certificate: base64, as Meta's are, and stable.
fn certificate(n: &Number, name: &str) -> Value {
    STANDARD
        .encode(format!("sandbox-certificate:{}:{name}", n.digits()))
        .into()
}

/// §2.4's shape: the number's own state, its WABA and business (always available in
/// the sandbox); the overall value is the worst of them.
fn health_status(n: &Number, context: &Context) -> Value {
    let mut number = json!({ "entity_type": "PHONE_NUMBER", "id": n.id });
    let overall = if !n.is_registered() {
        number["errors"] = json!([{
            "error_code": 141010,
            "error_description": "The phone number is not registered on the Cloud API.",
            "possible_solution": "Register the phone number (POST /{PHONE_NUMBER_ID}/register).",
        }]);
        "BLOCKED"
    } else if !matches!(
        n.name_status.as_str(),
        "APPROVED" | "AVAILABLE_WITHOUT_REVIEW"
    ) {
        number["additional_info"] = json!([
            "Your display name has not been approved yet. Your message limit will be increased after the display name is approved."
        ]);
        "LIMITED"
    } else if n.status == "FLAGGED" {
        number["additional_info"] =
            json!(["The phone number's quality rating is low: its messaging limit may drop."]);
        "LIMITED"
    } else {
        "AVAILABLE"
    };
    number["can_send_message"] = overall.into();
    json!({
        "can_send_message": overall,
        "entities": [
            number,
            { "entity_type": "WABA", "id": n.waba_id, "can_send_message": "AVAILABLE" },
            { "entity_type": "BUSINESS", "id": context.business_id, "can_send_message": "AVAILABLE" },
        ],
    })
}

pub fn preverified_json(entry: &PreVerified, fields: &[&str]) -> Value {
    let mut map = Map::new();
    for &field in fields {
        let value = match field {
            "phone_number" => Some(entry.phone_number.clone().into()),
            "code_verification_status" => Some(entry.code_verification_status.clone().into()),
            "code_verification_time" => entry.code_verification_time.map(|t| graph_time(t).into()),
            "verification_expiry_time" => {
                entry.verification_expiry_time.map(|t| graph_time(t).into())
            }
            "owner_business" => Some(json!({ "id": entry.business_id })),
            _ => None,
        };
        if let Some(value) = value {
            map.insert(field.to_owned(), value);
        }
    }
    map.insert("id".into(), entry.id.clone().into());
    Value::Object(map)
}

/// The token `debug_token` was asked about.
pub enum Inspected<'a> {
    /// A customer's business token, live or revoked.
    Business(&'a Grant),
    /// The partner's system-user token: it reaches every WABA.
    Partner {
        waba_ids: Vec<&'a str>,
        issued_at: DateTime<Utc>,
    },
    /// The app token itself.
    App,
    /// No token the sandbox issued.
    Unknown,
}

/// `debug_token`'s answer, graph-api.md §6.3's shape. A business token: `type`
/// `SYSTEM_USER`, `expires_at` and `data_access_expires_at` 0 (business tokens never
/// expire), `scopes` and `granular_scopes` naming its WABA for
/// `whatsapp_business_management` and `whatsapp_business_messaging`, and its business
/// for `business_management` (where a partner finds the customer's business id),
/// `user_id` its system user; revoked, `is_valid: false` with `error` {code 190,
/// subcode 458, message} and no scopes. The partner token: every WABA, the demo
/// business. An unknown token: `{is_valid: false, error: {code 190, message}, scopes:
/// []}`, as Meta answers for a token it cannot parse.
pub fn debug_token_json(inspected: &Inspected) -> Value {
    let system_user = |wabas: Vec<&str>, business: &str, user: &str, issued: DateTime<Utc>| {
        json!({
            "app_id": SANDBOX_APP_ID,
            "type": "SYSTEM_USER",
            "application": SANDBOX_APP_NAME,
            "data_access_expires_at": 0,
            "expires_at": 0,
            "is_valid": true,
            "issued_at": issued.timestamp(),
            "scopes": SCOPES,
            "granular_scopes": [
                { "scope": SCOPES[0], "target_ids": wabas },
                { "scope": SCOPES[1], "target_ids": wabas },
                { "scope": SCOPES[2], "target_ids": [business] },
            ],
            "user_id": user,
        })
    };
    let data = match inspected {
        Inspected::Business(grant) if grant.revoked => {
            let fault = app_not_installed();
            json!({
                "app_id": SANDBOX_APP_ID,
                "type": "SYSTEM_USER",
                "application": SANDBOX_APP_NAME,
                "data_access_expires_at": 0,
                "expires_at": 0,
                "is_valid": false,
                "issued_at": grant.issued_at.timestamp(),
                "error": { "code": fault.code, "message": fault.message, "subcode": fault.subcode },
                "scopes": [],
                "user_id": grant.user_id,
            })
        }
        Inspected::Business(grant) => system_user(
            vec![&grant.waba_id],
            &grant.business_id,
            &grant.user_id,
            grant.issued_at,
        ),
        Inspected::Partner {
            waba_ids,
            issued_at,
        } => system_user(
            waba_ids.clone(),
            DEMO_BUSINESS_ID,
            PARTNER_SYSTEM_USER_ID,
            *issued_at,
        ),
        Inspected::App => json!({
            "app_id": SANDBOX_APP_ID,
            "type": "APP",
            "application": SANDBOX_APP_NAME,
            "is_valid": true,
            "scopes": [],
        }),
        Inspected::Unknown => json!({
            "error": {
                "code": 190,
                "message": "Invalid OAuth access token - Cannot parse access token",
            },
            "is_valid": false,
            "scopes": [],
        }),
    };
    json!({ "data": data })
}

/// The scopes of every system-user token the sandbox issues.
const SCOPES: [&str; 3] = [
    "whatsapp_business_management",
    "whatsapp_business_messaging",
    "business_management",
];

/// `GET /{waba}/subscribed_apps`: `{"data": [{"whatsapp_business_api_data": {id, name,
/// link}}]}` while the app is subscribed (with `override_callback_uri` when one was
/// given), `{"data": []}` otherwise.
pub fn subscribed_apps_json(subscription: Option<&Subscription>) -> Value {
    let data: Vec<Value> = subscription
        .map(|s| {
            let mut app = json!({ "whatsapp_business_api_data": {
                "id": SANDBOX_APP_ID,
                "name": SANDBOX_APP_NAME,
                "link": format!("https://www.facebook.com/games/?app_id={SANDBOX_APP_ID}"),
            }});
            if let Some(uri) = &s.override_callback_uri {
                app["override_callback_uri"] = uri.clone().into();
            }
            app
        })
        .into_iter()
        .collect();
    json!({ "data": data })
}

/// Where an edge's paging links point: the edge's URL and the call's parameters.
pub struct Link<'a> {
    pub url: String,
    pub params: &'a Params,
}

/// The part of an edge a page shows: `[start, end)` of `total` items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub limit: usize,
}

/// The page `limit`, `after` and `before` ask for, of an edge of `total` items.
pub fn window(params: &Params, total: usize) -> Result<Window, Fault> {
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => 25,
        Some(Ok(n)) if n > 0 => n.min(100),
        Some(_) => {
            return Err(Fault::invalid_parameter(
                "Param limit must be a positive integer",
            ));
        }
    };
    let cursor = |name| match params.get(name).map(decode_cursor) {
        None => Ok(None),
        Some(Some(offset)) if offset <= total => Ok(Some(offset)),
        Some(_) => Err(Fault::invalid_parameter("Invalid cursor")),
    };
    let (start, end) = match (cursor("after")?, cursor("before")?) {
        (Some(after), _) => (after, after.saturating_add(limit).min(total)),
        (None, Some(before)) => (before.saturating_sub(limit), before),
        (None, None) => (0, limit.min(total)),
    };
    Ok(Window { start, end, limit })
}

/// `{data, paging}` as Meta pages an edge: cursors when there is data, `next` and
/// `previous` when there is a page that way; `summary.total_count` when asked for
/// (`summary=total_count` or `summary=true`).
pub fn edge(data: Vec<Value>, window: Window, total: usize, link: &Link) -> Value {
    let mut body = json!({ "data": data });
    if window.end > window.start {
        let before = encode_cursor(window.start);
        let after = encode_cursor(window.end);
        body["paging"] = json!({ "cursors": { "before": before, "after": after } });
        let to = |cursor: &str, value: &str| {
            let mut query: Vec<(&str, &str)> = link
                .params
                .for_link()
                .into_iter()
                .filter(|(k, _)| *k != "limit")
                .collect();
            let limit = window.limit.to_string();
            query.push(("limit", &limit));
            query.push((cursor, value));
            reqwest::Url::parse_with_params(&link.url, &query)
                .map(|url| Value::from(url.as_str()))
                .ok()
        };
        if window.end < total
            && let Some(next) = to("after", &after)
        {
            body["paging"]["next"] = next;
        }
        if window.start > 0
            && let Some(previous) = to("before", &before)
        {
            body["paging"]["previous"] = previous;
        }
    }
    let summary = link.params.get("summary").is_some_and(|s| {
        s.split(',')
            .any(|f| matches!(f.trim(), "total_count" | "true" | "1"))
    });
    if summary {
        body["summary"] = json!({ "total_count": total });
    }
    body
}

const CURSOR_PREFIX: &str = "sandbox:";

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(CURSOR_PREFIX)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut params = Params::default();
        for (k, v) in pairs {
            params.insert(k, *v);
        }
        params
    }

    #[test]
    fn pages_go_both_ways() {
        let first = window(&params(&[("limit", "10")]), 34).unwrap();
        assert_eq!((first.start, first.end), (0, 10));
        let link_params = params(&[("limit", "10"), ("fields", "id"), ("summary", "true")]);
        let link = Link {
            url: "http://h/v25.0/1/phone_numbers".into(),
            params: &link_params,
        };
        let body = edge(vec![json!({}); 10], first, 34, &link);
        assert!(body["paging"].get("previous").is_none());
        assert_eq!(body["summary"]["total_count"], 34);
        let next = body["paging"]["cursors"]["after"].as_str().unwrap();
        let second = window(&params(&[("limit", "10"), ("after", next)]), 34).unwrap();
        assert_eq!((second.start, second.end), (10, 20));
        let body = edge(vec![json!({}); 10], second, 34, &link);
        let previous = body["paging"]["previous"].as_str().unwrap();
        assert!(previous.contains("fields=id") && previous.contains("before="));
        let before = body["paging"]["cursors"]["before"].as_str().unwrap();
        let back = window(&params(&[("limit", "10"), ("before", before)]), 34).unwrap();
        assert_eq!((back.start, back.end), (0, 10));
        assert!(window(&params(&[("after", "nonsense")]), 34).is_err());
        assert!(window(&params(&[("limit", "0")]), 34).is_err());
    }

    #[test]
    fn unknown_fields_are_refused_with_100() {
        let err = requested_fields(Some("id,username"), Node::PhoneNumber).unwrap_err();
        assert!(err.message.contains("nonexisting field (username)"));
        assert_eq!(
            requested_fields(None, Node::PreVerified).unwrap(),
            PREVERIFIED_DEFAULTS
        );
        let all = NUMBER_FIELDS.join(",");
        assert_eq!(
            requested_fields(Some(&all), Node::PhoneNumber)
                .unwrap()
                .len(),
            29
        );
    }
}
