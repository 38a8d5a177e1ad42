//! A business portfolio's pool of pre-verified numbers: `POST
//! /{BUSINESS_ID}/add_phone_numbers`, `GET /{BUSINESS_ID}/preverified_numbers`, `GET` and
//! `DELETE /{PRE_VERIFIED_ID}`. Codes are requested and checked on a pre-verified id as
//! on a phone number's (see `lifecycle.rs`).

use super::{Call, Credential, Error, GraphClient, graph_id, wire};
use crate::model::{Deadline, PreverifiedNumber, PreverifiedPage};
use reqwest::Method;

/// The fields of a pre-verified number the service reads.
const FIELDS: &str =
    "id,phone_number,code_verification_status,code_verification_time,verification_expiry_time";

impl GraphClient {
    /// `POST /{business_id}/add_phone_numbers`: the pre-verified number's id. Sent once.
    pub async fn add_preverified_number(
        &self,
        business_id: &str,
        credential: &Credential,
        phone_number: &str,
        deadline: Deadline,
    ) -> Result<String, Error> {
        let path = format!("{}/add_phone_numbers", graph_id(business_id)?);
        let call = Call::write("add_preverified_number", Method::POST, path)
            .by(credential)
            .query("phone_number", phone_number);
        let created: wire::IdJson = self.call_json(call, deadline).await?;
        Ok(created.id)
    }

    /// `GET /{pre_verified_id}`.
    pub async fn preverified_number(
        &self,
        id: &str,
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<PreverifiedNumber, Error> {
        let call = Call::read("preverified_number", graph_id(id)?.to_owned())
            .by(credential)
            .query("fields", FIELDS);
        let number: wire::PreverifiedJson = self.call_json(call, deadline).await?;
        Ok(number.into())
    }

    /// `GET /{business_id}/preverified_numbers`: one page of the pool, only numbers in
    /// `status` when given.
    pub async fn list_preverified_numbers(
        &self,
        business_id: &str,
        credential: &Credential,
        limit: u32,
        after: Option<&str>,
        status: Option<&str>,
        deadline: Deadline,
    ) -> Result<PreverifiedPage, Error> {
        let path = format!("{}/preverified_numbers", graph_id(business_id)?);
        let mut call = Call::read("preverified_numbers", path)
            .by(credential)
            .query("fields", FIELDS)
            .query("limit", limit.to_string());
        if let Some(status) = status {
            call = call.query("code_verification_status", status);
        }
        if let Some(after) = after {
            call = call.query("after", after);
        }
        let list: wire::PreverifiedListJson = self.call_json(call, deadline).await?;
        Ok(list.into())
    }

    /// `DELETE /{pre_verified_id}`. Sent once.
    pub async fn delete_preverified_number(
        &self,
        id: &str,
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write(
            "delete_preverified_number",
            Method::DELETE,
            graph_id(id)?.to_owned(),
        )
        .by(credential);
        self.success(call, deadline).await
    }
}
