//! Wires the service: Graph client → domain and watchers → gRPC and HTTP, with health
//! checking and server reflection (v1 and v1alpha, health included, so grpcurl and mesh
//! probes just work).

use crate::callers::Callers;
use crate::customers::Customers;
use crate::graph::{GraphClient, GraphSettings};
use crate::grpc::auth::{Gate, Reflection};
use crate::grpc::page_token::PageTokens;
use crate::grpc::pb::customer_service_server::CustomerServiceServer;
use crate::grpc::pb::phone_number_service_server::PhoneNumberServiceServer;
use crate::grpc::transport::{self, Http2Settings};
use crate::grpc::{Api, CustomerApi, pb};
use crate::http::WebhookSettings;
use crate::keyring::Keyring;
use crate::numbers::{CacheSettings, Numbers};
use crate::store::{self, Opened, Store, StoreConfig};
use crate::tls::{ServerTls, ServerTlsSettings};
use crate::watch::{Hub, WatchSettings};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::service::Routes;
use tonic_health::ServingStatus;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub graph: GraphSettings,
    pub watch: WatchSettings,
    /// The read path's cache of snapshots and pages.
    pub cache: CacheSettings,
    /// Register/deregister attempts per number the guard keeps for a person.
    pub register_reserve: u32,
    pub webhooks: WebhookSettings,
    /// How long in-flight calls may run on after shutdown starts. Streams (a mesh's
    /// health Watch, say) never finish by themselves, so the wait is bounded.
    pub shutdown_grace: Duration,
    /// HTTP/2 PING interval on idle connections, so long streams survive proxies and
    /// dead peers are noticed; `None` disables it.
    pub keepalive: Option<Duration>,
    /// Concurrent streams one client connection may open.
    pub max_concurrent_streams: u32,
    /// Where customers and their tokens are kept (`WABA_STORE`); `None`: the partner's
    /// token alone, and the customer RPCs answer FAILED_PRECONDITION.
    pub store: Option<StoreConfig>,
    /// How often every customer's token is checked with `debug_token` (`None`: never).
    pub token_check_interval: Option<Duration>,
    /// Who may call, and what they may do (`WABA_CALLERS_FILE`); `None`: anyone who can
    /// reach the port, anything.
    pub callers_file: Option<PathBuf>,
    /// Refuse to start without a callers file.
    pub require_callers: bool,
    /// How often the callers file is checked for changes.
    pub callers_reload: Duration,
    /// Who may use server reflection.
    pub reflection: Reflection,
    /// The largest request message a caller may send (bytes, after decompression); a
    /// larger one is refused with RESOURCE_EXHAUSTED before it is read.
    pub max_message_size: usize,
    /// TLS on the gRPC port (mutual with a client CA); `None`: plaintext HTTP/2.
    pub tls: Option<ServerTlsSettings>,
}

/// What callers may send by default: requests here are ids and short strings (a
/// WatchStatus of 1,000 numbers is about 20 KiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

impl Settings {
    pub fn new(graph: GraphSettings) -> Self {
        Self {
            graph,
            watch: WatchSettings::default(),
            cache: CacheSettings::default(),
            register_reserve: crate::numbers::DEFAULT_REGISTER_RESERVE,
            webhooks: WebhookSettings::default(),
            shutdown_grace: Duration::from_secs(20),
            keepalive: Some(Duration::from_secs(30)),
            max_concurrent_streams: 2_000,
            store: None,
            token_check_interval: Some(crate::customers::TOKEN_CHECK_INTERVAL),
            callers_file: None,
            require_callers: false,
            callers_reload: Duration::from_secs(5),
            reflection: Reflection::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            tls: None,
        }
    }
}

/// The service, built and ready to serve: its token is loaded, its watchers can start.
pub struct Service {
    settings: Settings,
    api: Api,
    customer_api: CustomerApi,
    gate: Gate,
    hub: Hub,
    graph: Arc<GraphClient>,
    stopping: watch::Sender<bool>,
    /// The store opened unreachable: how its connection in the background ended (the
    /// customers loaded, or an error no wait cures).
    connecting: Option<oneshot::Receiver<Result<(), store::Error>>>,
    /// The gRPC port's TLS, loaded (and watched for new certificates).
    tls: Option<ServerTls>,
    /// grpc.health.v1 alone, in plaintext, on a port of its own.
    health_listener: Option<TcpListener>,
    /// /metrics on a port of its own (and no longer on the webhook port).
    metrics_listener: Option<TcpListener>,
}

