//! The HTTP side: Meta's webhooks at `/webhooks/whatsapp`, Prometheus at `/metrics` (on
//! the same port, or on a port of its own with `--metrics-listen`).
//!
//! GET answers Meta's verification handshake. POST checks `X-Hub-Signature-256` over the
//! raw body before reading anything, applies the changes to the watchers at once (an
//! in-memory update) and acknowledges. A body over [`WEBHOOK_BODY_LIMIT`] is refused with
//! 413 before it is read whole; JSON nested deeper than serde_json's recursion limit
//! (128) is unreadable (400), not a stack overflow.

use crate::graph::{GraphClient, webhook};
use crate::watch::Hub;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub const WEBHOOK_PATH: &str = "/webhooks/whatsapp";

/// The largest notification body read: Meta documents webhook payloads of up to 3 MB
/// (axum's own default, 2 MB, would refuse the largest). Set here rather than left to
/// axum's default, so it is visible and tested.
pub const WEBHOOK_BODY_LIMIT: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Signs Meta's notifications; without it every POST is refused.
    pub app_secret: Option<SecretString>,
    /// `hub.verify_token` expected in the handshake; without it the handshake is refused.
    pub verify_token: Option<SecretString>,
}

struct Webhooks {
    hub: Hub,
    settings: WebhookSettings,
}

/// `/webhooks/whatsapp` (the server merges [`metrics`] in when /metrics has no port of
/// its own).
pub fn webhooks(hub: Hub, settings: WebhookSettings) -> Router {
    if settings.app_secret.is_none() {
        tracing::warn!("WABA_APP_SECRET is not set: webhook notifications will be refused");
    }
    let state = Arc::new(Webhooks { hub, settings });
    Router::new()
        .route(
            WEBHOOK_PATH,
            get(handshake)
                .post(notification)
                .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .with_state(state)
}

/// What a scrape reads besides the recorder.
struct Scrape {
    hub: Hub,
    graph: Arc<GraphClient>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// `/metrics` alone.
pub fn metrics(hub: Hub, graph: Arc<GraphClient>) -> Router {
    let state = Arc::new(Scrape {
        hub,
        graph,
        metrics: crate::metrics::handle(),
    });
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Prometheus text format, with the gauges that describe state read now.
async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    let Scrape {
        hub,
        graph,
        metrics,
    } = &*scrape;
    let stats = hub.stats();
    metrics::gauge!("waba_watchers", "kind" => "waba").set(stats.waba_watchers as f64);
    metrics::gauge!("waba_watchers", "kind" => "number").set(stats.number_watchers as f64);
    metrics::gauge!("waba_watch_subscriptions").set(stats.subscriptions as f64);
    metrics::gauge!("waba_watchers_polling", "kind" => "waba")
        .set(stats.polling_waba_watchers as f64);
    metrics::gauge!("waba_watchers_polling", "kind" => "number")
        .set(stats.polling_number_watchers as f64);
    // Every task of the runtime (calls, streams, watchers, the fleet's and the store's
    // background work): flat under a steady load, so a leak of tasks shows here.
    let runtime = tokio::runtime::Handle::current().metrics();
    metrics::gauge!("waba_tokio_alive_tasks").set(runtime.num_alive_tasks() as f64);
    if let Some(tokens) = graph.tokens() {
        let token_age = tokens.age().await;
        metrics::gauge!("waba_access_token_age_seconds").set(token_age.as_secs_f64());
    }
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4",
    )];
    (headers, metrics.render()).into_response()
}

async fn handshake(
    State(webhooks): State<Arc<Webhooks>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mode_ok = params.get("hub.mode").is_some_and(|m| m == "subscribe");
    let token_ok = match (
        &webhooks.settings.verify_token,
        params.get("hub.verify_token"),
    ) {
        (Some(expected), Some(given)) => {
            bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes()))
        }
        _ => false,
    };
    match params.get("hub.challenge") {
        Some(challenge) if mode_ok && token_ok => {
            (StatusCode::OK, challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!("webhook verification refused");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

async fn notification(
    State(webhooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let signed = webhooks
        .settings
        .app_secret
        .as_ref()
        .is_some_and(|secret| webhook::signature_is_valid(secret, &body, signature));
    if !signed {
        tracing::warn!("webhook notification with a bad or missing signature refused");
        metrics::counter!("waba_webhooks_total", "result" => "bad_signature").increment(1);
        return StatusCode::FORBIDDEN.into_response();
    }
    match webhook::pushes(&body, chrono::Utc::now().timestamp()) {
        Ok(pushes) => {
            for push in &pushes {
                tracing::debug!(waba_id = %push.waba_id, kind = ?push.kind, "webhook push");
                webhooks.hub.push(push);
            }
            metrics::counter!("waba_webhooks_total", "result" => "accepted").increment(1);
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable webhook notification");
            metrics::counter!("waba_webhooks_total", "result" => "unreadable").increment(1);
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}
