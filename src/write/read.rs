//! Reads, and the reads that turn out to write.
//!
//! A SELECT can write: a stored function it calls, `NEXTVAL` of a sequence,
//! `DO f()`. Sent to the master alone, such a write would exist there only
//! and vanish at the next failover. The text cannot tell (the function's
//! body is on the server), the server can: outside a transaction the
//! master runs the read under `SET STATEMENT tx_read_only = 1 FOR`, and a
//! read that writes is refused with 1792 before its first row. lockstep then
//! sends it down the write path (B first, journaled, numbered) and the
//! client gets that answer, as if it had been a write from the start.
//!
//! Where the guard cannot apply (inside a transaction, a text of several
//! statements), a read that names a stored function or a view that calls
//! one (`chain::stored_functions`) takes the write path from the start.

use std::io;

use opensrv_mysql::QueryResultWriter;
use tokio::io::AsyncWrite;
use tracing::info;

use super::work::Work;
use super::Driver;
use crate::journal::EntryKind;
use crate::protocol::control;
use crate::router;
use crate::sql::intercept::Renames;
use crate::wire::relay::{SetsEnd, Shown};

impl Driver {
    /// A read: on the master alone, guarded when it is one statement of
    /// the SELECT family outside any transaction.
    pub(super) async fn read<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        // Inside a transaction tx_read_only cannot be set for one
        // statement (MariaDB ignores it there).
        let guarded = match &work {
            Work::Text(sql) if !self.in_transaction() && router::is_guarded_read(sql) => {
                Work::Text(control::read_only(sql))
            }
            _ if self.may_write_unguarded(work.sql()) => {
                info!("a read names a stored function or a view that calls one: it takes the write path");
                crate::metrics::count_statement("read-that-may-write");
                return self
                    .write_statement(work, EntryKind::Write, renames, w)
                    .await;
            }
            _ => return self.relay_on_master(&work, renames, w).await.map(|_| ()),
        };
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            return self.answer(w, Err(err)).await;
        };
        self.busy = true;
        let shown = Shown {
            refused_with: &[control::READ_ONLY_REFUSAL],
            ..Shown::default()
        };
        let end = guarded
            .relay_on_master(&node, conn, w, renames, &mut self.status, shown)
            .await?;
        match end {
            SetsEnd::Refused(w, _) => {
                self.busy = false;
                info!("a read writes (a function or sequence it calls): it takes the write path");
                crate::metrics::count_statement("read-that-writes");
                self.write_statement(work, EntryKind::Write, renames, w)
                    .await
            }
            end => self.end_response(end).await.map(|_| ()),
        }
    }

    /// A read the master cannot run read-only that may call a function
    /// that writes.
    fn may_write_unguarded(&self, sql: &[u8]) -> bool {
        // The list first: empty (no stored function anywhere), it costs
        // nothing, where the text's first word needs the lexer.
        self.shared.stored_functions.named_in(sql) && router::may_call_functions(sql)
    }
}
