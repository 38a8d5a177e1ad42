//! The gRPC face of the service: thin handlers that validate input, call the domain and
//! convert the answer. Protobuf types live here and nowhere else.

pub mod auth;
pub mod codec;
mod convert;
mod customers;
mod deadline;
mod lifecycle;
mod metrics;
pub mod page_token;
pub mod peer;
mod preverified;
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

    impl std::fmt::Debug for SetTwoStepPinRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SetTwoStepPinRequest")
                .field("phone_number_id", &self.phone_number_id)
                .field("pin", &"[redacted]")
                .field("request_id", &self.request_id)
                .finish()
        }
    }

    impl std::fmt::Debug for OnboardCustomerRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OnboardCustomerRequest")
                .field("code", &"[redacted]")
                .field("waba_id", &self.waba_id)
                .field("phone_number_id", &self.phone_number_id)
                .field("pin", &"[redacted]")
                .field("request_id", &self.request_id)
                .finish()
        }
    }

    impl std::fmt::Debug for VerifyCodeRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("VerifyCodeRequest")
                .field("phone_number_id", &self.phone_number_id)
                .field("code", &"[redacted]")
                .finish()
        }
    }

    #[cfg(test)]
    #[test]
    fn debug_hides_pins_and_codes() {
        let secrets = [
            format!(
                "{:?}",
                RegisterRequest {
                    pin: "975310".into(),
                    ..RegisterRequest::default()
                }
            ),
            format!(
                "{:?}",
                SetTwoStepPinRequest {
                    pin: "975310".into(),
                    ..SetTwoStepPinRequest::default()
                }
            ),
            format!(
                "{:?}",
                VerifyCodeRequest {
                    code: "975310".into(),
                    ..VerifyCodeRequest::default()
                }
            ),
            format!(
                "{:?}",
                OnboardCustomerRequest {
                    code: "975310".into(),
                    pin: "975310".into(),
                    ..OnboardCustomerRequest::default()
                }
            ),
        ];
        for debug in secrets {
            assert!(
                !debug.contains("975310") && debug.contains("[redacted]"),
                "{debug}"
            );
        }
    }
}

pub use customers::CustomerApi;

use crate::callers::{Caller, Callers};
use crate::numbers::Numbers;
use crate::watch::{Hub, Target};
use metrics::CallTimer;
use page_token::PageTokens;
use pb::phone_number_service_server::PhoneNumberService;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use validate::Checks;

/// Implements `whatsapp.phonenumbers.v1.PhoneNumberService`.
#[derive(Debug)]
pub struct Api {
    numbers: Numbers,
    page_tokens: PageTokens,
    hub: Hub,
    /// The callers file, when there is one: its limit on reads that bypass the cache.
    callers: Option<Arc<Callers>>,
}

impl Api {
    pub fn new(
        numbers: Numbers,
        page_tokens: PageTokens,
        hub: Hub,
        callers: Option<Arc<Callers>>,
    ) -> Self {
        Self {
            numbers,
            page_tokens,
            hub,
            callers,
        }
    }
}

