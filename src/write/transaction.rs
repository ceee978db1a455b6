//! Client transactions: BEGIN, COMMIT (with its commit sequence number and
//! `lockstep.commits` row on A, then B), ROLLBACK, implicit commits.

use std::io;

use opensrv_mysql::{OkResponse, QueryResultWriter};
use tokio::io::AsyncWrite;
use tracing::{info_span, Instrument, Span};

use super::commit::{CommitWork, Committed};
use super::work::Work;
use super::Driver;
use super::OpenTransaction;
use crate::error::ClientError;
use crate::journal::{Entry, EntryKind, EntryState};
use crate::protocol::control;
use crate::router::{self, TransactionAccess};
use crate::sql::intercept::Renames;

impl Driver {
    /// Readies the open transaction for a statement that goes to B: one
    /// begun on A alone now holds up a handover of the synchronous role
    /// and follows the roles of this moment (its first statement for B
    /// opens it on the synchronous slave of now); one the client started
    /// implicitly (autocommit off) is opened.
    pub(super) async fn ensure_transaction(&mut self, work: &mut Work) -> Result<(), ClientError> {
        if let Some(txn) = self.txn.as_mut() {
            if txn.gate.reaches_sync() {
                return Ok(());
            }
            txn.gate.reach_sync(&self.shared.chain.gate).await;
            self.follow_roles_with(work).await;
            let refused = self.refuse_without_sync();
            if let (Err(_), Some(txn)) = (&refused, self.txn.as_mut()) {
                txn.gate.leave_sync();
            }
            return refused;
        }
        let gate = self.shared.chain.gate.enter().await;
        // The roles may have changed while this waited.
        self.follow_roles_with(work).await;
        self.refuse_without_sync()?;
        // B's side opens with this first statement, in its round trip.
        // Under LOCK TABLES a BEGIN would release the client's table locks:
        // B's session has the client's autocommit = 0 and its transaction
        // starts with the statement anyway.
        let opening = (!self.holds_table_locks)
            .then(|| control::opening_on_sync(TransactionAccess::ReadWrite));
        self.txn = Some(OpenTransaction::new(self, gate, opening));
        Ok(())
    }

