//! A tail applier: replays committed work from the journal on one node after
//! the first slave, in commit-sequence order, one transaction after the
//! other, like a MySQL replica applies its relay log.
//!
//! Its position is the node's own `lockstep.commits`: on (re)connect it
//! starts after the highest sequence number the node has, so nothing is
//! applied twice. A statement that fails stops the applier at that entry
//! (it is retried, never skipped): the compare module decides what to do.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::commits;
use super::outcome;
use super::replay_state::AppliedState;
use crate::backend::{Node, ServerInfo};
use crate::compare::notify::{Event, Notifier};
use crate::compare::{self, verdict::Verdict};
use crate::journal::{
    CommitRecord, CommitState, Entry, Journal, JournalError, NodeResult, Outcome,
};

/// How far below its highest commit a node is checked for missing ones: a
/// first slave that left the synchronous role may lack a few commits below
/// ones it has (sessions committing on it at that moment), never more than
/// there were sessions.
const HOLE_WINDOW: u64 = 10_000;

/// Where a node's applier starts: below its highest commit by the window,
/// with the commits it has there (skipped).
async fn start_position(conn: &mut Conn) -> Result<(u64, HashSet<u64>), mysql_async::Error> {
    let last = commits::last_seq(conn).await?;
    let floor = last.saturating_sub(HOLE_WINDOW);
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT seq FROM lockstep.commits WHERE seq > {floor}"
        ))
        .await?;
    let present = rows
        .iter()
        .filter_map(|r| r.get_opt::<u64, usize>(0).and_then(Result::ok))
        .collect();
    Ok((floor, present))
}

/// How long to wait for a journal batch before looking again anyway.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("node: {0}")]
    Node(#[from] mysql_async::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("statement {request_id} failed where the master passed it: {outcome:?}")]
    Statement {
        request_id: uuid::Uuid,
        outcome: Outcome,
    },
    #[error("statement {request_id} diverged from the master: {what}")]
    Diverged {
        request_id: uuid::Uuid,
        what: String,
    },
    #[error("commit {seq} names statement {request_id}, which the journal lacks")]
    MissingEntry { seq: u64, request_id: uuid::Uuid },
}

/// What the rest of lockstep sees of a tail applier.
#[derive(Debug, Default)]
pub struct TailStatus {
    /// The highest commit sequence number applied.
    pub applied: AtomicU64,
    /// Why the node gets no more traffic, once it diverged.
    pub quarantined: Mutex<Option<String>>,
    /// The error the applier is retrying, if any.
    pub last_error: Mutex<Option<String>>,
}

impl TailStatus {
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub fn quarantine_reason(&self) -> Option<String> {
        self.quarantined.lock().ok().and_then(|q| q.clone())
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn quarantine(&self, reason: String) {
        if let Ok(mut q) = self.quarantined.lock() {
            *q = Some(reason);
        }
    }

    pub fn set_last_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }

    /// How many commits the node is behind the journal.
    pub fn lag(&self, journal: &Journal) -> u64 {
        journal
            .last_seq()
            .saturating_sub(self.applied.load(Ordering::Relaxed))
    }
}

/// Logs every 10 s each tail node that is behind, with its lag in commits.
pub fn report_lag(journal: Journal, tails: Vec<(String, Arc<TailStatus>)>) {
    if tails.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            for (node, status) in &tails {
                let lag = status.lag(&journal);
                if lag > 0 {
                    info!(%node, lag, applied = status.applied.load(Ordering::Relaxed), "tail node behind");
                }
            }
        }
    });
}

pub struct Tail {
    pub node: Node,
    pub master: Node,
    pub server: ServerInfo,
    pub journal: Journal,
    pub status: Arc<TailStatus>,
    pub notifier: Notifier,
    pub retry: Backoff,
}

