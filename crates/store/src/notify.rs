//! Postgres `LISTEN`/`NOTIFY`: the wire under the engine's cross-replica doorbell. SQLite has
//! none (one process serves an SQLite store), so [`Store::listen`] answers `None` there.

use sqlx::postgres::PgListener;

use crate::{Db, Store, StoreResult};

/// A connection listening on one channel.
pub struct Notifications {
    listener: PgListener,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

impl Notifications {
    /// The next payload; `Ok(None)` when the connection was lost (and has been re-established):
    /// notifications sent meanwhile are gone, so the caller should look for itself.
    pub async fn recv(&mut self) -> StoreResult<Option<String>> {
        Ok(self.listener.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

impl Store {
    /// Sends `payload` to every listener of `channel` (Postgres only; a no-op on SQLite).
    pub async fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(pool).await?;
        }
        Ok(())
    }

    /// Listens on `channel` on a connection of its own (Postgres), or `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> StoreResult<Option<Notifications>> {
        let Db::Postgres(pool) = &self.db else { return Ok(None) };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.eager_reconnect(true);
        listener.listen(channel).await?;
        Ok(Some(Notifications { listener }))
    }
}
