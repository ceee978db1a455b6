//! The chain of nodes behind lockstep: which node does what (`roles`), what
//! every node records of its commits, how a statement's outcome on a node is
//! summarized, and the appliers that replay committed work from the journal
//! on every node outside the synchronous pair.
//!
//! The synchronous half of the write path (B first, then A) runs in the
//! client's session task: see `write/`.

pub mod commits;
pub mod cut_serialized;
pub mod gate;
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
    /// Held by every write in progress (an autocommit statement, an open
    /// transaction, a DDL), waited for by whatever must see no write in
    /// flight: a role change, a check, the shutdown (`chain::gate`).
    pub gate: gate::Gate,
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
