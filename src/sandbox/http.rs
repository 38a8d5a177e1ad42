//! The simulated Graph API over HTTP: Meta's paths, JSON, error envelope and headers.
//!
//! Every path under `/{version}/` is resolved here, not by axum's router, so that a
//! trailing slash, a batch operation's `relative_url`, an unknown path and an
//! unsupported method are all treated as Meta treats them (the last two: error 100 in
//! Meta's envelope, never a bare 404 or 405).

use super::SandboxOptions;
use super::customers::{self, Caller, SANDBOX_APP_SECRET, Subscription, Target};
use super::lifecycle::RegisterParams;
use super::params::Params;
use super::render::{self, Context, Inspected, Link, Node};
use super::state::{Announcement, Fault, World};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The call counter: outside Meta's versioned paths, answered without a token.
pub const CALLS_PATH: &str = "/_sandbox/calls";
/// `POST` here with `waba_id`: the customer removes the app (no token; loopback only).
pub const REVOKE_PATH: &str = "/_sandbox/revoke";
/// The version paging links name when a token endpoint was called without one.
const UNVERSIONED: &str = "v25.0";
/// `webhook_configuration.application` when no webhook URL is configured.
const PLACEHOLDER_WEBHOOK: &str = "https://example.com/webhooks/whatsapp";
/// The largest request body read (a batch of 50 operations fits many times over).
const MAX_BODY: usize = 1 << 20;

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
    /// Every other write: adding a number, codes, deregister, PIN, display name, the
    /// pre-verified pool's additions and deletions.
    writes: AtomicU64,
    /// `GET /{business}/preverified_numbers`.
    preverified_numbers: AtomicU64,
    /// The code exchange and `debug_token`.
    tokens: AtomicU64,
    /// `GET`, `POST` and `DELETE /{waba}/subscribed_apps`.
    subscribed_apps: AtomicU64,
    /// `POST /` batch requests, and the operations in them.
    batch: AtomicU64,
    batch_items: AtomicU64,
    /// Unknown paths and unsupported methods.
    other: AtomicU64,
}

impl Calls {
    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn of(&self, endpoint: &Endpoint) -> &AtomicU64 {
        match endpoint {
            Endpoint::Read(_) => &self.node,
            Endpoint::ListNumbers(_) => &self.phone_numbers,
            Endpoint::Register(_) => &self.register,
            Endpoint::ListPreverified(_) => &self.preverified_numbers,
            Endpoint::Batch => &self.batch,
            Endpoint::Exchange | Endpoint::DebugToken => &self.tokens,
            Endpoint::SubscribedApps(..) => &self.subscribed_apps,
            Endpoint::Unsupported(_) => &self.other,
            _ => &self.writes,
        }
    }

