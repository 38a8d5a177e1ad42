//! The ids the fake-Graph tests share: one WABA and a few phone numbers.

/// The WABA the tests watch and list (the same id as the sandbox's demo WABA).
pub const WABA: &str = "102290129340398";
/// The phone number the upstream and secrets tests read and register.
pub const NUMBER: &str = "106540352242922";
/// The first of three numbers in `WABA`, the one the watch and webhook tests watch.
pub const N1: &str = "106540352242901";
/// The second number in `WABA`.
pub const N2: &str = "106540352242902";
/// The third number in `WABA`.
pub const N3: &str = "106540352242903";
/// `N1`'s display number as webhooks spell it (when its display number is `+1 555-010-0001`).
pub const N1_DIGITS: &str = "15550100001";

/// Customer WABAs of the store tests (`WABA` is the partner's).
pub const CUSTOMER_A: &str = "201000000000001";
pub const CUSTOMER_B: &str = "201000000000002";
pub const CUSTOMER_C: &str = "201000000000003";
