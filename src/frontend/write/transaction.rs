//! Client transactions: BEGIN, COMMIT (with its commit sequence number and
//! `lockstep.commits` row on A, then B), ROLLBACK, implicit commits.

use std::io;

use opensrv_mysql::{OkResponse, QueryResultWriter};
use tokio::io::AsyncWrite;
use tracing::{error, info_span, Instrument};

use super::in_doubt::Fate;
use super::work::Work;
use super::OpenTransaction;
use crate::chain::commits;
use crate::frontend::error::ClientError;
use crate::frontend::session::Session;
use crate::journal::entry::UNPIN;
use crate::journal::{CommitState, Entry, EntryKind, EntryState};
use crate::sql::intercept::Renames;

impl Session {
    /// Opens B's side of a transaction the client started implicitly
    /// (autocommit off) or explicitly.
    pub(super) async fn ensure_transaction(&mut self, work: &mut Work) -> Result<(), ClientError> {
        if self.txn.is_some() {
            return Ok(());
        }
        let gate = self.shared.chain.gate.clone().read_owned().await;
        // The roles may have changed while this waited.
        self.follow_roles_with(work).await;
        self.refuse_without_sync()?;
        self.sync_control("BEGIN").await?;
        self.txn = Some(OpenTransaction::new(self, gate));
        Ok(())
    }

    /// BEGIN / START TRANSACTION: B, then A; the transaction then holds the gate.
    pub(super) async fn begin<W: AsyncWrite + Send + Unpin>(
        &mut self,
        mut work: Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Err(err) = self.commit_implicitly().await {
            return self.answer(w, Err(err)).await;
        }
        let gate = self.shared.chain.gate.clone().read_owned().await;
        // The roles may have changed while this waited.
        self.follow_roles_with(&mut work).await;
        if let Err(err) = self.sync_control_bytes(work.sql()).await {
            return self.answer(w, Err(err)).await;
        }
        if self.relay_on_master(&work, renames, w).await? {
            self.txn = Some(OpenTransaction::new(self, gate));
        } else {
            self.sync_finish("ROLLBACK").await;
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
        self.commit_transaction(b"COMMIT").await.map(|_| ())
    }

    /// COMMIT: A records the commit and commits, then B.
    pub(super) async fn commit<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let outcome = self.commit_transaction(work.sql()).await;
        self.answer(w, outcome).await
    }

    /// Commits the open transaction with the client's COMMIT text; the OK is A's.
    pub(super) async fn commit_transaction(
        &mut self,
        text: &[u8],
    ) -> Result<OkResponse, ClientError> {
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
            if let Err(err) = self.refuse_without_sync() {
                // B lost its part of the transaction: it is rolled back.
                self.txn = Some(txn);
                self.end_transaction_everywhere().await;
                self.finish_entry(&mut entry, EntryState::Failed);
                return Err(err);
            }
            let ids: Vec<_> = txn.entries.iter().map(|e| e.id).collect();
            self.journal(&Entry {
                kind: EntryKind::Write,
                applies: ids.clone(),
                ..entry.clone()
            })
            .await?;
            let record = self
                .shared
                .chain
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
                Err(err)
                    if err.ends_session()
                        && self.fate_of_lost_commit(entry.id).await == Fate::Commit =>
                {
                    // The master may have committed it: so do the others;
                    // the client gets the lost connection.
                    let committed = EntryState::Committed { seq: record.seq() };
                    for mut e in txn.entries {
                        self.finish_entry(&mut e, committed.clone());
                    }
                    self.finish_entry(&mut entry, committed);
                    record.resolve(CommitState::Committed);
                    self.sync_finish(&format!("{row}; COMMIT; {UNPIN}")).await;
                    Err(err)
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
    pub(super) async fn rollback<W: AsyncWrite + Send + Unpin>(
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
    pub(super) fn drop_transaction(&mut self, state: EntryState) {
        if let Some(txn) = self.txn.take() {
            for mut e in txn.entries {
                self.finish_entry(&mut e, state.clone());
            }
        }
    }

    /// A statement done on A inside the client's transaction.
    pub(super) fn keep_in_transaction(&mut self, mut entry: Entry) {
        entry.state = EntryState::InTransaction;
        self.shared.chain.journal.write(&entry);
        if entry.kind == EntryKind::Write {
            if let Some(txn) = self.txn.as_mut() {
                txn.entries.push(entry);
            }
        }
    }
}