    /// BEGIN / START TRANSACTION: A; B's side opens with the transaction's
    /// first statement there (`OpenTransaction::opening_on_sync`), but
    /// under LOCK TABLES, where BEGIN releases B's table locks as A's, and
    /// for a text other than BEGIN's plain words: B first, then A. The
    /// transaction then holds the gate, its part for B from the moment it
    /// reaches B (`chain::gate`).
    pub(super) async fn begin<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Err(err) = self.commit_implicitly().await {
            return self.answer(w, Err(err)).await;
        }
        let later = match self.holds_table_locks {
            true => None,
            false => router::transaction_access(work.sql()).map(control::opening_on_sync),
        };
        let gate = match later {
            Some(_) => self.shared.chain.gate.enter_on_master().await,
            None => self.shared.chain.gate.enter().await,
        };
        // The roles may have changed while this waited.
        self.follow_roles_with(&mut work).await;
        if later.is_none() {
            let begin = control::begin_on_sync(work.sql());
            if let Err(err) = self.sync_control_bytes(&begin).await {
                return self.answer(w, Err(err)).await;
            }
        }
        if self.relay_on_master(&work, renames, w).await? {
            // BEGIN releases the session's table locks, as in MariaDB.
            self.holds_table_locks = false;
            self.txn = Some(OpenTransaction::new(self, gate, later));
        } else if later.is_none() {
            self.sync_finish(control::ROLLBACK).await;
        }
        Ok(())
    }

    /// A statement that commits the open transaction as it starts (BEGIN,
    /// DDL, LOCK TABLES, …), as in MariaDB: the commit goes through the
    /// write path first.
    pub(super) async fn commit_implicitly(&mut self) -> Result<(), ClientError> {
        if self.txn.is_none() {
            return Ok(());
        }
        self.commit_transaction(control::COMMIT.as_bytes())
            .await
            .map(|_| ())
    }

    /// COMMIT: A records the commit and commits, the client gets A's
    /// answer, then B commits (as for an autocommit statement).
    pub(super) async fn commit<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        // Only a transaction that wrote gets lockstep's commit row.
        let writes = self.txn.as_ref().is_some_and(|t| !t.entries.is_empty());
        let kept = match writes {
            true => self.warnings_before_commit().await,
            false => None,
        };
        let (outcome, sync_end) = self.commit_on_master_side(work.sql()).await;
        if outcome.is_ok() {
            self.kept_warnings = kept;
        }
        let answered = self.answer(w, outcome).await;
        self.end_on_sync(sync_end).await;
        answered
    }

    /// Commits the open transaction with the client's COMMIT text, on A
    /// then on B; the OK is A's.
    pub(super) async fn commit_transaction(
        &mut self,
        text: &[u8],
    ) -> Result<OkResponse, ClientError> {
        let (outcome, sync_end) = self.commit_on_master_side(text).await;
        self.end_on_sync(sync_end).await;
        outcome
    }

    async fn end_on_sync(&mut self, end: SyncEnd) {
        let span = end.span.clone();
        match end.action {
            SyncAction::Nothing => {}
            SyncAction::Run(sql) => self.sync_finish(&sql).instrument(span).await,
            SyncAction::Commit { request_id, seq } => {
                self.finish_on_sync(request_id, seq, true, control::Wrap::Begin)
                    .instrument(span)
                    .await
            }
        }
    }

    /// A's part of a COMMIT, and what B must run after it.
    async fn commit_on_master_side(
        &mut self,
        text: &[u8],
    ) -> (Result<OkResponse, ClientError>, SyncEnd) {
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
        let Some(txn) = self.txn.take() else {
            // Nothing open on B; A may still have something to say (autocommit off).
            let ok = self
                .run_on_master(control::then(control::UNPIN, text).as_bytes())
                .await;
            return (ok, SyncEnd::run(control::COMMIT.into(), None));
        };
        let mut entry = self.new_entry(EntryKind::Control, &Work::Text(text.as_bytes().to_vec()));
        let span = info_span!("write", request_id = %entry.id);
        let (outcome, mut sync_end) = self
            .commit_open_transaction(txn, &mut entry, text)
            .instrument(span.clone())
            .await;
        sync_end.span = span;
        (outcome, sync_end)
    }

    async fn commit_open_transaction(
        &mut self,
        mut txn: OpenTransaction,
        entry: &mut Entry,
        text: &str,
    ) -> (Result<OkResponse, ClientError>, SyncEnd) {
        if !txn.changes_data {
            // Nothing to number (savepoints at most): a plain COMMIT, which
            // a READ ONLY transaction may run (lockstep's row may not).
            let ok = self
                .run_on_master(control::then(control::UNPIN, text).as_bytes())
                .await;
            for mut e in std::mem::take(&mut txn.entries) {
                self.finish_entry(&mut e, EntryState::Done);
            }
            self.finish_entry(entry, EntryState::Done);
            // A transaction that never reached B has nothing to end there.
            let sync_end = match txn.opening_on_sync {
                Some(_) => SyncEnd::hold(txn),
                None => SyncEnd::run(control::Wrap::Begin.commit(), Some(txn)),
            };
            return (ok, sync_end);
        }
        if let Err(err) = self.refuse_without_sync() {
            // B lost its part of the transaction: it is rolled back.
            self.abandon(txn, entry).await;
            return (Err(err), SyncEnd::none());
        }
        if let Some(why) = self.shared.chain.journal.failure() {
            self.abandon(txn, entry).await;
            return (Err(ClientError::JournalUnavailable(why)), SyncEnd::none());
        }
        let statements = std::mem::take(&mut txn.entries);
        let ids: Vec<_> = statements.iter().map(|e| e.id).collect();
        // The commit's entry (and the statements' before it) reach the disk
        // with its number's sync. It names the statements it commits in
        // every later state too (the committed one is the one a restart
        // rebuilds a lost commit record from), so it is written whole once.
        entry.kind = EntryKind::Write;
        entry.applies = ids.clone();
        self.shared.chain.journal.write(entry);
        let mut entries = statements.clone();
        entries.push(entry.clone());
        let work = CommitWork {
            request_id: entry.id,
            statements: ids,
            master_commit: format!("{}; {}; {text}", control::UNPIN, control::mark(entry.id)),
            wrap: control::Wrap::Begin,
            entries,
        };
        let committed = self.commit_on_master(&work).await;
        let sync_end = SyncEnd::commit(entry.id, committed.seq(), txn);
        match committed {
            // The entries were journaled committed by `commit_on_master`.
            Committed::Yes { ok, seq } => {
                entry.state = EntryState::Committed { seq };
                (Ok(ok), sync_end)
            }
            Committed::Lost {
                seq: Some(seq),
                err,
            } => {
                // A may have committed it: so do the others; the client
                // gets the lost connection.
                entry.state = EntryState::Committed { seq };
                (Err(err), sync_end)
            }
            Committed::Lost { err, .. } | Committed::No(err) => {
                for mut e in statements {
                    self.finish_entry(&mut e, EntryState::RolledBack);
                }
                self.finish_entry(entry, EntryState::Failed);
                (Err(err), sync_end)
            }
        }
    }

    /// The transaction cannot commit: rolled back on A and B, so that the
    /// client's next statement does not land in it.
    async fn abandon(&mut self, txn: OpenTransaction, entry: &mut Entry) {
        self.txn = Some(txn);
        self.end_transaction_everywhere().await;
        self.finish_entry(entry, EntryState::Failed);
    }

    /// ROLLBACK: A and B.
    pub(super) async fn rollback<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let text = String::from_utf8_lossy(work.sql()).into_owned();
        let outcome = self
            .run_on_master(control::then(control::UNPIN, &text).as_bytes())
            .await;
        if self.open_on_sync() {
            self.sync_finish(&control::rollback_unpinned()).await;
        }
        self.drop_transaction(EntryState::RolledBack);
        self.warned_since_commit = false;
        self.answer(w, outcome).await
    }

    /// Forgets the open transaction; its entries end in `state`.
    pub(super) fn drop_transaction(&mut self, state: EntryState) {
        if let Some(txn) = self.txn.take() {
            for mut e in txn.entries {
                self.finish_entry(&mut e, state.clone());
            }
        }
    }

    /// A statement done on A inside the client's transaction; `savepoint`:
    /// a savepoint statement, replayed with the transaction's writes but
    /// none itself.
    pub(super) fn keep_in_transaction(&mut self, mut entry: Entry, savepoint: bool) {
        entry.state = EntryState::InTransaction;
        self.shared.chain.journal.write(&entry);
        if entry.kind == EntryKind::Write {
            if let Some(txn) = self.txn.as_mut() {
                txn.entries.push(entry);
                txn.changes_data |= !savepoint;
            }
        }
    }
}

