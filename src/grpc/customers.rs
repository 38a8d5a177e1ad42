//! `whatsapp.phonenumbers.v1.CustomerService`: validate, call the customers domain,
//! convert. Onboarding and removal run to their end in a task of their own (the code
//! is spent once sent), each with one audit line.

use super::lifecycle::given;
use super::metrics::CallTimer;
use super::page_token::PageTokens;
use super::pb::customer_service_server::CustomerService;
use super::validate::Checks;
use super::{auth, deadline, finish, pb, token_scope};
use crate::customers::{self, Customers, Onboarding};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Customers per page when the caller says 0, and at most.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = crate::store::MAX_PAGE;
/// The scope page tokens of ListCustomers are bound to.
const PAGE_SCOPE: &str = "customers";

/// Implements `whatsapp.phonenumbers.v1.CustomerService`.
#[derive(Debug)]
pub struct CustomerApi {
    customers: Customers,
    page_tokens: PageTokens,
}

impl CustomerApi {
    pub fn new(customers: Customers, page_tokens: PageTokens) -> Self {
        Self {
            customers,
            page_tokens,
        }
    }

    /// Whether customers can be kept (a store is configured).
    pub fn available(&self) -> bool {
        self.customers.available()
    }

    /// The customer RPCs need a store: say so before looking at the request.
    fn require_store(&self) -> Result<(), Status> {
        if self.available() {
            Ok(())
        } else {
            Err(customers::Error::NoStore.into())
        }
    }

    async fn onboard(
        &self,
        request: Request<pb::OnboardCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        self.require_store()?;
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        checks
            .signup_code("code", &req.code)
            .graph_id("waba_id", &req.waba_id);
        match (req.phone_number_id.is_empty(), req.pin.is_empty()) {
            (true, true) => {}
            (false, false) => {
                checks
                    .graph_id("phone_number_id", &req.phone_number_id)
                    .pin("pin", &req.pin);
            }
            (true, false) => checks.fail("phone_number_id", "is required with pin"),
            (false, true) => checks.fail("pin", "is required with phone_number_id"),
        }
        if req.request_id.is_empty() {
            checks.fail(
                "request_id",
                "is required: a retry with the same request_id resumes the onboarding \
                 instead of sending the one-time code again",
            );
        }
        checks.request_id("request_id", &req.request_id).finish()?;
        auth::visible_waba(caller.as_deref(), &req.waba_id)?;
        let register = given(req.phone_number_id).map(|id| (id, SecretString::from(req.pin)));
        let onboarding = Onboarding {
            code: SecretString::from(req.code),
            waba_id: req.waba_id,
            register,
            request_id: req.request_id,
        };
        let domain = self.customers.clone();
        let task = async move {
            let outcome = domain.onboard(&onboarding, deadline, describe).await;
            let waba_id = onboarding.waba_id.as_str();
            let outcome = outcome.map_err(Status::from);
            tracing::info!(
                waba_id,
                register = onboarding.register.as_ref().map(|(id, _)| id.as_str()).unwrap_or_default(),
                request_id = %onboarding.request_id,
                ok = outcome.is_ok(),
                "onboard customer"
            );
            outcome
        };
        match tokio::spawn(task.instrument(tracing::Span::current())).await {
            Ok(outcome) => Ok(Response::new(outcome?.into())),
            Err(e) => {
                tracing::error!(error = %e, "onboarding task failed");
                Err(Status::internal("the onboarding failed inside the service"))
            }
        }
    }

    async fn get(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        self.require_store()?;
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("waba_id", &req.waba_id)
            .finish()?;
        auth::visible_waba(caller.as_deref(), &req.waba_id)?;
        let view = self.customers.get(&req.waba_id).await?;
        Ok(Response::new(view.into()))
    }

