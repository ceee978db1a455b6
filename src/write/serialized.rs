//! Statements that commit implicitly (DDL): one at a time across the chain.

use std::io;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Row;

use opensrv_mysql::{QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tokio::time::Instant;
use tracing::{error, info_span, warn, Instrument};

use super::statement::{outcome_of_client_error, MasterEnd};
use super::work::{Pinning, Work};
use super::Driver;
use crate::chain::gate::{WriteHold, WritesDrained};
use crate::chain::{cut_serialized, outcome};
use crate::error::ClientError;
use crate::fail_points;
use crate::failover;
use crate::journal::{CommitState, Entry, EntryKind, EntryState, Outcome, SqlText, Statement};
use crate::protocol::insert_id::Question;
use crate::protocol::serialized::{
    MasterProbe, Refusal, SerializedError, SerializedStatements, Turn,
};
use crate::protocol::{commit, control, text_inserts};
use crate::router;
use crate::sql::ddl_tables;
use crate::sql::intercept::Renames;
use crate::wire::relay;

impl Driver {
    /// DDL and other statements that commit implicitly: one at a time,
    /// first node then A, numbered after A ran them (`protocol::serialized`).
    pub(super) async fn run_serialized<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Some(err) = unrepeatable_definition(&work, renames) {
            return self.answer(w, Err(err)).await;
        }
        if let Some(err) = self.transaction_beyond_the_text(&work) {
            return self.answer(w, Err(err)).await;
        }
        if let Err(err) = self.commit_implicitly().await {
            return self.answer(w, Err(err)).await;
        }
        // `CREATE TABLE … SELECT … LIMIT`: the same rows on every node.
        let work = match work {
            Work::Text(sql) => Work::Text(self.ordered_limit(sql).await),
            prepared => prepared,
        };
        let (mut work, renames, variables) = self.pinned_work(work, renames);
        let renames = &renames;
        let mut entry = self.new_entry(EntryKind::Serialized, &work);
        entry.context.variables = variables;
        let span = info_span!("write", request_id = %entry.id);
        async move {
            let shared = self.shared.clone();
            let limit = self.lock_wait_timeout().await;
            let serialized = &shared.chain.serialized;
            let turn = match self.turn_after_readers(serialized, work.sql(), limit).await {
                Ok(turn) => turn,
                Err(err) => return self.answer(w, Err(err)).await,
            };
            let _gate = match self.gate_for_serialized(work.sql(), limit).await {
                Ok(gate) => gate,
                Err(err) => return self.answer(w, Err(err)).await,
            };
            // Phase "wait for the refusals": writes the first node refused
            // are judged by A first (`protocol::serialized`, rule 3).
            if turn.shut_out_refusals(limit).await.is_err() {
                warn!(
                    waited_s = limit.as_secs_f64(),
                    "a serialized statement waited for the master's verdict on a write the synchronous slave refused past lock_wait_timeout"
                );
                return self.answer(w, Err(ClientError::LockWaitTimeout)).await;
            }
            // The roles may have changed while this waited (a refusal A
            // overruled takes the first node out of its role).
            self.follow_roles_with(&mut work).await;
            if let Err(err) = self.refuse_without_sync() {
                return self.answer(w, Err(err)).await;
            }
            let text_inserts = text_inserts::has_unpinned_insert(work.sql());
            entry.binlog_marks = match self.mark_binlogs(text_inserts).await {
                Ok(marks) => marks,
                Err(err) => {
                    self.note_failure(&err);
                    return self.answer(w, Err(err)).await;
                }
            };
            fail::fail_point!(fail_points::SERIALIZED_MARKED);
            let marks = entry.binlog_marks.clone();
            let answered = self
                .run_journaled_serialized(&mut work, renames, entry, &turn, w)
                .await;
            self.leave_marked_domain(marks.as_ref()).await;
            answered
        }
        .instrument(span)
        .await
    }

    /// From the journal on: the statement runs on the first node, then on
    /// A, and is numbered; its sessions are in lockstep's GTID domain.
    async fn run_journaled_serialized<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &mut Work,
        renames: &Renames,
        mut entry: Entry,
        turn: &Turn<'_>,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Err(err) = self.journal(&entry).await {
            return self.answer(w, Err(err)).await;
        }
        // Phase "run on the first node": there it waits for the
        // transactions on its tables (`protocol::serialized`, rule 1).
        let first_is_sync = self.announce_first_node(turn);
        // A DDL cannot be undone: a prepared one runs only once its
        // pin passed (`Pinning::own_trip`).
        let sync_pin = Some(Pinning::of(&entry.context).in_its_own_trip(true));
        // No LAST_INSERT_ID() is set ahead of a serialized statement:
        // what it generated is read as on A (`protocol::insert_id`).
        let question = Question::for_statement(work.sql(), false);
        let sync_ok = self
            .run_first_on_sync(work, sync_pin, &mut entry, false, question)
            .await
            .map(|part| part.passed);
        if first_is_sync {
            turn.past_first_node();
        }
        let sync_ok = match sync_ok {
            Ok(sync_ok) => sync_ok,
            Err(err) => return self.answer(w, Err(err)).await,
        };
        let pinned = if sync_ok {
            match self.pin_text_inserts(work, &mut entry).await {
                Ok(pinned) => pinned,
                Err(err) => return self.first_node_ran_it_unjournaled(&entry, err, w).await,
            }
        } else {
            false
        };
        if let Some(conn) = self.master.as_ref() {
            turn.runs_on_master(conn.id());
        }
        let pin = Pinning::of(&entry.context).in_its_own_trip(true);
        match self
            .run_on_master_relayed(work, Some(&pin), renames, w, StatusFlags::empty())
            .await?
        {
            MasterEnd::Done { w, end, outcome } => {
                self.record_master(&mut entry, outcome);
                if !pinned {
                    // A ran it first (no synchronous slave, B refused it, or
                    // a failover moved the session): the replays take the
                    // values of the node that ran it first. Refused by the
                    // journal, a restart reads them from A's binary log
                    // (`chain::cut_serialized`).
                    self.pin_after_the_master(work, &mut entry).await;
                }
                let numbered = self.record_serialized_commit(&mut entry, sync_ok).await;
                self.remember_temporary_drop(work.sql());
                self.refresh_master_catalog().await;
                match numbered {
                    Ok(()) => relay::finish_with(w, end, &mut self.status).await,
                    Err(err) => self.answer(w, Err(err)).await,
                }
            }
            MasterEnd::Failed(err)
                if err.ends_session()
                    && sync_ok
                    && self.sync.is_some()
                    && failover::master_is_gone(&self.shared, &self.master_name).await =>
            {
                // The master died under it: B, which becomes the master,
                // has it and is the reference; the old master gets it
                // from the journal if it lacks it.
                if let Some(b) = self.sync_name.clone() {
                    entry.master = b;
                }
                self.master = None;
                if !pinned {
                    self.pin_after_the_master(work, &mut entry).await;
                }
                // The client's connection ends with the error below either
                // way; a number the journal refused is taken at the next start.
                let _ = self.record_serialized_commit(&mut entry, sync_ok).await;
                self.note_failure(&err);
                Ok(())
            }
            MasterEnd::Failed(err) => {
                self.record_master(&mut entry, outcome_of_client_error(&err));
                self.finish_entry(&mut entry, EntryState::Failed);
                let _ = self.run_on_master(control::UNPIN.as_bytes()).await;
                self.sync_finish(control::UNPIN).await;
                if sync_ok && self.sync.is_some() {
                    // B keeps what A refused: they differ from here on.
                    self.leave_sync_role(
                        format!(
                            "request {}: the master refused a statement that commits \
                         implicitly after it ran here ({err}); it cannot be undone",
                            entry.id
                        ),
                        false,
                    );
                }
                self.note_failure(&err);
                Ok(())
            }
        }
    }

    /// The first node ran the text and the journal refused its pinned
    /// values (its lease ended, its disk failed): the master does not run
    /// it, since the journal would replay it unpinned. The entry stays
    /// unfinished, as if lockstep had stopped here: the next start (this
    /// instance's or a standby's) finishes it from the first node's binary
    /// log (`chain::cut_serialized`). Until then the first node holds a
    /// change the master lacks: it leaves its role.
    async fn first_node_ran_it_unjournaled<W: AsyncWrite + Send + Unpin>(
        &mut self,
        entry: &Entry,
        err: ClientError,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        error!(request_id = %entry.id, error = %err, "the journal refused a serialized text's pinned values after the synchronous slave ran it: the master does not run it; the next start finishes it");
        self.leave_sync_role(
            cut_serialized::unjournaled_text_reason(entry.id, &err.to_string()),
            false,
        );
        self.answer(w, Err(err)).await
    }

    /// `pin_text_inserts` once A ran the text first: A has it, so a
    /// journal that refuses the pin leaves it to the restart.
    async fn pin_after_the_master(&mut self, work: &mut Work, entry: &mut Entry) {
        if let Err(e) = self.pin_text_inserts(work, entry).await {
            warn!(error = %e, "cannot journal a serialized text's pinned inserts: a restart reads them from the master's binary log");
        }
    }

    /// Phase "pin the text's inserts": a serialized text of several
    /// statements runs on each node as it is, with no pin between its
    /// statements, so each INSERT would take its AUTO_INCREMENT value from
    /// that node's own counter, which a crash or an insert one node alone
    /// refused may have moved (found by `tests/ha.rs`: "insert id 290 on
    /// the master, 289 here"). Each INSERT that made a value on the node
    /// that ran it first (the entry's first result) runs on A (when it has
    /// not yet) and in every replay with that value
    /// (`protocol::text_inserts`), journaled durably before anything else
    /// runs it. Ok(true) when it was pinned; an error when the journal
    /// refused the pin (then no other node may run the text: the journal
    /// would replay it unpinned).
    async fn pin_text_inserts(
        &mut self,
        work: &mut Work,
        entry: &mut Entry,
    ) -> Result<bool, ClientError> {
        let Work::Text(sql) = &*work else {
            return Ok(false);
        };
        if !matches!(entry.statement, Statement::Text { .. }) {
            return Ok(false);
        }
        let ids = entry
            .results
            .iter()
            .find(|r| r.outcome.is_ok())
            .and_then(|r| match &r.outcome {
                Outcome::Ok { insert_ids, .. } if !insert_ids.is_empty() => {
                    Some(insert_ids.clone())
                }
                _ => None,
            });
        let Some(ids) = ids else {
            return Ok(false);
        };
        let Some(pinned) = text_inserts::pinned(sql, &ids) else {
            warn!(
                results = ids.len(),
                "a serialized text's results do not match its statements: its inserts are not pinned"
            );
            return Ok(false);
        };
        entry.statement = Statement::Text {
            sql: SqlText::from_bytes(&pinned),
        };
        *work = Work::Text(pinned);
        self.journal_pinned_inserts(entry).await?;
        Ok(true)
    }

    /// The pinned text, durably (a fail point stands in for a journal that
    /// refuses it, as one whose lease ended does).
    async fn journal_pinned_inserts(&self, entry: &Entry) -> Result<(), ClientError> {
        fail::fail_point!(fail_points::SERIALIZED_TEXT_PIN_JOURNALED, |_| Err(
            ClientError::JournalUnavailable(format!(
                "fail point {}",
                fail_points::SERIALIZED_TEXT_PIN_JOURNALED
            ))
        ));
        self.journal(entry).await
    }

    /// Its hold on the gate: shared, like any write, so that the writes in
    /// flight go on around it (`protocol::serialized`); exclusive (no write in
    /// flight, at most `limit`, new writes held up in short turns:
    /// `Gate::drain_writes`) for a statement that reads rows under
    /// locks while it runs, which would wait for writes that wait for it,
    /// and for a text that writes rows itself: interleaved differently with
    /// other sessions' inserts on each node, its AUTO_INCREMENT values would
    /// differ (found by `tests/ha.rs`, whose writers send such texts).
    async fn gate_for_serialized(&self, sql: &[u8], limit: Duration) -> Result<Gate, ClientError> {
        if !router::serialized_reads_rows(sql) && !router::serialized_text_writes(sql) {
            return Ok(Gate::Shared(self.shared.chain.gate.enter().await));
        }
        match self.shared.chain.gate.drain_writes(limit).await {
            Some(guard) => Ok(Gate::Exclusive(guard)),
            None => {
                warn!(
                    waited_s = limit.as_secs_f64(),
                    "a serialized statement that reads or writes rows waited for the writes in flight past lock_wait_timeout"
                );
                Err(ClientError::LockWaitTimeout)
            }
        }
    }

    /// Phases "wait for the master's readers" and "wait for the previous
    /// DDL". The readers are waited for outside the turn: one may be a
    /// session under LOCK TABLES whose own DDL needs the turn first.
    /// Directly, that DDL runs and this one waits for its UNLOCK TABLES;
    /// holding the turn while it waited, this one held that DDL up as it
    /// was held up by it, for `lock_wait_timeout` (`tests/waits.rs`).
    /// Inside the turn the readers are found gone without waiting, or the
    /// turn is given back and they are waited for again.
    async fn turn_after_readers<'s>(
        &mut self,
        serialized: &'s SerializedStatements,
        ddl: &[u8],
        limit: Duration,
    ) -> Result<Turn<'s>, ClientError> {
        let deadline = Instant::now() + limit;
        loop {
            self.wait_for_readers_on_master(ddl, ReadersWait::AsTheDdl)
                .await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(turn) = serialized.enter(left).await else {
                warn!(
                    waited_s = limit.as_secs_f64(),
                    "a serialized statement waited for the previous one past lock_wait_timeout"
                );
                return Err(ClientError::LockWaitTimeout);
            };
            if self
                .wait_for_readers_on_master(ddl, ReadersWait::Not)
                .await?
            {
                return Ok(turn);
            }
            drop(turn);
            if Instant::now() >= deadline {
                return Err(ClientError::LockWaitTimeout);
            }
        }
    }

    /// Reads go to A alone, so a transaction that only read the DDL's
    /// tables holds them on A, where B never saw it. Before B runs the
    /// DDL, A's session takes the write locks the DDL needs on them and
    /// lets go at once: it waits for such a transaction as long as MariaDB
    /// would make the DDL wait, and a timing error (1205 after
    /// `lock_wait_timeout` or the DDL's `WAIT n`, KILL QUERY's 1317, a
    /// deadlock) is the DDL's answer, before any node ran it. Any other
    /// refusal (no such table, no LOCK TABLES privilege) is left to the
    /// DDL. Without waiting (`ReadersWait::Not`), false when a reader is
    /// there.
    async fn wait_for_readers_on_master(
        &mut self,
        ddl: &[u8],
        wait: ReadersWait,
    ) -> Result<bool, ClientError> {
        if self.sync.is_none() || self.master.is_none() || self.holds_table_locks {
            return Ok(true);
        }
        let Some(tables) = ddl_tables::exclusive_tables(ddl) else {
            return Ok(true);
        };
        let lock = match wait {
            ReadersWait::AsTheDdl => control::lock_tables_of_ddl(ddl, &tables),
            ReadersWait::Not => control::lock_tables_of_ddl_now(ddl, &tables),
        };
        match self.run_on_master(&lock).await {
            Ok(_) => self
                .run_on_master(control::UNLOCK_TABLES.as_bytes())
                .await
                .map(|_| true),
            Err(err) if wait == ReadersWait::Not && err.code() == LOCK_WAIT_TIMEOUT => Ok(false),
            Err(err) if err.ends_session() || outcome::is_timing_code(err.code()) => {
                warn!(error = %err, "a DDL waited on the master for transactions on its tables");
                Err(err)
            }
            Err(_) => Ok(true),
        }
    }

    /// Tells the writes in flight where the DDL runs first (B, or A
    /// without B) and on which thread; true when that is B.
    fn announce_first_node(&self, turn: &Turn<'_>) -> bool {
        if let Some(conn) = self.sync.as_ref() {
            turn.starts_on(&self.sync_node_name(), conn.id());
            return true;
        }
        if let Some(conn) = self.master.as_ref() {
            turn.starts_on(&self.master_name, conn.id());
        }
        false
    }

    /// The session's `lock_wait_timeout` on A (MariaDB's default, a day,
    /// when A cannot say).
    pub(super) async fn lock_wait_timeout(&mut self) -> Duration {
        const MARIADB_DEFAULT: Duration = Duration::from_secs(86_400);
        let Some(conn) = self.master.as_mut() else {
            return MARIADB_DEFAULT;
        };
        let row: Result<Option<Row>, _> = conn.query_first("SELECT @@lock_wait_timeout").await;
        match row {
            Ok(Some(row)) => row
                .get_opt::<f64, usize>(0)
                .and_then(Result::ok)
                .map(Duration::from_secs_f64)
                .unwrap_or(MARIADB_DEFAULT),
            _ => MARIADB_DEFAULT,
        }
    }

    /// After a serialized statement ran on A: its number (no other write runs
    /// meanwhile, so any moment is in A's order), A's and B's
    /// `lockstep.commits` rows (in their own small transactions: DDL
    /// cannot share one).
    ///
    /// A journal that refuses the number (its lease ended, its disk failed)
    /// leaves the entry unfinished, as lockstep stopping here would: the
    /// next start, this instance's or a standby's, numbers it from the
    /// binary logs (`chain::cut_serialized`). Marked failed, it would never
    /// reach the tail, which the master's data holds (found by `tests/ha.rs`).
    /// The client gets the journal's error: its outcome is decided later,
    /// as for a connection lost during a COMMIT.
    pub(super) async fn record_serialized_commit(
        &mut self,
        entry: &mut Entry,
        sync_ok: bool,
    ) -> Result<(), ClientError> {
        let journal = self.shared.chain.journal.clone();
        let numbered = async {
            fail::fail_point!(fail_points::SERIALIZED_NUMBERED, |_| Err(
                crate::journal::JournalError::Write(format!(
                    "fail point {}",
                    fail_points::SERIALIZED_NUMBERED
                ))
            ));
            commit::number(&journal, entry.id, vec![entry.id], true).await
        };
        let record = match numbered.await {
            Ok(record) => record,
            Err(e) => {
                error!(error = %e, "cannot journal the commit of a statement the master ran: left unfinished, the next start numbers it");
                self.sync_finish(control::UNPIN).await;
                return Err(ClientError::JournalUnavailable(e.to_string()));
            }
        };
        let row = control::commit_recorded(entry.id, record.seq());
        match self.record_on_master_aside(&row).await {
            Ok(_) => {
                self.finish_entry(entry, EntryState::Committed { seq: record.seq() });
                record.resolve(CommitState::Committed);
            }
            Err(err) => {
                // The statement itself is done on A (it committed
                // implicitly): the tail must still get it.
                error!(error = %err, "cannot record the commit on the master");
                self.finish_entry(entry, EntryState::Committed { seq: record.seq() });
                record.resolve(CommitState::Committed);
            }
        }
        let sync_end = if sync_ok {
            row
        } else {
            control::UNPIN.to_string()
        };
        self.sync_finish(&sync_end).await;
        Ok(())
    }

    /// Rules 2 and 3 of `protocol::serialized` for a write whose statement
    /// just ran on B (`refused`: B refused it): it waits behind a DDL that
    /// may have run before it there. A write B refused holds its refusal
    /// (returned) until A's verdict. On timeout the statement is undone on
    /// B and the client gets 1205.
    pub(super) async fn wait_behind_serialized_before_master(
        &mut self,
        in_txn: bool,
        refused: bool,
    ) -> Result<Option<Refusal>, ClientError> {
        let shared = self.shared.clone();
        let serialized = &shared.chain.serialized;
        if self.sync.is_none() || !(refused || serialized.any_in_flight()) {
            return Ok(None);
        }
        if refused {
            // No DDL's turn in the way: held at once, without asking A.
            if let Some(refusal) = serialized.hold_refusal() {
                return Ok(Some(refusal));
            }
            if !in_txn {
                // Rule 3 waits as if the write held nothing on B, but the
                // statement B refused keeps its tables' metadata locks in
                // lockstep's transaction around it: the DDL would wait
                // there for this write as it waits for the DDL. Nothing
                // in that transaction is worth keeping.
                self.sync_finish(&self.wrap().rollback()).await;
            }
        }
        let limit = self.lock_wait_timeout().await;
        let node = self.sync_node_name();
        let Some(conn) = self.sync.as_mut() else {
            return Ok(None);
        };
        let mut master = MasterProbe::new(shared.master_node());
        let waited = if refused {
            serialized
                .admit_refused(&node, conn, &mut master, limit, in_txn)
                .await
        } else {
            serialized
                .wait_before_master(&node, conn, &mut master, limit)
                .await
                .map(|()| None)
        };
        master.close().await;
        match waited {
            Ok(refusal) => Ok(refusal),
            Err(SerializedError::LockWaitTimeout) => {
                warn!("a write waited behind a serialized statement past lock_wait_timeout");
                Err(self
                    .undo_on_sync_for(ClientError::LockWaitTimeout, in_txn)
                    .await)
            }
            Err(SerializedError::Node(e)) => {
                // Lost (the session goes on without B) or refused.
                let err = ClientError::from_backend(&node, e);
                if err.ends_session() {
                    self.sync_lost(&err.to_string());
                    return Ok(None);
                }
                Err(self.undo_on_sync_for(err, in_txn).await)
            }
        }
    }

    /// Rule 2 of `protocol::serialized` before a write's number, its work done
    /// on A: it waits behind a DDL that may have run before it there.
    pub(super) async fn wait_behind_serialized_before_number(&mut self) -> Result<(), ClientError> {
        let shared = self.shared.clone();
        if !shared.chain.serialized.any_in_flight() {
            return Ok(());
        }
        let limit = self.lock_wait_timeout().await;
        let mut master = MasterProbe::new(shared.master_node());
        let waited = shared
            .chain
            .serialized
            .wait_before_number(&mut master, limit)
            .await;
        master.close().await;
        match waited {
            Ok(()) => Ok(()),
            Err(SerializedError::LockWaitTimeout) => {
                warn!("a commit waited behind a serialized statement past lock_wait_timeout");
                Err(ClientError::LockWaitTimeout)
            }
            Err(SerializedError::Node(e)) => {
                Err(ClientError::from_backend(&shared.master_node().name, e))
            }
        }
    }

    /// A's row for a serialized statement, on a connection of its own:
    /// on the session's, the INSERT would clear the DDL's notes and
    /// warnings before the client asks for them (`SHOW WARNINGS`). Under
    /// LOCK TABLES the session holds `lockstep.commits` itself, so its row
    /// goes there, and the notes are read first and kept for the client
    /// (`kept_warnings`).
    async fn record_on_master_aside(&mut self, row: &str) -> Result<(), ClientError> {
        if self.holds_table_locks {
            let kept = self.warnings_of_last_statement().await;
            self.run_on_master(row.as_bytes()).await?;
            self.kept_warnings = kept;
            return Ok(());
        }
        let node = self.shared.master_node();
        let mut conn = node
            .connect_admin()
            .await
            .map_err(|e| ClientError::from_backend(&node.name, e))?;
        let recorded = conn
            .query_drop(row)
            .await
            .map_err(|e| ClientError::from_backend(&node.name, e));
        let _ = conn.disconnect().await;
        // (A SET keeps the session's notes.)
        self.run_on_master(control::UNPIN.as_bytes()).await?;
        recorded
    }

    /// DDL may have created or changed a non-transactional table, a stored
    /// function or a view. Asked on a connection of its own: on the
    /// session's, the queries would clear the DDL's notes before the client
    /// asks for them.
    pub(super) async fn refresh_master_catalog(&mut self) {
        self.shared.table_keys.forget();
        self.shared.column_tops.forget();
        let node = self.shared.master_node();
        let mut conn = match node.connect_admin().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!(error = %e, "cannot list non-transactional tables and stored functions");
                return;
            }
        };
        if let Err(e) = self.shared.chain.nontransactional.refresh(&mut conn).await {
            warn!(error = %e, "cannot list non-transactional tables");
        }
        if let Err(e) = self.shared.stored_functions.refresh(&mut conn).await {
            warn!(error = %e, "cannot list stored functions and views");
        }
        match self.shared.unrepeatable_bodies.refresh(&mut conn).await {
            Ok(Some(makers)) => crate::chain::unrepeatable_bodies::warn_of_makers(&makers),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot list triggers and stored routines"),
        }
        let _ = conn.disconnect().await;
    }
}

