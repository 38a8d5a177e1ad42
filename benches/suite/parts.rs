//! The bare parts a GetStatus is made of, as modes of this binary (re-executed, so each
//! is its own process with its own CPU time):
//!
//! - `echo`: a trivial tonic server (tonic's own `transport::Server` and listener, default
//!   settings) answering GetStatus with a fixed PhoneNumber carrying the asked id, and
//!   health;
//! - `get`: a reqwest client making the GET the service makes for an uncached
//!   GetStatus (same path, `fields=`, bearer token), reading the body whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use waba_numbers::pb;
use waba_numbers::pb::phone_number_service_server::{PhoneNumberService, PhoneNumberServiceServer};

/// The field list the service asks Meta for on every read.
pub const FIELDS: &str = "id,display_phone_number,verified_name,name_status,new_name_status,\
new_display_name,code_verification_status,quality_rating,status,platform_type,throughput,\
messaging_limit_tier,whatsapp_business_manager_messaging_limit,account_mode,\
is_official_business_account,is_pin_enabled,last_onboarded_time,is_preverified_number,is_on_biz_app";

pub const TOKEN: &str = "bench-token";

struct Echo {
    number: pb::PhoneNumber,
}

type Never<T> = tokio_stream::Pending<Result<T, Status>>;

/// Implements the service for `Echo`: GetStatus answered, every other RPC (named with
/// its request and response types) refused as unimplemented.
macro_rules! echo_service {
    ($($rpc:ident($request:ident) -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl PhoneNumberService for Echo {
            async fn get_status(
                &self,
                request: Request<pb::GetStatusRequest>,
            ) -> Result<Response<pb::PhoneNumber>, Status> {
                let mut number = self.number.clone();
                number.id = request.into_inner().phone_number_id;
                Ok(Response::new(number))
            }

            type WatchStatusStream = Never<pb::StatusEvent>;

            async fn watch_status(
                &self,
                _: Request<pb::WatchStatusRequest>,
            ) -> Result<Response<Self::WatchStatusStream>, Status> {
                Err(Status::unimplemented("echo"))
            }

            $(
                async fn $rpc(
                    &self,
                    _: Request<pb::$request>,
                ) -> Result<Response<pb::$response>, Status> {
                    Err(Status::unimplemented("echo"))
                }
            )*
        }
    };
}

echo_service! {
    list_numbers(ListNumbersRequest) -> ListNumbersResponse;
    register(RegisterRequest) -> RegisterResponse;
    add_number(AddNumberRequest) -> AddNumberResponse;
    request_verification_code(RequestVerificationCodeRequest) -> RequestVerificationCodeResponse;
    verify_code(VerifyCodeRequest) -> VerifyCodeResponse;
    deregister(DeregisterRequest) -> DeregisterResponse;
    set_two_step_pin(SetTwoStepPinRequest) -> SetTwoStepPinResponse;
    request_display_name_change(RequestDisplayNameChangeRequest) -> RequestDisplayNameChangeResponse;
    add_preverified_number(AddPreverifiedNumberRequest) -> PreverifiedNumber;
    list_preverified_numbers(ListPreverifiedNumbersRequest) -> ListPreverifiedNumbersResponse;
    delete_preverified_number(DeletePreverifiedNumberRequest) -> DeletePreverifiedNumberResponse;
}

/// A number as the service answers it for the bench WABA.
#[allow(deprecated)] // messaging_limit_tier: the service fills it while Meta serves it
fn fixed_number() -> pb::PhoneNumber {
    let text = |s: &str| s.to_owned();
    pb::PhoneNumber {
        id: text("109000000000001"),
        display_phone_number: text("+1 556-0000001"),
        verified_name: text("Bench Shop 1"),
        name_status: pb::NameStatus::Approved.into(),
        new_name_status: pb::NameStatus::None.into(),
        code_verification_status: pb::VerificationStatus::Verified.into(),
        quality_rating: pb::QualityRating::Green.into(),
        status: pb::ConnectionStatus::Connected.into(),
        platform_type: pb::PlatformType::CloudApi.into(),
        throughput_level: pb::ThroughputLevel::Standard.into(),
        messaging_limit_tier: pb::MessagingLimitTier::MessagingLimitTier1k.into(),
        messaging_limit: pb::MessagingLimitTier::MessagingLimitTier1k.into(),
        account_mode: pb::AccountMode::Live.into(),
        is_pin_enabled: true,
        last_onboarded_time: Some(prost_types::Timestamp {
            seconds: 1_767_258_000,
            nanos: 0,
        }),
        observed_at: Some(prost_types::Timestamp {
            seconds: 1_796_000_000,
            nanos: 123_456_789,
        }),
        name_status_raw: text("APPROVED"),
        new_name_status_raw: text("NONE"),
        code_verification_status_raw: text("VERIFIED"),
        quality_rating_raw: text("GREEN"),
        status_raw: text("CONNECTED"),
        platform_type_raw: text("CLOUD_API"),
        throughput_level_raw: text("STANDARD"),
        messaging_limit_tier_raw: text("TIER_1K"),
        account_mode_raw: text("LIVE"),
        messaging_limit_raw: text("TIER_1K"),
        ..pb::PhoneNumber::default()
    }
}

/// `echo`: serves on a free loopback port and prints `listening PORT`.
pub async fn echo() {
    // tonic's own listener, as `Server::serve` makes it: TCP_NODELAY on (a bare
    // `TcpListenerStream` leaves Nagle on, and 40 ms delayed ACKs stall the baseline).
    let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())
        .unwrap()
        .with_nodelay(Some(true));
    let port = incoming.local_addr().unwrap().port();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let echo = PhoneNumberServiceServer::new(Echo {
        number: fixed_number(),
    });
    println!("listening {port}");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(echo)
        .serve_with_incoming(incoming)
        .await
        .unwrap();
}

