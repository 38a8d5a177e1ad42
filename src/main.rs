#![forbid(unsafe_code)]

use clap::Parser;
use secrecy::SecretString;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use waba_numbers::config::{
    Cli, Command, DEFAULT_GRAPH_VERSION, LogFormat, SandboxGraphArgs, Secrets, ServeArgs,
    StoreCommand,
};
use waba_numbers::graph::{GraphSettings, TokenSource};
use waba_numbers::http::WEBHOOK_PATH;
use waba_numbers::sandbox::{
    self, BENCH_WABA_ID, CALLS_PATH, DEMO_BUSINESS_ID, DEMO_PIN, DEMO_WABA_ID, SandboxOptions,
    bench_number_id,
};
use waba_numbers::server::{self, BoxError, Settings};
use waba_numbers::store::{Store, StoreConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    let secrets = Secrets::from_env();
    let outcome = match cli.command {
        Some(Command::SandboxGraph(args)) => sandbox_graph(args, secrets).await,
        Some(Command::Store(args)) => match args.command {
            StoreCommand::Rekey => rekey(secrets).await,
        },
        None => serve(cli.serve, secrets).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waba-numbers: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, secrets: Secrets) -> Result<(), BoxError> {
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    // Configuration errors first, before any port is taken.
    let settings = if args.sandbox {
        None
    } else {
        Some(args.settings(&secrets)?)
    };
    let grpc = bind(args.listen).await?;
    let http = bind(args.http_listen).await?;
    let health = match args.health_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let metrics = match args.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let settings = match settings {
        Some(settings) => settings,
        None => sandboxed(&args, secrets, http.local_addr()?.port()).await?,
    };
    let mut service = server::Service::build(settings).await?;
    if let Some(health) = health {
        service = service.with_health_listener(health);
    }
    if let Some(metrics) = metrics {
        service = service.with_metrics_listener(metrics);
    }
    service.serve(grpc, http, server::shutdown_signal()).await
}

/// Starts the simulated Graph API on loopback and points the service at it, with a
/// token (and, unless WABA_APP_SECRET is set, an app secret) made up for the pair. The
/// simulated API delivers signed webhooks to our HTTP port.
async fn sandboxed(
    args: &ServeArgs,
    mut secrets: Secrets,
    http_port: u16,
) -> Result<Settings, BoxError> {
    let token = SecretString::from(format!("sandbox-{:032x}", rand::random::<u128>()));
    let app_secret = secrets
        .app_secret
        .take()
        .unwrap_or_else(|| SecretString::from(format!("{:032x}", rand::random::<u128>())));
    let options = SandboxOptions {
        access_token: Some(token.clone()),
        app_secret: Some(app_secret.clone()),
        webhook_url: Some(format!("http://127.0.0.1:{http_port}{WEBHOOK_PATH}")),
        ..SandboxOptions::default()
    };
    let url = sandbox::spawn(options).await?;
    let version = &args.graph_version;
    println!(
        "sandbox: simulated Graph API at {url}/{version}, delivering webhooks to port {http_port}\n\
         sandbox: demo WABA id {DEMO_WABA_ID} (two-step verification PIN of its registered numbers: {DEMO_PIN}), \
         demo business id {DEMO_BUSINESS_ID}"
    );
    let mut graph = GraphSettings::new(url, version, Some(TokenSource::Static(token)));
    graph.app_secret = Some(app_secret);
    // The sandbox's app: its codes exchange and its tokens check with this id.
    graph.app_id = Some(sandbox::SANDBOX_APP_ID.to_owned());
    let mut settings = args.settings_for(graph, &secrets);
    // Customers are kept in memory unless WABA_STORE says otherwise.
    settings.store = Some(secrets.store_config()?.unwrap_or_else(StoreConfig::memory));
    Ok(settings)
}

/// Only the simulated Graph API, for other services' tests. Any bearer token is
/// accepted; with WABA_APP_SECRET set, appsecret_proof is checked too.
async fn sandbox_graph(args: SandboxGraphArgs, secrets: Secrets) -> Result<(), BoxError> {
    let listen = args.listen;
    if args.webhook_url.is_some() && secrets.app_secret.is_none() {
        return Err("--webhook-url needs WABA_APP_SECRET to sign the webhooks".into());
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    println!(
        "sandbox-graph: simulated Graph API at http://{addr}/{DEFAULT_GRAPH_VERSION}, demo WABA id {DEMO_WABA_ID}, \
         demo business id {DEMO_BUSINESS_ID}"
    );
    if args.bench_numbers > 0 {
        println!(
            "sandbox-graph: bench WABA id {BENCH_WABA_ID}, numbers {} to {}",
            bench_number_id(1),
            bench_number_id(args.bench_numbers)
        );
    }
    println!(
        "sandbox-graph: latency {}, quota {}, calls counted at http://{addr}{CALLS_PATH}",
        humantime::format_duration(args.latency),
        if args.no_quota { "off" } else { "on" },
    );
    let options = SandboxOptions {
        app_secret: secrets.app_secret,
        webhook_url: args.webhook_url,
        latency: args.latency,
        quota: !args.no_quota,
        bench_numbers: args.bench_numbers,
        ..SandboxOptions::default()
    };
    sandbox::serve(listener, options, server::shutdown_signal()).await?;
    Ok(())
}

/// `store rekey`: every token under the current key. Old keys stay needed until every
/// replica runs with the new one as current (a replica still on the old one writes
/// under it): run it again then; it changes only what is not current.
async fn rekey(secrets: Secrets) -> Result<(), BoxError> {
    let config = secrets.store_config()?.ok_or(
        "store rekey: WABA_STORE is not set (sqlite:PATH or a postgres:// URL, with WABA_STORE_KEY_FILE)",
    )?;
    let store = Store::open(&config).await?;
    let done = store.rekey().await?;
    store.close().await;
    let Some(key_id) = store.current_key_id() else {
        println!("store rekey: a memory store keeps nothing at rest: 0 tokens changed");
        return Ok(());
    };
    println!(
        "store rekey: {} of {} tokens re-encrypted under key {key_id}",
        done.changed, done.total
    );
    if !done.unreadable.is_empty() {
        eprintln!(
            "store rekey: no key at hand opens the token of WABA {}",
            done.unreadable.join(", ")
        );
    }
    if done.left > 0 {
        return Err(format!(
            "{} tokens are still under another key: keep the old keys, and run rekey again \
             once every replica writes under key {key_id}",
            done.left
        )
        .into());
    }
    Ok(())
}
