//! The handlers of a business portfolio's pool of pre-verified numbers. Its writes run
//! to their end and leave an audit line as a number's do (see `lifecycle.rs`).

use super::lifecycle::Touched;
use super::validate::Checks;
use super::{Api, deadline, pb};
use tonic::{Request, Response, Status};

impl Api {
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
        let numbers = self.numbers.clone();
        let business_id = req.business_id;
        let logged = business_id.clone();
        let write = async move {
            numbers
                .add_preverified(&business_id, &phone, deadline)
                .await
        };
        let added = self
            .audited(Touched::default(), write, move |outcome| {
                tracing::info!(
                    business_id = %logged,
                    preverified_id = outcome.as_ref().map(|n| n.id.as_str()).unwrap_or_default(),
                    ok = outcome.is_ok(), "add pre-verified number"
                )
            })
            .await?;
        Ok(Response::new(added.into()))
    }

    pub(super) async fn list_preverified(
        &self,
        request: Request<pb::ListPreverifiedNumbersRequest>,
    ) -> Result<Response<pb::ListPreverifiedNumbersResponse>, Status> {
        let deadline = deadline::of(&request);
        let caller = super::auth::caller_of(&request);
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
        let scope = super::token_scope(
            &format!(
                "preverified:{}:{}",
                req.business_id,
                status.as_deref().unwrap_or_default()
            ),
            caller.as_ref(),
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
        let numbers = self.numbers.clone();
        let id = req.preverified_id;
        let logged = id.clone();
        let write = async move { numbers.delete_preverified(&id, deadline).await };
        self.audited(Touched::default(), write, move |outcome| {
            tracing::info!(preverified_id = %logged, ok = outcome.is_ok(), "delete pre-verified number")
        })
        .await?;
        Ok(Response::new(pb::DeletePreverifiedNumberResponse {}))
    }
}
