//! The real binary, as operators run it, with debug logging: what it logs, answers
//! (messages, status details, raw `grpc-status-details-bin`), serves on `/metrics` and
//! keeps in its SQLite file must never carry a secret: the partner's and customers'
//! tokens, the app secret, appsecret_proofs, the Embedded Signup code, the store key,
//! API keys, PINs, verification codes, the webhook verify token. The fake Graph API
//! echoes back what each call carried, so the service is seen to scrub it. Also: startup
//! and SIGTERM behave, and `Debug` of the settings hides what they hold.
//!
//! `numbers`: the number RPCs on the partner's token, the webhook handshake; `customers`:
//! the customer RPCs on a SQLite store; `callers`: API keys; `debug`: `Debug` output.

mod callers;
mod customers;
mod debug;
mod numbers;

use crate::support::{
    APP_SECRET, Client, NUMBER, TOKEN, binary, channel, fake_graph, free_port, get_status,
    graph_error_body, number_json, ok, proof_for, received, start_binary, start_binary_on,
    start_binary_with, terminate,
};
use serde_json::json;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every secret a test gives the service or Meta gives it, by name.
#[derive(Default)]
pub struct Secrets(Vec<(String, Vec<u8>)>);

impl Secrets {
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref().to_vec();
        assert!(value.len() >= 6, "{name}: too short to look for");
        self.0.push((name.to_owned(), value));
    }

    /// Fails the test naming the secret found in `haystack` and `place`. A secret of
    /// digits only (a PIN, a code) counts only as a whole number: not inside a longer
    /// one, nor after a `.` (log timestamps and durations have 6-digit fractions).
    pub fn assert_no_secret(&self, haystack: impl AsRef<[u8]>, place: &str) {
        let haystack = haystack.as_ref();
        for (name, secret) in &self.0 {
            let digits = secret.iter().all(u8::is_ascii_digit);
            let found = haystack.windows(secret.len()).enumerate().any(|(at, w)| {
                if w != secret.as_slice() {
                    return false;
                }
                if !digits {
                    return true;
                }
                let before = at.checked_sub(1).map(|i| haystack[i]);
                let after = haystack.get(at + secret.len()).copied();
                !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
                    && !after.is_some_and(|b| b.is_ascii_digit())
            });
            assert!(
                !found,
                "the {name} leaked into {place}:\n{}",
                String::from_utf8_lossy(haystack)
            );
        }
    }

    /// Asserts that no secret is in anything `seen` holds.
    pub fn assert_none_in(&self, seen: &Seen) {
        for (place, bytes) in &seen.0 {
            self.assert_no_secret(bytes, place);
        }
    }
}

/// What clients saw, by where they saw it.
#[derive(Default)]
pub struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    /// A call's answer: its `Debug` if it succeeded, else all its status shows.
    pub fn answer<T: Debug>(&mut self, rpc: &str, answer: Result<Response<T>, Status>) {
        match answer {
            Ok(response) => self.push(rpc, format!("{:?}", response.into_inner())),
            Err(status) => self.status(rpc, &status),
        }
    }

    /// All a client sees of `status`: message, metadata, details decoded and raw.
    pub fn status(&mut self, rpc: &str, status: &Status) {
        self.push(&format!("{rpc}'s message"), status.message());
        self.push(
            &format!("{rpc}'s details"),
            format!("{:?}", status.get_error_details()),
        );
        self.push(
            &format!("{rpc}'s grpc-status-details-bin"),
            status.details(),
        );
        self.push(
            &format!("{rpc}'s metadata"),
            format!("{:?}", status.metadata()),
        );
    }

    pub fn push(&mut self, place: &str, bytes: impl AsRef<[u8]>) {
        self.0.push((place.to_owned(), bytes.as_ref().to_vec()));
    }
}

/// Meta's error envelope echoing `carried` (what the call sent) in each of its texts: a
/// careless upstream that must not carry them any further.
pub fn echo(code: i64, carried: &[&str]) -> ResponseTemplate {
    let all = carried.join(", ");
    let mut body = graph_error_body(code, None, &format!("({all}) rejected"));
    body["error"]["error_data"] = json!({ "details": format!("sent: {all}") });
    body["error"]["error_user_title"] = format!("bad {all}").into();
    body["error"]["error_user_msg"] = format!("check {all}").into();
    ResponseTemplate::new(400).set_body_json(body)
}

