//! The commit driver: the one sequence every write-path commit follows once
//! the master ran the work (docs/write-protocol.md, "Commit"):
//!
//! 1. **number** — the commit number, taken while A holds the work's locks,
//!    durable before A is asked to commit (`protocol::commit::number`);
//! 2. **commit on A** — A commits (its `lockstep.commits` row was written
//!    with the work); a lost answer is decided by A's row, or completed when
//!    A is gone;
//! 3. the caller answers the client;
//! 4. **commit on B** — B records the number and commits; B failing here
//!    rolls back there and leaves the synchronous role (it catches up from
//!    the journal), it never keeps a transaction open.
//!
//! Used by autocommit statements (`statement`) and COMMIT (`transaction`).
//! Statements that commit implicitly (`serialized`) and the retrier
//! (`retry_master`) take their numbers through the same
//! `protocol::commit::number`.

use opensrv_mysql::OkResponse;
use tracing::{error, warn};
use uuid::Uuid;

use super::in_doubt::Fate;
use super::phase::{timed, Phase};
use super::Driver;
use crate::error::ClientError;
use crate::journal::{CommitState, Entry, EntryState};
use crate::protocol::commit;
use crate::protocol::control::Wrap;

/// What A commits, once it ran it.
pub(crate) struct CommitWork {
    /// The requestId the commit is recorded under.
    pub request_id: Uuid,
    /// The statements it commits.
    pub statements: Vec<Uuid>,
    /// What A runs to commit (its row is in it, or already written).
    pub master_commit: String,
    /// How the work's transaction ends on A and B when it does not commit.
    pub wrap: Wrap,
    /// The entries as they are to stay once committed: written in their
    /// committed state before the commit is resolved. An applier appends
    /// its node's result to an entry as soon as the commit is resolved;
    /// an entry written whole after that would drop the result (found by
    /// `tests/write_path.rs`: an entry without the tail's result).
    pub entries: Vec<Entry>,
}

impl CommitWork {
    /// An autocommit statement's own transaction, ended by `wrap`.
    pub(super) fn one_statement(entry: &Entry, wrap: Wrap) -> CommitWork {
        CommitWork {
            request_id: entry.id,
            statements: vec![entry.id],
            master_commit: wrap.commit(),
            wrap,
            entries: vec![entry.clone()],
        }
    }
}

/// How a commit ended on A.
pub(crate) enum Committed {
    /// A committed under `seq`: the client gets `ok`, then `finish_on_sync`.
    Yes { ok: OkResponse, seq: u64 },
    /// A's answer was lost. `seq` is Some when A has it (or is gone and it
    /// is completed): the others commit it too. The client gets `err` either
    /// way, as from MariaDB when the connection breaks during COMMIT.
    Lost { seq: Option<u64>, err: ClientError },
    /// A refused it or it could not be numbered: undone on A; B is to roll
    /// back (`finish_on_sync` with no number).
    No(ClientError),
}

impl Committed {
    /// The number B commits under (None: B rolls back).
    pub(super) fn seq(&self) -> Option<u64> {
        match self {
            Committed::Yes { seq, .. } => Some(*seq),
            Committed::Lost { seq, .. } => *seq,
            Committed::No(_) => None,
        }
    }
}

impl Driver {
    /// Phases 1 and 2: number, commit on A. The entries of the work must be
    /// journaled as they are to be replayed before this is called: the
    /// commit is resolved (and appliers replay it) as soon as A committed.
    pub(super) async fn commit_on_master(&mut self, work: &CommitWork) -> Committed {
        let waited = self.wait_behind_serialized_before_number();
        if let Err(err) = timed(Phase::WaitBehindDdl, waited).await {
            let _ = self.run_on_master(work.wrap.rollback().as_bytes()).await;
            return Committed::No(err);
        }
        let journal = self.shared.chain.journal.clone();
        let numbered = commit::number(&journal, work.request_id, work.statements.clone(), false);
        let reservation = timed(Phase::Number, numbered).await;
        let reservation = match reservation {
            Ok(reservation) => reservation,
            Err(e) => {
                let _ = self.run_on_master(work.wrap.rollback().as_bytes()).await;
                return Committed::No(ClientError::JournalUnavailable(e.to_string()));
            }
        };
        let seq = reservation.seq();
        if !journal.may_act() {
            // Paused past the lease: another instance may serve by now.
            reservation.resolve(CommitState::Aborted);
            let _ = self.run_on_master(work.wrap.rollback().as_bytes()).await;
            return Committed::No(ClientError::JournalUnavailable(
                "this lockstep instance is no longer the active one".into(),
            ));
        }
        let on_master = self.run_on_master(work.master_commit.as_bytes());
        match timed(Phase::CommitOnMaster, on_master).await {
            Ok(ok) => {
                self.journal_committed(work, seq);
                reservation.resolve(CommitState::Committed);
                Committed::Yes { ok, seq }
            }
            Err(err) if err.ends_session() => match self.fate_of_lost_commit(work.request_id).await
            {
                Fate::Commit => {
                    self.journal_committed(work, seq);
                    reservation.resolve(CommitState::Committed);
                    Committed::Lost {
                        seq: Some(seq),
                        err,
                    }
                }
                Fate::Abort => {
                    reservation.resolve(CommitState::Aborted);
                    Committed::Lost { seq: None, err }
                }
            },
            Err(err) => {
                error!(error = %err, "commit on the master failed");
                reservation.resolve(CommitState::Aborted);
                let _ = self.run_on_master(work.wrap.rollback().as_bytes()).await;
                Committed::No(err)
            }
        }
    }

    /// The work's entries in their committed state, queued ahead of the
    /// commit's resolution (the journal applies writes in order).
    fn journal_committed(&self, work: &CommitWork, seq: u64) {
        for entry in &work.entries {
            let mut entry = entry.clone();
            entry.state = EntryState::Committed { seq };
            self.shared.chain.journal.write(&entry);
        }
    }

    /// Phase 4: B commits what A committed under `seq` (None: A did not,
    /// or B did not run it: B rolls back). The client's answer is already
    /// decided by A.
    pub(super) async fn finish_on_sync(
        &mut self,
        request_id: Uuid,
        seq: Option<u64>,
        sync_has_it: bool,
        wrap: Wrap,
    ) {
        let (sql, committing) = match seq {
            Some(seq) if sync_has_it => (wrap.commit_recorded(request_id, seq), true),
            _ => (wrap.rollback(), false),
        };
        let finished = timed(Phase::CommitOnSync, self.sync_control(&sql)).await;
        if let Err(err) = finished {
            error!(error = %err, sql, "the synchronous slave could not finish");
            // Whatever failed, no transaction of this session stays open on B.
            let _ = self.sync_control(&wrap.rollback()).await;
            if committing {
                warn!("the synchronous slave lacks a commit the master made: it leaves its role");
                self.leave_sync_role(
                    format!("request {request_id}: its commit failed there ({err})"),
                    true,
                );
            }
        }
    }
}