    /// `total` counts calls as Meta's rate limits do (each batch operation is one);
    /// `requests` counts HTTP requests (a batch is one).
    fn json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let served = [
            &self.node,
            &self.phone_numbers,
            &self.register,
            &self.writes,
            &self.preverified_numbers,
            &self.tokens,
            &self.subscribed_apps,
            &self.other,
        ]
        .into_iter()
        .map(get)
        .sum::<u64>();
        let (batch, items) = (get(&self.batch), get(&self.batch_items));
        json!({
            "total": served + items,
            "requests": served + batch,
            "endpoints": {
                "node": get(&self.node),
                "phone_numbers": get(&self.phone_numbers),
                "register": get(&self.register),
                "writes": get(&self.writes),
                "preverified_numbers": get(&self.preverified_numbers),
                "tokens": get(&self.tokens),
                "subscribed_apps": get(&self.subscribed_apps),
                "batch": batch,
                "batch_items": items,
                "other": get(&self.other),
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
        // Meta delivers webhooks about a WABA only while the app is subscribed to it.
        for announcement in world.settle(Instant::now()) {
            if world.is_subscribed(&announcement.waba_id) {
                let _ = self.outbox.send(announcement);
            }
        }
        world
    }

    /// The app secret: the configured one, else [`SANDBOX_APP_SECRET`].
    fn app_secret(&self) -> &str {
        self.options
            .app_secret
            .as_ref()
            .map_or(SANDBOX_APP_SECRET, |s| s.expose_secret())
    }

    fn webhook_url(&self) -> &str {
        self.options
            .webhook_url
            .as_deref()
            .unwrap_or(PLACEHOLDER_WEBHOOK)
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CALLS_PATH, get(calls))
        .route(REVOKE_PATH, post(revoke))
        .fallback(graph)
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// `GET /_sandbox/calls`: the calls answered so far.
async fn calls(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.calls.json()).into_response()
}

/// `POST /_sandbox/revoke?waba_id=`: the customer removes the app (see `customers.rs`);
/// answers `{"success": true, "revoked_tokens": n}`. From loopback only (else 403 with
/// Meta's code 10), as the sandbox may listen on other addresses (`sandbox-graph`).
async fn revoke(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !peer.ip().is_loopback() {
        let message = "(#10) The sandbox's own endpoints answer on loopback only";
        let fault = Fault {
            http_status: 403,
            ..Fault::new(10, "OAuthException", message)
        };
        return failure(fault, None);
    }
    let params = Params::from_query(request.uri().query());
    let revoked = params
        .required("waba_id")
        .and_then(|waba_id| shared.world().revoke(waba_id));
    match revoked {
        Ok(n) => Json(json!({ "success": true, "revoked_tokens": n })).into_response(),
        Err(fault) => failure(fault, None),
    }
}

/// Meta's checks before any endpoint: a versioned path, an access token, and the
/// `appsecret_proof` when the app requires one, each from the query string or the body
/// (whose parameters are merged once, here, for the endpoint). The configured latency
/// passes first. The sandbox's own paths are exempt, and so are the token endpoints'
/// rules: the code exchange needs no token (its client credentials are checked by
/// the endpoint), `debug_token` needs the app token and no `appsecret_proof` (the proof
/// is for user and system-user tokens), and both also answer without a version, as
/// Meta's do. The caller the token names goes to the endpoint as a [`Caller`].
async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if [CALLS_PATH, REVOKE_PATH].contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }
    let (version, segments) = split_path(request.uri().path());
    let token_endpoint = matches!(segments[..], ["oauth", "access_token"] | ["debug_token"]);
    if version.is_none() && !token_endpoint {
        let first = request.uri().path().split('/').nth(1).unwrap_or_default();
        let message = format!("Unknown path components: /{first}");
        return failure(Fault::new(2500, "OAuthException", message), None);
    }
    let exchange = segments == ["oauth", "access_token"];
    let debug = segments == ["debug_token"];
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return failure(
            Fault::invalid_parameter("The request body is too large"),
            None,
        );
    };
    let mut params = Params::from_query(parts.uri.query());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(fault) = params.merge_body(content_type, &bytes) {
        return failure(fault, None);
    }
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::to_owned);
    let token = bearer.or_else(|| params.get("access_token").map(str::to_owned));
    let caller = match (exchange, token) {
        (true, _) => Caller::Anonymous,
        (false, None) => {
            let message = "An access token is required to request this resource.";
            return failure(Fault::new(104, "OAuthException", message), None);
        }
        (false, Some(token)) if debug => match app_caller(&shared, &token) {
            Ok(caller) => caller,
            Err(fault) => return failure(fault, None),
        },
        (false, Some(token)) => match caller_of(&shared, &token, &params) {
            Ok(caller) => caller,
            Err(fault) => return failure(fault, None),
        },
    };
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(params);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// `debug_token`'s caller: the app token, `APP_ID|APP_SECRET`. Another app's or a wrong
/// secret: 190; a token of no app at all: 100, as Meta answers.
fn app_caller(shared: &Shared, token: &str) -> Result<Caller, Fault> {
    let expected = customers::app_token(shared.app_secret());
    if bool::from(subtle_eq(expected.as_bytes(), token.as_bytes())) {
        Ok(Caller::App)
    } else if token.contains('|') {
        Err(Fault::new(
            190,
            "OAuthException",
            "Invalid OAuth access token signature.",
        ))
    } else {
        Err(Fault::invalid_parameter(
            "You must provide an app access token, or a user access token that is an owner \
             or developer of the app",
        ))
    }
}

