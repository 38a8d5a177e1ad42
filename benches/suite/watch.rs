//! Row 4: many concurrent WatchStatus streams against `waba-numbers --sandbox`.
//!
//! Starts the binary, measures its RSS and CPU time idle (the baseline of this run), then
//! opens STREAMS streams over CONNECTIONS HTTP/2 connections (half watch the demo WABA,
//! half one of its numbers), waits until every stream has its whole first snapshot (a
//! WABA's: an INITIAL event per number), holds them for HOLD_SECS while the sandbox
//! changes and pushes webhooks, and reports RSS and CPU again.
//!
//! cargo bench --bench suite -- --rows 4          (defaults: 10000 streams, 20 connections, 30 s)
//! STREAMS=2000 HOLD_SECS=10 KIND=number cargo bench --bench suite -- --rows 4
//!
//! WABA_TARGET=host:port SERVER_PID=pid measure a server started elsewhere (under a
//! profiler such as heaptrack, say) instead of starting one.

use crate::Row;
use crate::rows::{Bench, Client, bin, channel};
use crate::sys::{self, Proc, free_port, local};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use waba_numbers::pb::{EventSource, ListNumbersRequest, WatchStatusRequest};
use waba_numbers::sandbox::DEMO_WABA_ID;

const TARGET_KIB: u64 = 64 * 1024;

pub async fn row(bench: &Bench) -> Row {
    let p = &bench.profile;
    let (streams, connections, hold) = (p.watch_streams, p.watch_connections, p.watch_hold);

    let (_server, pid, addr) = match std::env::var("WABA_TARGET") {
        Ok(target) => {
            let pid: u32 = std::env::var("SERVER_PID")
                .ok()
                .and_then(|p| p.parse().ok())
                .expect("WABA_TARGET needs SERVER_PID");
            (None, pid, target.parse().expect("WABA_TARGET is host:port"))
        }
        Err(_) => {
            let addr = local(free_port());
            let mut command = Command::new(bin());
            command
                .args(["--sandbox", "--listen", &addr.to_string()])
                .args(["--http-listen", &local(free_port()).to_string()])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let server = Proc::spawn("service-row4", &mut command);
            let pid = server.pid();
            crate::rows::wait_serving(addr, Duration::from_secs(20)).await;
            (Some(server), pid, addr)
        }
    };
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(channel(addr).await);
    }
    // Warm up: one stream of each kind, so the watchers and their first reads exist.
    let mut warm = Client::new(channels[0].clone());
    for request in [request(0), request(1)] {
        let mut events = warm.watch_status(request).await.unwrap().into_inner();
        events.message().await.unwrap();
    }
    let waba_size = waba_size(&mut warm).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, idle_cpu) = (sys::rss_kib(pid), sys::cpu(pid));

    let events = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let opening = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let mut client = Client::new(channels[i % connections].clone());
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
    let (open_rss, open_cpu) = (sys::rss_kib(pid), sys::cpu(pid));
    let events_at_open = events.load(Ordering::Relaxed);

    tokio::time::sleep(hold).await;
    let (held_rss, held_cpu) = (sys::rss_kib(pid), sys::cpu(pid));
    let pushed = events.load(Ordering::Relaxed) - events_at_open;
    for task in tasks {
        task.abort();
    }

    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = open_rss.max(held_rss);
    println!(
        "  raw row 4: --sandbox, {streams} WatchStatus streams over {connections} connections: \
         idle RSS {:.1} MiB; open RSS {:.1} MiB (+{:.2} KiB per stream), first snapshots complete \
         in {opened_in:.2?}, server CPU {:.2?}; after holding {hold:?} RSS {:.1} MiB, server CPU \
         {:.2?} ({:.1} % of one core) for {pushed} events delivered",
        mib(idle_rss),
        mib(open_rss),
        open_rss.saturating_sub(idle_rss) as f64 / streams as f64,
        open_cpu - idle_cpu,
        mib(held_rss),
        held_cpu - open_cpu,
        (held_cpu - open_cpu).as_secs_f64() / hold.as_secs_f64() * 100.0,
    );
    Row {
        name: format!("4. {streams} WatchStatus streams: server RSS"),
        measured: format!(
            "{:.1} MiB (CPU {:.2?} to open, {:.1} % holding)",
            mib(peak),
            open_cpu - idle_cpu,
            (held_cpu - open_cpu).as_secs_f64() / hold.as_secs_f64() * 100.0
        ),
        baseline: format!("idle {:.1} MiB", mib(idle_rss)),
        ratio: Some(peak as f64 / idle_rss as f64),
        target: "≤ 64 MiB".into(),
        pass: Some(peak <= TARGET_KIB),
    }
}

/// How many numbers the demo WABA has: a WABA stream's first snapshot is that many events.
async fn waba_size(client: &mut Client) -> usize {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_numbers(ListNumbersRequest {
                waba_id: DEMO_WABA_ID.into(),
                page_size: 100,
                page_token,
                ..ListNumbersRequest::default()
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
