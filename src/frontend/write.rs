//! The write path of one session (DESIGN.md, "The idea" and "Why this order
//! is safe").
//!
//! Per write-path statement, with A = master and B = first slave:
//! 1. a requestId (UUID v7), a pinned context (timestamp, RAND seeds) and
//!    unpinnable functions rewritten into literals;
//! 2. the journal entry is made durable;
//! 3. B runs it inside a transaction that stays open (`BEGIN` for an
//!    autocommit statement, `SAVEPOINT` inside a client transaction);
//!    a deadlock or lock wait timeout on B goes back to the client and A
//!    never sees the statement;
//! 4. A runs it with the same context and `insert_id` = B's first
//!    AUTO_INCREMENT value; its response is relayed to the client;
//! 5. at commit a sequence number is taken, A records it in
//!    `lockstep.commits` and commits, then B does the same. When A fails,
//!    the statement is undone on B (ROLLBACK TO SAVEPOINT, or ROLLBACK of
//!    B's transaction when A's transaction is gone).
//!
//! B's row locks are held until A is done, so conflicting statements reach A
//! in the order B let them through.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Statement, Value};
use opensrv_mysql::{OkResponse, QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tokio::sync::OwnedRwLockReadGuard;
use tracing::{debug, error, info_span, warn, Instrument};
use uuid::Uuid;

use super::error::{ClientError, SendError};
use super::relay::{self, SetsEnd, Shown};
use super::session::Session;
use crate::chain::commits;
use crate::chain::outcome::{self, DEADLOCK, LOCK_WAIT_TIMEOUT};
use crate::journal::entry::{now_us, UNPIN};
use crate::journal::{
    CommitState, Context, Entry, EntryKind, EntryState, NodeResult, Outcome, Param, Reservation,
    SqlText,
};
use crate::router::{self, Route, SessionChange};
use crate::sql::intercept::Renames;
use crate::sql::unpinnable::{self, Pin};

/// B's savepoint before each statement of a client transaction.
const SAVEPOINT: &str = "SAVEPOINT lockstep_statement";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT lockstep_statement";

/// A client transaction open on A and B.
pub struct OpenTransaction {
    /// Keeps statements that must run alone (DDL) out while it is open.
    _gate: OwnedRwLockReadGuard<()>,
    /// The data-changing statements A accepted, in order: what its commit
    /// record lists for the tail.
    entries: Vec<Entry>,
}

/// A statement as the nodes receive it.
#[derive(Clone)]
pub(super) enum Work {
    Text(Vec<u8>),
    Prepared {
        sql: Vec<u8>,
        master: Statement,
        sync: Option<Statement>,
        params: Vec<Value>,
        /// The unpinnable calls the text reads from `@lockstep_pin_N`.
        pins: Vec<Pin>,
    },
}

impl Work {
    pub fn sql(&self) -> &[u8] {
        match self {
            Work::Text(sql) | Work::Prepared { sql, .. } => sql,
        }
    }

    /// Fixes the values of unpinnable calls: a text gets literals (and the
    /// column names they change back for the client); a prepared statement,
    /// rewritten at prepare time, gets the values of its variables.
    fn pinned(self, renames: &Renames) -> (Work, Renames, Vec<(String, String)>) {
        match self {
            Work::Text(sql) => match unpinnable::rewrite(&sql) {
                Some(pinned) => {
                    let mut all = renames.clone();
                    all.extend(pinned.renames);
                    (Work::Text(pinned.sql), all, Vec::new())
                }
                None => (Work::Text(sql), renames.clone(), Vec::new()),
            },
            prepared => {
                let variables = prepared.variable_values();
                (prepared, renames.clone(), variables)
            }
        }
    }

    /// Fresh values for a prepared statement's pin variables.
    fn variable_values(&self) -> Vec<(String, String)> {
        match self {
            Work::Prepared { pins, .. } => pins
                .iter()
                .enumerate()
                .map(|(i, pin)| (unpinnable::variable_name(i), pin.literal()))
                .collect(),
            Work::Text(_) => Vec::new(),
        }
    }

    fn journal_statement(&self) -> crate::journal::Statement {
        match self {
            Work::Text(sql) => crate::journal::Statement::Text {
                sql: SqlText::from_bytes(sql),
            },
            Work::Prepared { sql, params, .. } => crate::journal::Statement::Prepared {
                sql: SqlText::from_bytes(sql),
                params: params.iter().map(Param::from).collect(),
            },
        }
    }

    fn params(params: &[Value]) -> Params {
        if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params.to_vec())
        }
    }

    /// Runs it on B; the response is read and summarized, not relayed.
    async fn run_on_sync(&self, conn: &mut Conn) -> Outcome {
        self.run_on_sync_after(conn, None).await
    }

    /// Runs it on B after `pin` (lockstep's statements pinning the context):
    /// in the same round trip for a text, before it for a prepared statement.
    async fn run_on_sync_after(&self, conn: &mut Conn, pin: Option<&str>) -> Outcome {
        if let (Work::Prepared { .. }, Some(pin)) = (self, pin) {
            if let Err(e) = conn.query_drop(pin).await {
                return outcome::outcome_of_error(e);
            }
        }
        match self {
            Work::Text(sql) => match pin {
                Some(pin) => outcome::run_text(conn, &prefixed(pin, sql)).await,
                None => outcome::run_text(conn, sql).await,
            },
            Work::Prepared {
                sync: Some(stmt),
                params,
                ..
            } => outcome::run_prepared(conn, stmt, Self::params(params)).await,
            Work::Prepared { sync: None, .. } => Outcome::Lost {
                reason: "the statement is not prepared on this node".into(),
            },
        }
    }

    /// Runs it on A, relaying the response to the client.
    async fn relay_on_master<'w, W: AsyncWrite + Send + Unpin>(
        &self,
        node: &str,
        conn: &mut Conn,
        w: QueryResultWriter<'w, W>,
        renames: &Renames,
        status: &mut StatusFlags,
        shown: Shown,
    ) -> io::Result<SetsEnd<'w, W>> {
        match self {
            Work::Text(sql) => {
                let started = conn.query_iter(sql.as_slice()).await;
                relay::relay_response(node, started, w, renames, status, shown).await
            }
            Work::Prepared { master, params, .. } => {
                let started = conn.exec_iter(master, Self::params(params)).await;
                relay::relay_response(node, started, w, renames, status, shown).await
            }
        }
    }
}

