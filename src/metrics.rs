//! Prometheus metrics, rendered at `/metrics` on the HTTP listener.
//!
//! Knows nothing of gRPC: call timing and code names live in `grpc/metrics.rs`.
//!
//! Recorded where things happen through the `metrics` facade; gauges that describe
//! state (watchers, token age) are read when Prometheus scrapes.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Latency buckets, in seconds, for gRPC calls and Graph API calls.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder, installed on first use, with its upkeep: histograms are
/// drained every few seconds whether or not anybody scrapes.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("a thread starts");
            describe();
            handle
        })
        .clone()
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "waba_grpc_requests_total",
        "gRPC calls by method and code (CANCELLED: the client left)."
    );
    describe_histogram!(
        "waba_grpc_request_duration_seconds",
        "gRPC call latency (WatchStatus: until the stream starts)."
    );
    describe_counter!(
        "waba_graph_requests_total",
        "Graph API calls by endpoint, kind of token (partner, customer, app, none) and result."
    );
    describe_histogram!(
        "waba_graph_request_duration_seconds",
        "Graph API call latency."
    );
    describe_gauge!(
        "waba_graph_usage_percent",
        "X-Business-Use-Case-Usage as Meta last reported it, per WABA and use case."
    );
    describe_gauge!(
        "waba_graph_app_usage_percent",
        "X-App-Usage as Meta last reported it."
    );
    describe_gauge!("waba_watch_streams", "Open WatchStatus streams.");
    describe_gauge!(
        "waba_watch_subscriptions",
        "Subscriptions across all shared watchers."
    );
    describe_gauge!(
        "waba_watchers",
        "Shared watchers running, by kind (waba, number)."
    );
    describe_gauge!(
        "waba_watchers_polling",
        "Watchers this replica polls itself, by kind; the others follow the replica that \
         leases their shard."
    );
    describe_gauge!(
        "waba_fleet_shards",
        "Shards of the watched targets this replica leases (of 64), with a PostgreSQL store."
    );
    describe_gauge!(
        "waba_fleet_replicas",
        "Replicas alive on the PostgreSQL store, as this one's last lease renewal counted."
    );
    describe_gauge!(
        "waba_tokio_alive_tasks",
        "Tasks alive in the async runtime (tokio's num_alive_tasks), read when scraped."
    );
    describe_counter!("waba_webhooks_total", "Webhook notifications by result.");
    describe_gauge!(
        "waba_store_up",
        "Whether the store (WABA_STORE) answered its last query: 1, or 0 while it is down."
    );
    describe_gauge!(
        "waba_customers",
        "Customers (WABAs whose business token the service holds) by token state."
    );
    describe_gauge!(
        "waba_access_token_age_seconds",
        "Age of the access token: its file's modification time, or since the process read it."
    );
}

/// A Graph API call: `waba_graph_requests_total{endpoint,token,result}` and its latency.
/// `token` is the kind of token it carried (partner, customer, app, none), never which.
pub fn graph_call(endpoint: &'static str, token: &'static str, result: String, seconds: f64) {
    metrics::counter!(
        "waba_graph_requests_total",
        "endpoint" => endpoint,
        "token" => token,
        "result" => result
    )
    .increment(1);
    metrics::histogram!("waba_graph_request_duration_seconds", "endpoint" => endpoint)
        .record(seconds);
}