/// What B runs once A has finished a transaction. The transaction (its gate
/// among it) is held until then, so that no failover comes between A's
/// commit and B's.
struct SyncEnd {
    action: SyncAction,
    _txn: Option<OpenTransaction>,
    span: Span,
}

enum SyncAction {
    Nothing,
    Run(String),
    /// `finish_on_sync` with the number A committed under (None: roll back).
    Commit {
        request_id: uuid::Uuid,
        seq: Option<u64>,
    },
}

impl SyncEnd {
    fn run(sql: String, txn: Option<OpenTransaction>) -> SyncEnd {
        SyncEnd {
            action: SyncAction::Run(sql),
            _txn: txn,
            span: Span::current(),
        }
    }

    fn commit(request_id: uuid::Uuid, seq: Option<u64>, txn: OpenTransaction) -> SyncEnd {
        SyncEnd {
            action: SyncAction::Commit { request_id, seq },
            _txn: Some(txn),
            span: Span::current(),
        }
    }

    /// Nothing for B, the transaction held until the caller is done.
    fn hold(txn: OpenTransaction) -> SyncEnd {
        SyncEnd {
            action: SyncAction::Nothing,
            _txn: Some(txn),
            span: Span::current(),
        }
    }

    fn none() -> SyncEnd {
        SyncEnd {
            action: SyncAction::Nothing,
            _txn: None,
            span: Span::current(),
        }
    }
}
