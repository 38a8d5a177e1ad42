//! The real binary, as operators run it: started against a Graph API with the test's
//! token and app secret, on free loopback ports, its logs read back when it stops.

use super::{APP_SECRET, TOKEN, VERSION};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_waba-numbers"));
    for var in [
        "WABA_ACCESS_TOKEN",
        "WABA_ACCESS_TOKEN_FILE",
        "WABA_APP_SECRET",
        "WABA_APP_ID",
        "WABA_LISTEN",
        "WABA_STORE",
        "WABA_STORE_KEY_FILE",
        "WABA_STORE_OLD_KEYS_DIR",
        "WABA_TLS_CERT",
        "WABA_TLS_KEY",
        "WABA_TLS_CLIENT_CA",
        "WABA_HEALTH_LISTEN",
        "WABA_METRICS_LISTEN",
    ] {
        command.env_remove(var);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

pub async fn free_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Starts the binary against `graph_url` and waits until it accepts connections.
pub async fn start_binary(graph_url: &str) -> (Child, SocketAddr) {
    start_binary_with(graph_url, &[]).await
}

pub async fn start_binary_with(graph_url: &str, extra: &[&str]) -> (Child, SocketAddr) {
    start_binary_with_env(graph_url, extra, &[]).await
}

pub async fn start_binary_with_env(
    graph_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr) {
    let (child, grpc, _) = start_binary_on(graph_url, extra, env).await;
    (child, grpc)
}

/// Starts the binary (`env` may set `RUST_LOG`, trace by default); its gRPC and HTTP
/// (webhook) addresses, once it accepts gRPC connections.
pub async fn start_binary_on(
    graph_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Child, SocketAddr, SocketAddr) {
    let addr = free_port().await;
    let http = free_port().await;
    let child = binary()
        .args([
            "--listen",
            &addr.to_string(),
            "--http-listen",
            &http.to_string(),
            "--graph-url",
            graph_url,
            "--graph-version",
            VERSION,
        ])
        .env("WABA_ACCESS_TOKEN", TOKEN)
        .env("WABA_APP_SECRET", APP_SECRET)
        .env("RUST_LOG", "debug,waba_numbers=trace")
        .args(extra)
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (child, addr, http);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the binary did not start listening on {addr}");
}

pub async fn terminate(mut child: Child) -> (bool, String) {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .await
        .unwrap();
    (status.success(), output)
}
