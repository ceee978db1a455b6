//! A tail applier: replays committed work from the journal on one node after
//! the first slave, in commit-sequence order, one transaction after the
//! other, like a MySQL replica applies its relay log. Consecutive commits
//! already decided share one node transaction (up to `GROUP_COMMITS`): the
//! same serial order, one flush on the node instead of one per commit.
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
use tracing::{debug, info, info_span, warn, Instrument};

use super::commits;
use super::lanes::{LaneKey, Lanes};
use super::outcome;
use super::replay_state::AppliedState;
use super::requirements;
use super::roles::Role;
use super::serialized_binlog::{self, Marked};
use super::{handover, Chain};
use crate::backend::Node;
use crate::compare::notify::Event;
use crate::compare::{self, verdict::Verdict};
use crate::journal::{
    CommitRecord, CommitState, Entry, Journal, JournalError, NodeResult, Outcome, Statement,
};
use crate::metrics;
use crate::protocol::control;
use crate::router;

mod pipelined;

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

/// A node that was master has rows without numbers (`commits::ensure_table`):
/// they get them from the journal before its position is read.
async fn number_master_rows(conn: &mut Conn, journal: &Journal) -> Result<(), TailError> {
    let unnumbered: Option<u8> = conn
        .query_first("SELECT 1 FROM lockstep.commits WHERE seq IS NULL LIMIT 1")
        .await?;
    if unnumbered.is_none() {
        return Ok(());
    }
    let mut numbers = std::collections::HashMap::new();
    for record in journal.commit_records() {
        let record = record?;
        numbers.insert(record.request_id, record.seq);
    }
    let unknown = commits::number_master_rows(conn, |id| numbers.get(&id).copied()).await?;
    if unknown > 0 {
        warn!(
            unknown,
            "rows this node wrote as master that the journal no longer numbers"
        );
    }
    Ok(())
}

/// How far behind the journal (in commits) a node may be when it goes for
/// the vacant synchronous role: writes pause while it applies the rest, so
/// this bounds the pause, and a node slower than the write load still gets
/// the role.
const TAKE_OVER_LAG: u64 = 200;

/// How long a failover waits for a node's applier to stop.
const PAUSE_WAIT: Duration = Duration::from_secs(10);

/// Most commits (and statements) applied in one node transaction.
const GROUP_COMMITS: usize = 64;
const GROUP_STATEMENTS: usize = 512;

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
    /// The node became the master or the synchronous slave: the write path
    /// writes to it now, its applier stops.
    #[error("the node holds the {0} role now")]
    HoldsRole(&'static str),
    /// Failover catches the node up itself.
    #[error("the applier was paused")]
    Paused,
    /// This instance lost its lease (`ha`): another one applies now.
    #[error("this lockstep instance is no longer the active one")]
    NoLongerActive,
    /// The node's configuration does not meet lockstep's requirements
    /// (`requirements`): it stays out until it does.
    #[error("the node cannot take part: {0}")]
    Unfit(String),
    /// Retention removed commits the node lacks.
    #[error("needs a rebuild: it lacks commit {seq}, which retention removed from the journal (removed through {purged})")]
    NeedsRebuild { seq: u64, purged: u64 },
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
    /// An applier runs for the node (one at most).
    pub applying: std::sync::atomic::AtomicBool,
    /// The applier reached the end of the journal since it (re)connected.
    pub caught_up: std::sync::atomic::AtomicBool,
    /// Why the node left the synchronous role, until it takes it again.
    pub left_role: Mutex<Option<String>>,
    /// Failover wants the node to itself: its applier stops.
    pub pause: std::sync::atomic::AtomicBool,
    /// Commits applied (not skipped) since lockstep started.
    pub commits_applied: AtomicU64,
    /// After a failure, commits up to this number are applied one per
    /// transaction, so that a retry starts at the failing one.
    pub singly_through: AtomicU64,
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

    pub fn left_role(&self) -> Option<String> {
        self.left_role.lock().ok().and_then(|r| r.clone())
    }

    pub fn set_left_role(&self, reason: Option<String>) {
        if let Ok(mut r) = self.left_role.lock() {
            *r = reason;
        }
    }

    pub fn set_last_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }

    /// Stops the node's applier and waits until it has (two appliers on one
    /// node would both apply the same commits); `resume` undoes it.
    pub async fn pause_applier(&self) {
        self.pause.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + PAUSE_WAIT;
        while self.applying.load(Ordering::SeqCst) {
            if tokio::time::Instant::now() > deadline {
                warn!("the node's applier did not stop in time");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }

    /// How many commits the node is behind the journal.
    pub fn lag(&self, journal: &Journal) -> u64 {
        journal
            .last_seq()
            .saturating_sub(self.applied.load(Ordering::Relaxed))
    }
}

/// Logs every 10 s each node replaying the journal that is behind, with
/// its lag in commits.
pub fn report_lag(chain: Arc<Chain>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            for member in chain.roles.members() {
                if !member.status.applying.load(Ordering::Relaxed) {
                    continue;
                }
                let lag = member.status.lag(&chain.journal);
                if lag > 0 {
                    info!(node = %member.node.name, lag, applied = member.status.applied(), "node behind");
                }
            }
        }
    });
}

