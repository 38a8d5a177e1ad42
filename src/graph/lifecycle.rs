//! The writes of a number's life: add it, verify it, register and deregister it, set
//! its PIN, change its display name. Each is sent once and never retried: a code
//! request sends an SMS or places a call, and a register or deregister spends one of
//! the number's 10 attempts per 72 hours.
//!
//! Parameters go where Meta's reference samples put them: a JSON body for adding a
//! number, registering and the PIN; the query for `request_code`, `verify_code` and
//! `new_display_name`.

use super::{Call, Credential, Error, GraphClient, graph_id, wire};
use crate::model::{CodeMethod, Deadline};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

/// What `POST /{WABA_ID}/phone_numbers` carries.
#[derive(Debug)]
pub struct NewNumber<'a> {
    pub waba_id: &'a str,
    /// The country calling code, digits only (`None` only when claiming a pre-verified
    /// number, which its id names).
    pub country_code: Option<&'a str>,
    /// The number without its country code, digits only.
    pub phone_number: Option<&'a str>,
    pub verified_name: Option<&'a str>,
    /// Move the number from the WABA it is on (`migrate_phone_number`).
    pub migrate: bool,
    pub preverified_id: Option<&'a str>,
}

impl GraphClient {
    /// `POST /{waba_id}/phone_numbers`: the new number's id.
    pub async fn add_phone_number(
        &self,
        number: &NewNumber<'_>,
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<String, Error> {
        let mut body = serde_json::json!({});
        if let Some(cc) = number.country_code {
            body["cc"] = cc.into();
        }
        if let Some(phone) = number.phone_number {
            body["phone_number"] = phone.into();
        }
        if let Some(name) = number.verified_name {
            body["verified_name"] = name.into();
        }
        if number.migrate {
            body["migrate_phone_number"] = true.into();
        }
        if let Some(id) = number.preverified_id {
            body["preverified_id"] = graph_id(id)?.into();
        }
        let path = format!("{}/phone_numbers", graph_id(number.waba_id)?);
        let call = Call::write("add_phone_number", Method::POST, path)
            .by(credential)
            .json(body);
        let created: wire::IdJson = self.call_json(call, deadline).await?;
        Ok(created.id)
    }

    /// `POST /{id}/request_code`: Meta sends a code by SMS or voice call. `id` may be a
    /// phone number's or a pre-verified number's.
    pub async fn request_code(
        &self,
        id: &str,
        credential: &Credential,
        method: CodeMethod,
        language: &str,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write(
            "request_code",
            Method::POST,
            format!("{}/request_code", graph_id(id)?),
        )
        .by(credential)
        .query("code_method", method.as_meta())
        .query("language", language);
        self.success(call, deadline).await
    }

    /// `POST /{id}/verify_code`, with the code the number received.
    pub async fn verify_code(
        &self,
        id: &str,
        credential: &Credential,
        code: &SecretString,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write(
            "verify_code",
            Method::POST,
            format!("{}/verify_code", graph_id(id)?),
        )
        .by(credential)
        .query("code", code.expose_secret())
        .secret(code);
        self.success(call, deadline).await
    }

    /// `POST /{phone_number_id}/register`.
    pub async fn register(
        &self,
        id: &str,
        credential: &Credential,
        pin: &SecretString,
        data_localization_region: Option<&str>,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let mut body = serde_json::json!({
            "messaging_product": "whatsapp",
            "pin": pin.expose_secret(),
        });
        if let Some(region) = data_localization_region {
            body["data_localization_region"] = region.into();
        }
        let call = Call::write(
            "register",
            Method::POST,
            format!("{}/register", graph_id(id)?),
        )
        .by(credential)
        .json(body)
        .secret(pin);
        self.success(call, deadline).await
    }

    /// `POST /{phone_number_id}/deregister`.
    pub async fn deregister(
        &self,
        id: &str,
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write(
            "deregister",
            Method::POST,
            format!("{}/deregister", graph_id(id)?),
        )
        .by(credential);
        self.success(call, deadline).await
    }

    /// `POST /{phone_number_id}` with `{"pin": ...}`: sets or changes the two-step PIN.
    pub async fn set_two_step_pin(
        &self,
        id: &str,
        credential: &Credential,
        pin: &SecretString,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write("set_pin", Method::POST, graph_id(id)?.to_owned())
            .by(credential)
            .json(serde_json::json!({ "pin": pin.expose_secret() }))
            .secret(pin);
        self.success(call, deadline).await
    }

    /// `POST /{phone_number_id}?new_display_name=...`: asks for a display-name review.
    pub async fn request_display_name(
        &self,
        id: &str,
        credential: &Credential,
        display_name: &str,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = Call::write("new_display_name", Method::POST, graph_id(id)?.to_owned())
            .by(credential)
            .query("new_display_name", display_name);
        self.success(call, deadline).await
    }

    /// Sends a write that answers `{"success": true}`.
    pub(super) async fn success(&self, call: Call<'_>, deadline: Deadline) -> Result<bool, Error> {
        let answer: wire::SuccessJson = self.call_json(call, deadline).await?;
        Ok(answer.success)
    }
}
