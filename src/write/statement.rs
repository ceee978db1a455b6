//! One write-path statement: B first, then A relayed to the client, then
//! the commit of an autocommit statement, or its undo when A refuses it.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use opensrv_mysql::{ErrorKind, QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tracing::{debug, error, info_span, warn, Instrument};
use uuid::Uuid;

use super::commit::{CommitWork, Committed};
use super::phase::{timed, Phase};
use super::retry_master;
use super::work::{prefixed, Pinning, Work};
use super::Driver;
use crate::chain::outcome;
use crate::compare::digest::Digest;
use crate::config::MasterFailPolicy;
use crate::error::{ClientError, SendError};
use crate::journal::{Entry, EntryKind, EntryState, Outcome};
use crate::protocol::control;
use crate::protocol::insert_id::{self, Generated, LastInsertId, Question, Reported};
use crate::router;
use crate::sql::intercept::Renames;
use crate::wire::relay::{self, SetsEnd, Shown};

/// A's duplicate-key error: B's AUTO_INCREMENT value may be taken on A.
const DUPLICATE_KEY: u16 = ErrorKind::ER_DUP_ENTRY as u16;
/// A's "query execution was interrupted": a KILL QUERY, the client's or
/// the lock-cycle watcher's (`deadlocks`).
const INTERRUPTED: u16 = ErrorKind::ER_QUERY_INTERRUPTED as u16;

/// How A's part of a statement ended.
pub(crate) enum MasterEnd<'w, W> {
    /// Relayed; the final terminator (status, warnings) is still to be written.
    Done {
        w: QueryResultWriter<'w, W>,
        end: (StatusFlags, u16),
        outcome: Outcome,
    },
    /// A refused it; the client already has A's error.
    Failed(ClientError),
}

/// How A's part ended when one error was to be held back
/// (`run_on_master_holding`).
pub(crate) enum Holding<'w, W> {
    Ended(MasterEnd<'w, W>),
    /// A refused it with the held error: the client has nothing yet.
    Held {
        w: QueryResultWriter<'w, W>,
        err: ClientError,
    },
}

