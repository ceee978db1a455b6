//! The chain of nodes behind lockstep: which node does what (`roles`), what
//! every node records of its commits, how a statement's outcome on a node is
//! summarized, and the appliers that replay committed work from the journal
//! on every node outside the synchronous pair.
//!
//! The synchronous half of the write path (B first, then A) runs in the
//! client's session task: see `write/`.

pub mod commits;
pub mod cut_serialized;
pub mod handover;
pub mod lanes;
pub mod logged_inserts;
pub mod nontransactional;
pub mod outcome;
pub mod recover;
pub mod replay;
pub mod replay_state;
pub mod requirements;
pub mod retention;
pub mod roles;
pub mod serialized_binlog;
pub mod stored_functions;
pub mod table_keys;
pub mod tail;
pub mod unrepeatable_bodies;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedRwLockWriteGuard;
use tokio::time::Instant;

use crate::backend::ServerInfo;
use crate::compare::notify::Notifier;
use crate::journal::Journal;
use roles::Roles;
use tail::Backoff;

/// What the write path, the appliers and failover share about the chain.
pub struct Chain {
    pub roles: Roles,
    pub journal: Journal,
    pub server: ServerInfo,
    pub notifier: Notifier,
    /// How an entry a node failed is re-run.
    pub retry: Backoff,
    /// Held shared by every write in progress (an autocommit statement, an
    /// open transaction, a DDL), exclusively by whatever must see no write
    /// in flight: a role change, a check, the shutdown.
    pub gate: Arc<tokio::sync::RwLock<()>>,
    /// The DDL in flight, which writes around it wait behind
    /// (`protocol::serialized`).
    pub serialized: crate::protocol::serialized::SerializedStatements,
    /// Held shared by an applier from a group's first statement until its
    /// results are journaled, exclusively by the shutdown before it closes
    /// the journal: a node's commit is not left without its result there.
    pub appliers: Arc<tokio::sync::RwLock<()>>,
    /// The master's tables that cannot be rolled back (MyISAM, Aria, …).
    pub nontransactional: nontransactional::NonTransactional,
}

/// How long `Chain::drain_writes` holds up new writes at a time while it
/// waits for the writes in flight to end, and how long it then lets them
/// pass.
const QUEUE_FOR: Duration = Duration::from_millis(200);
const LET_PASS_FOR: Duration = Duration::from_millis(800);

impl Chain {
    /// The gate held exclusively: no write in flight, none starting. Waits
    /// at most `limit`, in turns: queued for `QUEUE_FOR` (new writes wait
    /// behind it while the writes in flight end), then out of the queue
    /// for `LET_PASS_FOR` (new writes pass). Queued for the whole wait, one
    /// transaction left open (a session idle with autocommit off after a
    /// write) held up every write of every session for all of it. None
    /// when no moment without writes in flight came.
    pub async fn drain_writes(&self, limit: Duration) -> Option<OwnedRwLockWriteGuard<()>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(guard) = self.gate.clone().try_write_owned() {
                return Some(guard);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let queued = self.gate.clone().write_owned();
            if let Ok(guard) = tokio::time::timeout(left.min(QUEUE_FOR), queued).await {
                return Some(guard);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(LET_PASS_FOR)).await;
        }
    }
}
