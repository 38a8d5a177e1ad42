//! The plain domain types every layer speaks: a phone number as Meta reports it, a page
//! of them, the changes Meta pushes, ids, deadlines. Plain Rust, free of Graph JSON and
//! of protobuf; this module imports nothing of the crate, so any layer may use it.

mod number;
mod push;

pub use number::{NumbersPage, PhoneNumber, Snapshot, digits, is_graph_id};
pub use push::{Push, PushKind};

/// When the caller stops waiting; `None` when it set no deadline.
pub type Deadline = Option<tokio::time::Instant>;