impl Driver {
    /// A statement that may change data (or any statement inside a
    /// transaction), through the write path.
    pub(super) async fn write_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        kind: EntryKind,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let started = std::time::Instant::now();
        let work = match work {
            Work::Text(sql) if kind == EntryKind::Write => {
                Work::Text(self.ordered_limit(sql).await)
            }
            other => other,
        };
        let (work, renames, sequence_pins) = match self.pinned_sequences(work, renames).await {
            Ok(pinned) => pinned,
            Err(err) => return self.answer(w, Err(err)).await,
        };
        let (work, renames) = self.pinned_node_variables(work, renames).await;
        let (work, renames, mut variables) = self.pinned_work(work, &renames);
        variables.extend(sequence_pins);
        self.settle_last_insert_id(work.sql()).await;
        crate::metrics::observe_phase(Phase::Prepare.name(), started.elapsed().as_secs_f64());
        if kind == EntryKind::Write {
            self.shared.chain.nontransactional.warn_if_named(work.sql());
        }
        let mut entry = self.new_entry(kind, &work);
        entry.context.variables = variables;
        let span = info_span!("write", request_id = %entry.id);
        let answered = self
            .write_statement_traced(work, entry, &renames, w)
            .instrument(span)
            .await;
        crate::metrics::get()
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        answered
    }

    pub(super) async fn write_statement_traced<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut work: Work,
        mut entry: Entry,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let in_txn = self.in_transaction();
        // An autocommit statement holds the gate for its own duration; a
        // transaction holds it from its first statement to its end.
        let gate = if in_txn {
            if let Err(err) = timed(Phase::OpenOnSync, self.ensure_transaction(&mut work)).await {
                return self.answer(w, Err(err)).await;
            }
            None
        } else {
            let gate = self.shared.chain.gate.enter().await;
            // The roles may have changed while this waited.
            self.follow_roles_with(&mut work).await;
            crate::fail_points::pause_here(crate::fail_points::WRITE_ROLES_FOLLOWED).await;
            Some(gate)
        };
        if entry.kind == EntryKind::Write {
            if let Err(err) = self.refuse_without_sync() {
                return self.answer(w, Err(err)).await;
            }
        }
        if let Err(err) = self.journal_ahead(&entry, in_txn) {
            return self.answer(w, Err(err)).await;
        }
        if entry.kind == EntryKind::Write
            && self.sync.is_some()
            && self.shared.chain.nontransactional.named_in(work.sql())
        {
            if let Err(err) = self.master_answers().await {
                self.finish_entry(&mut entry, EntryState::Failed);
                return self.answer(w, Err(err)).await;
            }
        }
        // A read changes nothing: no savepoint, no pinned context, so that
        // SHOW WARNINGS, ROW_COUNT() and FOUND_ROWS() still see the client's
        // previous statement.
        let pinned = entry.kind != EntryKind::Read;
        let wrap = self.wrap();
        // Phase "run on B": B first, in a transaction that stays open (its
        // first statement there opens it).
        let opening_on_sync = self.take_opening_on_sync();
        if let (false, Some(open)) = (pinned, opening_on_sync) {
            // No pin to carry it: a round trip of its own.
            if let Err(err) = self.sync_control_bytes(open.as_bytes()).await {
                self.finish_entry(&mut entry, EntryState::Failed);
                return self.answer(w, Err(err)).await;
            }
        }
        let opening = match (in_txn, opening_on_sync) {
            (true, Some(open)) => format!("{open}; {}", control::SAVEPOINT),
            (true, None) => control::SAVEPOINT.to_string(),
            (false, _) => wrap.open().to_string(),
        };
        let question = Question::for_statement(work.sql(), true);
        // Under LOCK TABLES a pin can fail as the client's statement would
        // (a table not locked): the client then gets that error and the
        // session goes on, so the statement waits for its pin's answer.
        let own_trip = self.holds_table_locks;
        let sync_pin = pinned.then(|| {
            Pinning::of(&entry.context)
                .setting(question.pin_addition())
                .opened_by(&opening)
                .in_its_own_trip(own_trip)
        });
        let on_sync = self.run_first_on_sync(&work, sync_pin, &mut entry, in_txn, question);
        let (mut sync_ok, sync_generated) = match timed(Phase::RunOnSync, on_sync).await {
            Ok(part) => (part.passed, part.generated),
            Err(err) => return self.answer(w, Err(err)).await,
        };
        // B's refusal, held until A's verdict (`protocol::serialized`, rule 3).
        let refused = !sync_ok && self.sync.is_some();
        let waited = self.wait_behind_serialized_before_master(in_txn, refused);
        let _refusal = match timed(Phase::WaitBehindDdl, waited).await {
            Ok(refusal) => refusal,
            Err(err) => {
                self.finish_entry(&mut entry, EntryState::Failed);
                return self.answer(w, Err(err)).await;
            }
        };
        // Phase "run on A", whose response the client gets (its final
        // terminator held back until the commit). An autocommit statement
        // opens a transaction on A too, with A's row for it ahead of the
        // statement (`control::mark`).
        let master_pin = match (in_txn, pinned) {
            (false, _) => Some(
                Pinning::of(&entry.context)
                    .opened_by(wrap.open())
                    .then(&control::mark(entry.id))
                    .in_its_own_trip(own_trip),
            ),
            (true, true) => Some(Pinning::of(&entry.context).in_its_own_trip(own_trip)),
            (true, false) => None,
        };
        let hide = if in_txn {
            StatusFlags::empty()
        } else {
            StatusFlags::SERVER_STATUS_IN_TRANS
        };
        // B's AUTO_INCREMENT value, pinned on A, may be taken there (B
        // lacks rows A has): A's duplicate-key error is held back for that.
        // A's interruption is held back too: it may be a lock cycle's
        // victim (`deadlocks`), which answers 1213.
        let from_sync = entry.context.insert_id.filter(|_| sync_ok);
        let held: &'static [u16] = match from_sync {
            Some(_) => &[DUPLICATE_KEY, INTERRUPTED],
            None => &[INTERRUPTED],
        };
        let mut cycle_victim = false;
        let on_master =
            self.run_on_master_holding(&work, master_pin.as_ref(), renames, w, hide, held);
        let ended = match timed(Phase::RunOnMaster, on_master).await? {
            Holding::Ended(ended) => ended,
            Holding::Held { w, err } => match from_sync {
                Some(value) if is_duplicate_of(&err, value) => {
                    sync_ok = false;
                    self.run_again_without_syncs_value(&work, &mut entry, in_txn, renames, w, hide)
                        .await?
                }
                _ => {
                    cycle_victim = err.code() == INTERRUPTED
                        && self.shared.registry.take_deadlock_victim(self.id);
                    let err = if cycle_victim {
                        ClientError::deadlock()
                    } else {
                        err
                    };
                    w.send_error(&err).await?;
                    MasterEnd::Failed(err)
                }
            },
        };
        if !cycle_victim {
            // Marked too late to interrupt this statement: forgotten.
            self.shared.registry.take_deadlock_victim(self.id);
        }
        match ended {
            MasterEnd::Done { w, end, outcome } => {
                if let Outcome::Ok {
                    last_insert_id,
                    affected_rows,
                    ..
                } = outcome
                {
                    // A ran with B's value when B passed: B's answer holds.
                    let generated = match sync_generated.filter(|_| sync_ok) {
                        Some(generated) => generated,
                        None => {
                            self.generated_on_master(&work, entry.id, last_insert_id, affected_rows)
                                .await
                        }
                    };
                    self.last_insert_id = generated.last_insert_id;
                    if entry.context.insert_id.is_none() {
                        entry.context.insert_id = generated.insert_id;
                    }
                }
                self.record_master(&mut entry, outcome);
                if !sync_ok {
                    warn!("the synchronous slave failed a statement the master passed");
                }
                if in_txn {
                    // Journaled after the answer: nothing waits for this
                    // entry before the transaction's commit number, which
                    // comes later through the same ordered writer.
                    let answered = relay::finish_with(w, end, &mut self.status).await;
                    self.keep_in_transaction(entry, router::is_savepoint_statement(work.sql()));
                    return answered;
                }
                // The client's autocommit is on, whatever lockstep's own
                // transaction around the statement made A report.
                let flags = (end.0 - StatusFlags::SERVER_STATUS_IN_TRANS)
                    | StatusFlags::SERVER_STATUS_AUTOCOMMIT;
                self.commit_statement(entry, sync_ok, w, (flags, end.1))
                    .await
            }
            MasterEnd::Failed(err) => {
                self.record_master(&mut entry, outcome_of_client_error(&err));
                if err.ends_session() && sync_ok && self.sync.is_some() {
                    self.leave_sync_role_if_it_kept(&work, entry.id, &err);
                }
                let sync_failed_too = !sync_ok || self.sync.is_none();
                if !in_txn
                    && entry.kind == EntryKind::Write
                    && sync_failed_too
                    && !err.ends_session()
                    && self.failed_but_kept(&work, entry.id).await
                {
                    self.keep_failed_statement(entry).await;
                    self.note_failure(&err);
                    drop(gate);
                    return Ok(());
                }
                let retry = !in_txn
                    && !cycle_victim
                    && entry.kind == EntryKind::Write
                    && self.sync.is_some()
                    && sync_ok
                    && self.shared.compare.on_master_fail_slave_pass
                        == MasterFailPolicy::RetryMaster
                    && !err.ends_session();
                if retry {
                    // B's part is undone now and done again with the master's.
                    self.finish_entry(&mut entry, EntryState::RetryingOnMaster);
                    retry_master::spawn(self.shared.clone(), entry);
                } else {
                    self.finish_entry(&mut entry, EntryState::Failed);
                }
                if cycle_victim && in_txn {
                    // A deadlock's victim loses its transaction, as in MariaDB.
                    self.end_transaction_everywhere().await;
                } else if pinned {
                    self.undo_on_sync_after_master_failed(in_txn).await;
                }
                if !in_txn {
                    let _ = self.run_on_master(wrap.rollback().as_bytes()).await;
                }
                self.note_failure(&err);
                drop(gate);
                Ok(())
            }
        }
    }

    /// Runs `pin` then `work` on A, relaying `work`'s response: a text
    /// carries the pinning statements in the same round trip.
    pub(super) async fn run_on_master_relayed<'w, W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        pin: Option<&Pinning>,
        renames: &Renames,
        w: QueryResultWriter<'w, W>,
        hide: StatusFlags,
    ) -> io::Result<MasterEnd<'w, W>> {
        match self
            .run_on_master_holding(work, pin, renames, w, hide, &[])
            .await?
        {
            Holding::Held { w, .. } => Ok(MasterEnd::Failed(relay::unexpected_refusal(w).await?)),
            Holding::Ended(end) => Ok(end),
        }
    }

    /// `run_on_master_relayed`, except that A's errors `held` (when A gives
    /// it before any row) is not relayed but handed back (`Holding::Held`).
    pub(super) async fn run_on_master_holding<'w, W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        pin: Option<&Pinning>,
        renames: &Renames,
        w: QueryResultWriter<'w, W>,
        hide: StatusFlags,
        held: &'static [u16],
    ) -> io::Result<Holding<'w, W>> {
        // A server-side load: the master reads its own file (`server_file`).
        let own_file = self.master_text.clone().map(Work::Text);
        let work = own_file.as_ref().unwrap_or(work);
        // The pin travels with the statement: prefixed to a text (its
        // results skipped), written just ahead of a prepared execution.
        let (combined, skip, pin_ahead) = match (work, pin) {
            (_, None) => (None, 0, None),
            (Work::Text(sql), Some(pin)) => (
                Some(Work::Text(prefixed(&pin.sql, sql))),
                pin.statements,
                None,
            ),
            (Work::Prepared { .. }, Some(pin)) if pin.own_trip => {
                if let Err(err) = self.run_on_master(pin.sql.as_bytes()).await {
                    w.send_error(&err).await?;
                    return Ok(Holding::Ended(MasterEnd::Failed(err)));
                }
                (None, 0, None)
            }
            (Work::Prepared { .. }, Some(pin)) => (None, 0, Some(pin.sql.as_str())),
        };
        let work = combined.as_ref().unwrap_or(work);
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            w.send_error(&err).await?;
            return Ok(Holding::Ended(MasterEnd::Failed(err)));
        };
        if let (Some(content), None) = (&self.client_file, &self.master_text) {
            outcome::give_local_infile(conn, content);
        }
        self.busy = true;
        let started = std::time::Instant::now();
        let mut digest = Digest::default();
        let shown = Shown {
            hide,
            skip,
            digest: Some(&mut digest),
            refused_with: held,
        };
        let relayed = work
            .relay_on_master_after(&node, conn, pin_ahead, w, renames, &mut self.status, shown)
            .await;
        self.busy = false;
        crate::metrics::observe_node(&node, started.elapsed().as_secs_f64());
        // ROW_COUNT() as MariaDB gives it after this statement: its
        // affected rows, or -1 after rows or an error.
        self.row_count = Some(-1);
        match relayed? {
            SetsEnd::Complete(w) => {
                let end = relay::final_status(conn, self.status);
                let outcome = Outcome::Ok {
                    affected_rows: conn.affected_rows(),
                    last_insert_id: digest
                        .first_insert_id()
                        .unwrap_or_else(|| conn.last_insert_id().unwrap_or(0)),
                    warnings: end.1,
                    insert_ids: digest.result_insert_ids(),
                    rows: digest.finish(),
                };
                if let Outcome::Ok {
                    affected_rows,
                    rows: None,
                    ..
                } = &outcome
                {
                    self.row_count = i64::try_from(*affected_rows).ok();
                }
                Ok(Holding::Ended(MasterEnd::Done { w, end, outcome }))
            }
            SetsEnd::Failed(err) => Ok(Holding::Ended(MasterEnd::Failed(err))),
            SetsEnd::Refused(w, err) => Ok(Holding::Held { w, err }),
        }
    }

    /// Reads LAST_INSERT_ID() on A when lockstep's count of it is unsure
    /// and the statement may read it, itself or through a trigger, routine
    /// or default it runs (`insert_id::LastInsertId`): the
    /// entry then journals the master's value for the tail and replays.
    /// Before the statement runs anywhere; A's FOUND_ROWS() and ROW_COUNT()
    /// this statement may call were read before, and are literals in it.
    async fn settle_last_insert_id(&mut self, sql: &[u8]) {
        if self.last_insert_id.sure {
            return;
        }
        let reads = insert_id::may_read_session_value(sql)
            || self
                .shared
                .unrepeatable_bodies
                .runs_a_last_insert_id_reader(sql);
        if !reads {
            return;
        }
        let Some(conn) = self.master.as_mut() else {
            return;
        };
        match conn
            .query_first::<u64, _>(control::READ_LAST_INSERT_ID)
            .await
        {
            Ok(Some(value)) => self.last_insert_id = LastInsertId::known(value),
            Ok(None) => {}
            // The statement that follows finds the connection's state.
            Err(e) => warn!(error = %e, "could not read LAST_INSERT_ID() on the master"),
        }
    }

    /// What A's statement generated, when no B answered for it
    /// (`protocol::insert_id`). A's session is the client's own: lockstep
    /// only reads its LAST_INSERT_ID(), never sets it.
    async fn generated_on_master(
        &mut self,
        work: &Work,
        request_id: Uuid,
        reported_id: u64,
        affected_rows: u64,
    ) -> Generated {
        let previous = self.last_insert_id;
        let question = Question::for_statement(work.sql(), false);
        let Some(conn) = self.master.as_mut() else {
            return Generated {
                insert_id: None,
                last_insert_id: previous,
            };
        };
        let reported = Reported::of_answer(
            reported_id,
            affected_rows,
            &conn.info(),
            self.state.found_rows,
        );
        let node = insert_id::Node {
            conn,
            schema: self.state.schema.as_deref(),
            tops: &self.shared.column_tops,
            request_id,
        };
        match insert_id::generated(node, work.sql(), question, reported, previous).await {
            Ok(generated) => generated,
            Err(e) => {
                // The commit that follows finds the connection's state.
                warn!(error = %e, "could not read LAST_INSERT_ID() on the master");
                Generated {
                    insert_id: None,
                    last_insert_id: previous,
                }
            }
        }
    }

    /// A refused B's AUTO_INCREMENT value as a duplicate: B lacks rows A
    /// has (it failed a statement A passed, and this session was already
    /// past B when B left its role). B's part is undone and B leaves the
    /// role (it catches up from the journal); A runs the statement again
    /// with a value of its own, in the same transaction, and the client gets
    /// that answer, as from MariaDB.
    async fn run_again_without_syncs_value<'w, W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        entry: &mut Entry,
        in_txn: bool,
        renames: &Renames,
        w: QueryResultWriter<'w, W>,
        hide: StatusFlags,
    ) -> io::Result<MasterEnd<'w, W>> {
        warn!("the master already has the synchronous slave's AUTO_INCREMENT value: it leaves its role");
        self.undo_on_sync_after_master_failed(in_txn).await;
        let sync = self.sync_node_name();
        entry.results.retain(|r| r.node != sync);
        entry.context.insert_id = None;
        self.leave_sync_role(
            format!(
                "request {}: the master already has the AUTO_INCREMENT value it generated",
                entry.id
            ),
            true,
        );
        // Pinned again whole, not only unforced: the first run drew from
        // the seeds of RAND() (and the statement's own draws came after
        // them), so without them A's row got other random values than the
        // journal's replay gives every other node (found by tests/order.rs,
        // seed 1352173755956859198, 2026-12-03).
        let unforced = Pinning::of(&entry.context)
            .setting(Some(control::INSERT_ID_UNFORCED))
            .in_its_own_trip(self.holds_table_locks);
        self.run_on_master_relayed(work, Some(&unforced), renames, w, hide)
            .await
    }

    /// Commits an autocommit statement A ran (`commit`): the client gets
    /// A's answer once A committed, then B commits.
    pub(super) async fn commit_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut entry: Entry,
        sync_ok: bool,
        w: QueryResultWriter<'_, W>,
        end: (StatusFlags, u16),
    ) -> io::Result<()> {
        let wrap = self.wrap();
        // The entry as the others will replay it (B's AUTO_INCREMENT value
        // in its context) is in the journal before its number: the number's
        // sync makes both durable, and an applier that sees the commit
        // resolved reads this version, never the one written before B ran.
        self.shared.chain.journal.write(&entry);
        let work = CommitWork::one_statement(&entry, wrap);
        let committed = self.commit_on_master(&work).await;
        let seq = committed.seq();
        match committed {
            Committed::Yes { seq, .. } => {
                // Journaled so by `commit_on_master`.
                entry.state = EntryState::Committed { seq };
                let answered = relay::finish_with(w, end, &mut self.status).await;
                // B commits after A, whatever became of the client.
                self.finish_on_sync(entry.id, Some(seq), sync_ok, wrap)
                    .await;
                answered
            }
            Committed::Lost {
                seq: Some(seq),
                err,
            } => {
                // A may have committed it before its connection broke: B
                // commits it too, the tail gets it from the journal
                // (journaled committed by `commit_on_master`).
                entry.state = EntryState::Committed { seq };
                self.finish_on_sync(entry.id, Some(seq), sync_ok, wrap)
                    .await;
                let answered = w
                    .error_instead_raw(err.code(), err.sqlstate(), err.to_string().as_bytes())
                    .await;
                self.note_failure(&err);
                answered
            }
            Committed::Lost { err, .. } | Committed::No(err) => {
                self.finish_on_sync(entry.id, seq, sync_ok, wrap).await;
                self.fail_statement(entry, w, err).await
            }
        }
    }

    /// A's connection broke while it ran a statement B ran and cannot
    /// undo (a non-transactional table): whether A has it too cannot be
    /// told, so B, which may hold a change the master lacks, leaves its
    /// role for a re-sync rather than going on silently different.
    fn leave_sync_role_if_it_kept(&mut self, work: &Work, request_id: Uuid, err: &ClientError) {
        if !self.shared.chain.nontransactional.named_in(work.sql()) {
            return;
        }
        self.leave_sync_role(
            format!(
                "request {request_id}: the master's connection broke during a write to a \
                 non-transactional table that ran here ({err}); this node may hold a change \
                 the master lacks"
            ),
            false,
        );
    }

    /// Whether a statement A refused kept some of what it did there: it
    /// changed a non-transactional table, or it is a CALL (or EXECUTE of a
    /// prepared statement) that committed implicitly (a DDL inside it)
    /// before it failed, which committed A's row for it too (asked of A, on
    /// a connection of its own so that the client's warnings stay).
    async fn failed_but_kept(&self, work: &Work, request_id: Uuid) -> bool {
        if self.shared.chain.nontransactional.named_in(work.sql()) {
            return true;
        }
        router::runs_hidden_statements(work.sql())
            && self.ask_master(request_id).await == Some(true)
    }

    /// A statement that failed on A (and on B) after changing a
    /// non-transactional table keeps those changes there, as MariaDB keeps
    /// them directly: it is committed with its error as A's result, so that
    /// the tail runs it too and gets the same error and the same rows
    /// (MariaDB's own test suite caught the tail without them). The same
    /// for a CALL that committed part of its work before it failed.
    async fn keep_failed_statement(&mut self, mut entry: Entry) {
        let wrap = self.wrap();
        let sync_ran = entry
            .results
            .iter()
            .any(|r| Some(&r.node) == self.sync_name.as_ref());
        self.shared.chain.journal.write(&entry);
        let work = CommitWork::one_statement(&entry, wrap);
        let committed = self.commit_on_master(&work).await;
        let seq = committed.seq();
        // Committed, it was journaled so by `commit_on_master`.
        if seq.is_none() {
            self.finish_entry(&mut entry, EntryState::Failed);
        }
        self.finish_on_sync(entry.id, seq, sync_ran, wrap).await;
    }

    /// The statement A ran is undone (or never committed): the client gets
    /// the error instead of the held-back success.
    async fn fail_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut entry: Entry,
        w: QueryResultWriter<'_, W>,
        err: ClientError,
    ) -> io::Result<()> {
        error!(error = %err, "the statement could not be committed");
        self.finish_entry(&mut entry, EntryState::Failed);
        let answered = w
            .error_instead_raw(err.code(), err.sqlstate(), err.to_string().as_bytes())
            .await;
        self.note_failure(&err);
        answered
    }

    /// B refused the statement for a timing reason (`TIMING_ERRORS`): undo
    /// what that did to B's transaction and give the client B's error. When
    /// B's whole transaction is gone (a deadlock rolls it back), A's is
    /// ended too, as MariaDB ends it.
    pub(super) async fn undo_timing_error_on_sync(
        &mut self,
        outcome: &Outcome,
        in_txn: bool,
    ) -> ClientError {
        let err = client_error_of(outcome);
        debug!(code = err.code(), "timing error on the synchronous slave");
        self.undo_on_sync_for(err, in_txn).await
    }

    /// Undoes on B the statement it just ran, which the client gets `err`
    /// for: its own transaction outside one, the statement's savepoint
    /// inside one.
    pub(super) async fn undo_on_sync_for(&mut self, err: ClientError, in_txn: bool) -> ClientError {
        if !in_txn {
            self.sync_finish(&self.wrap().rollback()).await;
            return err;
        }
        let statement_only = self
            .sync_control(control::ROLLBACK_TO_SAVEPOINT)
            .await
            .is_ok();
        if !statement_only {
            self.end_transaction_everywhere().await;
        }
        err
    }

    /// A refused a statement B ran: take it back on B.
    pub(super) async fn undo_on_sync_after_master_failed(&mut self, in_txn: bool) {
        if !in_txn {
            self.sync_finish(&self.wrap().rollback()).await;
            return;
        }
        if self.master_in_transaction().await {
            self.sync_finish(control::ROLLBACK_TO_SAVEPOINT).await;
        } else {
            // A rolled its transaction back (a deadlock there): so does B.
            self.sync_finish(&control::rollback_unpinned()).await;
            self.drop_transaction(EntryState::RolledBack);
        }
    }

    /// Rolls back the open transaction on A and B (B lost it already).
    pub(super) async fn end_transaction_everywhere(&mut self) {
        if self.open_on_sync() {
            self.sync_finish(&control::rollback_unpinned()).await;
        }
        if let Ok(ok) = self
            .run_on_master(control::rollback_unpinned().as_bytes())
            .await
        {
            self.status = ok.status_flags;
        }
        self.drop_transaction(EntryState::RolledBack);
    }

    pub(super) async fn master_in_transaction(&mut self) -> bool {
        let Some(conn) = self.master.as_mut() else {
            return false;
        };
        let row: Result<Option<Row>, _> = conn.query_first("SELECT @@in_transaction").await;
        match row {
            Ok(Some(row)) => row.get_opt::<u64, usize>(0).and_then(Result::ok) == Some(1),
            _ => false,
        }
    }
}

