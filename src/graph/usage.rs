//! Meta's rate-limit headers: `X-Business-Use-Case-Usage` and `X-App-Usage`, and the
//! standard `Retry-After` of a 429.
//!
//! Values are percentages of a limit. A missing header means "unknown", not "0 %".

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One use case's usage of one business object (for WhatsApp, a WABA).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BucUsage {
    #[serde(default, rename = "type")]
    pub use_case: String,
    #[serde(default)]
    pub call_count: u32,
    #[serde(default)]
    pub total_cputime: u32,
    #[serde(default)]
    pub total_time: u32,
    /// Minutes until throttling lifts; 0 when not throttled.
    #[serde(default)]
    pub estimated_time_to_regain_access: u32,
}

impl BucUsage {
    /// The highest of the three percentages.
    pub fn percent(&self) -> u32 {
        self.call_count.max(self.total_cputime).max(self.total_time)
    }
}

/// Platform rate-limit usage of the app (`X-App-Usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct AppUsage {
    #[serde(default)]
    pub call_count: u32,
    #[serde(default)]
    pub total_cputime: u32,
    #[serde(default)]
    pub total_time: u32,
}

/// What one response's headers said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub business: HashMap<String, Vec<BucUsage>>,
    pub app: Option<AppUsage>,
    /// `Retry-After`: seconds, or an HTTP date (read against the wall clock).
    pub retry_after: Option<Duration>,
}

impl Usage {
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let json = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let business = json("x-business-use-case-usage")
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let app = json("x-app-usage").and_then(|v| serde_json::from_str(v).ok());
        let retry_after = json("retry-after").and_then(parse_retry_after);
        Usage {
            business,
            app,
            retry_after,
        }
    }

    /// How long until access is regained, when any use case is throttled.
    pub fn regain_access_in(&self) -> Option<Duration> {
        let minutes = self
            .business
            .values()
            .flatten()
            .map(|u| u.estimated_time_to_regain_access)
            .max()?;
        (minutes > 0).then(|| Duration::from_secs(u64::from(minutes) * 60))
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date; a date in the past
/// is no wait, a value that parses as neither is ignored.
/// A wait longer than [`MAX_RETRY_AFTER`] is taken as that (a strange answer must not
/// hold reads back for years, nor overflow a deadline).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let left = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(left.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// The longest `Retry-After` believed: a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Usage last reported for an object, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub usage: Vec<BucUsage>,
    pub at: Instant,
}

impl Observed {
    /// The highest percentage of any use case, if reported within the last hour.
    pub fn percent(&self) -> Option<u32> {
        if self.at.elapsed() > Duration::from_secs(3600) {
            return None;
        }
        self.usage.iter().map(BucUsage::percent).max()
    }
}

/// The latest usage Meta reported, per business object and for the app.
#[derive(Debug, Default)]
pub struct UsageTracker {
    business: Mutex<HashMap<String, Observed>>,
    app: Mutex<Option<AppUsage>>,
    /// When Meta said throttling would lift, if it said so lately.
    regain_at: Mutex<Option<Instant>>,
}