/// How a failed entry is retried: exponential backoff, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Tail {
    /// Runs the applier until the node diverges: errors are retried with
    /// backoff, starting again at the entry that failed.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let span = info_span!("tail", node = %self.node.name);
        tokio::spawn(
            async move {
                let mut tail = self;
                let mut delay = tail.retry.initial;
                let mut stuck_at = None;
                loop {
                    let Err(e) = tail.apply_from_journal(false).await else {
                        continue;
                    };
                    if let TailError::Diverged { request_id, what } = &e {
                        error!(%request_id, %what, "node quarantined: it diverged from the master; it gets no more traffic until it is re-synced");
                        tail.status.quarantine(e.to_string());
                        if let Err(je) = tail.journal.set_quarantine(&tail.node.name, Some(&e.to_string())).await {
                            error!(error = %je, "cannot journal the quarantine");
                        }
                        tail.notifier.notify(Event::NodeQuarantined {
                            node: tail.node.name.clone(),
                            reason: e.to_string(),
                        });
                        return;
                    }
                    // Progress since the last failure starts the backoff over.
                    let at = tail.status.applied.load(Ordering::Relaxed);
                    if stuck_at != Some(at) {
                        delay = tail.retry.initial;
                        stuck_at = Some(at);
                    }
                    tail.status.set_last_error(Some(e.to_string()));
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "tail applier stopped; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(tail.retry.max);
                }
            }
            .instrument(span),
        )
    }

    /// Applies the journal's commits as they come; with `until_caught_up`,
    /// returns once every number handed out so far is applied.
    async fn apply_from_journal(&mut self, until_caught_up: bool) -> Result<(), TailError> {
        let mut conn = self.node.connect_admin().await?;
        commits::ensure_table(&mut conn).await?;
        let (mut applied, present) = start_position(&mut conn).await?;
        self.status.applied.store(applied, Ordering::Relaxed);
        info!(from = applied, "tail applier connected");
        let mut state = AppliedState::default();
        let mut batches = self.journal.batches();
        loop {
            let next = applied + 1;
            if until_caught_up && next > self.journal.last_seq() {
                return Ok(());
            }
            if present.contains(&next) {
                applied = next;
                self.status.applied.store(applied, Ordering::Relaxed);
                continue;
            }
            let record = self.journal.commit_record(next)?;
            let first = self.journal.first_seq()?;
            if record.is_none() && first != u64::MAX && next < first {
                // Older than the journal (a journal started afresh on nodes
                // with a history): nothing to apply from here.
                applied = next;
                continue;
            }
            let apply = match record.as_ref().map(|r| r.state) {
                Some(CommitState::Committed) => true,
                Some(CommitState::Aborted) => false,
                Some(CommitState::InDoubt) => self.master_committed(record.as_ref()).await?,
                Some(CommitState::Reserved) | None => {
                    // Not yet decided (or not yet written): wait for the writer.
                    let _ = tokio::time::timeout(POLL, batches.changed()).await;
                    continue;
                }
            };
            if let (true, Some(record)) = (apply, record) {
                self.apply(&mut conn, &record, &mut state)
                    .instrument(
                        info_span!("commit", seq = record.seq, request_id = %record.request_id),
                    )
                    .await?;
            }
            applied = next;
            self.status.applied.store(applied, Ordering::Relaxed);
        }
    }

    /// Applies every commit the node lacks, up to the last number handed out.
    pub async fn catch_up(&mut self) -> Result<(), TailError> {
        self.apply_from_journal(true).await
    }

    /// An in-doubt commit happened when the master's `lockstep.commits` has it.
    async fn master_committed(&self, record: Option<&CommitRecord>) -> Result<bool, TailError> {
        let Some(record) = record else {
            return Ok(false);
        };
        let mut master = self.master.connect_admin().await?;
        let has = commits::has(&mut master, record.request_id).await?;
        let _ = master.disconnect().await;
        info!(
            seq = record.seq,
            committed = has,
            "in-doubt commit resolved from the master"
        );
        Ok(has)
    }

    /// Applies one commit: its statements and its `lockstep.commits` row in
    /// one transaction (a DDL-like statement: alone, then the row).
    async fn apply(
        &self,
        conn: &mut Conn,
        record: &CommitRecord,
        state: &mut AppliedState,
    ) -> Result<(), TailError> {
        let mut entries = Vec::with_capacity(record.statements.len());
        for id in &record.statements {
            let entry = self.journal.entry(*id)?.ok_or(TailError::MissingEntry {
                seq: record.seq,
                request_id: *id,
            })?;
            entries.push(entry);
        }
        if !record.alone {
            if let Some(first) = entries.first() {
                state
                    .prepare(conn, &first.session_state, &self.server)
                    .await?;
            }
            conn.query_drop("BEGIN").await?;
        }
        for entry in &mut entries {
            let result = self
                .apply_statement(conn, entry, state, !record.alone)
                .await;
            if let Err(e) = result {
                let _ = conn.query_drop("ROLLBACK").await;
                return Err(e);
            }
        }
        // COMMIT also for a statement applied alone: the connection may be
        // in autocommit=0 from the origin session's state.
        conn.query_drop(format!(
            "{}; COMMIT; {}",
            commits::record(record.request_id, record.seq),
            crate::journal::entry::UNPIN
        ))
        .await?;
        debug!(statements = entries.len(), "applied");
        Ok(())
    }

    async fn apply_statement(
        &self,
        conn: &mut Conn,
        entry: &mut Entry,
        state: &mut AppliedState,
        in_transaction: bool,
    ) -> Result<(), TailError> {
        if in_transaction {
            state
                .follow(conn, &entry.session_state, &self.server)
                .await?;
        } else {
            state
                .prepare(conn, &entry.session_state, &self.server)
                .await?;
        }
        conn.query_drop(entry.context.replay_statement()).await?;
        let outcome = outcome::run_statement(conn, &entry.statement).await;
        entry.results.push(NodeResult {
            node: self.node.name.clone(),
            outcome: outcome.clone(),
            verdict: None,
        });
        let disagreements = compare::judge(entry, &self.master.name, true);
        if let Some(judged) = entry.results.last() {
            self.journal.append_result(entry.id, judged);
        }
        if let Outcome::Lost { reason } = outcome {
            return Err(TailError::Node(mysql_async::Error::Other(reason.into())));
        }
        match disagreements.into_iter().next().map(|(_, v)| v) {
            None => {
                self.status.set_last_error(None);
                let attempts = entry
                    .results
                    .iter()
                    .filter(|r| r.node == self.node.name)
                    .count();
                if attempts > 1 {
                    self.notifier.notify(Event::PassedAfterRetry {
                        request_id: entry.id.to_string(),
                        node: self.node.name.clone(),
                        attempts,
                    });
                }
                Ok(())
            }
            Some(Verdict::Diverged { what }) => Err(TailError::Diverged {
                request_id: entry.id,
                what,
            }),
            Some(_) => Err(TailError::Statement {
                request_id: entry.id,
                outcome,
            }),
        }
    }
}
