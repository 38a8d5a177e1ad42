//! Reading WatchStatus streams. `next` is bounded in real time. On tokio's paused clock
//! a timeout would fire as soon as the runtime waits (the clock jumps to the nearest
//! timer, however far off), long before an event minutes away in virtual time: tests
//! there read with `unbounded`'s helpers instead.

use std::time::Duration;
use tonic::Streaming;
use waba_numbers::pb::StatusEvent;

/// The next event, failing the test if none comes within 10 s (real time) or the
/// stream ends.
pub async fn next(events: &mut Streaming<StatusEvent>) -> StatusEvent {
    tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("no event within 10 s")
        .unwrap()
        .expect("the stream ended")
}

/// Stream reads with no time limit, for the paused clock.
pub mod unbounded {
    use tonic::{Status, Streaming};
    use waba_numbers::pb::StatusEvent;

    /// The next event, however long it takes; fails the test if the stream ends or
    /// fails.
    pub async fn next(events: &mut Streaming<StatusEvent>) -> StatusEvent {
        events.message().await.unwrap().expect("the stream ended")
    }

    /// The status the stream fails with, however long it takes; fails the test if an
    /// event comes, or the stream ends, instead.
    pub async fn next_error(events: &mut Streaming<StatusEvent>) -> Status {
        match events.message().await {
            Err(status) => status,
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }
}
