//! Input checks. Bad input is INVALID_ARGUMENT with a field violation per problem and
//! never causes an upstream call.

use super::status::invalid_argument;
use crate::model::is_graph_id;
use tonic::Status;
use tonic_types::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u32 = 25;
pub const MAX_PAGE_SIZE: u32 = 100;
const MAX_REQUEST_ID_LEN: usize = 128;

/// Collects violations, so a client learns every problem at once.
#[derive(Default)]
pub struct Checks(Vec<FieldViolation>);

impl Checks {
    pub fn graph_id(&mut self, field: &str, value: &str) -> &mut Self {
        if !is_graph_id(value) {
            let problem = if value.is_empty() {
                "is required"
            } else {
                "must be digits only"
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
