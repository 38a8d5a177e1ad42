//! The simulated Graph API over HTTP: Meta's paths, JSON, error envelope and headers.

use super::SandboxOptions;
use super::state::{Announcement, Fault, Number, RegisterParams, World};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;
use tokio::time::Instant;

type Params = Query<HashMap<String, String>>;

/// The call counter: outside Meta's versioned paths, answered without a token.
pub const CALLS_PATH: &str = "/_sandbox/calls";

pub struct Shared {
    world: Mutex<World>,
    options: SandboxOptions,
    /// What Meta would announce by webhook, on its way to the delivery task.
    outbox: mpsc::UnboundedSender<Announcement>,
    calls: Calls,
}

/// Calls answered since start, per endpoint (not under the world's lock).
#[derive(Default)]
struct Calls {
    /// `GET /{id}`.
    node: AtomicU64,
    /// `GET /{waba}/phone_numbers`.
    phone_numbers: AtomicU64,
    /// `POST /{id}/register`.
    register: AtomicU64,
    /// `POST /` batch requests, and the operations in them.
    batch: AtomicU64,
    batch_items: AtomicU64,
    /// Unknown paths.
    other: AtomicU64,
}

impl Calls {
    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `total` counts calls as Meta's rate limits do (each batch operation is one);
    /// `requests` counts HTTP requests (a batch is one).
    fn json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (node, list, register) = (
            get(&self.node),
            get(&self.phone_numbers),
            get(&self.register),
        );
        let (batch, items, other) = (get(&self.batch), get(&self.batch_items), get(&self.other));
        json!({
            "total": node + list + register + items + other,
            "requests": node + list + register + batch + other,
            "endpoints": {
                "node": node,
                "phone_numbers": list,
                "register": register,
                "batch": batch,
                "batch_items": items,
                "other": other,
            },
        })
    }
}

impl Shared {
    pub fn new(
        world: World,
        options: SandboxOptions,
        outbox: mpsc::UnboundedSender<Announcement>,
    ) -> Self {
        Self {
            world: Mutex::new(world),
            options,
            outbox,
            calls: Calls::default(),
        }
    }

