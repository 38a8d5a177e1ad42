//! Integration tests: each module is one concern, all share `support`.

mod support;

mod cache;
mod callers;
mod customers;
mod faults;
mod fields;
mod hostile;
mod lifecycle;
mod operations;
mod replicas;
mod sandbox;
mod secrets;
mod server;
mod signup;
mod store;
mod tls;
mod upstream;
mod watch;
mod webhooks;
mod windows;
