//! A call's parameters, however the client sent them.
//!
//! Meta reads the same parameters from the query string, an
//! `application/x-www-form-urlencoded` body or a JSON body (its reference pages show the
//! first two, its guides the third), and generic Graph clients use all three: the access
//! token too may come in a form body. So every call's parameters are merged here once,
//! before authentication, and every endpoint reads them from [`Params`].

use super::state::Fault;
use serde_json::Value;
use std::collections::BTreeMap;

/// Every parameter of a call, by name; a body parameter wins over a query parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The query string's parameters.
    pub fn from_query(query: Option<&str>) -> Params {
        Params(form_pairs(query.unwrap_or_default()).collect())
    }

    /// Adds the body's parameters: JSON when it says so or looks like an object, else
    /// form-encoded. A body that is neither is refused, as Meta refuses it.
    pub fn merge_body(&mut self, content_type: Option<&str>, body: &[u8]) -> Result<(), Fault> {
        let body_text = std::str::from_utf8(body)
            .map_err(|_| Fault::invalid_parameter("The request body is not valid UTF-8"))?;
        if body_text.trim().is_empty() {
            return Ok(());
        }
        let json = content_type.is_some_and(|t| t.contains("json"))
            || body_text.trim_start().starts_with('{');
        if json {
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body_text) else {
                return Err(Fault::invalid_parameter(
                    "The request body is not a JSON object",
                ));
            };
            for (key, value) in fields {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                self.0.insert(key, text);
            }
        } else {
            self.0.extend(form_pairs(body_text));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter that must be present and not empty.
    pub fn required(&self, name: &str) -> Result<&str, Fault> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Fault::invalid_parameter(format!("The parameter {name} is required")))
    }

    /// A boolean parameter as Graph clients spell it (`true`, `1`); absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, Fault> {
        match self.get(name) {
            None | Some("false" | "0" | "") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(Fault::invalid_parameter(format!(
                "Param {name} must be a boolean, not {other}"
            ))),
        }
    }

    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// The parameters worth repeating in a paging link: not the token, its proof, nor
    /// the cursors.
    pub fn for_link(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "access_token" | "appsecret_proof" | "after" | "before"
                )
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// `a=1&b=two+words` decoded, as browsers and Graph clients encode forms. (reqwest's URL
/// type carries the `application/x-www-form-urlencoded` parser.)
fn form_pairs(encoded: &str) -> impl Iterator<Item = (String, String)> {
    let encoded = encoded.replace('#', "%23");
    let url = reqwest::Url::parse(&format!("http://sandbox/?{encoded}")).ok();
    let pairs: Vec<_> = url
        .iter()
        .flat_map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
        })
        .collect();
    pairs.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_form_and_json_bodies_all_count_and_the_body_wins() {
        let mut params = Params::from_query(Some("cc=1&phone_number=555%200100&pin=1"));
        params
            .merge_body(
                Some("application/x-www-form-urlencoded"),
                b"verified_name=Lucky+Shrub&pin=2",
            )
            .unwrap();
        assert_eq!(params.get("phone_number"), Some("555 0100"));
        assert_eq!(params.get("verified_name"), Some("Lucky Shrub"));
        assert_eq!(params.get("pin"), Some("2"));

        let mut json = Params::default();
        json.merge_body(None, br#"{"pin": 123456, "migrate_phone_number": true}"#)
            .unwrap();
        assert_eq!(json.get("pin"), Some("123456"));
        assert_eq!(json.flag("migrate_phone_number"), Ok(true));
        assert_eq!(json.flag("absent"), Ok(false));

        let refused = Params::default().merge_body(Some("application/json"), b"[1]");
        assert_eq!(refused.unwrap_err().code, 100);
        assert_eq!(Params::default().required("code").unwrap_err().code, 100);
    }
}