/// A's duplicate-key error for `value`, the AUTO_INCREMENT value pinned
/// from B: the entry is the value (`Duplicate entry '49' for key
/// 'PRIMARY'`), or begins with it in a primary key of several columns
/// (`'49-x' for key 'PRIMARY'`). Not another unique key whose entry only
/// begins with the same digits (`'49-t4' for key 'uid'`): that is the
/// statement's own duplicate, which MariaDB gives as it is.
fn is_duplicate_of(err: &ClientError, value: u64) -> bool {
    let message = err.to_string();
    err.code() == DUPLICATE_KEY
        && (message.contains(&format!("entry '{value}'"))
            || (message.contains(&format!("entry '{value}-"))
                && message.contains("for key 'PRIMARY'")))
}

/// B's error as the client gets it.
pub(super) fn client_error_of(outcome: &Outcome) -> ClientError {
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
        // Only timing errors come here; a success cannot.
        Outcome::Ok { .. } => ClientError::deadlock(),
    }
}

pub(super) fn outcome_of_client_error(err: &ClientError) -> Outcome {
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

#[cfg(test)]
mod tests {
    use super::is_duplicate_of;
    use crate::error::ClientError;

    fn duplicate(message: &str) -> ClientError {
        ClientError::Server {
            code: 1062,
            state: "23000".into(),
            message: message.into(),
        }
    }

    #[test]
    fn only_the_pinned_value_is_bs_value_taken_on_a() {
        for message in [
            "Duplicate entry '49' for key 'PRIMARY'",
            "Duplicate entry '49' for key 'id'",
            "Duplicate entry '49-x' for key 'PRIMARY'",
        ] {
            assert!(is_duplicate_of(&duplicate(message), 49), "{message}");
        }
        for message in [
            "Duplicate entry '49-t4' for key 'uid'",
            "Duplicate entry '149' for key 'PRIMARY'",
            "Duplicate entry 'x-49' for key 'PRIMARY'",
        ] {
            assert!(!is_duplicate_of(&duplicate(message), 49), "{message}");
        }
    }
}