/// How the probe for the master's readers waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadersWait {
    /// As MariaDB makes the DDL wait (its `WAIT n`, or `lock_wait_timeout`).
    AsTheDdl,
    /// Not at all (`NOWAIT`).
    Not,
}

/// MariaDB's answer to a lock not granted in time, `NOWAIT` included.
const LOCK_WAIT_TIMEOUT: u16 = opensrv_mysql::ErrorKind::ER_LOCK_WAIT_TIMEOUT as u16;

/// How a serialized statement holds the chain's gate (only held, never
/// read: its drop lets go).
#[allow(dead_code)]
enum Gate {
    Shared(WriteHold),
    Exclusive(WritesDrained),
}

impl Driver {
    /// A text of several statements is serialized across the chain as one
    /// unit, and the tail replays it as one. That holds only for a
    /// transaction that begins and ends inside the text: one the text
    /// leaves open (`BEGIN; INSERT …`, then ROLLBACK) or one the client had
    /// open before it (`BEGIN`, then `INSERT …; ROLLBACK`) would be kept by
    /// B and the tail, or committed early, where MariaDB rolls it back. Such
    /// a text is refused before any node runs it.
    fn transaction_beyond_the_text(&self, work: &Work) -> Option<ClientError> {
        let Work::Text(sql) = work else {
            return None;
        };
        let shape = router::text_transactions(sql)?;
        let open_before =
            self.txn.is_some() || self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS);
        let autocommit_off = !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        let open_after = shape.leaves_open || (autocommit_off && !shape.ends_with_end);
        if !shape.controls || !(open_before || open_after) {
            return None;
        }
        Some(ClientError::NotSupported(
            "a text of several statements whose transaction does not begin and end inside it \
             (send BEGIN, COMMIT and ROLLBACK as statements of their own)"
                .into(),
        ))
    }
}

