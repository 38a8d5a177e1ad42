//! The gRPC face of the service: thin handlers that validate input, call the domain and
//! convert the answer. Protobuf types live here and nowhere else.

pub mod codec;
mod convert;
mod deadline;
mod metrics;
pub mod page_token;
pub mod status;
pub mod transport;
mod validate;
mod watch;

/// Code generated from `proto/whatsapp/phonenumbers/v1/phone_numbers.proto`.
pub mod pb {
    tonic::include_proto!("whatsapp.phonenumbers.v1");

    /// The encoded descriptors, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/phone_numbers_descriptor.bin"));

    impl std::fmt::Debug for RegisterRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RegisterRequest")
                .field("phone_number_id", &self.phone_number_id)
                .field("pin", &"[redacted]")
                .field("data_localization_region", &self.data_localization_region)
                .field("request_id", &self.request_id)
                .finish()
        }
    }

    #[cfg(test)]
    #[test]
    fn register_request_debug_hides_the_pin() {
        let request = RegisterRequest {
            phone_number_id: "1".into(),
            pin: "975310".into(),
            ..RegisterRequest::default()
        };
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("975310") && debug.contains("[redacted]"),
            "{debug}"
        );
    }
}

use crate::numbers::{Numbers, Registration};
use crate::watch::{Hub, Target};
use metrics::CallTimer;
use page_token::PageTokens;
use pb::phone_number_service_server::PhoneNumberService;
use secrecy::SecretString;
use std::pin::Pin;
use tonic::{Request, Response, Status};
use validate::Checks;

/// Implements `whatsapp.phonenumbers.v1.PhoneNumberService`.
#[derive(Debug)]
pub struct Api {
    numbers: Numbers,
    page_tokens: PageTokens,
    hub: Hub,
}

impl Api {
    pub fn new(numbers: Numbers, page_tokens: PageTokens, hub: Hub) -> Self {
        Self {
            numbers,
            page_tokens,
            hub,
        }
    }
}

/// At most this many numbers in one WatchStatus call.
const MAX_WATCHED_IDS: usize = 1_000;

type EventStream = Pin<Box<watch::Subscription>>;

/// The handlers; the trait implementation below times and counts them.
impl Api {
    async fn list(
        &self,
        request: Request<pb::ListNumbersRequest>,
    ) -> Result<Response<pb::ListNumbersResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("waba_id", &req.waba_id);
        let page_size = checks.page_size("page_size", req.page_size);
        let cursor = match req.page_token.as_str() {
            "" => None,
            token => match self.page_tokens.decode(token, &req.waba_id, page_size) {
                Ok(cursor) => Some(cursor),
                Err(e) => {
                    checks.fail("page_token", e.to_string());
                    None
                }
            },
        };
        checks.finish()?;

        let page = self
            .numbers
            .list(&req.waba_id, page_size, cursor.as_deref(), deadline)
            .await?;
        let next_page_token = page
            .next_cursor
            .as_ref()
            .map(|c| self.page_tokens.encode(&req.waba_id, page_size, c))
            .unwrap_or_default();
        Ok(Response::new(pb::ListNumbersResponse {
            phone_numbers: page.numbers.iter().map(|s| s.as_ref().into()).collect(),
            next_page_token,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::PhoneNumber>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("phone_number_id", &req.phone_number_id);
        let max_staleness = checks.duration("max_staleness", req.max_staleness);
        checks.finish()?;
        let snapshot = self
            .numbers
            .get(&req.phone_number_id, max_staleness, deadline)
            .await?;
        Ok(Response::new(snapshot.as_ref().into()))
    }

    async fn register_number(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .pin("pin", &req.pin)
            .region("data_localization_region", &req.data_localization_region)
            .request_id("request_id", &req.request_id)
            .finish()?;
        let registration = Registration {
            phone_number_id: req.phone_number_id,
            pin: SecretString::from(req.pin),
            data_localization_region: Some(req.data_localization_region).filter(|r| !r.is_empty()),
            request_id: Some(req.request_id).filter(|id| !id.is_empty()),
        };
        let success = self.numbers.register(&registration, deadline).await?;
        tracing::info!(phone_number_id = %registration.phone_number_id, success, "registered");
        Ok(Response::new(pb::RegisterResponse {
            phone_number_id: registration.phone_number_id,
            success,
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        match (req.phone_number_ids.is_empty(), req.waba_id.is_empty()) {
            (true, true) => checks.fail("phone_number_ids", "set phone_number_ids or waba_id"),
            (false, false) => checks.fail("waba_id", "set phone_number_ids or waba_id, not both"),
            (true, false) => {
                checks.graph_id("waba_id", &req.waba_id);
            }
            (false, true) if req.phone_number_ids.len() > MAX_WATCHED_IDS => {
                checks.fail("phone_number_ids", format!("at most {MAX_WATCHED_IDS} ids"));
            }
            (false, true) => {
                for (i, id) in req.phone_number_ids.iter().enumerate() {
                    checks.graph_id(&format!("phone_number_ids[{i}]"), id);
                }
            }
        }
        checks.finish()?;

        let mut targets: Vec<Target> = if req.waba_id.is_empty() {
            req.phone_number_ids
                .into_iter()
                .map(Target::Number)
                .collect()
        } else {
            vec![Target::Waba(req.waba_id)]
        };
        targets.sort();
        targets.dedup();
        let events = watch::open(&self.hub, targets, deadline).await?;
        Ok(Response::new(events))
    }
}

#[tonic::async_trait]
impl PhoneNumberService for Api {
    async fn list_numbers(
        &self,
        request: Request<pb::ListNumbersRequest>,
    ) -> Result<Response<pb::ListNumbersResponse>, Status> {
        let timer = CallTimer::start("ListNumbers");
        finish(timer, self.list(request).await)
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::PhoneNumber>, Status> {
        let timer = CallTimer::start("GetStatus");
        finish(timer, self.get(request).await)
    }

    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let timer = CallTimer::start("Register");
        finish(timer, self.register_number(request).await)
    }

    type WatchStatusStream = EventStream;

    /// Timed until the stream starts; the stream itself counts in `waba_watch_streams`.
    async fn watch_status(
        &self,
        request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let timer = CallTimer::start("WatchStatus");
        finish(timer, self.watch(request).await)
    }
}

/// Counts a handler's result by its gRPC code and records its latency. (Not a wrapper
/// around the handler's future: passing a future into an async fn stores it twice, and a
/// WatchStatus call's future is held by every stream still opening.)
fn finish<T>(timer: CallTimer, result: Result<T, Status>) -> Result<T, Status> {
    let code = result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok);
    let method = timer.method();
    timer.finish(code);
    if let Err(status) = &result {
        tracing::info!(
            method,
            code = metrics::code_name(code),
            status_message = status.message(),
            "call failed"
        );
    }
    result
}
