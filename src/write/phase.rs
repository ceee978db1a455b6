//! The named phases of the write protocol, timed: where a write's time
//! goes, as `lockstep_write_phase_seconds{phase}` (the bench reports it per
//! statement next to the time the client saw).

use std::future::Future;
use std::time::Instant;

/// A phase of the write protocol that may wait on a node or the journal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// lockstep's own questions before B runs the statement (ordering a
    /// copy by its key, pinning sequences and node variables, asking A for
    /// LAST_INSERT_ID()).
    Prepare,
    /// The client's transaction opened on B (its first write).
    OpenOnSync,
    /// The statement on B, with its pins.
    RunOnSync,
    /// Waiting behind a DDL in flight (`protocol::serialized`).
    WaitBehindDdl,
    /// The statement on A, relayed to the client, with its pins.
    RunOnMaster,
    /// The commit number made durable in the journal.
    Number,
    /// A's COMMIT.
    CommitOnMaster,
    /// B's commit (or rollback) after A's.
    CommitOnSync,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::OpenOnSync => "open_on_sync",
            Phase::RunOnSync => "run_on_sync",
            Phase::WaitBehindDdl => "wait_behind_ddl",
            Phase::RunOnMaster => "run_on_master",
            Phase::Number => "number",
            Phase::CommitOnMaster => "commit_on_master",
            Phase::CommitOnSync => "commit_on_sync",
        }
    }
}

/// Runs `work`, recording its time under `phase`.
pub(crate) async fn timed<T>(phase: Phase, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    crate::metrics::observe_phase(phase.name(), started.elapsed().as_secs_f64());
    out
}