/// An applier: replays the journal on one node.
pub struct Tail {
    pub chain: Arc<Chain>,
    pub node: Node,
    pub status: Arc<TailStatus>,
    pub in_doubt: InDoubt,
    /// Set for `lockstep replay` onto a server outside the chain.
    pub replay: Option<ReplayBounds>,
}

/// What `lockstep replay` applies: the commits numbered `from..=until`
/// that the target lacks. Commits whose fate the journal does not know
/// (in doubt, never resolved) are skipped with a warning, and the target's
/// results are not recorded in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBounds {
    pub from: u64,
    pub until: u64,
}

/// How an applier decides a commit whose fate on the master is unknown
/// (lockstep stopped, or a session's task ended, between reserving the
/// number and knowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubt {
    /// The master's `lockstep.commits` says.
    AskMaster,
    /// The master is gone (failover): the commit is completed. The journal
    /// has the work, and its client may have had an OK whose commit
    /// resolution had not reached the disk when lockstep died; a client that
    /// had none saw a lost connection, whose outcome MySQL leaves open too.
    Commit,
}

/// Where an applier stops applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Every number handed out so far is applied.
    CaughtUp,
    /// Caught up at a moment when the synchronous role is vacant.
    SyncVacant,
}

/// How a failed entry is retried: exponential backoff, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Tail {
    /// The applier for `node`, deciding in-doubt commits by asking the master.
    pub fn for_node(chain: &Arc<Chain>, node: &str) -> Option<Tail> {
        let member = chain.roles.member(node)?;
        Some(Tail {
            chain: chain.clone(),
            node: member.node.clone(),
            status: member.status.clone(),
            in_doubt: InDoubt::AskMaster,
            replay: None,
        })
    }

    /// Runs the applier until the node takes the synchronous role or
    /// diverges: errors are retried with backoff, starting again at the
    /// entry that failed. Does nothing when the node has an applier already.
    pub fn spawn(self) {
        if self.status.applying.swap(true, Ordering::SeqCst) {
            return;
        }
        let span = info_span!("tail", node = %self.node.name);
        tokio::spawn(
            async move {
                let status = self.status.clone();
                self.run().await;
                status.applying.store(false, Ordering::SeqCst);
            }
            .instrument(span),
        );
    }

    async fn run(mut self) {
        let retry = self.chain.retry;
        let mut delay = retry.initial;
        let mut stuck_at = None;
        loop {
            let outcome = match self.apply_from_journal(Until::SyncVacant).await {
                Err(TailError::HoldsRole(role)) => {
                    info!(role, "applier stops: the node holds a role now");
                    return;
                }
                Err(TailError::Paused) => {
                    info!("applier paused for a failover");
                    return;
                }
                Ok(()) => match handover::take_sync(&mut self).await {
                    Ok(true) => return,
                    Ok(false) => continue,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if let TailError::Statement { .. } = &outcome {
                metrics::count_for_node(&metrics::get().retries, &self.node.name);
            }
            if let TailError::Diverged { .. } | TailError::NeedsRebuild { .. } = &outcome {
                handover::quarantine(&self.chain, &self.node.name, outcome.to_string()).await;
                return;
            }
            // Progress since the last failure starts the backoff over.
            let at = self.status.applied();
            if stuck_at != Some(at) {
                delay = retry.initial;
                stuck_at = Some(at);
            }
            self.status.set_last_error(Some(outcome.to_string()));
            warn!(error = %outcome, retry_in_ms = delay.as_millis() as u64, "applier stopped; retrying");
            if self.pausable_sleep(delay).await {
                info!("applier paused for a failover");
                return;
            }
            delay = (delay * 2).min(retry.max);
        }
    }

    /// Applies the journal's commits as they come; with `until_caught_up`,
    /// returns once every number handed out so far is applied.
    async fn apply_from_journal(&mut self, until: Until) -> Result<(), TailError> {
        let journal = self.chain.journal.clone();
        let mut conn = self.node.connect_admin().await?;
        let unmet = requirements::unmet(&mut conn).await?;
        if !unmet.is_empty() {
            return Err(TailError::Unfit(requirements::describe(&unmet)));
        }
        commits::ensure_table(&mut conn).await?;
        number_master_rows(&mut conn, &journal).await?;
        let (mut applied, present) = start_position(&mut conn).await?;
        if let Some(bounds) = self.replay {
            applied = applied.max(bounds.from.saturating_sub(1));
        }
        self.status.applied.store(applied, Ordering::Relaxed);
        self.status.caught_up.store(false, Ordering::Relaxed);
        info!(from = applied, "applier connected");
        let mut lanes = Lanes::new(self.node.clone(), conn);
        let mut commits_changed = journal.commits_changed();
        loop {
            if until == Until::SyncVacant {
                self.check_no_role()?;
                // Close enough: the rest is applied with writes paused.
                let behind = journal.last_seq().saturating_sub(applied);
                if behind <= TAKE_OVER_LAG && self.chain.roles.sync().is_none() {
                    return Ok(());
                }
            }
            let next = applied + 1;
            let end = self.replay.map_or(journal.last_seq(), |b| b.until);
            if until == Until::CaughtUp && next > end {
                self.reached_the_end();
                return Ok(());
            }
            if present.contains(&next) {
                applied = next;
                self.status.applied.store(applied, Ordering::Relaxed);
                continue;
            }
            let record = journal.commit_record(next)?;
            if record.is_none() {
                let purged = journal.purged_through()?;
                if next <= purged {
                    return Err(TailError::NeedsRebuild { seq: next, purged });
                }
            }
            let first = journal.first_seq()?;
            if record.is_none() && first != u64::MAX && next < first {
                // Older than the journal (a journal started afresh on nodes
                // with a history): nothing to apply from here.
                applied = next;
                continue;
            }
            let apply = match record.as_ref().map(|r| r.state) {
                Some(CommitState::Committed) => true,
                Some(CommitState::Aborted) => false,
                Some(CommitState::InDoubt) => self.decide_in_doubt(record.as_ref()).await?,
                Some(CommitState::Reserved) | None if self.replay.is_some() => {
                    warn!(seq = next, "commit never resolved in this journal: skipped");
                    false
                }
                Some(CommitState::Reserved) | None => {
                    // Everything decided is applied: the rest is in flight
                    // (or not yet written).
                    self.reached_the_end();
                    let _ = tokio::time::timeout(POLL, commits_changed.changed()).await;
                    continue;
                }
            };
            if let (true, Some(record)) = (apply, record) {
                let started = std::time::Instant::now();
                let mut group = self.group_from(record, &present, end, &lanes)?;
                let last = group.last().map_or(next, |(r, _)| r.seq);
                let span = info_span!("commits", from = next, to = last);
                let key = group
                    .first()
                    .and_then(|(_, entries)| entries.first())
                    .map_or(LaneKey::Shared, |entry| lanes.key_of(entry));
                for (_, entries) in &group {
                    lanes.note_texts(entries);
                }
                let lane = lanes.lane(key).await?;
                let applying = self.chain.appliers.clone().read_owned().await;
                let trips_before = lane.conn.round_trips();
                let applied_group = self
                    .apply(&mut lane.conn, &mut group, &mut lane.state)
                    .instrument(span)
                    .await;
                metrics::count_applier_round_trips(
                    &self.node.name,
                    lane.conn.round_trips().saturating_sub(trips_before),
                );
                drop(applying);
                if let Err(e) = applied_group {
                    self.status
                        .singly_through
                        .fetch_max(last, Ordering::Relaxed);
                    return Err(e);
                }
                self.status
                    .commits_applied
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                metrics::observe_node(&self.node.name, started.elapsed().as_secs_f64());
                applied = last;
            } else {
                applied = next;
            }
            self.status.applied.store(applied, Ordering::Relaxed);
        }
    }

    /// The node has every commit decided so far.
    fn reached_the_end(&self) {
        self.status.set_last_error(None);
        self.status.caught_up.store(true, Ordering::Relaxed);
        if self.chain.roles.role_of(&self.node.name) == Role::Down {
            info!("the old master caught up: it is a tail node now");
            self.chain.roles.rejoined(&self.node.name);
        }
    }

    /// Sleeps `delay` unless a pause comes first; true when it did.
    async fn pausable_sleep(&self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < until {
            if self.status.pause.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20).min(delay)).await;
        }
        self.status.pause.load(Ordering::SeqCst)
    }

    fn check_no_role(&self) -> Result<(), TailError> {
        if self.status.pause.load(Ordering::SeqCst) {
            return Err(TailError::Paused);
        }
        match self.chain.roles.role_of(&self.node.name) {
            Role::Master => Err(TailError::HoldsRole("master")),
            Role::Sync => Err(TailError::HoldsRole("synchronous slave")),
            _ => Ok(()),
        }
    }

    /// Applies every commit the node lacks, up to the last number handed out.
    pub async fn catch_up(&mut self) -> Result<(), TailError> {
        self.apply_from_journal(Until::CaughtUp).await
    }

    /// Whether an in-doubt commit happened: the master's `lockstep.commits`
    /// says, or, with the master gone, it did not (and is journaled so).
    async fn decide_in_doubt(&self, record: Option<&CommitRecord>) -> Result<bool, TailError> {
        let Some(record) = record else {
            return Ok(false);
        };
        if self.replay.is_some() {
            warn!(seq = record.seq, request_id = %record.request_id, "commit in doubt in this journal: skipped");
            return Ok(false);
        }
        if record.serialized {
            // Numbered only once the master ran it: it committed there.
            self.chain
                .journal
                .resolve_commit(record, CommitState::Committed);
            return Ok(true);
        }
        if self.in_doubt == InDoubt::Commit {
            warn!(seq = record.seq, request_id = %record.request_id, "in-doubt commit completed: the master is gone");
            self.chain
                .journal
                .resolve_commit(record, CommitState::Committed);
            return Ok(true);
        }
        let mut master = self.chain.roles.master().connect_admin().await?;
        let has = commits::has(&mut master, record.request_id).await?;
        let _ = master.disconnect().await;
        info!(
            seq = record.seq,
            committed = has,
            "in-doubt commit resolved from the master"
        );
        // Journaled, so that a replay of the journal (which cannot ask
        // the master) applies it too.
        let decided = if has {
            CommitState::Committed
        } else {
            CommitState::Aborted
        };
        self.chain.journal.resolve_commit(record, decided);
        Ok(has)
    }

    /// The commit `first` and the decided commits right after it that can
    /// share its node transaction: one flush on the node for all of them,
    /// which lets a tail keep up with many concurrent sessions. Only
    /// commits in the same session state go together (changing it between
    /// them would need a reset, which would roll the transaction back); a
    /// serialized commit (DDL) goes by itself, and so does one that writes
    /// a table that cannot be rolled back (MyISAM, Aria): a failure
    /// elsewhere in a group rolls the group back and the applier runs it
    /// again, which would write such a table twice.
    fn group_from(
        &self,
        first: CommitRecord,
        present: &HashSet<u64>,
        end: u64,
        lanes: &Lanes,
    ) -> Result<Vec<(CommitRecord, Vec<Entry>)>, TailError> {
        let first_entries = self.entries_of(&first)?;
        let singly = first.seq <= self.status.singly_through.load(Ordering::Relaxed);
        let Some(state) = first_entries.first().map(|e| e.session_state.clone()) else {
            return Ok(vec![(first, first_entries)]);
        };
        // A session with a lane of its own goes with its own commits only.
        let lane = first_entries.first().map(|e| lanes.key_of(e));
        let nontransactional = &self.chain.nontransactional;
        let groups_with_others = |entries: &[Entry]| {
            entries.iter().all(|e| {
                e.session_state == state
                    && Some(lanes.key_of(e)) == lane
                    && !nontransactional.named_in(&e.statement.sql().to_bytes())
            })
        };
        if first.serialized || singly || !groups_with_others(&first_entries) {
            return Ok(vec![(first, first_entries)]);
        }
        let mut statements = first_entries.len();
        let mut group = vec![(first, first_entries)];
        let journal = &self.chain.journal;
        while group.len() < GROUP_COMMITS && statements < GROUP_STATEMENTS {
            let seq = group.len() as u64 + group[0].0.seq;
            if seq > end || present.contains(&seq) {
                break;
            }
            let Some(record) = journal.commit_record(seq)? else {
                break;
            };
            if record.state != CommitState::Committed || record.serialized {
                break;
            }
            let Ok(entries) = self.entries_of(&record) else {
                break;
            };
            if entries.is_empty() || !groups_with_others(&entries) {
                break;
            }
            statements += entries.len();
            group.push((record, entries));
        }
        Ok(group)
    }

    fn entries_of(&self, record: &CommitRecord) -> Result<Vec<Entry>, TailError> {
        record
            .statements
            .iter()
            .map(|id| {
                self.chain
                    .journal
                    .entry(*id)?
                    .ok_or(TailError::MissingEntry {
                        seq: record.seq,
                        request_id: *id,
                    })
            })
            .collect()
    }

    /// Applies commits in one node transaction: their statements, then their
    /// `lockstep.commits` rows (a serialized commit, DDL-like: its
    /// statement, then its row). The node's results reach the journal once
    /// it committed them, or, for a statement that failed, at once.
    async fn apply(
        &self,
        conn: &mut Conn,
        group: &mut [(CommitRecord, Vec<Entry>)],
        state: &mut AppliedState,
    ) -> Result<(), TailError> {
        let serialized = group.len() == 1 && group[0].0.serialized;
        if !serialized {
            if let Some(first) = group.first().and_then(|(_, entries)| entries.first()) {
                state
                    .prepare(conn, &first.session_state, &self.chain.server)
                    .await?;
            }
        }
        // A serialized statement commits by itself: it may not start once
        // this instance is no longer the active one.
        if serialized && !self.chain.journal.may_act() {
            return Err(TailError::NoLongerActive);
        }
        let seq_no = group
            .first()
            .filter(|_| serialized)
            .and_then(|(_, entries)| entries.first())
            .and_then(|e| e.binlog_marks.as_ref())
            .map(|m| m.seq_no);
        let in_domain = match seq_no {
            Some(seq_no) => match serialized_binlog::enter(conn, seq_no).await? {
                Marked::RanAlready => {
                    return self.record_found_in_binlog(conn, &group[0].0).await;
                }
                Marked::InDomain => true,
                Marked::NotMarked => false,
            },
            None => false,
        };
        // Whether the group's transaction was opened by `BEGIN_PIPELINED`.
        let (ran, pipelined) =
            if !serialized && pipelined::may_pipeline(group, &self.chain.nontransactional) {
                match self.run_pipelined(conn, group, state).await {
                    Ok(true) => (Ok(()), true),
                    Ok(false) => (self.run_one_by_one(conn, group, state, false).await, false),
                    Err(e) => (Err(e), true),
                }
            } else {
                (
                    self.run_one_by_one(conn, group, state, serialized).await,
                    false,
                )
            };
        if let Err(e) = ran {
            let _ = conn.query_drop(control::ROLLBACK).await;
            if pipelined {
                let _ = conn.query_drop(control::RESTORE_AUTOCOMMIT).await;
            }
            if in_domain {
                let _ = conn.query_drop(control::LEAVE_GTID_DOMAIN).await;
            }
            return Err(e);
        }
        let applied: Vec<_> = group
            .iter()
            .map(|(record, _)| (record.request_id, record.seq))
            .collect();
        if !self.chain.journal.may_act() {
            let _ = conn.query_drop(control::ROLLBACK).await;
            return Err(TailError::NoLongerActive);
        }
        // COMMIT also for a statement applied by itself: the connection may be
        // in autocommit=0 from the origin session's state.
        let leave = if in_domain {
            format!("{}; ", control::LEAVE_GTID_DOMAIN)
        } else {
            String::new()
        };
        let restore = if pipelined {
            format!("; {}", control::RESTORE_AUTOCOMMIT)
        } else {
            String::new()
        };
        conn.query_drop(format!(
            "{leave}{}; COMMIT{restore}; {}",
            control::records(&applied),
            control::UNPIN
        ))
        .await?;
        for (_, entries) in group.iter() {
            for entry in entries {
                self.report(entry);
                self.notify_if_retried(entry);
            }
        }
        debug!(commits = group.len(), "applied");
        Ok(())
    }

    /// Runs the group's statements one round trip each, opening its
    /// transaction (unless serialized) with the first one.
    async fn run_one_by_one(
        &self,
        conn: &mut Conn,
        group: &mut [(CommitRecord, Vec<Entry>)],
        state: &mut AppliedState,
        serialized: bool,
    ) -> Result<(), TailError> {
        let mut opening = (!serialized).then_some(control::BEGIN);
        for (_, entries) in group.iter_mut() {
            for entry in entries.iter_mut() {
                let tried = entry.results.len();
                let result = self
                    .apply_statement(conn, entry, state, opening.take(), !serialized)
                    .await;
                if let Err(e) = result {
                    if entry.results.len() > tried {
                        self.report(entry);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A serialized commit the node ran before its row was written (lockstep
    /// stopped in between): its binary log has it, so only the row is.
    async fn record_found_in_binlog(
        &self,
        conn: &mut Conn,
        record: &CommitRecord,
    ) -> Result<(), TailError> {
        info!(seq = record.seq, request_id = %record.request_id, "serialized commit found in the node's binary log: recorded, not run again");
        conn.query_drop(format!(
            "{}; COMMIT",
            control::record(record.request_id, record.seq)
        ))
        .await?;
        Ok(())
    }

    /// Journals the node's last result for `entry`.
    fn report(&self, entry: &Entry) {
        if let (Some(judged), None) = (entry.results.last(), self.replay) {
            self.chain.journal.append_result(entry.id, judged);
        }
    }

    fn notify_if_retried(&self, entry: &Entry) {
        let attempts = entry
            .results
            .iter()
            .filter(|r| r.node == self.node.name)
            .count();
        if attempts > 1 {
            self.chain.notifier.notify(Event::PassedAfterRetry {
                request_id: entry.id.to_string(),
                node: self.node.name.clone(),
                attempts,
            });
        }
    }

    async fn apply_statement(
        &self,
        conn: &mut Conn,
        entry: &mut Entry,
        state: &mut AppliedState,
        opening: Option<&str>,
        in_transaction: bool,
    ) -> Result<(), TailError> {
        if in_transaction {
            state
                .follow(conn, &entry.session_state, &self.chain.server)
                .await?;
        } else {
            state
                .prepare(conn, &entry.session_state, &self.chain.server)
                .await?;
        }
        let pin = match opening {
            Some(opening) => format!("{opening}; {}", control::replay_pin(&entry.context)),
            None => control::replay_pin(&entry.context),
        };
        // A text carries its pinned context in its own round trip.
        let outcome = match &entry.statement {
            Statement::Text { sql } => {
                let sql = sql.to_bytes();
                if router::text_changes_session(&sql) {
                    state.changed_by_text();
                }
                let text = [pin.as_bytes(), b"; ", &sql].concat();
                outcome::run_text(conn, &text).await
            }
            Statement::LocalInfile { sql, content } => {
                outcome::give_local_infile(conn, &content.0);
                let text = [pin.as_bytes(), b"; ", &sql.to_bytes()].concat();
                outcome::run_text(conn, &text).await
            }
            // The pin in the execution's round trip (one trip, not two).
            prepared => state.run_after(conn, &pin, prepared).await,
        };
        self.judge_result(entry, outcome)
    }

    /// Adds the node's outcome to the entry's results and judges it
    /// against the master's: an error when they disagree.
    fn judge_result(&self, entry: &mut Entry, outcome: Outcome) -> Result<(), TailError> {
        entry.results.push(NodeResult {
            node: self.node.name.clone(),
            outcome: outcome.clone(),
            verdict: None,
        });
        let disagreements = compare::judge(entry, true);
        if let Outcome::Lost { reason } = outcome {
            return Err(TailError::Node(mysql_async::Error::Other(reason.into())));
        }
        match disagreements.into_iter().next().map(|(_, v)| v) {
            None => {
                self.status.set_last_error(None);
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