/// How A's part of a statement ended.
enum MasterEnd<'w, W> {
    /// Relayed; the final terminator (status, warnings) is still to be written.
    Done {
        w: QueryResultWriter<'w, W>,
        end: (StatusFlags, u16),
        outcome: Outcome,
    },
    /// A refused it; the client already has A's error.
    Failed(ClientError),
}

impl Session {
    /// Routes a statement: the master alone, every session connection, or
    /// the write path.
    pub(super) async fn dispatch<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        route: Route,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        match route {
            Route::Unsupported(what) => {
                self.answer(w, Err(ClientError::NotSupported(what.into())))
                    .await
            }
            Route::Read if !self.in_transaction() => {
                if let Err(err) = self.set_pin_variables(&work, false).await {
                    return self.answer(w, Err(err)).await;
                }
                self.relay_on_master(&work, renames, w).await.map(|_| ())
            }
            Route::Read => {
                self.write_statement(work, EntryKind::Read, renames, w)
                    .await
            }
            Route::Write => {
                self.write_statement(work, EntryKind::Write, renames, w)
                    .await
            }
            Route::Session(change) => self.session_statement(work, change, renames, w).await,
            Route::Begin => self.begin(work, renames, w).await,
            Route::Commit => self.commit(work, w).await,
            Route::Rollback => self.rollback(work, w).await,
            Route::Serialized => self.run_alone(work, renames, w).await,
        }
    }

    /// Outside the write path (which pins them with the context), a prepared
    /// statement's pin variables are set right before it runs.
    async fn set_pin_variables(&mut self, work: &Work, on_sync: bool) -> Result<(), ClientError> {
        let variables = work.variable_values();
        if variables.is_empty() {
            return Ok(());
        }
        let set = format!("SET {}", assignments(&variables));
        if on_sync {
            self.sync_control(&set).await?;
        }
        self.run_on_master(set.as_bytes()).await.map(|_| ())
    }

    /// A transaction is open (or autocommit is off, so the next statement opens one).
    pub(super) fn in_transaction(&self) -> bool {
        self.txn.is_some()
            || self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
            || !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
    }

    /// Relays a statement's whole response from the master; true when it succeeded.
    pub(super) async fn relay_on_master<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<bool> {
        let shared = self.shared.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            self.answer(w, Err(err)).await?;
            return Ok(false);
        };
        self.busy = true;
        let end = work
            .relay_on_master(
                &shared.master.name,
                conn,
                w,
                renames,
                &mut self.status,
                Shown::default(),
            )
            .await?;
        self.end_response(end).await
    }

    /// A statement that may change data (or any statement inside a
    /// transaction), through the write path.
    async fn write_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        kind: EntryKind,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let (work, renames, variables) = work.pinned(renames);
        if kind == EntryKind::Write {
            self.shared.nontransactional.warn_if_named(work.sql());
        }
        let mut entry = self.new_entry(kind, &work);
        entry.context.variables = variables;
        let span = info_span!("write", request_id = %entry.id);
        self.write_statement_traced(work, entry, &renames, w)
            .instrument(span)
            .await
    }

    async fn write_statement_traced<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        mut entry: Entry,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let in_txn = self.in_transaction();
        // An autocommit statement holds the gate for its own duration; a
        // transaction holds it from its first statement to its end.
        let gate = if in_txn {
            if let Err(err) = self.ensure_transaction().await {
                return self.answer(w, Err(err)).await;
            }
            None
        } else {
            Some(self.shared.gate.clone().read_owned().await)
        };
        if let Err(err) = self.journal(&entry).await {
            return self.answer(w, Err(err)).await;
        }
        // A read changes nothing: no savepoint, no pinned context, so that
        // SHOW WARNINGS, ROW_COUNT() and FOUND_ROWS() still see the client's
        // previous statement.
        let pinned = entry.kind != EntryKind::Read;
        // B first.
        let sync_pin = pinned.then(|| {
            Pinning::of(&entry.context).opened_by(if in_txn { SAVEPOINT } else { "BEGIN" })
        });
        let sync_ok = match self
            .run_first_on_sync(&work, sync_pin, &mut entry, in_txn)
            .await
        {
            Ok(sync_ok) => sync_ok,
            Err(err) => return self.answer(w, Err(err)).await,
        };
        // An autocommit statement's commit number is taken now, while B
        // holds its locks, and A records it before the statement: after it,
        // the row would clear the statement's warnings (SHOW WARNINGS).
        let reservation = if in_txn {
            None
        } else {
            match self
                .shared
                .journal
                .reserve_commit(entry.id, vec![entry.id], false)
            {
                Ok(r) => Some(r),
                Err(e) => {
                    self.finish_entry(&mut entry, EntryState::Failed);
                    self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
                    let err = ClientError::JournalUnavailable(e.to_string());
                    return self.answer(w, Err(err)).await;
                }
            }
        };
        // Then A, whose response the client gets.
        let master_pin = match (&reservation, pinned) {
            (Some(r), _) => Some(
                Pinning::of(&entry.context)
                    .opened_by("BEGIN")
                    .then(&commits::record(entry.id, r.seq())),
            ),
            (None, true) => Some(Pinning::of(&entry.context)),
            (None, false) => None,
        };
        let hide = if in_txn {
            StatusFlags::empty()
        } else {
            StatusFlags::SERVER_STATUS_IN_TRANS
        };
        match self
            .run_on_master_relayed(&work, master_pin.as_ref(), renames, w, hide)
            .await?
        {
            MasterEnd::Done { w, end, outcome } => {
                if let Outcome::Ok { last_insert_id, .. } = outcome {
                    if last_insert_id > 0 {
                        self.last_insert_id = last_insert_id;
                        entry.context.insert_id.get_or_insert(last_insert_id);
                    }
                }
                self.record_master(&mut entry, outcome);
                if !sync_ok {
                    warn!("the synchronous slave failed a statement the master passed");
                }
                match reservation {
                    None => {
                        self.keep_in_transaction(entry);
                        relay::finish_with(w, end, &mut self.status).await
                    }
                    Some(reservation) => {
                        let end = (end.0 - StatusFlags::SERVER_STATUS_IN_TRANS, end.1);
                        self.commit_statement(entry, reservation, sync_ok, w, end)
                            .await
                    }
                }
            }
            MasterEnd::Failed(err) => {
                if let Some(r) = reservation {
                    r.resolve(CommitState::Aborted);
                }
                self.record_master(&mut entry, outcome_of_client_error(&err));
                self.finish_entry(&mut entry, EntryState::Failed);
                if pinned {
                    self.undo_on_sync_after_master_failed(in_txn).await;
                }
                if !in_txn {
                    let _ = self
                        .run_on_master(format!("ROLLBACK; {UNPIN}").as_bytes())
                        .await;
                }
                self.note_failure(&err);
                drop(gate);
                Ok(())
            }
        }
    }

    /// Opens B's side of a transaction the client started implicitly
    /// (autocommit off) or explicitly.
    async fn ensure_transaction(&mut self) -> Result<(), ClientError> {
        if self.txn.is_some() {
            return Ok(());
        }
        let gate = self.shared.gate.clone().read_owned().await;
        self.sync_control("BEGIN").await?;
        self.txn = Some(OpenTransaction {
            _gate: gate,
            entries: Vec::new(),
        });
        Ok(())
    }

    /// B's part of a statement: runs it there after `pin` and records B's
    /// result (and the AUTO_INCREMENT value it generated) in `entry`. True
    /// when B passed it (or there is no B). An error goes to the client and
    /// A never runs the statement: B unreachable, or a transient conflict
    /// there (already undone).
    async fn run_first_on_sync(
        &mut self,
        work: &Work,
        pin: Option<Pinning>,
        entry: &mut Entry,
        in_txn: bool,
    ) -> Result<bool, ClientError> {
        let sync = match self.run_on_sync(work, pin).await {
            Ok(Some(sync)) => sync,
            Ok(None) => return Ok(true),
            Err(err) => {
                self.finish_entry(entry, EntryState::Failed);
                return Err(err);
            }
        };
        entry.results.push(sync.clone());
        if outcome::is_transient_conflict(&sync.outcome) {
            self.finish_entry(entry, EntryState::Failed);
            return Err(self.undo_conflict_on_sync(&sync.outcome, in_txn).await);
        }
        if let Outcome::Ok { last_insert_id, .. } = sync.outcome {
            if last_insert_id > 0 {
                entry.context.insert_id = Some(last_insert_id);
            }
        }
        Ok(sync.outcome.is_ok())
    }

    /// Runs `work` on B after `pin`; None without B.
    async fn run_on_sync(
        &mut self,
        work: &Work,
        pin: Option<Pinning>,
    ) -> Result<Option<NodeResult>, ClientError> {
        let Some(node) = self.shared.sync.clone() else {
            return Ok(None);
        };
        let Some(conn) = self.sync.as_mut() else {
            return Err(self.lost_sync());
        };
        let outcome = work
            .run_on_sync_after(conn, pin.as_ref().map(|p| p.sql.as_str()))
            .await;
        if let Outcome::Lost { reason } = &outcome {
            self.sync = None;
            self.closing = true;
            return Err(ClientError::BackendLost {
                node: node.name.clone(),
                reason: reason.clone(),
            });
        }
        Ok(Some(NodeResult {
            node: node.name,
            outcome,
        }))
    }

    /// Runs `pin` then `work` on A, relaying `work`'s response: a text
    /// carries the pinning statements in the same round trip.
    async fn run_on_master_relayed<'w, W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        pin: Option<&Pinning>,
        renames: &Renames,
        w: QueryResultWriter<'w, W>,
        hide: StatusFlags,
    ) -> io::Result<MasterEnd<'w, W>> {
        let (combined, skip) = match (work, pin) {
            (_, None) => (None, 0),
            (Work::Text(sql), Some(pin)) => {
                (Some(Work::Text(prefixed(&pin.sql, sql))), pin.statements)
            }
            (Work::Prepared { .. }, Some(pin)) => {
                if let Err(err) = self.run_on_master(pin.sql.as_bytes()).await {
                    w.send_error(&err).await?;
                    return Ok(MasterEnd::Failed(err));
                }
                (None, 0)
            }
        };
        let work = combined.as_ref().unwrap_or(work);
        let shared = self.shared.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            w.send_error(&err).await?;
            return Ok(MasterEnd::Failed(err));
        };
        self.busy = true;
        let shown = Shown { hide, skip };
        let relayed = work
            .relay_on_master(
                &shared.master.name,
                conn,
                w,
                renames,
                &mut self.status,
                shown,
            )
            .await;
        self.busy = false;
        match relayed? {
            SetsEnd::Complete(w) => {
                let end = relay::final_status(conn, self.status);
                let outcome = Outcome::Ok {
                    affected_rows: conn.affected_rows(),
                    last_insert_id: conn.last_insert_id().unwrap_or(0),
                    warnings: end.1,
                };
                Ok(MasterEnd::Done { w, end, outcome })
            }
            SetsEnd::Failed(err) => Ok(MasterEnd::Failed(err)),
        }
    }

    /// Commits an autocommit statement: A (which recorded it before running
    /// it) commits, the client gets A's answer, then B records and commits.
    async fn commit_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut entry: Entry,
        reservation: Reservation,
        sync_ok: bool,
        w: QueryResultWriter<'_, W>,
        end: (StatusFlags, u16),
    ) -> io::Result<()> {
        // COMMIT and SET use no table: the statement's warnings stay for
        // SHOW WARNINGS.
        match self
            .run_on_master(format!("COMMIT; {UNPIN}").as_bytes())
            .await
        {
            Ok(_) => {
                let seq = reservation.seq();
                self.finish_entry(&mut entry, EntryState::Committed { seq });
                reservation.resolve(CommitState::Committed);
                let answered = relay::finish_with(w, end, &mut self.status).await;
                // B commits after A, whatever became of the client.
                let sync_end = if sync_ok {
                    format!("{}; COMMIT; {UNPIN}", commits::record(entry.id, seq))
                } else {
                    format!("ROLLBACK; {UNPIN}")
                };
                self.sync_finish(&sync_end).await;
                answered
            }
            Err(err) => {
                reservation.resolve(CommitState::Aborted);
                self.abort_statement(entry, w, err).await
            }
        }
    }

    /// The master could not commit a statement it ran: undone everywhere,
    /// and the client gets the error instead of the held-back success.
    async fn abort_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut entry: Entry,
        w: QueryResultWriter<'_, W>,
        err: ClientError,
    ) -> io::Result<()> {
        error!(error = %err, "commit on the master failed");
        self.finish_entry(&mut entry, EntryState::Failed);
        let _ = self
            .run_on_master(format!("ROLLBACK; {UNPIN}").as_bytes())
            .await;
        self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
        let answered = w
            .error_instead_raw(err.code(), err.sqlstate(), err.to_string().as_bytes())
            .await;
        self.note_failure(&err);
        answered
    }

    /// B refused the statement with a deadlock or lock wait timeout: undo
    /// what that did to B's transaction (and, for a deadlock, which rolled
    /// B's transaction back, A's too), and give the client B's error.
    async fn undo_conflict_on_sync(&mut self, outcome: &Outcome, in_txn: bool) -> ClientError {
        let err = client_error_of(outcome);
        debug!(
            code = err.code(),
            "transient conflict on the synchronous slave"
        );
        if !in_txn {
            self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
            return err;
        }
        let statement_only = outcome.error_code() == Some(LOCK_WAIT_TIMEOUT)
            && self.sync_control(ROLLBACK_TO_SAVEPOINT).await.is_ok();
        if !statement_only {
            // The whole transaction is gone on B: end it on A as well, as
            // MariaDB ends it after a deadlock.
            self.end_transaction_everywhere().await;
        }
        err
    }

    /// A refused a statement B ran: take it back on B.
    async fn undo_on_sync_after_master_failed(&mut self, in_txn: bool) {
        if !in_txn {
            self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
            return;
        }
        if self.master_in_transaction().await {
            self.sync_finish(ROLLBACK_TO_SAVEPOINT).await;
        } else {
            // A rolled its transaction back (a deadlock there): so does B.
            self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
            self.drop_transaction(EntryState::RolledBack);
        }
    }

    /// Rolls back the open transaction on A and B (B lost it already).
    async fn end_transaction_everywhere(&mut self) {
        self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
        if let Ok(ok) = self
            .run_on_master(format!("ROLLBACK; {UNPIN}").as_bytes())
            .await
        {
            self.status = ok.status_flags;
        }
        self.drop_transaction(EntryState::RolledBack);
    }

    async fn master_in_transaction(&mut self) -> bool {
        let Some(conn) = self.master.as_mut() else {
            return false;
        };
        let row: Result<Option<Row>, _> = conn.query_first("SELECT @@in_transaction").await;
        match row {
            Ok(Some(row)) => row.get_opt::<u64, usize>(0).and_then(Result::ok) == Some(1),
            _ => false,
        }
    }

    /// BEGIN / START TRANSACTION: B, then A; the transaction then holds the gate.
    async fn begin<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Err(err) = self.commit_implicitly().await {
            return self.answer(w, Err(err)).await;
        }
        let gate = self.shared.gate.clone().read_owned().await;
        if let Err(err) = self.sync_control_bytes(work.sql()).await {
            return self.answer(w, Err(err)).await;
        }
        if self.relay_on_master(&work, renames, w).await? {
            self.txn = Some(OpenTransaction {
                _gate: gate,
                entries: Vec::new(),
            });
        } else {
            self.sync_finish("ROLLBACK").await;
        }
        Ok(())
    }

    /// A statement that commits the open transaction as it starts (BEGIN,
    /// DDL, LOCK TABLES, …), as in MariaDB: the commit goes through the
    /// write path first.
    async fn commit_implicitly(&mut self) -> Result<(), ClientError> {
        if self.txn.is_none() {
            return Ok(());
        }
        self.commit_transaction(b"COMMIT").await.map(|_| ())
    }

    /// COMMIT: A records the commit and commits, then B.
    async fn commit<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let outcome = self.commit_transaction(work.sql()).await;
        self.answer(w, outcome).await
    }

    /// Commits the open transaction with the client's COMMIT text; the OK is A's.
    async fn commit_transaction(&mut self, text: &[u8]) -> Result<OkResponse, ClientError> {
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
        let Some(txn) = self.txn.take() else {
            // Nothing open on B; A may still have something to say (autocommit off).
            self.sync_finish("COMMIT").await;
            return self
                .run_on_master(format!("{UNPIN}; {text}").as_bytes())
                .await;
        };
        let mut entry = self.new_entry(EntryKind::Control, &Work::Text(text.as_bytes().to_vec()));
        let span = info_span!("write", request_id = %entry.id);
        async move {
            if txn.entries.is_empty() {
                let ok = self
                    .run_on_master(format!("{UNPIN}; {text}").as_bytes())
                    .await;
                self.sync_finish(&format!("COMMIT; {UNPIN}")).await;
                self.finish_entry(&mut entry, EntryState::Done);
                return ok;
            }
            self.journal(&Entry {
                kind: EntryKind::Write,
                ..entry.clone()
            })
            .await?;
            let ids = txn.entries.iter().map(|e| e.id).collect();
            let record = self
                .shared
                .journal
                .reserve_commit(entry.id, ids, false)
                .map_err(|e| ClientError::JournalUnavailable(e.to_string()))?;
            let row = commits::record(entry.id, record.seq());
            match self
                .run_on_master(format!("{UNPIN}; {row}; {text}").as_bytes())
                .await
            {
                Ok(ok) => {
                    let committed = EntryState::Committed { seq: record.seq() };
                    for mut e in txn.entries {
                        self.finish_entry(&mut e, committed.clone());
                    }
                    self.finish_entry(&mut entry, committed);
                    record.resolve(CommitState::Committed);
                    self.sync_finish(&format!("{row}; COMMIT; {UNPIN}")).await;
                    Ok(ok)
                }
                Err(err) => {
                    error!(error = %err, "commit on the master failed");
                    record.resolve(CommitState::Aborted);
                    for mut e in txn.entries {
                        self.finish_entry(&mut e, EntryState::RolledBack);
                    }
                    self.finish_entry(&mut entry, EntryState::Failed);
                    let _ = self.run_on_master(b"ROLLBACK").await;
                    self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// ROLLBACK: A and B.
    async fn rollback<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let text = String::from_utf8_lossy(work.sql()).into_owned();
        let outcome = self
            .run_on_master(format!("{UNPIN}; {text}").as_bytes())
            .await;
        self.sync_finish(&format!("ROLLBACK; {UNPIN}")).await;
        self.drop_transaction(EntryState::RolledBack);
        self.answer(w, outcome).await
    }

    /// Forgets the open transaction; its entries end in `state`.
    fn drop_transaction(&mut self, state: EntryState) {
        if let Some(txn) = self.txn.take() {
            for mut e in txn.entries {
                self.finish_entry(&mut e, state.clone());
            }
        }
    }

    /// SET, USE, PREPARE, temporary tables: B's session, then A's.
    async fn session_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        change: SessionChange,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if router::commits_open_transaction(work.sql()) {
            if let Err(err) = self.commit_implicitly().await {
                return self.answer(w, Err(err)).await;
            }
        }
        if let Err(err) = self.set_pin_variables(&work, true).await {
            return self.answer(w, Err(err)).await;
        }
        let sync = match self.sync.as_mut() {
            Some(conn) => Some(work.run_on_sync(conn).await),
            None => None,
        };
        if let Some(Outcome::Lost { reason }) = &sync {
            let err = ClientError::BackendLost {
                node: self.sync_name(),
                reason: reason.clone(),
            };
            return self.answer(w, Err(err)).await;
        }
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
            self.remember_session_change(&work, change).await;
        }
        Ok(())
    }

    async fn remember_session_change(&mut self, work: &Work, change: SessionChange) {
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
    pub(super) async fn refresh_schema(&mut self) {
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

    /// DDL and other statements that commit implicitly: alone across the
    /// chain (in-flight writes drain first), B then A.
    async fn run_alone<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Err(err) = self.commit_implicitly().await {
            return self.answer(w, Err(err)).await;
        }
        let (work, renames, variables) = work.pinned(renames);
        let renames = &renames;
        let mut entry = self.new_entry(EntryKind::Alone, &work);
        entry.context.variables = variables;
        let span = info_span!("write", request_id = %entry.id);
        async move {
            let _gate = self.shared.gate.clone().write_owned().await;
            if let Err(err) = self.journal(&entry).await {
                return self.answer(w, Err(err)).await;
            }
            let sync_pin = Some(Pinning::of(&entry.context));
            let sync_ok = match self
                .run_first_on_sync(&work, sync_pin, &mut entry, false)
                .await
            {
                Ok(sync_ok) => sync_ok,
                Err(err) => return self.answer(w, Err(err)).await,
            };
            let pin = Pinning::of(&entry.context);
            match self
                .run_on_master_relayed(&work, Some(&pin), renames, w, StatusFlags::empty())
                .await?
            {
                MasterEnd::Done { w, end, outcome } => {
                    self.record_master(&mut entry, outcome);
                    self.record_alone_commit(&mut entry, sync_ok).await;
                    self.refresh_table_engines().await;
                    relay::finish_with(w, end, &mut self.status).await
                }
                MasterEnd::Failed(err) => {
                    self.record_master(&mut entry, outcome_of_client_error(&err));
                    self.finish_entry(&mut entry, EntryState::Failed);
                    let _ = self.run_on_master(UNPIN.as_bytes()).await;
                    self.sync_finish(UNPIN).await;
                    if sync_ok && self.sync.is_some() {
                        error!(
                            error = %err,
                            "the master refused a statement that commits implicitly after the \
                             synchronous slave ran it; it cannot be undone there"
                        );
                    }
                    self.note_failure(&err);
                    Ok(())
                }
            }
        }
        .instrument(span)
        .await
    }

    /// After a statement ran alone on A: its commit record, A's and B's
    /// `lockstep.commits` rows (in their own small transactions: DDL
    /// cannot share one).
    async fn record_alone_commit(&mut self, entry: &mut Entry, sync_ok: bool) {
        let record = match self
            .shared
            .journal
            .reserve_commit(entry.id, vec![entry.id], true)
        {
            Ok(record) => record,
            Err(e) => {
                error!(error = %e, "cannot journal the commit of a statement the master ran");
                self.finish_entry(entry, EntryState::Failed);
                return;
            }
        };
        let row = format!(
            "{}; COMMIT; {UNPIN}",
            commits::record(entry.id, record.seq())
        );
        match self.run_on_master(row.as_bytes()).await {
            Ok(_) => {
                self.finish_entry(entry, EntryState::Committed { seq: record.seq() });
                record.resolve(CommitState::Committed);
            }
            Err(err) => {
                // The statement itself is done on A (it committed
                // implicitly): the tail must still get it.
                error!(error = %err, "cannot record the commit on the master");
                record.resolve(CommitState::Committed);
            }
        }
        let sync_end = if sync_ok { row } else { UNPIN.to_string() };
        self.sync_finish(&sync_end).await;
    }

    /// DDL may have created or changed a non-transactional table.
    async fn refresh_table_engines(&mut self) {
        let shared = self.shared.clone();
        if let Some(conn) = self.master.as_mut() {
            if let Err(e) = shared.nontransactional.refresh(conn).await {
                warn!(error = %e, "cannot list non-transactional tables");
            }
        }
    }

    /// A new journal entry for `work` in this session's current state.
    fn new_entry(&mut self, kind: EntryKind, work: &Work) -> Entry {
        let id = Uuid::now_v7();
        self.last_request_id = Some(id);
        let mut context = Context::now();
        context.last_insert_id = (self.last_insert_id > 0).then_some(self.last_insert_id);
        Entry {
            id,
            session: self.id,
            user: self.user.clone(),
            kind,
            session_state: self.state.clone(),
            statement: work.journal_statement(),
            context,
            created_us: now_us(),
            results: Vec::new(),
            state: EntryState::Pending,
        }
    }

    /// Journals a new entry: a write waits until it is durable, a read does not.
    async fn journal(&self, entry: &Entry) -> Result<(), ClientError> {
        if entry.kind == EntryKind::Read {
            self.shared.journal.write(entry);
            return Ok(());
        }
        self.shared
            .journal
            .write_durable(entry)
            .await
            .map_err(|e| ClientError::JournalUnavailable(e.to_string()))
    }

    fn record_master(&self, entry: &mut Entry, outcome: Outcome) {
        entry.results.push(NodeResult {
            node: self.shared.master.name.clone(),
            outcome,
        });
    }

    fn finish_entry(&self, entry: &mut Entry, state: EntryState) {
        entry.state = state;
        self.shared.journal.write(entry);
    }

    /// A statement done on A inside the client's transaction.
    fn keep_in_transaction(&mut self, mut entry: Entry) {
        entry.state = EntryState::InTransaction;
        self.shared.journal.write(&entry);
        if entry.kind == EntryKind::Write {
            if let Some(txn) = self.txn.as_mut() {
                txn.entries.push(entry);
            }
        }
    }

    /// Runs lockstep's own statement on B; a broken connection ends the session.
    async fn sync_control(&mut self, sql: &str) -> Result<(), ClientError> {
        self.sync_control_bytes(sql.as_bytes()).await
    }

    async fn sync_control_bytes(&mut self, sql: &[u8]) -> Result<(), ClientError> {
        if self.shared.sync.is_none() {
            return Ok(());
        }
        let Some(conn) = self.sync.as_mut() else {
            return Err(self.lost_sync());
        };
        match conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = ClientError::from_backend(&self.sync_name(), e);
                if err.ends_session() {
                    self.sync = None;
                    self.closing = true;
                }
                Err(err)
            }
        }
    }

    /// Ends B's part of a statement or transaction; a failure is logged
    /// (the client's answer is already decided by A).
    async fn sync_finish(&mut self, sql: &str) {
        if let Err(err) = self.sync_control(sql).await {
            error!(error = %err, sql, "the synchronous slave could not finish");
        }
    }

    fn sync_name(&self) -> String {
        self.shared
            .sync
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }

    fn lost_sync(&self) -> ClientError {
        ClientError::BackendLost {
            node: self.sync_name(),
            reason: "no connection".into(),
        }
    }
}