/// What `get` measured, printed as one line: `result CPU_NS ELAPSED_NS OK P50_US P99_US`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetResult {
    pub cpu: Duration,
    pub elapsed: Duration,
    pub ok: u64,
    pub p50: Duration,
    pub p99: Duration,
}

impl GetResult {
    pub fn parse(line: &str) -> GetResult {
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        GetResult {
            cpu: Duration::from_nanos(f[0]),
            elapsed: Duration::from_nanos(f[1]),
            ok: f[2],
            p50: Duration::from_micros(f[3]),
            p99: Duration::from_micros(f[4]),
        }
    }
}

/// `get URL ID COUNT CONCURRENCY RATE`: COUNT GETs of `URL/v25.0/ID?fields=...`, after a
/// warm-up, either CONCURRENCY at a time (RATE 0) or RATE a second (one at a time per
/// tick, latencies recorded). Prints its own CPU time for the measured calls.
pub async fn get(args: &[String]) {
    let [url, id, count, concurrency, rate] = args else {
        panic!("usage: get URL ID COUNT CONCURRENCY RATE");
    };
    let count: u64 = count.parse().unwrap();
    let concurrency: u64 = concurrency.parse().unwrap();
    let rate: u64 = rate.parse().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Built as the service builds its Graph client.
    let http = reqwest::Client::builder()
        .user_agent("waba-numbers-bench")
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let target = Arc::new(format!("{url}/v25.0/{id}"));
    let one = {
        let http = http.clone();
        let target = target.clone();
        move || {
            let request = http
                .get(target.as_str())
                .query(&[("fields", FIELDS)])
                .bearer_auth(TOKEN)
                .timeout(Duration::from_secs(15));
            async move {
                let answer = request.send().await.ok()?;
                let ok = answer.status().is_success();
                let body = answer.bytes().await.ok()?;
                (ok && !body.is_empty()).then_some(())
            }
        }
    };
    // Warm-up: the connections the measured calls use.
    let warm: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(one()))
        .collect();
    for task in warm {
        task.await.unwrap().expect("the upstream answers");
    }
    let ok = Arc::new(AtomicU64::new(0));
    let cpu_before = crate::sys::cpu(std::process::id());
    let start = Instant::now();
    let mut latencies = Vec::new();
    if rate == 0 {
        let next = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (one, next, ok) = (one.clone(), next.clone(), ok.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        if one().await.is_some() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    } else {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut calls = Vec::new();
        for _ in 0..count {
            tick.tick().await;
            let call = one();
            calls.push(tokio::spawn(async move {
                let sent = Instant::now();
                call.await.map(|()| sent.elapsed())
            }));
        }
        for call in calls {
            if let Some(latency) = call.await.unwrap() {
                ok.fetch_add(1, Ordering::Relaxed);
                latencies.push(latency);
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = crate::sys::cpu(std::process::id()) - cpu_before;
    let p50 = crate::sys::quantile(&mut latencies, 0.5);
    let p99 = crate::sys::quantile(&mut latencies, 0.99);
    println!(
        "result {} {} {} {} {}",
        cpu.as_nanos(),
        elapsed.as_nanos(),
        ok.load(Ordering::Relaxed),
        p50.as_micros(),
        p99.as_micros()
    );
}
