//! Session-state statements (SET, USE, PREPARE, temporary tables): B's
//! session, then A's, and what the tail must reproduce of them.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use opensrv_mysql::QueryResultWriter;
use tokio::io::AsyncWrite;
use tracing::warn;

use super::work::Work;
use crate::frontend::session::Session;
use crate::journal::{Outcome, SqlText};
use crate::protocol::control;
use crate::router::{self, SessionChange, TableLocks};
use crate::sql::intercept::Renames;

impl Session {
    /// SET, USE, PREPARE, temporary tables: B's session, then A's.
    pub(super) async fn session_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        change: SessionChange,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let table_locks = router::table_locks(work.sql());
        // UNLOCK TABLES commits the open transaction when the session held
        // table locks, as in MariaDB.
        let unlocks = table_locks == Some(TableLocks::Released) && self.holds_table_locks;
        if router::commits_open_transaction(work.sql()) || unlocks {
            if let Err(err) = self.commit_implicitly().await {
                return self.answer(w, Err(err)).await;
            }
        }
        if let Err(err) = self.set_pin_variables(&work, true).await {
            return self.answer(w, Err(err)).await;
        }
        let work = match (table_locks, work) {
            // The session's commits write their rows under its table locks.
            (Some(TableLocks::Writing), Work::Text(sql)) => {
                Work::Text(control::lock_tables_with_commits(&sql))
            }
            (_, work) => work,
        };
        let sync = match self.sync.as_mut() {
            Some(conn) => Some(work.run_on_sync(conn).await),
            None => None,
        };
        let sync = match sync {
            Some(Outcome::Lost { reason }) => {
                self.sync_lost(&reason);
                None
            }
            other => other,
        };
        let passed = self.relay_on_master(&work, renames, w).await?;
        let sync_passed = sync.as_ref().is_none_or(Outcome::is_ok);
        if passed != sync_passed {
            warn!(
                sql = %String::from_utf8_lossy(work.sql()),
                master_passed = passed,
                "a session statement had different outcomes on the master and the synchronous slave"
            );
        }
        if passed {
            if let Some(locks) = table_locks {
                self.holds_table_locks = locks != TableLocks::Released;
            }
            self.remember_session_change(&work, change).await;
        }
        Ok(())
    }

    pub(super) async fn remember_session_change(&mut self, work: &Work, change: SessionChange) {
        match (change, work) {
            (SessionChange::Lasting, Work::Text(sql)) => {
                self.state.statements.push(SqlText::from_bytes(sql));
            }
            (SessionChange::Lasting, Work::Prepared { .. }) => {
                warn!("a prepared session statement is not reproduced on the tail nodes");
            }
            (SessionChange::Schema, _) => self.refresh_schema().await,
            (SessionChange::Passing, _) => {}
        }
    }

    /// The session's schema, as the master now has it.
    pub(in crate::frontend) async fn refresh_schema(&mut self) {
        let Some(conn) = self.master.as_mut() else {
            return;
        };
        if let Ok(Some(row)) = conn.query_first::<Row, _>("SELECT DATABASE()").await {
            let schema = row
                .get_opt::<Option<String>, usize>(0)
                .and_then(Result::ok)
                .flatten();
            self.params.db = schema.clone();
            self.state.schema = schema;
        }
    }
}