/// What a page token is bound to: the listing (a WABA id, say) and, under a callers
/// file, the caller it was issued to.
pub(crate) fn token_scope(scope: &str, caller: Option<&Arc<Caller>>) -> String {
    match caller {
        Some(caller) => format!("{scope}\ncaller:{}", caller.name),
        None => scope.to_owned(),
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
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("waba_id", &req.waba_id);
        let page_size = checks.page_size("page_size", req.page_size);
        let scope = token_scope(&req.waba_id, caller.as_ref());
        let cursor = self.cursor(&mut checks, &req.page_token, &scope, page_size);
        let wanted = checks.phone("display_phone_number", &req.display_phone_number, true);
        if !wanted.is_empty() && cursor.is_some() {
            checks.fail(
                "page_token",
                "must be empty with display_phone_number: the answer is one page",
            );
        }
        checks.finish()?;
        auth::visible_waba(caller.as_deref(), &req.waba_id)?;

        if !wanted.is_empty() {
            let found = self.numbers.find(&req.waba_id, &wanted, deadline).await?;
            return Ok(Response::new(pb::ListNumbersResponse {
                phone_numbers: found.iter().map(|s| s.as_ref().into()).collect(),
                next_page_token: String::new(),
            }));
        }
        let page = self
            .numbers
            .list(&req.waba_id, page_size, cursor.as_deref(), deadline)
            .await?;
        let next_page_token = page
            .next_cursor
            .as_ref()
            .map(|c| self.page_tokens.encode(&scope, page_size, c))
            .unwrap_or_default();
        Ok(Response::new(pb::ListNumbersResponse {
            phone_numbers: page.numbers.iter().map(|s| s.as_ref().into()).collect(),
            next_page_token,
        }))
    }

    /// The Meta cursor a page token carries, if it was issued for `scope` and
    /// `page_size`; an empty token is the first page.
    fn cursor(
        &self,
        checks: &mut Checks,
        token: &str,
        scope: &str,
        page_size: u32,
    ) -> Option<String> {
        if token.is_empty() {
            return None;
        }
        self.page_tokens
            .decode(token, scope, page_size)
            .inspect_err(|e| checks.fail("page_token", e.to_string()))
            .ok()
    }

    async fn get(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::PhoneNumber>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("phone_number_id", &req.phone_number_id);
        let max_staleness = checks.duration("max_staleness", req.max_staleness);
        checks.finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        // A read that asks for fresher than the cache keeps, and that what is cached does
        // not meet, bypasses the cache: it counts against the caller's allowance.
        let reads = self.numbers.reads();
        if let (Some(max), Some(callers), Some(caller)) = (max_staleness, &self.callers, &caller)
            && max < reads.ttl()
            && reads
                .cached(&req.phone_number_id)
                .is_none_or(|s| s.age() >= max)
        {
            let waba = reads.waba_of(&req.phone_number_id);
            let waba = waba.as_deref().unwrap_or(&req.phone_number_id);
            if let Err(wait) = callers.forced_read(caller, waba) {
                // The caller's allowance is spent: what is cached, however old, else wait.
                return match self.numbers.reads().cached(&req.phone_number_id) {
                    Some(snapshot) => Ok(Response::new(snapshot.as_ref().into())),
                    None => Err(status::forced_reads_exhausted(
                        &caller.name,
                        waba,
                        caller.forced_reads_per_minute,
                        wait,
                    )),
                };
            }
        }
        let snapshot = self
            .numbers
            .get(&req.phone_number_id, max_staleness, deadline)
            .await?;
        Ok(Response::new(snapshot.as_ref().into()))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
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
        if req.waba_id.is_empty() {
            for id in &req.phone_number_ids {
                auth::visible_number(caller.as_deref(), &self.numbers, id)?;
            }
        } else {
            auth::visible_waba(caller.as_deref(), &req.waba_id)?;
        }

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
        let timer = CallTimer::start("ListNumbers", &request);
        finish(timer, self.list(request).await)
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::PhoneNumber>, Status> {
        let timer = CallTimer::start("GetStatus", &request);
        finish(timer, self.get(request).await)
    }

    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let timer = CallTimer::start("Register", &request);
        finish(timer, self.register_number(request).await)
    }

    async fn add_number(
        &self,
        request: Request<pb::AddNumberRequest>,
    ) -> Result<Response<pb::AddNumberResponse>, Status> {
        let timer = CallTimer::start("AddNumber", &request);
        finish(timer, self.add(request).await)
    }

    async fn request_verification_code(
        &self,
        request: Request<pb::RequestVerificationCodeRequest>,
    ) -> Result<Response<pb::RequestVerificationCodeResponse>, Status> {
        let timer = CallTimer::start("RequestVerificationCode", &request);
        finish(timer, self.request_code(request).await)
    }

    async fn verify_code(
        &self,
        request: Request<pb::VerifyCodeRequest>,
    ) -> Result<Response<pb::VerifyCodeResponse>, Status> {
        let timer = CallTimer::start("VerifyCode", &request);
        finish(timer, self.verify(request).await)
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let timer = CallTimer::start("Deregister", &request);
        finish(timer, self.deregister_number(request).await)
    }

    async fn set_two_step_pin(
        &self,
        request: Request<pb::SetTwoStepPinRequest>,
    ) -> Result<Response<pb::SetTwoStepPinResponse>, Status> {
        let timer = CallTimer::start("SetTwoStepPin", &request);
        finish(timer, self.set_pin(request).await)
    }

    async fn request_display_name_change(
        &self,
        request: Request<pb::RequestDisplayNameChangeRequest>,
    ) -> Result<Response<pb::RequestDisplayNameChangeResponse>, Status> {
        let timer = CallTimer::start("RequestDisplayNameChange", &request);
        finish(timer, self.change_display_name(request).await)
    }

    async fn add_preverified_number(
        &self,
        request: Request<pb::AddPreverifiedNumberRequest>,
    ) -> Result<Response<pb::PreverifiedNumber>, Status> {
        let timer = CallTimer::start("AddPreverifiedNumber", &request);
        finish(timer, self.add_preverified(request).await)
    }

    async fn list_preverified_numbers(
        &self,
        request: Request<pb::ListPreverifiedNumbersRequest>,
    ) -> Result<Response<pb::ListPreverifiedNumbersResponse>, Status> {
        let timer = CallTimer::start("ListPreverifiedNumbers", &request);
        finish(timer, self.list_preverified(request).await)
    }

    async fn delete_preverified_number(
        &self,
        request: Request<pb::DeletePreverifiedNumberRequest>,
    ) -> Result<Response<pb::DeletePreverifiedNumberResponse>, Status> {
        let timer = CallTimer::start("DeletePreverifiedNumber", &request);
        finish(timer, self.delete_preverified(request).await)
    }

    type WatchStatusStream = EventStream;

    /// Timed until the stream starts; the stream itself counts in `waba_watch_streams`.
    async fn watch_status(
        &self,
        request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let timer = CallTimer::start("WatchStatus", &request);
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
