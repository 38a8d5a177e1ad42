//! Messages between the replicas of one PostgreSQL store: `NOTIFY` to send, a
//! `LISTEN`ing connection of its own to receive (sqlx's `PgListener`, which reconnects by
//! itself; what is sent while it reconnects is lost, as NOTIFY is not kept, and
//! [`Heard::Lost`] says when that may have happened). SQLite is one
//! replica: there is nobody to tell.

use super::{Pool, Sql};
use crate::store::Error;
use sqlx::postgres::PgListener;

/// PostgreSQL refuses payloads of 8,000 bytes and more.
pub(crate) const MAX_PAYLOAD: usize = 7_900;

/// The payloads other replicas send on one channel.
pub struct Notifications {
    listener: PgListener,
    pool: sqlx::PgPool,
    channel: String,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifications")
    }
}

/// What the listening connection brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A payload another replica sent.
    Payload(String),
    /// The connection was lost and is made again: whatever was sent meanwhile is lost,
    /// so the listener should catch up from the store.
    Lost,
}

impl Notifications {
    /// The next payload, or word that the connection was lost and is listening again
    /// (whatever was sent in between is lost: catch up from the store now). Reconnects by
    /// itself, every second until it can, saying so in the log: it ends only with the
    /// process.
    pub async fn next(&mut self) -> Heard {
        match self.listener.try_recv().await {
            Ok(Some(notification)) => return Heard::Payload(notification.payload().to_owned()),
            Ok(None) => tracing::warn!("lost the store's notifications; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "lost the store's notifications; reconnecting"),
        }
        loop {
            match listen(&self.pool, &self.channel).await {
                Ok(listener) => {
                    tracing::info!("listening to the store's notifications again");
                    self.listener = listener;
                    return Heard::Lost;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot listen to the store's notifications yet");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn listen(pool: &sqlx::PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
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
        let listener = listen(pool, channel).await?;
        Ok(Some(Notifications {
            listener,
            pool: pool.clone(),
            channel: channel.to_owned(),
        }))
    }
}