/// Who `token` is, for every Graph call but the token endpoints: a customer's business
/// token (a revoked one: 190/458), else the partner token (any token when none is
/// configured); then its `appsecret_proof`, computed on this very token.
fn caller_of(shared: &Shared, token: &str, params: &Params) -> Result<Caller, Fault> {
    let grant = shared.world().grant(token).cloned();
    let options = &shared.options;
    let caller = match grant {
        Some(grant) if grant.revoked => return Err(customers::app_not_installed()),
        Some(grant) => Caller::Business(grant),
        None => {
            let token_ok = |expected: &secrecy::SecretString| {
                bool::from(subtle_eq(
                    expected.expose_secret().as_bytes(),
                    token.as_bytes(),
                ))
            };
            if options.access_token.as_ref().is_some_and(|t| !token_ok(t)) {
                let message = "Invalid OAuth access token - Cannot parse access token";
                return Err(Fault::new(190, "OAuthException", message));
            }
            Caller::Partner
        }
    };
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
                return Err(Fault::new(100, "GraphMethodException", message));
            }
            Some(proof) if mac.verify_slice(&proof).is_err() => {
                let message = "Invalid appsecret_proof provided in the API argument";
                return Err(Fault::new(100, "GraphMethodException", message));
            }
            Some(_) => {}
        }
    }
    Ok(caller)
}

/// A path's version (when its first segment is one) and the segments after it, empty
/// ones (trailing slashes) dropped.
fn split_path(path: &str) -> (Option<&str>, Vec<&str>) {
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.first() {
        Some(first) if is_version(first) => {
            let version = segments.remove(0);
            (Some(version), segments)
        }
        _ => (None, segments),
    }
}

