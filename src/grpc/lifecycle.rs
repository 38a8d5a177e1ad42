//! The handlers of a number's writes and of the pre-verified pool: validate, call the
//! domain, log one line for the audit trail (ids and outcome, never a secret), have the
//! number's watchers re-read it, answer.

use super::validate::Checks;
use super::{Api, deadline, pb};
use crate::model::CodeMethod;
use crate::numbers::{NewNumber, Registration};
use secrecy::SecretString;
use tonic::{Request, Response, Status};

/// An optional string field: `None` when empty.
fn given(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

impl Api {
    pub(super) async fn add(
        &self,
        request: Request<pb::AddNumberRequest>,
    ) -> Result<Response<pb::AddNumberResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("waba_id", &req.waba_id);
        let country_code = checks.country_code("country_code", &req.country_code);
        let phone_number = checks.phone("phone_number", &req.phone_number, false);
        let name_optional = req.migrate || !req.preverified_id.is_empty();
        checks.display_name("verified_name", &req.verified_name, name_optional);
        if !req.preverified_id.is_empty() {
            checks.graph_id("preverified_id", &req.preverified_id);
        }
        checks.request_id("request_id", &req.request_id).finish()?;
        let new = NewNumber {
            waba_id: req.waba_id,
            country_code,
            phone_number,
            verified_name: given(req.verified_name),
            migrate: req.migrate,
            preverified_id: given(req.preverified_id),
            request_id: given(req.request_id),
        };
        let outcome = self.numbers.add_number(&new, deadline).await;
        tracing::info!(
            waba_id = %new.waba_id, migrate = new.migrate,
            preverified_id = new.preverified_id.as_deref().unwrap_or_default(),
            phone_number_id = outcome.as_deref().unwrap_or_default(),
            ok = outcome.is_ok(), "add number"
        );
        self.hub.written(Some(&new.waba_id), None);
        Ok(Response::new(pb::AddNumberResponse {
            phone_number_id: outcome?,
        }))
    }

    pub(super) async fn request_code(
        &self,
        request: Request<pb::RequestVerificationCodeRequest>,
    ) -> Result<Response<pb::RequestVerificationCodeResponse>, Status> {
        let deadline = deadline::of(&request);
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
        let id = &req.phone_number_id;
        let request_id = given(req.request_id.clone());
        let outcome = self
            .numbers
            .request_code(id, method, &language, request_id.as_deref(), deadline)
            .await;
        tracing::info!(phone_number_id = %id, method = method.as_meta(), %language, ok = outcome.is_ok(), "request verification code");
        self.hub.written(None, Some(id));
        outcome?;
        Ok(Response::new(pb::RequestVerificationCodeResponse {}))
    }

    pub(super) async fn verify(
        &self,
        request: Request<pb::VerifyCodeRequest>,
    ) -> Result<Response<pb::VerifyCodeResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("phone_number_id", &req.phone_number_id);
        let code = SecretString::from(checks.code("code", &req.code));
        checks.finish()?;
        let id = &req.phone_number_id;
        let outcome = self.numbers.verify_code(id, code, deadline).await;
        tracing::info!(phone_number_id = %id, ok = outcome.is_ok(), "verify code");
        self.hub.written(None, Some(id));
        outcome?;
        Ok(Response::new(pb::VerifyCodeResponse {}))
    }

    pub(super) async fn register_number(
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
            data_localization_region: given(req.data_localization_region),
            request_id: given(req.request_id),
        };
        let outcome = self.numbers.register(&registration, deadline).await;
        let id = registration.phone_number_id;
        tracing::info!(phone_number_id = %id, ok = outcome.is_ok(), success = outcome.as_ref().is_ok_and(|s| *s), "register");
        self.hub.written(None, Some(&id));
        Ok(Response::new(pb::RegisterResponse {
            success: outcome?,
            phone_number_id: id,
        }))
    }

    pub(super) async fn deregister_number(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .request_id("request_id", &req.request_id)
            .finish()?;
        let id = &req.phone_number_id;
        let request_id = given(req.request_id.clone());
        let outcome = self
            .numbers
            .deregister(id, request_id.as_deref(), deadline)
            .await;
        tracing::info!(phone_number_id = %id, ok = outcome.is_ok(), "deregister");
        self.hub.written(None, Some(id));
        outcome?;
        Ok(Response::new(pb::DeregisterResponse {}))
    }

    pub(super) async fn set_pin(
        &self,
        request: Request<pb::SetTwoStepPinRequest>,
    ) -> Result<Response<pb::SetTwoStepPinResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .pin("pin", &req.pin)
            .request_id("request_id", &req.request_id)
            .finish()?;
        let id = &req.phone_number_id;
        let request_id = given(req.request_id.clone());
        let pin = SecretString::from(req.pin);
        let outcome = self
            .numbers
            .set_two_step_pin(id, pin, request_id.as_deref(), deadline)
            .await;
        tracing::info!(phone_number_id = %id, ok = outcome.is_ok(), "set two-step PIN");
        self.hub.written(None, Some(id));
        outcome?;
        Ok(Response::new(pb::SetTwoStepPinResponse {}))
    }

    pub(super) async fn change_display_name(
        &self,
        request: Request<pb::RequestDisplayNameChangeRequest>,
    ) -> Result<Response<pb::RequestDisplayNameChangeResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("phone_number_id", &req.phone_number_id)
            .display_name("display_name", &req.display_name, false)
            .request_id("request_id", &req.request_id)
            .finish()?;
        let id = &req.phone_number_id;
        let request_id = given(req.request_id.clone());
        let outcome = self
            .numbers
            .request_display_name(id, &req.display_name, request_id.as_deref(), deadline)
            .await;
        tracing::info!(phone_number_id = %id, display_name = %req.display_name, ok = outcome.is_ok(), "request display name change");
        self.hub.written(None, Some(id));
        outcome?;
        Ok(Response::new(pb::RequestDisplayNameChangeResponse {}))
    }

    pub(super) async fn add_preverified(
        &self,
        request: Request<pb::AddPreverifiedNumberRequest>,
    ) -> Result<Response<pb::PreverifiedNumber>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("business_id", &req.business_id);
        let phone = checks.phone("phone_number", &req.phone_number, false);
        checks.finish()?;
        let outcome = self
            .numbers
            .add_preverified(&req.business_id, &phone, deadline)
            .await;
        tracing::info!(
            business_id = %req.business_id,
            preverified_id = outcome.as_ref().map(|n| n.id.as_str()).unwrap_or_default(),
            ok = outcome.is_ok(), "add pre-verified number"
        );
        Ok(Response::new(outcome?.into()))
    }

    pub(super) async fn list_preverified(
        &self,
        request: Request<pb::ListPreverifiedNumbersRequest>,
    ) -> Result<Response<pb::ListPreverifiedNumbersResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks.graph_id("business_id", &req.business_id);
        let page_size = checks.page_size("page_size", req.page_size);
        let status = match pb::VerificationStatus::try_from(req.code_verification_status) {
            Ok(pb::VerificationStatus::Unspecified) => None,
            Ok(status) => status
                .as_str_name()
                .strip_prefix("VERIFICATION_STATUS_")
                .map(str::to_owned),
            Err(_) => {
                checks.fail("code_verification_status", "is not a VerificationStatus");
                None
            }
        };
        // A token names the request it continues: the business and the filter.
        let scope = format!(
            "preverified:{}:{}",
            req.business_id,
            status.as_deref().unwrap_or_default()
        );
        let cursor = self.cursor(&mut checks, &req.page_token, &scope, page_size);
        checks.finish()?;
        let page = self
            .numbers
            .list_preverified(
                &req.business_id,
                page_size,
                cursor.as_deref(),
                status.as_deref(),
                deadline,
            )
            .await?;
        let next_page_token = page
            .next_cursor
            .as_ref()
            .map(|c| self.page_tokens.encode(&scope, page_size, c))
            .unwrap_or_default();
        Ok(Response::new(pb::ListPreverifiedNumbersResponse {
            preverified_numbers: page.numbers.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    pub(super) async fn delete_preverified(
        &self,
        request: Request<pb::DeletePreverifiedNumberRequest>,
    ) -> Result<Response<pb::DeletePreverifiedNumberResponse>, Status> {
        let deadline = deadline::of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("preverified_id", &req.preverified_id)
            .finish()?;
        let id = &req.preverified_id;
        let outcome = self.numbers.delete_preverified(id, deadline).await;
        tracing::info!(preverified_id = %id, ok = outcome.is_ok(), "delete pre-verified number");
        outcome?;
        Ok(Response::new(pb::DeletePreverifiedNumberResponse {}))
    }
}