/// The binary, its output read as it comes (debug logs fill a pipe fast).
pub struct Running {
    child: Child,
    output: [JoinHandle<Vec<u8>>; 2],
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Running {
    /// Starts the binary against the Graph API at `graph` with `extra` flags and `env`.
    pub async fn start(graph: &str, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let (mut child, grpc, http) = start_binary_on(graph, extra, env).await;
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let drain = |mut pipe: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes).await;
                bytes
            })
        };
        Running {
            child,
            output: [drain(Box::new(stdout)), drain(Box::new(stderr))],
            grpc,
            http,
        }
    }

    /// `GET /metrics` on the HTTP port.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.http);
        waba_numbers::tls::install_provider();
        let answer = reqwest::get(url).await.unwrap();
        assert!(answer.status().is_success());
        answer.text().await.unwrap()
    }

    /// SIGTERM, then what it wrote to stdout and stderr; fails the test if debug logs
    /// were not captured.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        let mut logs = String::new();
        for pipe in self.output {
            logs.push_str(&String::from_utf8_lossy(&pipe.await.unwrap()));
        }
        assert!(
            logs.contains("Graph API call"),
            "debug logs were captured:\n{logs}"
        );
        logs
    }
}

#[tokio::test]
async fn without_a_token_it_exits_naming_the_variables() {
    let output = binary().output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["WABA_ACCESS_TOKEN", "WABA_ACCESS_TOKEN_FILE", "--sandbox"] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_call_finish_then_exits_cleanly() {
    let slow = Mock::given(method("GET"))
        .respond_with(ok(number_json(NUMBER)).set_delay(Duration::from_millis(700)));
    let graph = fake_graph([slow]).await;
    let (child, addr) = start_binary(&graph.uri()).await;
    let mut client = Client::new(channel(addr).await);
    let call = tokio::spawn(async move { client.get_status(get_status(NUMBER)).await });
    tokio::time::sleep(Duration::from_millis(200)).await; // the call is at the fake Graph API
    let (clean_exit, logs) = terminate(child).await;
    assert_eq!(call.await.unwrap().unwrap().into_inner().id, NUMBER);
    assert!(clean_exit, "exit status not 0:\n{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_metas_fbtrace_id() {
    let mut error = graph_error_body(100, Some(33), "Object does not exist");
    error["error"]["fbtrace_id"] = "TraceFromMeta42".into();
    let not_found =
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(400).set_body_json(error));
    let graph = fake_graph([not_found]).await;
    let (child, addr) = start_binary_with(&graph.uri(), &["--log-format", "json"]).await;
    let mut client = Client::new(channel(addr).await);
    let mut request = tonic::Request::new(get_status(NUMBER));
    request
        .metadata_mut()
        .insert("x-request-id", "req-7f3a".parse().unwrap());
    assert_eq!(
        client.get_status(request).await.unwrap_err().code(),
        Code::NotFound
    );

    let (_, logs) = terminate(child).await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let upstream = lines
        .iter()
        .find(|l| l["fields"]["message"] == "Graph API error")
        .unwrap_or_else(|| panic!("no Graph API error line in:\n{logs}"));
    assert_eq!(upstream["fields"]["fbtrace_id"], "TraceFromMeta42");
    assert_eq!(upstream["span"]["request_id"], "req-7f3a");
    assert_eq!(
        upstream["span"]["method"],
        "/whatsapp.phonenumbers.v1.PhoneNumberService/GetStatus"
    );
    for secret in [TOKEN, APP_SECRET, proof_for(TOKEN).as_str()] {
        assert!(!logs.contains(secret), "{secret} in the JSON logs");
    }
}

#[tokio::test]
async fn sandbox_graph_alone_delivers_signed_webhooks() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(wiremock::matchers::header_exists("x-hub-signature-256"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let listen = free_port().await.to_string();
    let hook = format!("{}/hook", receiver.uri());
    let child = binary()
        .args(["sandbox-graph", "--listen", &listen, "--webhook-url", &hook])
        .env("WABA_APP_SECRET", APP_SECRET)
        .spawn()
        .unwrap();
    // The demo numbers change every 4 s, and some changes are announced.
    let waited = tokio::time::timeout(Duration::from_secs(30), received(&receiver, 1)).await;
    let (_, logs) = terminate(child).await;
    waited.unwrap_or_else(|_| panic!("no webhook within 30 s; logs:\n{logs}"));
    assert!(!logs.contains("panicked"), "{logs}");
}
