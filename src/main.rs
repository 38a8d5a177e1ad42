#![forbid(unsafe_code)]

use clap::Parser;
use secrecy::SecretString;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use waba_numbers::config::{Cli, Command, DEFAULT_GRAPH_VERSION, Secrets, ServeArgs};
use waba_numbers::graph::{GraphSettings, TokenSource};
use waba_numbers::sandbox::{self, DEMO_PIN, DEMO_WABA_ID, SandboxOptions};
use waba_numbers::server::{self, BoxError};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let secrets = Secrets::from_env();
    let outcome = match cli.command {
        Some(Command::SandboxGraph(args)) => sandbox_graph(args.listen, secrets).await,
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
    let graph = if args.sandbox {
        sandboxed(&args, &secrets).await?
    } else {
        args.graph_settings(&secrets)?
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    server::serve(
        server::Settings::new(graph),
        listener,
        server::shutdown_signal(),
    )
    .await
}

/// Starts the simulated Graph API on loopback and points the service at it, with a
/// token made up for the pair.
async fn sandboxed(args: &ServeArgs, secrets: &Secrets) -> Result<GraphSettings, BoxError> {
    let token = SecretString::from(format!("sandbox-{:032x}", rand::random::<u128>()));
    let options = SandboxOptions {
        access_token: Some(token.clone()),
        app_secret: secrets.app_secret.clone(),
        ..SandboxOptions::default()
    };
    let url = sandbox::spawn(options).await?;
    let version = if args.graph_version.is_empty() {
        DEFAULT_GRAPH_VERSION
    } else {
        &args.graph_version
    };
    println!(
        "sandbox: simulated Graph API at {url}/{version}\n\
         sandbox: demo WABA id {DEMO_WABA_ID} (two-step verification PIN of its registered numbers: {DEMO_PIN})"
    );
    let mut graph = GraphSettings::new(url, version, TokenSource::Static(token));
    graph.app_secret = secrets.app_secret.clone();
    Ok(graph)
}

/// Only the simulated Graph API, for other services' tests. Any bearer token is
/// accepted; with WABA_APP_SECRET set, appsecret_proof is checked too.
async fn sandbox_graph(listen: std::net::SocketAddr, secrets: Secrets) -> Result<(), BoxError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!(
        "sandbox-graph: simulated Graph API at http://{}/{DEFAULT_GRAPH_VERSION}, demo WABA id {DEMO_WABA_ID}",
        listener.local_addr()?
    );
    let options = SandboxOptions {
        app_secret: secrets.app_secret,
        ..SandboxOptions::default()
    };
    sandbox::serve(listener, options, server::shutdown_signal()).await?;
    Ok(())
}