impl UsageTracker {
    pub fn record(&self, usage: &Usage) {
        let now = Instant::now();
        if !usage.business.is_empty() {
            let mut business = self.business.lock().unwrap_or_else(|p| p.into_inner());
            for (object, entries) in &usage.business {
                for entry in entries {
                    for (metric, value) in [
                        ("call_count", entry.call_count),
                        ("total_cputime", entry.total_cputime),
                        ("total_time", entry.total_time),
                    ] {
                        let labels = [
                            ("business_id", object.clone()),
                            ("use_case", entry.use_case.clone()),
                            ("metric", metric.to_owned()),
                        ];
                        metrics::gauge!("waba_graph_usage_percent", &labels).set(f64::from(value));
                    }
                }
                let observed = Observed {
                    usage: entries.clone(),
                    at: now,
                };
                business.insert(object.clone(), observed);
            }
        }
        if let Some(app) = usage.app {
            for (metric, value) in [
                ("call_count", app.call_count),
                ("total_cputime", app.total_cputime),
                ("total_time", app.total_time),
            ] {
                metrics::gauge!("waba_graph_app_usage_percent", "metric" => metric)
                    .set(f64::from(value));
            }
            *self.app.lock().unwrap_or_else(|p| p.into_inner()) = Some(app);
        }
        if let Some(wait) = usage.regain_access_in() {
            *self.regain_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now + wait);
        }
    }

    /// How long until Meta said throttling would lift, if that is still ahead.
    pub fn regain_access_in(&self) -> Option<Duration> {
        let regain_at = (*self.regain_at.lock().unwrap_or_else(|p| p.into_inner()))?;
        let wait = regain_at.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then_some(wait)
    }

    /// The latest usage Meta reported for a business object (a WABA id), if any.
    pub fn business(&self, object_id: &str) -> Option<Observed> {
        let business = self.business.lock().unwrap_or_else(|p| p.into_inner());
        business.get(object_id).cloned()
    }

    /// How long Meta said `object_id` (a WABA id) stays throttled, if that is still ahead:
    /// `estimated_time_to_regain_access` as last reported for it.
    pub fn throttled_for(&self, object_id: &str) -> Option<Duration> {
        let observed = self.business(object_id)?;
        let minutes = observed
            .usage
            .iter()
            .map(|u| u.estimated_time_to_regain_access)
            .max()?;
        let until = observed.at + Duration::from_secs(u64::from(minutes) * 60);
        let wait = until.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then_some(wait)
    }

    /// The highest usage Meta reported lately for any object, or for the app.
    pub fn max_percent(&self) -> Option<u32> {
        let business = self.business.lock().unwrap_or_else(|p| p.into_inner());
        let objects = business.values().filter_map(Observed::percent);
        let app = self
            .app()
            .map(|a| a.call_count.max(a.total_cputime).max(a.total_time));
        objects.chain(app).max()
    }

    pub fn app(&self) -> Option<AppUsage> {
        *self.app.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn parses_both_headers_and_the_time_to_regain_access() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"1029":[{"type":"whatsapp_business_management","call_count":95,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":19}]}"#,
            ),
        );
        headers.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":16,"total_cputime":15,"total_time":12}"#),
        );
        let usage = Usage::from_headers(&headers);
        assert_eq!(usage.business["1029"][0].percent(), 95);
        assert_eq!(usage.app.unwrap().call_count, 16);
        assert_eq!(usage.regain_access_in(), Some(Duration::from_secs(19 * 60)));
    }

    #[test]
    fn missing_or_malformed_headers_mean_unknown() {
        let mut headers = HeaderMap::new();
        headers.insert("x-app-usage", HeaderValue::from_static("not json"));
        let usage = Usage::from_headers(&headers);
        assert!(usage.business.is_empty());
        assert_eq!(usage.app, None);
        assert_eq!(usage.regain_access_in(), None);
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        // Strange answers: at most a day, never an overflow.
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("-5"), None);
    }
}

/// Fuzz target: any usage header Meta (or a proxy) sends never panics the parser or
/// the tracker. See `src/fuzzing.rs`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    const KEYS: &[&str] = &[
        "102290129340398",
        "type",
        "call_count",
        "total_cputime",
        "total_time",
        "estimated_time_to_regain_access",
    ];

    fn record(business: &str, app: &str) {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-business-use-case-usage", business),
            ("x-app-usage", app),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        let usage = Usage::from_headers(&headers);
        let _ = usage.regain_access_in();
        let tracker = UsageTracker::default();
        tracker.record(&usage);
        let _ = (
            tracker.regain_access_in(),
            tracker.max_percent(),
            tracker.app(),
        );
        for object in usage.business.keys() {
            let _ = tracker.throttled_for(object);
        }
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config())]

        #[test]
        fn fuzz_usage_headers_arbitrary_strings_never_panic(business in any::<String>(), app in any::<String>()) {
            record(&business, &app);
        }

        #[test]
        fn fuzz_usage_headers_arbitrary_json_never_panics(
            business in crate::fuzzing::json_value(KEYS),
            app in crate::fuzzing::json_value(KEYS),
            minutes in any::<u32>(),
        ) {
            record(&business.to_string(), &app.to_string());
            // The largest wait Meta could state, for a WABA.
            let throttled = serde_json::json!({ "102290129340398": [{ "estimated_time_to_regain_access": minutes }] });
            record(&throttled.to_string(), "{}");
        }
    }
}
