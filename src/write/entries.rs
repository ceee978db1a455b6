//! The journal entry of a write-path statement, from its making to its end.

use uuid::Uuid;

use super::work::Work;
use super::Driver;
use crate::error::ClientError;
use tracing::{info, warn};

use crate::compare::{self, verdict::Verdict};
use crate::journal::entry::now_us;
use crate::journal::{Context, Entry, EntryKind, EntryState, NodeResult, Outcome};

impl Driver {
    /// A new journal entry for `work` in this session's current state.
    pub(super) fn new_entry(&mut self, kind: EntryKind, work: &Work) -> Entry {
        let id = Uuid::now_v7();
        self.last_request_id = Some(id);
        let mut context = Context::now();
        if let Some(fixed) = self.fixed_timestamp.as_deref().and_then(timestamp_us) {
            context.timestamp_us = fixed;
        }
        // Always, 0 too: a replaying session may hold another value from
        // the pins of this session's earlier entries (an insert of
        // explicit ids pins its id, which the origin session never had).
        context.last_insert_id = Some(self.last_insert_id.value);
        Entry {
            id,
            session: self.id,
            user: self.user.clone(),
            master: self.master_name.clone(),
            kind,
            session_state: self.state.clone(),
            statement: work.journal_statement(self.client_file.as_ref()),
            context,
            created_us: now_us(),
            results: Vec::new(),
            state: EntryState::Pending,
            applies: Vec::new(),
            binlog_marks: None,
        }
    }

    /// Journals a write's entry before any node runs it, without a flush of
    /// its own: nothing of it commits before its commit number is flushed,
    /// and that flush covers every write sent before it (one flush per
    /// commit, not two). A statement inside a transaction is journaled once
    /// A has run it, with both results.
    pub(super) fn journal_ahead(&self, entry: &Entry, in_txn: bool) -> Result<(), ClientError> {
        let journal = &self.shared.chain.journal;
        // Refused up front, so that no node runs it.
        if let Some(why) = journal.failure() {
            return Err(ClientError::JournalUnavailable(why));
        }
        if !in_txn {
            journal.write(entry);
        }
        Ok(())
    }

    /// Journals an entry and waits until it is durable.
    pub(super) async fn journal(&self, entry: &Entry) -> Result<(), ClientError> {
        self.shared
            .chain
            .journal
            .write_durable(entry)
            .await
            .map_err(|e| ClientError::JournalUnavailable(e.to_string()))
    }

    /// Records A's result and judges B's against it.
    pub(super) fn record_master(&mut self, entry: &mut Entry, outcome: Outcome) {
        entry.results.push(NodeResult {
            node: entry.master.clone(),
            outcome,
            verdict: None,
        });
        for (node, verdict) in compare::judge(entry, false) {
            match verdict {
                // B's part is undone by the caller (policy rollback-slave),
                // or, for a statement that commits implicitly, cannot be.
                Verdict::MasterFailed => {
                    info!(%node, "the master refused what the synchronous slave ran")
                }
                // B lacks (or has other) data than A from here on: it leaves
                // the synchronous role instead of diverging further. A missing
                // entry can be re-run (B comes back); a different result cannot.
                other => {
                    warn!(%node, verdict = ?other, "the synchronous slave disagrees with the master");
                    let rejoin = other == Verdict::NodeFailed;
                    self.leave_sync_role(
                        format!("request {}: {}", entry.id, describe(&other)),
                        rejoin,
                    );
                }
            }
        }
    }

    pub(super) fn finish_entry(&self, entry: &mut Entry, state: EntryState) {
        entry.state = state;
        self.shared.chain.journal.write(entry);
    }
}

fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::NodeFailed => "it failed a statement the master passed".into(),
        Verdict::Diverged { what } => format!("it diverged from the master: {what}"),
        other => format!("{other:?}"),
    }
}

/// `@@timestamp` as A prints it (`1293840061.000000`) in microseconds.
fn timestamp_us(value: &str) -> Option<i64> {
    let (secs, micros) = value.split_once('.').unwrap_or((value, "0"));
    let micros = format!("{micros:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + micros.get(..6)?.parse::<i64>().ok()?)
}
