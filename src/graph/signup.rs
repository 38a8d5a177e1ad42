//! The calls of Embedded Signup's hand-off: exchanging the customer's one-time code for
//! its business token, checking what that token reaches (`debug_token`), and
//! subscribing the app to the customer's WABA webhooks (`subscribed_apps`).
//!
//! Two of them carry more secrets than a token: the exchange has the app secret and the
//! code in its URL, and `debug_token` the business token. Nothing here logs a URL (the
//! client logs paths only, and reqwest's errors lose their URL), and both secrets are
//! scrubbed from whatever Meta answers.

use super::{Auth, Call, Error, GraphClient, graph_id, wire};
use crate::model::{Deadline, TokenInfo};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

impl GraphClient {
    /// `GET /oauth/access_token?client_id&client_secret&code`: the business token for a
    /// code Embedded Signup gave. Sent once (a code works once).
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        deadline: Deadline,
    ) -> Result<SecretString, Error> {
        let (app_id, app_secret) = self.app_credentials()?;
        let mut call = Call::write(
            "oauth_access_token",
            Method::GET,
            "oauth/access_token".into(),
        )
        .query("client_id", app_id)
        .query("client_secret", app_secret.expose_secret())
        .query("code", code.expose_secret())
        .secret(code);
        call.auth = Auth::Nobody;
        let answer: wire::AccessTokenJson = self.call_json(call, deadline).await?;
        Ok(SecretString::from(answer.access_token))
    }

    /// `GET /debug_token?input_token=...`, authorised with the app token: whether `token`
    /// is valid, when it expires, which WABAs and businesses it reaches. A read.
    pub async fn debug_token(
        &self,
        token: &SecretString,
        deadline: Deadline,
    ) -> Result<TokenInfo, Error> {
        let (app_id, app_secret) = self.app_credentials()?;
        let app_token = SecretString::from(format!("{app_id}|{}", app_secret.expose_secret()));
        let call = Call::read("debug_token", "debug_token".into())
            .query("input_token", token.expose_secret())
            .secret(token);
        let call = Call {
            auth: Auth::App(&app_token),
            ..call
        };
        let answer: wire::DebugTokenJson = self.call_json(call, deadline).await?;
        Ok(answer.into())
    }

    /// `POST /{waba_id}/subscribed_apps` with the customer's token: the app receives the
    /// WABA's webhooks. Sent once.
    pub async fn subscribe_app(
        &self,
        waba_id: &str,
        token: &SecretString,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = subscription("subscribe_app", Method::POST, waba_id, token)?;
        self.success(call, deadline).await
    }

    /// `DELETE /{waba_id}/subscribed_apps` with the customer's token. Sent once.
    pub async fn unsubscribe_app(
        &self,
        waba_id: &str,
        token: &SecretString,
        deadline: Deadline,
    ) -> Result<bool, Error> {
        let call = subscription("unsubscribe_app", Method::DELETE, waba_id, token)?;
        self.success(call, deadline).await
    }

    fn app_credentials(&self) -> Result<(&str, &SecretString), Error> {
        match (&self.app_id, &self.app_secret) {
            (Some(id), Some(secret)) => Ok((id, secret)),
            _ => Err(Error::AppCredentialsMissing),
        }
    }
}

/// A call to the WABA's `subscribed_apps` edge, with the customer's token.
fn subscription<'a>(
    endpoint: &'static str,
    method: Method,
    waba_id: &str,
    token: &'a SecretString,
) -> Result<Call<'a>, Error> {
    let path = format!("{}/subscribed_apps", graph_id(waba_id)?);
    Ok(Call {
        auth: Auth::Business(token),
        ..Call::write(endpoint, method, path)
    })
}