/// What a path and method ask for.
enum Endpoint<'a> {
    /// `POST /` with `batch`.
    Batch,
    /// `GET /{id}`: a phone number or a pre-verified number.
    Read(&'a str),
    /// `POST /{id}`: `pin`, `new_display_name`.
    Update(&'a str),
    /// `DELETE /{pre-verified id}`.
    Delete(&'a str),
    ListNumbers(&'a str),
    AddNumber(&'a str),
    Register(&'a str),
    Deregister(&'a str),
    RequestCode(&'a str),
    VerifyCode(&'a str),
    /// `POST /{business}/add_phone_numbers`.
    AddPreverified(&'a str),
    ListPreverified(&'a str),
    /// `GET /oauth/access_token`: an Embedded Signup code (or client credentials).
    Exchange,
    /// `GET /debug_token?input_token=`.
    DebugToken,
    /// `GET`, `POST` or `DELETE /{waba}/subscribed_apps`.
    SubscribedApps(Method, &'a str),
    Unsupported(Fault),
}

impl<'a> Endpoint<'a> {
    /// `segments`: the path after the version, empty segments (trailing slashes) dropped.
    fn resolve(method: &Method, segments: &[&'a str]) -> Self {
        let m = method.as_str();
        match (m, segments) {
            ("POST", []) => Endpoint::Batch,
            ("GET" | "POST", ["oauth", "access_token"]) => Endpoint::Exchange,
            ("GET", ["debug_token"]) => Endpoint::DebugToken,
            ("GET" | "POST" | "DELETE", [id, "subscribed_apps"]) => {
                Endpoint::SubscribedApps(method.clone(), id)
            }
            ("GET", [id]) => Endpoint::Read(id),
            ("POST", [id]) => Endpoint::Update(id),
            ("DELETE", [id]) => Endpoint::Delete(id),
            ("GET", [id, "phone_numbers"]) => Endpoint::ListNumbers(id),
            ("POST", [id, "phone_numbers"]) => Endpoint::AddNumber(id),
            ("POST", [id, "register"]) => Endpoint::Register(id),
            ("POST", [id, "deregister"]) => Endpoint::Deregister(id),
            ("POST", [id, "request_code"]) => Endpoint::RequestCode(id),
            ("POST", [id, "verify_code"]) => Endpoint::VerifyCode(id),
            ("POST", [id, "add_phone_numbers"]) => Endpoint::AddPreverified(id),
            ("GET", [id, "preverified_numbers"]) => Endpoint::ListPreverified(id),
            (_, [id, ..]) => Endpoint::Unsupported(Fault::unsupported(m, id)),
            (_, []) => Endpoint::Unsupported(Fault::new(
                100,
                "GraphMethodException",
                format!("Unsupported {} request.", m.to_ascii_lowercase()),
            )),
        }
    }
}

/// A served call: its JSON, and the WABA whose budget it drew on, with the usage.
struct Answer {
    body: Value,
    usage: Option<(String, u32)>,
}

/// A failed call, with the WABA when its rate limit is the cause.
struct Failed {
    fault: Fault,
    waba_id: Option<String>,
}

type Outcome = Result<Answer, Box<Failed>>;

impl From<Fault> for Box<Failed> {
    fn from(fault: Fault) -> Self {
        Box::new(Failed {
            fault,
            waba_id: None,
        })
    }
}

fn answer(body: Value, usage: Option<(String, u32)>) -> Outcome {
    Ok(Answer { body, usage })
}

fn succeeded() -> Value {
    json!({ "success": true })
}

/// Every Graph path: resolved, counted, answered.
async fn graph(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    Extension(params): Extension<Params>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let (version, segments) = split_path(&path);
    let version = version.unwrap_or(UNVERSIONED);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let base = format!("http://{host}/{version}");
    let endpoint = Endpoint::resolve(&method, &segments);
    Calls::count(shared.calls.of(&endpoint), 1);
    if let Endpoint::Batch = endpoint {
        return batch(&shared, &caller, &params, &base);
    }
    match dispatch(&shared, &caller, endpoint, &params, &base) {
        Ok(Answer { body, usage }) => success(body, usage),
        Err(failed) => failure(failed.fault, failed.waba_id.as_deref()),
    }
}

/// Counts a management call against `waba_id`'s hourly budget.
fn charge(world: &mut World, waba_id: &str) -> Result<Option<(String, u32)>, Box<Failed>> {
    match world.charge(waba_id, Instant::now()) {
        Ok(usage) => Ok(Some((waba_id.to_owned(), usage))),
        Err(fault) => Err(Box::new(Failed {
            fault,
            waba_id: Some(waba_id.to_owned()),
        })),
    }
}

/// The WABA of the phone number `id`, if it is one.
fn waba_of(world: &World, id: &str) -> Option<String> {
    world.number(id).ok().map(|n| n.waba_id.clone())
}

/// What `endpoint` touches: a WABA, a business (its pre-verified pool), or nothing that
/// exists; for the token check.
fn target_of(world: &World, endpoint: &Endpoint) -> Target {
    let waba = |id: &str| match world.is_waba(id) {
        true => Target::Waba(id.to_owned()),
        false => Target::Nothing,
    };
    let business = |id: &str| match world.is_business(id) {
        true => Target::Business(id.to_owned()),
        false => Target::Nothing,
    };
    let node = |id: &str| match (world.number(id), world.preverified_number(id)) {
        (Ok(number), _) => Target::Waba(number.waba_id.clone()),
        (_, Ok(entry)) => Target::Business(entry.business_id.clone()),
        _ => waba(id),
    };
    match endpoint {
        Endpoint::Read(id)
        | Endpoint::Update(id)
        | Endpoint::Delete(id)
        | Endpoint::Register(id)
        | Endpoint::Deregister(id)
        | Endpoint::RequestCode(id)
        | Endpoint::VerifyCode(id) => node(id),
        Endpoint::ListNumbers(id) | Endpoint::AddNumber(id) | Endpoint::SubscribedApps(_, id) => {
            waba(id)
        }
        Endpoint::AddPreverified(id) | Endpoint::ListPreverified(id) => business(id),
        Endpoint::Batch | Endpoint::Exchange | Endpoint::DebugToken | Endpoint::Unsupported(_) => {
            Target::Nothing
        }
    }
}

fn dispatch(
    shared: &Shared,
    caller: &Caller,
    endpoint: Endpoint,
    params: &Params,
    base: &str,
) -> Outcome {
    let now = Instant::now();
    caller.may(&target_of(&shared.world(), &endpoint))?;
    match endpoint {
        Endpoint::Batch => Err(Fault::invalid_parameter("A batch cannot hold a batch").into()),
        Endpoint::Unsupported(fault) => Err(fault.into()),
        Endpoint::Exchange => exchange(shared, params),
        Endpoint::DebugToken => debug_token(shared, caller, params),
        Endpoint::SubscribedApps(method, waba_id) => {
            subscribed_apps(shared, &method, waba_id, params)
        }
        Endpoint::Read(id) => read(shared, id, params),
        Endpoint::ListNumbers(waba_id) => list_numbers(shared, waba_id, params, base),
        Endpoint::ListPreverified(business) => list_preverified(shared, business, params, base),
        Endpoint::AddNumber(waba_id) => {
            let mut world = shared.world();
            let usage = match world.is_waba(waba_id) {
                true => charge(&mut world, waba_id)?,
                false => None,
            };
            let id = world.add_number(waba_id, params, now)?;
            let mut body = json!({ "id": id });
            // Read-after-write: `fields` returns the new node too.
            if params.get("fields").is_some() {
                let fields = render::requested_fields(params.get("fields"), Node::PhoneNumber)?;
                let number = world.number(&id)?;
                body = render::number_json(number, &fields, &context(shared, &world, number));
            }
            answer(body, usage)
        }
        Endpoint::Register(id) => {
            let register = RegisterParams {
                messaging_product: params.get("messaging_product").map(str::to_owned),
                pin: params.get("pin").map(str::to_owned),
                data_localization_region: params.get("data_localization_region").map(str::to_owned),
            };
            number_write(shared, id, |world| world.register(id, register, now))
        }
        Endpoint::Deregister(id) => number_write(shared, id, |world| world.deregister(id, now)),
        Endpoint::Update(id) => {
            number_write(shared, id, |world| world.update_number(id, params, now))
        }
        Endpoint::RequestCode(id) => number_write(shared, id, |world| {
            let sent = world.request_code(id, params, now)?;
            // The sandbox plays the phone: the code "arrives" in the log.
            tracing::info!("{}", sent.message());
            Ok(())
        }),
        Endpoint::VerifyCode(id) => {
            number_write(shared, id, |world| world.verify_code(id, params, now))
        }
        Endpoint::AddPreverified(business) => {
            let mut world = shared.world();
            let phone_number = params.required("phone_number")?;
            let id = world.add_preverified(business, phone_number, now)?;
            answer(json!({ "id": id }), None)
        }
        Endpoint::Delete(id) => {
            shared.world().delete_preverified(id)?;
            answer(succeeded(), None)
        }
    }
}

/// A write to the node `id` answered `{"success": true}`; a phone number's WABA is
/// charged for it (a pre-verified number belongs to no WABA).
fn number_write(
    shared: &Shared,
    id: &str,
    write: impl FnOnce(&mut World) -> Result<(), Fault>,
) -> Outcome {
    let mut world = shared.world();
    let waba_id = waba_of(&world, id);
    let usage = match &waba_id {
        Some(waba_id) => charge(&mut world, waba_id)?,
        None => None,
    };
    write(&mut world).map_err(|fault| {
        Box::new(Failed {
            fault,
            waba_id: waba_id.clone(),
        })
    })?;
    answer(succeeded(), usage)
}

fn context<'a>(shared: &'a Shared, world: &'a World, number: &super::state::Number) -> Context<'a> {
    Context {
        webhook_url: shared.webhook_url(),
        business_id: world.business_of(&number.waba_id),
    }
}

/// `GET /{id}?fields=`: a phone number (charged to its WABA) or a pre-verified number.
fn read(shared: &Shared, id: &str, params: &Params) -> Outcome {
    let mut world = shared.world();
    if let Ok(entry) = world.preverified_number(id) {
        let fields = render::requested_fields(params.get("fields"), Node::PreVerified)?;
        return answer(render::preverified_json(entry, &fields), None);
    }
    let waba_id = world.number(id)?.waba_id.clone();
    let usage = charge(&mut world, &waba_id)?;
    let fields = render::requested_fields(params.get("fields"), Node::PhoneNumber)?;
    let number = world.number(id)?;
    answer(
        render::number_json(number, &fields, &context(shared, &world, number)),
        usage,
    )
}

fn list_numbers(shared: &Shared, waba_id: &str, params: &Params, base: &str) -> Outcome {
    let fields = render::requested_fields(params.get("fields"), Node::PhoneNumber)?;
    let mut world = shared.world();
    if !world.is_waba(waba_id) {
        return Err(Fault::unknown_object(waba_id).into());
    }
    let total = world.count(waba_id);
    let window = render::window(params, total)?;
    let usage = charge(&mut world, waba_id)?;
    let (numbers, _) = world.page(waba_id, window.start, window.end - window.start)?;
    let context = Context {
        webhook_url: shared.webhook_url(),
        business_id: world.business_of(waba_id),
    };
    let data = numbers
        .iter()
        .map(|n| render::number_json(n, &fields, &context))
        .collect();
    let link = Link {
        url: format!("{base}/{waba_id}/phone_numbers"),
        params,
    };
    answer(render::edge(data, window, total, &link), usage)
}

fn list_preverified(shared: &Shared, business: &str, params: &Params, base: &str) -> Outcome {
    let fields = render::requested_fields(params.get("fields"), Node::PreVerified)?;
    let world = shared.world();
    let entries = world.preverified_numbers(
        business,
        params.get("code_verification_status"),
        params.get("phone_number"),
    )?;
    let window = render::window(params, entries.len())?;
    let data = entries[window.start..window.end]
        .iter()
        .map(|e| render::preverified_json(e, &fields))
        .collect();
    let link = Link {
        url: format!("{base}/{business}/preverified_numbers"),
        params,
    };
    answer(render::edge(data, window, entries.len(), &link), None)
}

/// `GET /oauth/access_token`: with `grant_type=client_credentials`, the app token;
/// else an Embedded Signup `code` for a business token (see `customers.rs`). Drawn on
/// no WABA's budget.
fn exchange(shared: &Shared, params: &Params) -> Outcome {
    customers::check_client(
        params.get("client_id"),
        params.get("client_secret"),
        shared.app_secret(),
    )?;
    let token = match params.get("grant_type") {
        Some("client_credentials") => customers::app_token(shared.app_secret()),
        _ => {
            let code = params.get("code").unwrap_or_default();
            shared.world().exchange_code(code, Instant::now())?
        }
    };
    answer(
        json!({ "access_token": token, "token_type": "bearer" }),
        None,
    )
}

/// `GET /debug_token?input_token=`, as the app (see `render::debug_token_json`).
fn debug_token(shared: &Shared, caller: &Caller, params: &Params) -> Outcome {
    if *caller != Caller::App {
        return Err(Fault::invalid_parameter(
            "You must provide an app access token, or a user access token that is an owner \
             or developer of the app",
        )
        .into());
    }
    let input = params.required("input_token")?;
    let world = shared.world();
    let partner = |expected: &secrecy::SecretString| {
        bool::from(subtle_eq(
            expected.expose_secret().as_bytes(),
            input.as_bytes(),
        ))
    };
    let app = customers::app_token(shared.app_secret());
    let inspected = if let Some(grant) = world.grant(input) {
        Inspected::Business(grant)
    } else if bool::from(subtle_eq(app.as_bytes(), input.as_bytes())) {
        Inspected::App
    } else if shared.options.access_token.as_ref().is_none_or(partner) {
        Inspected::Partner {
            waba_ids: world.waba_ids().collect(),
            issued_at: world.started_wall(),
        }
    } else {
        Inspected::Unknown
    };
    answer(render::debug_token_json(&inspected), None)
}

/// `/{waba}/subscribed_apps`: `GET` lists the app if subscribed, `POST` subscribes it
/// (`override_callback_uri` needs `verify_token`), `DELETE` unsubscribes. Each is a
/// management call on the WABA's budget.
fn subscribed_apps(shared: &Shared, method: &Method, waba_id: &str, params: &Params) -> Outcome {
    let mut world = shared.world();
    if !world.is_waba(waba_id) {
        return Err(Fault::unsupported(method.as_str(), waba_id).into());
    }
    let usage = charge(&mut world, waba_id)?;
    let body = match *method {
        Method::GET => render::subscribed_apps_json(world.subscription(waba_id)),
        Method::POST => {
            let override_callback_uri = params
                .get("override_callback_uri")
                .filter(|u| !u.is_empty())
                .map(str::to_owned);
            if override_callback_uri.is_some() {
                params.required("verify_token")?;
            }
            let subscription = Subscription {
                override_callback_uri,
            };
            world.subscribe(waba_id, subscription)?;
            succeeded()
        }
        _ => {
            world.unsubscribe(waba_id)?;
            succeeded()
        }
    };
    answer(body, usage)
}

/// `POST /` with `batch`: up to 50 operations, each answered on its own as if called
/// alone (`relative_url` with its query, `body` form-encoded for writes).
fn batch(shared: &Shared, caller: &Caller, params: &Params, base: &str) -> Response {
    let operations = match params.get("batch").map(serde_json::from_str::<Vec<Value>>) {
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
            let answer = operation(shared, caller, op, base);
            match answer {
                Ok(Answer { body, .. }) => json!({ "code": 200, "body": body.to_string() }),
                Err(failed) => json!({
                    "code": failed.fault.http_status,
                    "body": error_json(&failed.fault, &trace_id()).to_string(),
                }),
            }
        })
        .collect();
    (StatusCode::OK, Json(Value::Array(items))).into_response()
}

/// One batch operation.
fn operation(shared: &Shared, caller: &Caller, op: &Value, base: &str) -> Outcome {
    let method = op.get("method").and_then(Value::as_str).unwrap_or("GET");
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Fault::invalid_parameter("Unsupported batch operation method"))?;
    let relative = op
        .get("relative_url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let url = reqwest::Url::parse(&format!(
        "http://graph/{}",
        relative.trim_start_matches('/')
    ))
    .map_err(|_| Fault::invalid_parameter("Invalid relative_url in batch operation"))?;
    let mut params = Params::from_query(url.query());
    if let Some(body) = op.get("body").and_then(Value::as_str) {
        params.merge_body(None, body.as_bytes())?;
    }
    let mut segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    let endpoint = Endpoint::resolve(&method, &segments);
    dispatch(shared, caller, endpoint, &params, base)
}

/// A 200 with `body`; with the usage header when the call drew on a WABA's budget.
fn success(body: Value, usage: Option<(String, u32)>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("x-fb-trace-id", trace_id());
    if let Some((waba_id, percent)) = usage
        && let Ok(usage) = HeaderValue::from_str(&usage_json(&waba_id, percent, 0))
    {
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