    async fn list(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        self.require_store()?;
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        let mut checks = Checks::default();
        let scope = token_scope(PAGE_SCOPE, caller.as_ref());
        let page_size = match u32::try_from(req.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => {
                checks.fail("page_size", "must not be negative");
                DEFAULT_PAGE_SIZE
            }
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            self.page_tokens
                .decode(&req.page_token, &scope, page_size)
                .inspect_err(|e| checks.fail("page_token", e.to_string()))
                .ok()
        };
        checks.finish()?;
        let limit = NonZeroU32::new(page_size).expect("at least 1");
        let (views, next) = match caller.as_ref().and_then(|c| c.wabas()) {
            None => self.customers.list(limit, after.as_deref()).await?,
            Some(wabas) => self.listed(wabas, limit, after.as_deref()).await?,
        };
        let next_page_token = next
            .map(|last| self.page_tokens.encode(&scope, page_size, &last))
            .unwrap_or_default();
        Ok(Response::new(pb::ListCustomersResponse {
            customers: views.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    /// A page of the customers among `wabas` (a caller's, in id order) after `after`.
    async fn listed(
        &self,
        wabas: &BTreeSet<String>,
        limit: NonZeroU32,
        after: Option<&str>,
    ) -> Result<(Vec<customers::CustomerView>, Option<String>), Status> {
        let mut views = Vec::new();
        let mut candidates = wabas
            .iter()
            .filter(|id| after.is_none_or(|after| id.as_str() > after));
        for waba_id in candidates.by_ref() {
            match self.customers.get(waba_id).await {
                Ok(view) => views.push(view),
                Err(customers::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            if views.len() == limit.get() as usize {
                break;
            }
        }
        let more = candidates.next().is_some();
        let next = (more && views.len() == limit.get() as usize)
            .then(|| views.last().map(|v| v.customer.waba_id.clone()))
            .flatten();
        Ok((views, next))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveCustomerRequest>,
    ) -> Result<Response<pb::RemoveCustomerResponse>, Status> {
        self.require_store()?;
        let deadline = deadline::of(&request);
        let caller = auth::caller_of(&request);
        let req = request.into_inner();
        Checks::default()
            .graph_id("waba_id", &req.waba_id)
            .finish()?;
        auth::visible_waba(caller.as_deref(), &req.waba_id)?;
        let domain = self.customers.clone();
        let task = async move {
            let outcome = domain.remove(&req.waba_id, deadline).await;
            tracing::info!(waba_id = %req.waba_id, ok = outcome.is_ok(), "remove customer");
            outcome
        };
        let removed = match tokio::spawn(task.instrument(tracing::Span::current())).await {
            Ok(outcome) => outcome?,
            Err(e) => {
                tracing::error!(error = %e, "removal task failed");
                return Err(Status::internal("the removal failed inside the service"));
            }
        };
        // With Meta's details (ErrorInfo: graph_code, fbtrace_id...), as a call's error has.
        let unsubscribe_error = removed.unsubscribe_refused.map(|e| {
            let status = super::status::upstream(&e, true);
            prost::Message::decode(status.details()).unwrap_or_else(|_| tonic_types::pb::Status {
                code: status.code() as i32,
                message: status.message().to_owned(),
                details: Vec::new(),
            })
        });
        Ok(Response::new(pb::RemoveCustomerResponse {
            webhooks_unsubscribed: unsubscribe_error.is_none(),
            unsubscribe_error,
        }))
    }
}

/// A failed step's status, as the customer records it (code and message).
fn describe(e: &customers::Error) -> (i32, String) {
    let status = Status::from(e.clone());
    (status.code() as i32, status.message().to_owned())
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn onboard_customer(
        &self,
        request: Request<pb::OnboardCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let timer = CallTimer::start("OnboardCustomer", &request);
        finish(timer, self.onboard(request).await)
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let timer = CallTimer::start("GetCustomer", &request);
        finish(timer, self.get(request).await)
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let timer = CallTimer::start("ListCustomers", &request);
        finish(timer, self.list(request).await)
    }

    async fn remove_customer(
        &self,
        request: Request<pb::RemoveCustomerRequest>,
    ) -> Result<Response<pb::RemoveCustomerResponse>, Status> {
        let timer = CallTimer::start("RemoveCustomer", &request);
        finish(timer, self.remove(request).await)
    }
}