impl Service {
    /// Reads the access token (failing if there is none) and builds every part.
    pub async fn build(settings: Settings) -> Result<Self, BoxError> {
        crate::metrics::handle(); // the recorder, before anything is recorded
        // Certificates first: a bad pair fails the start before anything else is done.
        let tls = match &settings.tls {
            Some(tls) => Some(ServerTls::load(tls).await?),
            None => None,
        };
        let gate = gate(&settings)?;
        let page_tokens = PageTokens::new(page_token_key(&settings.graph));
        let graph = Arc::new(GraphClient::new(settings.graph.clone()).await?);
        let partner = graph.tokens().is_some();
        let (stopping, stopping_rx) = watch::channel(false);
        // A store that cannot be reached yet: connected in the background (see `later`).
        let mut unreachable = None;
        let keys: Arc<Keyring> = Arc::new(match &settings.store {
            Some(config) => match Store::open_or_wait(config).await? {
                Opened::Ready(store) => {
                    let keys = Keyring::load(store.clone(), partner).await?;
                    tracing::info!(store = store.backend_name(), ?keys, "store open");
                    tokio::spawn(watched(store));
                    keys
                }
                Opened::Unreachable { store, why } => {
                    tracing::warn!(
                        store = ?config,
                        error = %why,
                        "the store cannot be reached: serving what the partner's token can \
                         while it connects; until then CustomerService is NOT_SERVING and \
                         writes that need the store are refused"
                    );
                    unreachable = Some(store.clone());
                    Keyring::unloaded(store, partner)
                }
            },
            None => {
                tracing::info!("no store (WABA_STORE): the partner's token serves every call");
                Keyring::partner_only()
            }
        });
        let numbers = Numbers::new(
            graph.clone(),
            keys.clone(),
            &settings.cache,
            settings.register_reserve,
        );
        let hub = Hub::new(
            numbers.reads().clone(),
            settings.watch.clone(),
            stopping_rx.clone(),
        );
        let connecting = match unreachable {
            Some(store) => {
                let (done, connecting) = oneshot::channel();
                let later = later(store, keys.clone(), hub.clone());
                tokio::spawn(async move {
                    let _ = done.send(later.await);
                });
                Some(connecting)
            }
            None => {
                hub.join_fleet().await;
                None
            }
        };
        let customers = Customers::new(graph.clone(), numbers.clone());
        if customers.available()
            && let Some(interval) = settings.token_check_interval
        {
            tokio::spawn(customers.clone().check_tokens_every(interval, stopping_rx));
        }
        let customer_api =
            CustomerApi::new(customers, PageTokens::new(page_token_key(&settings.graph)));
        let api = Api::new(numbers, page_tokens, hub.clone(), gate.callers().cloned());
        Ok(Self {
            settings,
            api,
            customer_api,
            gate,
            hub,
            graph,
            stopping,
            connecting,
            tls,
            health_listener: None,
            metrics_listener: None,
        })
    }

    /// Also serves grpc.health.v1 (the same statuses as the gRPC port's) in plaintext on
    /// `listener`: for probes that speak no TLS while the gRPC port does.
    pub fn with_health_listener(mut self, listener: TcpListener) -> Self {
        self.health_listener = Some(listener);
        self
    }

