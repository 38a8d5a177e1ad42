//! Benchmark: many concurrent WatchStatus streams against `waba-numbers --sandbox`.
//!
//! Starts the release binary, measures its RSS and CPU time idle (the baseline of this
//! run), then opens STREAMS streams over CONNECTIONS HTTP/2 connections (half watch the
//! demo WABA, half one of its numbers), waits until every stream has its whole first
//! snapshot (a WABA's: an INITIAL event per number), holds them for
//! HOLD_SECS while the sandbox changes and pushes webhooks, and reports RSS and CPU again.
//!
//! cargo bench --bench watch_streams            (defaults: 10000 streams, 20 connections, 30 s)
//! STREAMS=2000 HOLD_SECS=10 KIND=number cargo bench --bench watch_streams
//!
//! WABA_TARGET=host:port SERVER_PID=pid measure a server started elsewhere (under a
//! profiler such as heaptrack, say) instead of starting one.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use waba_numbers::pb::phone_number_service_client::PhoneNumberServiceClient;
use waba_numbers::pb::{EventSource, ListNumbersRequest, WatchStatusRequest};
use waba_numbers::sandbox::DEMO_WABA_ID;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory (KiB) and CPU time (user + system) of a process, from /proc.
fn usage(pid: u32) -> (u64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 14th, stime the 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = 100; // USER_HZ on Linux
    (rss_kib, Duration::from_millis(ticks * 1000 / hz))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let streams = setting("STREAMS", 10_000) as usize;
    let connections = setting("CONNECTIONS", 20) as usize;
    let hold = Duration::from_secs(setting("HOLD_SECS", 30));

    let (_server, pid, url) = match std::env::var("WABA_TARGET") {
        Ok(target) => {
            let pid = setting("SERVER_PID", 0) as u32;
            assert!(pid > 0, "WABA_TARGET needs SERVER_PID");
            (None, pid, format!("http://{target}"))
        }
        Err(_) => {
            let port = free_port();
            let server = Server(
                Command::new(env!("CARGO_BIN_EXE_waba-numbers"))
                    .args(["--sandbox", "--listen", &format!("127.0.0.1:{port}")])
                    .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
                    .env("RUST_LOG", "info")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("the binary starts"),
            );
            let pid = server.0.id();
            (Some(server), pid, format!("http://127.0.0.1:{port}"))
        }
    };
    let mut channels = Vec::new();
    for _ in 0..connections {
        let channel = loop {
            match Channel::from_shared(url.clone()).unwrap().connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        channels.push(channel);
    }
    // Warm up: one stream of each kind, so the watchers and their first reads exist.
    let mut warm = PhoneNumberServiceClient::new(channels[0].clone());
    for request in [request(0), request(1)] {
        let mut events = warm.watch_status(request).await.unwrap().into_inner();
        events.message().await.unwrap();
    }
    let waba_size = waba_size(&mut warm).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, idle_cpu) = usage(pid);

    let events = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let opening = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let mut client = PhoneNumberServiceClient::new(channels[i % connections].clone());
        let events = events.clone();
        let ready = ready_tx.clone();
        let request = request(i);
        let mut snapshot_left = if request.waba_id.is_empty() {
            1
        } else {
            waba_size
        };
        tasks.push(tokio::spawn(async move {
            let mut stream = client.watch_status(request).await.unwrap().into_inner();
            while let Ok(Some(event)) = stream.message().await {
                events.fetch_add(1, Ordering::Relaxed);
                if event.source() == EventSource::Initial {
                    snapshot_left -= 1;
                    if snapshot_left == 0 {
                        let _ = ready.send(());
                    }
                }
            }
        }));
    }
    for _ in 0..streams {
        ready_rx.recv().await.unwrap();
    }
    let opened_in = opening.elapsed();
    let (open_rss, open_cpu) = usage(pid);
    let events_at_open = events.load(Ordering::Relaxed);

    tokio::time::sleep(hold).await;
    let (held_rss, held_cpu) = usage(pid);
    let pushed = events.load(Ordering::Relaxed) - events_at_open;

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "waba-numbers --sandbox, {streams} WatchStatus streams over {connections} connections"
    );
    println!("  idle baseline          RSS {:7.1} MiB", mib(idle_rss));
    println!(
        "  {streams} streams open     RSS {:7.1} MiB  (+{:.2} KiB per stream)  first snapshots complete in {:.2?}, server CPU {:.2?}",
        mib(open_rss),
        (open_rss.saturating_sub(idle_rss)) as f64 / streams as f64,
        opened_in,
        open_cpu - idle_cpu,
    );
    println!(
        "  after holding {:>3?}     RSS {:7.1} MiB  server CPU {:.2?} ({:.1} % of one core) for {pushed} events delivered",
        hold,
        mib(held_rss),
        held_cpu - open_cpu,
        (held_cpu - open_cpu).as_secs_f64() / hold.as_secs_f64() * 100.0,
    );
    println!(
        "  target RSS <= 64 MiB: {}",
        if held_rss.max(open_rss) <= 64 * 1024 {
            "met"
        } else {
            "MISSED"
        }
    );
    for task in tasks {
        task.abort();
    }
}

/// How many numbers the demo WABA has: a WABA stream's first snapshot is that many events.
async fn waba_size(client: &mut PhoneNumberServiceClient<Channel>) -> usize {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_numbers(ListNumbersRequest {
                waba_id: DEMO_WABA_ID.into(),
                page_size: 100,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        count += page.phone_numbers.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

/// With KIND=mixed (the default) even streams watch the demo WABA and odd ones one of
/// its 32 numbers; KIND=waba or KIND=number makes them all alike.
fn request(i: usize) -> WatchStatusRequest {
    let waba = match std::env::var("KIND").as_deref() {
        Ok("waba") => true,
        Ok("number") => false,
        _ => i.is_multiple_of(2),
    };
    if waba {
        WatchStatusRequest {
            phone_number_ids: Vec::new(),
            waba_id: DEMO_WABA_ID.into(),
        }
    } else {
        WatchStatusRequest {
            phone_number_ids: vec![format!("1065403522429{:02}", 1 + (i / 2) % 32)],
            waba_id: String::new(),
        }
    }
}
