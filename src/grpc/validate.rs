//! Input checks. Bad input is INVALID_ARGUMENT with a field violation per problem and
//! never causes an upstream call.

use super::status::invalid_argument;
use crate::model::is_graph_id;
use tonic::Status;
use tonic_types::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u32 = 25;
pub const MAX_PAGE_SIZE: u32 = 100;
const MAX_REQUEST_ID_LEN: usize = 128;
/// Meta's longest display name.
const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// E.164: at most 15 digits with the country code.
const MAX_PHONE_DIGITS: usize = 15;
/// The language `request_code` uses when the caller names none.
pub const DEFAULT_CODE_LANGUAGE: &str = "en_US";

/// Collects violations, so a client learns every problem at once.
#[derive(Default)]
pub struct Checks(Vec<FieldViolation>);

impl Checks {
    pub fn graph_id(&mut self, field: &str, value: &str) -> &mut Self {
        if !is_graph_id(value) {
            let problem = if value.is_empty() {
                "is required"
            } else {
                "must be digits only, without a leading zero"
            };
            self.fail(
                field,
                format!("{problem} (a Graph object id, e.g. 106540352242922)"),
            );
        }
        self
    }

    /// The page size to use: 0 means the default, anything above the cap is capped.
    pub fn page_size(&mut self, field: &str, value: i32) -> u32 {
        match u32::try_from(value) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => {
                self.fail(field, "must not be negative");
                DEFAULT_PAGE_SIZE
            }
        }
    }

    /// An optional, non-negative duration (e.g. `max_staleness`).
    pub fn duration(
        &mut self,
        field: &str,
        value: Option<prost_types::Duration>,
    ) -> Option<std::time::Duration> {
        let value = value?;
        match std::time::Duration::try_from(value) {
            Ok(duration) => Some(duration),
            Err(_) => {
                self.fail(field, "must not be negative");
                None
            }
        }
    }

    /// Never echoes the PIN.
    pub fn pin(&mut self, field: &str, value: &str) -> &mut Self {
        if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(field, "must be exactly 6 digits");
        }
        self
    }

    pub fn region(&mut self, field: &str, value: &str) -> &mut Self {
        let alpha2 = value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase());
        if !(value.is_empty() || alpha2) {
            self.fail(
                field,
                "must be empty or an ISO 3166 alpha-2 code such as IN",
            );
        }
        self
    }

    pub fn request_id(&mut self, field: &str, value: &str) -> &mut Self {
        if value.len() > MAX_REQUEST_ID_LEN || value.chars().any(char::is_control) {
            self.fail(
                field,
                format!("must be at most {MAX_REQUEST_ID_LEN} printable characters"),
            );
        }
        self
    }

    /// A country calling code, 1 to 3 digits (a leading + accepted): the digits.
    pub fn country_code(&mut self, field: &str, value: &str) -> String {
        let code = value.trim().strip_prefix('+').unwrap_or(value.trim());
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                field,
                "must be a country calling code of 1 to 3 digits, e.g. 1 or 44",
            );
        }
        code.to_owned()
    }

    /// A phone number as people write it: digits, with spaces, dashes, dots, brackets and
    /// a leading + accepted and stripped. The digits; empty when `optional` and empty.
    pub fn phone(&mut self, field: &str, value: &str, optional: bool) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            if !optional {
                self.fail(field, "is required");
            }
            return String::new();
        }
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let separators_only = body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
        let digits = crate::model::digits(body);
        if !separators_only || digits.is_empty() || digits.len() > MAX_PHONE_DIGITS {
            self.fail(
                field,
                format!(
                    "must be a phone number: up to {MAX_PHONE_DIGITS} digits, spaces, dashes and a leading + allowed"
                ),
            );
        }
        digits
    }

    /// A display name: not blank, at most 256 characters, no control characters.
    pub fn display_name(&mut self, field: &str, value: &str, optional: bool) -> &mut Self {
        if value.trim().is_empty() {
            if !optional || !value.is_empty() {
                self.fail(field, "must not be empty");
            }
        } else if value.chars().count() > MAX_DISPLAY_NAME_CHARS {
            self.fail(
                field,
                format!("must be at most {MAX_DISPLAY_NAME_CHARS} characters"),
            );
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
        self
    }

    /// A verification code: 6 digits, or `123-456` as people type it. The digits; the
    /// code itself is never echoed.
    pub fn code(&mut self, field: &str, value: &str) -> String {
        let code: String = match value.trim().split_once('-') {
            Some((a, b)) if a.len() == 3 && b.len() == 3 => format!("{a}{b}"),
            _ => value.trim().to_owned(),
        };
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            self.fail(
                field,
                "must be the 6-digit code the number received (123456 or 123-456)",
            );
        }
        code
    }

    /// Embedded Signup's one-time code: printable ASCII without spaces, at most 2 KiB.
    /// Never echoed.
    pub fn signup_code(&mut self, field: &str, value: &str) -> &mut Self {
        const MAX_SIGNUP_CODE_LEN: usize = 2048;
        if value.is_empty() {
            self.fail(field, "is required (the code Embedded Signup gave)");
        } else if value.len() > MAX_SIGNUP_CODE_LEN || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            self.fail(
                field,
                format!("must be at most {MAX_SIGNUP_CODE_LEN} printable ASCII characters without spaces"),
            );
        }
        self
    }

    /// A language for the code message: `ll` or `ll_CC` (e.g. `en`, `pt_BR`); empty
    /// means [`DEFAULT_CODE_LANGUAGE`].
    pub fn language(&mut self, field: &str, value: &str) -> String {
        if value.is_empty() {
            return DEFAULT_CODE_LANGUAGE.to_owned();
        }
        let lower = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase());
        let upper = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        let valid = match value.split_once('_') {
            None => lower(value),
            Some((language, country)) => lower(language) && upper(country),
        };
        if !valid {
            self.fail(field, "must be a language as ll or ll_CC, e.g. en or pt_BR");
        }
        value.to_owned()
    }

    pub fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn finish(&mut self) -> Result<(), Status> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid_argument(std::mem::take(&mut self.0)))
        }
    }
}