    /// The world with every change due by now applied (and announced).
    pub fn world(&self) -> MutexGuard<'_, World> {
        let mut world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        for announcement in world.settle(Instant::now()) {
            let _ = self.outbox.send(announcement);
        }
        world
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{version}/", post(batch))
        .route("/{version}/{node}", get(read_node))
        .route("/{version}/{node}/phone_numbers", get(list_numbers))
        .route("/{version}/{node}/register", post(register))
        .route(CALLS_PATH, get(calls))
        .fallback(|State(shared): State<Arc<Shared>>| async move {
            Calls::count(&shared.calls.other, 1);
            failure(
                Fault::invalid_parameter("Unsupported request: unknown path components"),
                None,
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// `GET /_sandbox/calls`: the calls answered so far.
async fn calls(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.calls.json()).into_response()
}

/// Meta's checks before any endpoint: a versioned path, an access token, and the
/// `appsecret_proof` when the app requires one. The configured latency passes first.
/// Only the call counter is exempt from both.
async fn authenticate(
    State(shared): State<Arc<Shared>>,
    Query(params): Params,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == CALLS_PATH {
        return next.run(request).await;
    }
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }
    let version = request.uri().path().split('/').nth(1).unwrap_or_default();
    if !is_version(version) {
        let message = format!("Unknown path components: /{version}");
        return failure(Fault::new(2500, "OAuthException", message), None);
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = bearer.or_else(|| params.get("access_token").cloned()) else {
        let message = "An access token is required to request this resource.";
        return failure(Fault::new(104, "OAuthException", message), None);
    };
    let options = &shared.options;
    let token_ok = |expected: &secrecy::SecretString| {
        bool::from(subtle_eq(
            expected.expose_secret().as_bytes(),
            token.as_bytes(),
        ))
    };
    if options.access_token.as_ref().is_some_and(|t| !token_ok(t)) {
        let message = "Invalid OAuth access token - Cannot parse access token";
        return failure(Fault::new(190, "OAuthException", message), None);
    }
    if let Some(secret) = &options.app_secret {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("any key length");
        mac.update(token.as_bytes());
        let given = params
            .get("appsecret_proof")
            .map(|p| hex::decode(p).unwrap_or_default());
        match given {
            None => {
                let message = "API calls from the server require an appsecret_proof argument";
                return failure(Fault::new(100, "GraphMethodException", message), None);
            }
            Some(proof) if mac.verify_slice(&proof).is_err() => {
                let message = "Invalid appsecret_proof provided in the API argument";
                return failure(Fault::new(100, "GraphMethodException", message), None);
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

async fn read_node(
    State(shared): State<Arc<Shared>>,
    Path((_version, node)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    Calls::count(&shared.calls.node, 1);
    match read_number(&shared, &node, params.get("fields")) {
        Ok(read) => success(read.body, &read.waba_id, read.usage),
        Err(e) => failure(e.fault, e.waba_id.as_deref()),
    }
}

/// A number as read: its JSON, its WABA and the WABA's usage in percent.
struct Read {
    body: Value,
    waba_id: String,
    usage: u32,
}

/// A failed read, with the WABA when its rate limit is the cause.
struct Failed {
    fault: Fault,
    waba_id: Option<String>,
}

fn failed(fault: Fault, waba_id: Option<String>) -> Box<Failed> {
    Box::new(Failed { fault, waba_id })
}

/// `GET /{id}?fields=`.
fn read_number(shared: &Shared, id: &str, fields: Option<&String>) -> Result<Read, Box<Failed>> {
    let mut world = shared.world();
    let number = world.number(id).map_err(|f| failed(f, None))?.clone();
    let waba_id = number.waba_id.clone();
    let usage = match world.charge(&waba_id, Instant::now()) {
        Ok(usage) => usage,
        Err(fault) => return Err(failed(fault, Some(waba_id))),
    };
    drop(world);
    let fields = requested_fields(fields).map_err(|f| failed(f, None))?;
    Ok(Read {
        body: number_json(&number, &fields),
        waba_id,
        usage,
    })
}

/// `POST /` with `batch`: up to 50 GETs of number nodes, each answered on its own.
async fn batch(
    State(shared): State<Arc<Shared>>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    Calls::count(&shared.calls.batch, 1);
    let operations = match params
        .get("batch")
        .map(|b| serde_json::from_str::<Vec<Value>>(b))
    {
        Some(Ok(operations)) => operations,
        Some(Err(_)) => return failure(Fault::invalid_parameter("Invalid batch parameter"), None),
        None => {
            return failure(
                Fault::invalid_parameter("The parameter batch is required"),
                None,
            );
        }
    };
    if operations.len() > 50 {
        let message = "Too many requests in batch message. Maximum batch size is 50";
        return failure(Fault::invalid_parameter(message), None);
    }
    Calls::count(&shared.calls.batch_items, operations.len() as u64);
    let items: Vec<Value> = operations
        .iter()
        .map(|op| {
            let method = op.get("method").and_then(Value::as_str).unwrap_or("GET");
            let relative = op.get("relative_url").and_then(Value::as_str).unwrap_or_default();
            let url = reqwest::Url::parse(&format!("http://graph/{}", relative.trim_start_matches('/')));
            let answer = match url {
                Ok(url) if method == "GET" && url.path_segments().is_some_and(|s| s.count() == 1) => {
                    let id = url.path().trim_start_matches('/').to_owned();
                    let fields = url.query_pairs().find(|(k, _)| k == "fields").map(|(_, v)| v.into_owned());
                    read_number(&shared, &id, fields.as_ref())
                        .map(|read| read.body)
                        .map_err(|e| e.fault)
                }
                _ => Err(Fault::invalid_parameter("Unsupported batch operation")),
            };
            match answer {
                Ok(body) => json!({ "code": 200, "body": body.to_string() }),
                Err(fault) => json!({ "code": fault.http_status, "body": error_json(&fault, &trace_id()).to_string() }),
            }
        })
        .collect();
    (StatusCode::OK, Json(Value::Array(items))).into_response()
}

async fn list_numbers(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    Calls::count(&shared.calls.phone_numbers, 1);
    let fields = match requested_fields(params.get("fields")) {
        Ok(fields) => fields,
        Err(fault) => return failure(fault, None),
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if n > 0 => n.min(100),
        Some(_) => {
            return failure(
                Fault::invalid_parameter("Param limit must be a positive integer"),
                None,
            );
        }
    };
    let offset = match params.get("after").map(|c| decode_cursor(c)) {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => return failure(Fault::invalid_parameter("Invalid cursor"), None),
    };

    let mut world = shared.world();
    if !world.is_waba(&waba_id) {
        return failure(Fault::unknown_object(&waba_id), None);
    }
    let usage = match world.charge(&waba_id, Instant::now()) {
        Ok(usage) => usage,
        Err(fault) => return failure(fault, Some(&waba_id)),
    };
    let (numbers, more) = match world.page(&waba_id, offset, limit) {
        Ok(page) => page,
        Err(fault) => return failure(fault, None),
    };
    let data: Vec<Value> = numbers.iter().map(|n| number_json(n, &fields)).collect();
    let count = data.len();
    drop(world);

    let mut body = json!({ "data": data });
    if count > 0 {
        let after = encode_cursor(offset + count);
        body["paging"] = json!({
            "cursors": { "before": encode_cursor(offset), "after": after },
        });
        if more {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let mut query = vec![("limit", limit.to_string()), ("after", after)];
            if let Some(fields) = params.get("fields") {
                query.insert(0, ("fields", fields.clone()));
            }
            let base = format!("http://{host}/{version}/{waba_id}/phone_numbers");
            if let Ok(next) = reqwest::Url::parse_with_params(&base, &query) {
                body["paging"]["next"] = next.as_str().into();
            }
        }
    }
    if params
        .get("summary")
        .is_some_and(|s| s.split(',').any(|f| f == "total_count"))
    {
        let total = shared
            .world()
            .page(&waba_id, 0, usize::MAX)
            .map_or(0, |p| p.0.len());
        body["summary"] = json!({ "total_count": total });
    }
    success(body, &waba_id, usage)
}

async fn register(
    State(shared): State<Arc<Shared>>,
    Path((_version, node)): Path<(String, String)>,
    Query(mut params): Params,
    body: axum::body::Bytes,
) -> Response {
    Calls::count(&shared.calls.register, 1);
    // Meta takes the parameters as a JSON body or as query/form parameters.
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) {
        for (key, value) in fields {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.insert(key, text);
        }
    }
    let register = RegisterParams {
        messaging_product: params.remove("messaging_product"),
        pin: params.remove("pin"),
        data_localization_region: params.remove("data_localization_region"),
    };
    let now = Instant::now();
    let mut world = shared.world();
    let waba_id = match world.number(&node) {
        Ok(n) => n.waba_id.clone(),
        Err(fault) => return failure(fault, None),
    };
    let usage = match world.charge(&waba_id, now) {
        Ok(usage) => usage,
        Err(fault) => return failure(fault, Some(&waba_id)),
    };
    match world.register(&node, register, now) {
        Ok(()) => success(json!({ "success": true }), &waba_id, usage),
        Err(fault) => failure(fault, Some(&waba_id)),
    }
}

/// Fields a phone-number node has in the sandbox. Any other is refused with error 100
/// "nonexisting field", as Meta refuses `username` since v24.0.
const FIELDS: &[&str] = &[
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
    "last_onboarded_time",
];

/// What Meta returns when `fields` is absent.
const DEFAULT_FIELDS: &[&str] = &[
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "last_onboarded_time",
    "id",
];

fn requested_fields(param: Option<&String>) -> Result<Vec<&'static str>, Fault> {
    let Some(param) = param.filter(|p| !p.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    param
        .split(',')
        .map(str::trim)
        .map(|name| {
            FIELDS.iter().copied().find(|f| *f == name).ok_or_else(|| {
                Fault::invalid_parameter(format!(
                    "Tried accessing nonexisting field ({name}) on node type (WhatsAppBusinessPhoneNumber)"
                ))
            })
        })
        .collect()
}

fn number_json(n: &Number, fields: &[&str]) -> Value {
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
            "last_onboarded_time" => text(&n.last_onboarded_time),
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

fn success(body: Value, waba_id: &str, usage_percent: u32) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("x-fb-trace-id", trace_id());
    if let Ok(usage) = HeaderValue::from_str(&usage_json(waba_id, usage_percent, 0)) {
        headers.insert("x-business-use-case-usage", usage);
    }
    (StatusCode::OK, headers, Json(body)).into_response()
}

/// Meta's error envelope; with the usage header when a rate limit is the cause.
fn failure(fault: Fault, waba_id: Option<&str>) -> Response {
    let trace = trace_id();
    let body = error_json(&fault, &trace);
    let mut headers = HeaderMap::new();
    headers.insert("x-fb-trace-id", trace);
    if let (Some(minutes), Some(waba_id)) = (fault.regain_in_minutes, waba_id)
        && let Ok(usage) = HeaderValue::from_str(&usage_json(waba_id, 100, minutes))
    {
        headers.insert("x-business-use-case-usage", usage);
    }
    let status = StatusCode::from_u16(fault.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, headers, Json(body)).into_response()
}

fn error_json(fault: &Fault, trace: &HeaderValue) -> Value {
    let mut error = json!({
        "message": fault.message,
        "type": fault.kind,
        "code": fault.code,
        "fbtrace_id": trace.to_str().unwrap_or_default(),
    });
    if let Some(subcode) = fault.subcode {
        error["error_subcode"] = subcode.into();
    }
    if let Some(details) = &fault.details {
        error["error_data"] = json!({ "messaging_product": "whatsapp", "details": details });
    }
    json!({ "error": error })
}

fn usage_json(waba_id: &str, percent: u32, regain_minutes: u64) -> String {
    json!({ waba_id: [{
        "type": "whatsapp_business_management",
        "call_count": percent,
        "total_cputime": percent.min(1),
        "total_time": percent.min(1),
        "estimated_time_to_regain_access": regain_minutes,
    }]})
    .to_string()
}

fn trace_id() -> HeaderValue {
    let bytes: [u8; 12] = rand::random();
    HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(bytes)).expect("base64 is a valid header")
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

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Constant-time comparison, as Meta's token check would be.
fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    a.ct_eq(b)
}