    /// Serves /metrics in plain HTTP on `listener`, and no longer on the webhook port
    /// (which is public: Meta must reach it).
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// The shared watchers, for what they report about themselves.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Serves gRPC on `grpc` and webhooks on `http` until `shutdown` completes; then
    /// health turns NOT_SERVING, WatchStatus streams end with UNAVAILABLE (clients
    /// reconnect elsewhere), no new calls are accepted and in-flight calls get
    /// `shutdown_grace` to finish.
    pub async fn serve(
        self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BoxError> {
        let Service {
            settings,
            api,
            customer_api,
            gate,
            hub,
            graph,
            stopping,
            connecting,
            tls,
            health_listener,
            metrics_listener,
        } = self;
        let metrics = crate::http::metrics(hub.clone(), graph.clone());
        let webhooks = crate::http::webhooks(hub.clone(), settings.webhooks);
        let http_router = match metrics_listener {
            Some(_) => webhooks,
            None => webhooks.merge(metrics.clone()),
        };
        tracing::info!(addr = %http.local_addr()?, "serving HTTP (webhooks)");
        let http_server = tokio::spawn(http_serve(http, http_router, stopping.subscribe()));
        let metrics_server = match metrics_listener {
            Some(listener) => {
                tracing::info!(addr = %listener.local_addr()?, "serving HTTP (/metrics)");
                Some(tokio::spawn(http_serve(
                    listener,
                    metrics,
                    stopping.subscribe(),
                )))
            }
            None => None,
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc error details, so grpcurl can print ErrorInfo, RetryInfo, BadRequest.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        health.set_serving::<PhoneNumberServiceServer<Api>>().await;
        // Without a store the customer RPCs can only say so; with one not reached yet,
        // not until it is.
        if customer_api.available() && connecting.is_none() {
            health
                .set_serving::<CustomerServiceServer<CustomerApi>>()
                .await;
        } else {
            health
                .set_not_serving::<CustomerServiceServer<CustomerApi>>()
                .await;
        }
        health.set_service_status("", ServingStatus::Serving).await;
        tracing::info!(
            addr = %grpc.local_addr()?,
            tls = match &tls {
                None => "off",
                Some(tls) if tls.is_mutual() => "mutual",
                Some(_) => "on",
            },
            "serving gRPC"
        );
        let http2 = Http2Settings {
            keepalive: settings.keepalive,
            max_concurrent_streams: settings.max_concurrent_streams,
        };
        let (health_stop, health_stopped) = oneshot::channel::<()>();
        let health_server = match health_listener {
            Some(listener) => {
                tracing::info!(addr = %listener.local_addr()?, "serving gRPC health (plaintext)");
                let routes = Routes::new(
                    health_service
                        .clone()
                        .max_decoding_message_size(settings.max_message_size),
                );
                Some(tokio::spawn(transport::serve(
                    listener,
                    routes,
                    // Health alone: open to probes, whatever the callers file says.
                    Gate::new(None, Reflection::Off),
                    http2,
                    None,
                    async {
                        let _ = health_stopped.await;
                    },
                )))
            }
            None => None,
        };

        // Every service refuses a request larger than the limit before reading it.
        let limit = settings.max_message_size;
        let mut routes = Routes::new(health_service.max_decoding_message_size(limit));
        if gate.reflection() != Reflection::Off {
            routes = routes
                .add_service(reflection_v1.max_decoding_message_size(limit))
                .add_service(reflection_v1alpha.max_decoding_message_size(limit));
        }
        let routes = routes
            .add_service(PhoneNumberServiceServer::new(api).max_decoding_message_size(limit))
            .add_service(CustomerServiceServer::new(customer_api).max_decoding_message_size(limit));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = transport::serve(grpc, routes, gate, http2, tls, async {
            let _ = stopped.await;
        });
        tokio::pin!(server);
        tokio::pin!(shutdown);
        let (mut connecting, mut waiting) = match connecting {
            Some(connecting) => (connecting, true),
            None => (oneshot::channel().1, false),
        };
        let mut failed: Option<BoxError> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = &mut server => {
                    // Cannot happen: it only stops when told to, below.
                    let _ = stopping.send(true);
                    return Err("the gRPC server stopped by itself".into());
                }
                connected = &mut connecting, if waiting => {
                    waiting = false;
                    match connected {
                        Ok(Ok(())) => {
                            health
                                .set_serving::<CustomerServiceServer<CustomerApi>>()
                                .await;
                        }
                        // A start that fails late: as it would have, had the store
                        // answered at once.
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "the store connected, but cannot be used: stopping");
                            failed = Some(e.into());
                            break;
                        }
                        Err(_) => {
                            failed = Some("the store's connection task ended without a word".into());
                            break;
                        }
                    }
                }
            }
        }
        tracing::info!("shutting down: NOT_SERVING, ending streams, finishing in-flight calls");
        health
            .set_not_serving::<PhoneNumberServiceServer<Api>>()
            .await;
        health
            .set_not_serving::<CustomerServiceServer<CustomerApi>>()
            .await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = stopping.send(true);
        let _ = stop.send(());
        let _ = health_stop.send(());
        // Other replicas take this one's watched targets at once, not after the leases lapse.
        hub.leave_fleet().await;
        let grace = settings.shutdown_grace;
        // Every listener drains at once, so the whole shutdown stays within one grace period.
        let (grpc_done, http_done, health_done, metrics_done) = tokio::join!(
            tokio::time::timeout(grace, server),
            tokio::time::timeout(grace, http_server),
            tokio::time::timeout(grace, async {
                if let Some(health) = health_server {
                    let _ = health.await;
                }
            }),
            tokio::time::timeout(grace, async {
                match metrics_server {
                    Some(metrics) => metrics.await,
                    None => Ok(Ok(())),
                }
            }),
        );
        if health_done.is_err() {
            tracing::warn!(?grace, "health calls still open after the grace period");
        }
        match grpc_done {
            Ok(()) => {}
            Err(_) => tracing::warn!(
                ?grace,
                "calls still open after the grace period; closing them"
            ),
        }
        match http_done {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!(?grace, "HTTP requests still open after the grace period"),
        }
        match metrics_done {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!(
                ?grace,
                "/metrics requests still open after the grace period"
            ),
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The caller check the settings ask for: the callers file read (a broken one stops the
/// start) and kept current; without one, every call is let in, and the log says so.
fn gate(settings: &Settings) -> Result<Gate, BoxError> {
    let callers = match &settings.callers_file {
        Some(path) => {
            let callers = Arc::new(Callers::load(path)?);
            tracing::info!(
                path = %path.display(),
                callers = callers.current().len(),
                reflection = ?settings.reflection,
                "callers file read: only its callers may call, each within its scopes and WABAs"
            );
            tokio::spawn(callers.clone().keep_current(settings.callers_reload));
            Some(callers)
        }
        None if settings.require_callers => {
            return Err("--require-callers: no callers file; set WABA_CALLERS_FILE".into());
        }
        None => {
            tracing::warn!(
                "no callers file (WABA_CALLERS_FILE): any client that reaches the gRPC port \
                 may make any call"
            );
            None
        }
    };
    Ok(Gate::new(callers, settings.reflection))
}

/// Serves `router` on `listener` until `stopping` turns true, then drains.
async fn http_serve(
    listener: TcpListener,
    router: axum::Router,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .into_future()
        .await
}

/// Watches a store that is connected for as long as the process runs: see
/// [`Store::keep_watch`].
async fn watched(store: Store) {
    store.keep_watch().await;
}

/// Connects a store that could not be reached at the start (with backoff), then reads
/// every customer in and joins the other replicas; an error that no wait cures (a
/// password or a migration PostgreSQL refuses, a token no key opens) ends it.
async fn later(store: Store, keys: Arc<Keyring>, hub: Hub) -> Result<(), store::Error> {
    store.connect().await?;
    tokio::spawn(watched(store.clone()));
    let mut wait = Duration::from_millis(500);
    loop {
        match keys.fill().await {
            Ok(()) => break,
            // Gone again before the customers were read: they are read once it is back.
            Err(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, "cannot read the customers yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
    hub.join_fleet().await;
    tracing::info!(?keys, "customers loaded: CustomerService is SERVING");
    Ok(())
}

/// Builds the service and serves it; see [`Service::serve`].
pub async fn serve(
    settings: Settings,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    Service::build(settings)
        .await?
        .serve(grpc, http, shutdown)
        .await
}

/// Page tokens must verify on every replica: derived from the app secret when there is
/// one (without revealing it), random per process otherwise.
fn page_token_key(graph: &GraphSettings) -> [u8; 32] {
    match &graph.app_secret {
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("any key length");
            mac.update(b"waba-numbers page tokens v1");
            mac.finalize().into_bytes().into()
        }
        None => rand::random(),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