/// A stored definition (a column default, a trigger, a routine, an event, a
/// view) that calls `UUID()` or the like is refused: it runs later on each
/// node by itself, so every node would store its own values, and a literal
/// in its place would make every row get the same one (MariaDB's statement
/// binlog cannot replay it either). `CREATE TABLE … SELECT UUID()` is data,
/// pinned as a write is.
///
/// `CONNECTION_ID()` is the same: lockstep made it the client's id in the
/// text (`renames` has it), which a trigger or routine would then return for
/// every session, and left alone it would be each node's own thread id.
fn unrepeatable_definition(work: &Work, renames: &Renames) -> Option<ClientError> {
    let Work::Text(sql) = work else {
        return None;
    };
    if !router::is_definition(sql) || router::serialized_reads_rows(sql) {
        return None;
    }
    let connection_id = renames.iter().find_map(|(_, original)| {
        let original = String::from_utf8_lossy(original);
        original
            .to_ascii_uppercase()
            .starts_with("CONNECTION_ID")
            .then(|| original.into_owned())
    });
    let call = connection_id.or_else(|| crate::sql::unpinnable::unrepeatable_call(sql))?;
    Some(ClientError::NotSupported(format!(
        "{call} in a stored definition (column default, trigger, routine, event, view): \
         each node would compute its own values; generate the value in the writing statement"
    )))
}
