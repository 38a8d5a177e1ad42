//! gRPC unary load with h2load: a pre-framed protobuf body, HTTP/2 prior knowledge.
//! h2load only checks the HTTP status; callers check grpc-status server-side.

use prost::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const GET_STATUS_PATH: &str = "/whatsapp.phonenumbers.v1.PhoneNumberService/GetStatus";

/// How to load: connections, streams in flight per connection, and either a request
/// count, or a fixed rate (requests per second on one connection).
#[derive(Debug, Clone, Copy)]
pub enum Load {
    Count {
        requests: u64,
        connections: u32,
        streams: u32,
    },
    Rate {
        per_sec: u32,
        requests: u64,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub succeeded: u64,
    pub failed: u64,
    pub req_per_sec: f64,
    /// Per-request latencies, with `Load::Rate` only.
    pub latencies: Vec<Duration>,
}

/// Writes a gRPC frame (uncompressed flag, 4-byte big-endian length, message) to `dir`.
pub fn frame(dir: &Path, name: &str, message: &impl Message) -> PathBuf {
    let body = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    let path = dir.join(name);
    std::fs::write(&path, framed).unwrap();
    path
}

pub fn run(addr: SocketAddr, body: &Path, load: Load) -> Outcome {
    let mut command = Command::new("h2load");
    command.args(["-t", "1", "-d"]).arg(body).args([
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ]);
    let log = body.with_extension(format!("log-{}", std::process::id()));
    match load {
        Load::Count {
            requests,
            connections,
            streams,
        } => {
            command.args(["-n", &requests.to_string()]);
            command.args(["-c", &connections.to_string(), "-m", &streams.to_string()]);
        }
        Load::Rate { per_sec, requests } => {
            command.args(["-n", &requests.to_string(), "-c", "1", "-m", "1"]);
            command.args(["--rps", &per_sec.to_string(), "--log-file"]);
            command.arg(&log);
        }
    }
    command.arg(format!("http://{addr}{GET_STATUS_PATH}"));
    let output = command
        .output()
        .expect("h2load runs (bench/run.sh installs it: apt-get install nghttp2-client)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "h2load failed:\n{text}");
    let mut outcome =
        parse(&text).unwrap_or_else(|| panic!("cannot read h2load's output:\n{text}"));
    if matches!(load, Load::Rate { .. }) {
        let lines = std::fs::read_to_string(&log).unwrap();
        outcome.latencies = lines
            .lines()
            .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
            .map(Duration::from_micros)
            .collect();
        let _ = std::fs::remove_file(&log);
    }
    outcome
}

/// `finished in 4.00s, 12345.67 req/s, ...` and
/// `requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout`.
fn parse(text: &str) -> Option<Outcome> {
    let finished = text.lines().find(|l| l.starts_with("finished in"))?;
    let req_per_sec = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))?
        .parse()
        .ok()?;
    let requests = text.lines().find(|l| l.starts_with("requests:"))?;
    let count = |what: &str| -> Option<u64> {
        requests
            .trim_start_matches("requests:")
            .split(',')
            .find_map(|part| part.trim().strip_suffix(what))?
            .trim()
            .parse()
            .ok()
    };
    Some(Outcome {
        succeeded: count(" succeeded")?,
        failed: count(" failed")? + count(" errored")? + count(" timeout")?,
        req_per_sec,
        latencies: Vec::new(),
    })
}
