//! The handlers of a number's writes: validate, then run the write to its end in a task
//! of its own ([`Api::audited`]), which logs one audit line (ids and outcome, never a
//! secret) and has the number's watchers re-read it, whatever happens to the caller.

use super::validate::Checks;
use super::{Api, auth, deadline, pb};
use crate::model::CodeMethod;
use crate::numbers::{self, NewNumber, Registration};
use secrecy::SecretString;
use std::future::Future;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// An optional string field: `None` when empty.
pub(super) fn given(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

/// What a write touched, for the watchers to re-read.
#[derive(Default)]
pub(super) struct Touched {
    pub waba_id: Option<String>,
    pub phone_number_id: Option<String>,
}

impl Touched {
    fn number(id: &str) -> Self {
        Touched {
            waba_id: None,
            phone_number_id: Some(id.to_owned()),
        }
    }
}

impl Api {
    /// Runs `write` to its end in a task of its own, in the call's span: even when the
    /// caller gives up (gone, past its deadline: when the outcome matters most), `audit`
    /// logs its line and the watchers re-read what it `touched`.
    pub(super) async fn audited<T, Fut>(
        &self,
        touched: Touched,
        write: Fut,
        audit: impl FnOnce(&Result<T, numbers::Error>) + Send + 'static,
    ) -> Result<T, Status>
    where
        Fut: Future<Output = Result<T, numbers::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let hub = self.hub.clone();
        let task = async move {
            let outcome = write.await;
            audit(&outcome);
            hub.written(
                touched.waba_id.as_deref(),
                touched.phone_number_id.as_deref(),
            );
            outcome
        };
        match tokio::spawn(task.instrument(tracing::Span::current())).await {
            Ok(outcome) => outcome.map_err(Status::from),
            Err(e) => {
                tracing::error!(error = %e, "write task failed");
                Err(Status::internal("the write failed inside the service"))
            }
        }
    }

    pub(super) async fn add(
        &self,
        request: Request<pb::AddNumberRequest>,
    ) -> Result<Response<pb::AddNumberResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("waba_id", &req.waba_id);
        let claiming = !req.preverified_id.is_empty();
        if claiming {
            checks.graph_id("preverified_id", &req.preverified_id);
        }
        // A pre-verified number is known by its id: the digits may be left out.
        let digits_optional =
            claiming && req.country_code.is_empty() && req.phone_number.is_empty();
        let (country_code, phone_number) = if digits_optional {
            (String::new(), String::new())
        } else {
            let cc = checks.country_code("country_code", &req.country_code);
            (cc, checks.phone("phone_number", &req.phone_number, false))
        };
        checks.display_name("verified_name", &req.verified_name, req.migrate || claiming);
        checks.request_id("request_id", &req.request_id).finish()?;
        auth::visible_waba(caller.as_deref(), &req.waba_id)?;
        if claiming {
            // The pool is the business's: not for a caller limited to WABAs.
            auth::business_level(caller.as_deref())?;
        }
        let new = NewNumber {
            waba_id: req.waba_id.clone(),
            country_code: given(country_code),
            phone_number: given(phone_number),
            verified_name: given(req.verified_name),
            migrate: req.migrate,
            preverified_id: given(req.preverified_id),
            request_id: given(req.request_id),
        };
        let numbers = self.numbers.clone();
        let touched = Touched {
            waba_id: Some(new.waba_id.clone()),
            phone_number_id: None,
        };
        let (waba_id, migrate, preverified_id) =
            (new.waba_id.clone(), new.migrate, new.preverified_id.clone());
        let id = self
            .audited(
                touched,
                async move { numbers.add_number(&new, deadline).await },
                move |outcome| {
                    tracing::info!(
                        %waba_id, migrate, preverified_id = preverified_id.as_deref().unwrap_or_default(),
                        phone_number_id = outcome.as_deref().unwrap_or_default(),
                        ok = outcome.is_ok(), "add number"
                    )
                },
            )
            .await?;
        Ok(Response::new(pb::AddNumberResponse {
            phone_number_id: id,
        }))
    }

    pub(super) async fn request_code(
        &self,
        request: Request<pb::RequestVerificationCodeRequest>,
    ) -> Result<Response<pb::RequestVerificationCodeResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("phone_number_id", &req.phone_number_id);
        let language = checks.language("language", &req.language);
        let method = match pb::CodeMethod::try_from(req.method) {
            Ok(pb::CodeMethod::Unspecified | pb::CodeMethod::Sms) => CodeMethod::Sms,
            Ok(pb::CodeMethod::Voice) => CodeMethod::Voice,
            Err(_) => {
                checks.fail("method", "must be CODE_METHOD_SMS or CODE_METHOD_VOICE");
                CodeMethod::Sms
            }
        };
        checks.request_id("request_id", &req.request_id).finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let numbers = self.numbers.clone();
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let request_id = given(req.request_id);
        let write = async move {
            let key = request_id.as_deref();
            numbers
                .request_code(&id, method, &language, key, deadline)
                .await
                .map(|()| language)
        };
        self.audited(touched, write, move |outcome| {
            tracing::info!(
                phone_number_id = %logged, method = method.as_meta(),
                language = outcome.as_deref().unwrap_or_default(),
                ok = outcome.is_ok(), "request verification code"
            )
        })
        .await?;
        Ok(Response::new(pb::RequestVerificationCodeResponse {}))
    }

    pub(super) async fn verify(
        &self,
        request: Request<pb::VerifyCodeRequest>,
    ) -> Result<Response<pb::VerifyCodeResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("phone_number_id", &req.phone_number_id);
        let code = SecretString::from(checks.code("code", &req.code));
        checks.finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let numbers = self.numbers.clone();
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let write = async move { numbers.verify_code(&id, code, deadline).await };
        self.audited(touched, write, move |outcome| {
            tracing::info!(phone_number_id = %logged, ok = outcome.is_ok(), "verify code")
        })
        .await?;
        Ok(Response::new(pb::VerifyCodeResponse {}))
    }

    pub(super) async fn register_number(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .pin("pin", &req.pin)
            .region("data_localization_region", &req.data_localization_region)
            .request_id("request_id", &req.request_id)
            .finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let spend_reserve = req.spend_reserve;
        let registration = Registration {
            phone_number_id: id.clone(),
            pin: SecretString::from(req.pin),
            data_localization_region: given(req.data_localization_region),
            request_id: given(req.request_id),
            spend_reserve,
        };
        let numbers = self.numbers.clone();
        let write = async move { numbers.register(&registration, deadline).await };
        let success = self
            .audited(touched, write, move |outcome| {
                tracing::info!(
                    phone_number_id = %logged, spend_reserve, ok = outcome.is_ok(),
                    success = outcome.as_ref().is_ok_and(|s| *s), "register"
                )
            })
            .await?;
        Ok(Response::new(pb::RegisterResponse {
            phone_number_id: id,
            success,
        }))
    }

    pub(super) async fn deregister_number(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .request_id("request_id", &req.request_id)
            .finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let numbers = self.numbers.clone();
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let (spend_reserve, request_id) = (req.spend_reserve, given(req.request_id));
        let write = async move {
            let key = request_id.as_deref();
            numbers.deregister(&id, spend_reserve, key, deadline).await
        };
        self.audited(touched, write, move |outcome| {
            tracing::info!(phone_number_id = %logged, spend_reserve, ok = outcome.is_ok(), "deregister")
        })
        .await?;
        Ok(Response::new(pb::DeregisterResponse {}))
    }

    pub(super) async fn set_pin(
        &self,
        request: Request<pb::SetTwoStepPinRequest>,
    ) -> Result<Response<pb::SetTwoStepPinResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .pin("pin", &req.pin)
            .request_id("request_id", &req.request_id)
            .finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let numbers = self.numbers.clone();
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let (pin, request_id) = (SecretString::from(req.pin), given(req.request_id));
        let write = async move {
            let key = request_id.as_deref();
            numbers.set_two_step_pin(&id, pin, key, deadline).await
        };
        self.audited(touched, write, move |outcome| {
            tracing::info!(phone_number_id = %logged, ok = outcome.is_ok(), "set two-step PIN")
        })
        .await?;
        Ok(Response::new(pb::SetTwoStepPinResponse {}))
    }

    pub(super) async fn change_display_name(
        &self,
        request: Request<pb::RequestDisplayNameChangeRequest>,
    ) -> Result<Response<pb::RequestDisplayNameChangeResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .display_name("display_name", &req.display_name, false)
            .request_id("request_id", &req.request_id)
            .finish()?;
        auth::visible_number(caller.as_deref(), &self.numbers, &req.phone_number_id)?;
        let numbers = self.numbers.clone();
        let id = req.phone_number_id;
        let (touched, logged) = (Touched::number(&id), id.clone());
        let (name, request_id) = (req.display_name, given(req.request_id));
        let logged_name = name.clone();
        let write = async move {
            let key = request_id.as_deref();
            numbers
                .request_display_name(&id, &name, key, deadline)
                .await
        };
        self.audited(touched, write, move |outcome| {
            tracing::info!(
                phone_number_id = %logged, display_name = %logged_name,
                ok = outcome.is_ok(), "request display name change"
            )
        })
        .await?;
        Ok(Response::new(pb::RequestDisplayNameChangeResponse {}))
    }
}