/// lockstep's statements sent ahead of a client's statement: opening B's or
/// A's side of it, pinning its context, recording its commit.
struct Pinning {
    sql: String,
    /// How many statements `sql` holds (their results are not the client's).
    statements: usize,
}

impl Pinning {
    fn of(context: &Context) -> Pinning {
        Pinning {
            sql: context.set_statement(),
            statements: 1,
        }
    }

    fn opened_by(self, opening: &str) -> Pinning {
        Pinning {
            sql: format!("{opening}; {}", self.sql),
            statements: self.statements + 1,
        }
    }

    fn then(self, statement: &str) -> Pinning {
        Pinning {
            sql: format!("{}; {statement}", self.sql),
            statements: self.statements + 1,
        }
    }
}

/// `pin; sql` as one multi-statement text.
fn prefixed(pin: &str, sql: &[u8]) -> Vec<u8> {
    [pin.as_bytes(), b"; ", sql].concat()
}

/// `@a = 'x', @b = 2`
pub fn assignments(variables: &[(String, String)]) -> String {
    variables
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// B's error as the client gets it.
fn client_error_of(outcome: &Outcome) -> ClientError {
    match outcome {
        Outcome::Error {
            code,
            state,
            message,
        } => ClientError::Server {
            code: *code,
            state: state.clone(),
            message: message.clone(),
        },
        Outcome::Lost { reason } => ClientError::BackendLost {
            node: String::new(),
            reason: reason.clone(),
        },
        Outcome::Ok { .. } => ClientError::Server {
            code: DEADLOCK,
            state: "40001".into(),
            message: "Deadlock found when trying to get lock; try restarting transaction".into(),
        },
    }
}

fn outcome_of_client_error(err: &ClientError) -> Outcome {
    match err {
        ClientError::Server {
            code,
            state,
            message,
        } => Outcome::Error {
            code: *code,
            state: state.clone(),
            message: message.clone(),
        },
        other => Outcome::Lost {
            reason: other.to_string(),
        },
    }
}
