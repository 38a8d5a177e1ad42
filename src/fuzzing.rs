//! Property and fuzz tests on the stable toolchain (proptest), test builds only.
//!
//! Each target is a `#[cfg(test)] mod fuzz` inside the module it tests, so it reaches
//! private parsers, and every test in it is named `fuzz_...`, so `cargo test --lib fuzz_`
//! runs them all and nothing else. Normal `cargo test` runs [`DEFAULT_CASES`] cases a
//! property; CI runs more with `PROPTEST_CASES` (see `.ci/run`).
//!
//! The targets:
//!
//! | module | what may arrive there | properties |
//! |---|---|---|
//! | `graph::wire` | any body Meta (or a proxy in between) answers | every response type parses or fails, never panics; converting what parses never panics |
//! | `graph::usage` | any `X-Business-Use-Case-Usage` / `X-App-Usage` header | parsing and recording never panic |
//! | `graph::webhook` | any POST to the webhook | the signature check and the payload parser never panic; a correct signature verifies; any single-bit flip of the body or the MAC fails |
//! | `callers` | any callers file an operator writes | parsing never panics; what parses keeps the file's rules (unique names, a key or a SAN, scopes, digit WABA ids); a key finds its caller and nothing else does |
//! | `grpc::page_token` | any `page_token` a client sends | decoding never panics; encode → decode round-trips; any flipped bit, cut, other request or other key fails |
//!
//! A new target: a `mod fuzz` beside the parser, `proptest! { #![proptest_config(crate::fuzzing::config())] ... }`,
//! tests named `fuzz_<target>_...`, and a row above. A crash it finds becomes a plain
//! `#[test]` in that module with the input written out.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases a property runs in a normal `cargo test`: enough to catch the obvious, quick on
/// a shared machine.
pub const DEFAULT_CASES: u32 = 64;

/// `PROPTEST_CASES` if set, else [`DEFAULT_CASES`]; no files written on failure (a
/// failure's input is printed, and becomes a regression test by hand).
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// JSON-ish values: scalars (with strings that look like Meta's, and some that do not),
/// arrays and objects whose keys are mostly `keys` (so a parser's fields are hit), up to
/// a few levels deep.
pub fn json_value(keys: &'static [&'static str]) -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from("2023-08-22T19:05:53+0000")),
        Just(Value::from("2025-02-04T17:40:07Z")),
        Just(Value::from("9999-99-99T99:99:99+9999")),
        "[0-9]{1,20}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    let key = prop_oneof![
        4 => proptest::sample::select(keys).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    scalar
        .prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
        .boxed()
}
