//! Messages between the replicas of one PostgreSQL store: `NOTIFY` to send, a
//! `LISTEN`ing connection of its own to receive (sqlx's `PgListener`, which reconnects by
//! itself; what is sent while it reconnects is lost, as NOTIFY is not kept). SQLite is one
//! replica: there is nobody to tell.

use super::{Pool, Sql};
use crate::store::Error;
use sqlx::postgres::PgListener;

/// PostgreSQL refuses payloads of 8,000 bytes and more.
pub(crate) const MAX_PAYLOAD: usize = 7_900;

/// The payloads other replicas send on one channel.
pub struct Notifications {
    listener: PgListener,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifications")
    }
}

impl Notifications {
    /// The next payload; waits through reconnections (saying so in the log), so it ends
    /// only with the process.
    pub async fn next(&mut self) -> String {
        loop {
            match self.listener.recv().await {
                Ok(notification) => return notification.payload().to_owned(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the store's notifications; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

impl Sql {
    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<(), Error> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn subscribe(&self, channel: &str) -> Result<Option<Notifications>, Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Some(Notifications { listener }))
    }
}
