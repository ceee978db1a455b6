//! Statements that commit implicitly (DDL) and the writes around them.
//!
//! A DDL cannot share a transaction, so its commit number is taken after
//! the master ran it, when its metadata locks are already released. The
//! journal still lists it in the master's order because of two rules:
//!
//! 1. **The DDL waits where MariaDB makes it wait, on the first node.** It
//!    runs on the first node (B, or A without B) before A, and there its
//!    metadata locks wait for every transaction that touched its tables.
//!    Such a transaction ran each of its statements on the first node and
//!    keeps it open there until after its commit on A (and its number): so
//!    the DDL reaches A only after every conflicting earlier transaction
//!    committed on A and was numbered. No lockstep lock makes it wait for
//!    transactions on other tables.
//! 2. **A write that ran after the DDL on the first node takes its place
//!    after the DDL everywhere.** A write may have touched the DDL's tables
//!    after the DDL finished on the first node; on A it must not run before
//!    the DDL, nor be numbered before it. Which tables a write touched
//!    (triggers, foreign keys and functions included) only the server
//!    knows, so the rule is conservative and asks the server the one thing
//!    that proves a write came first: after a write's statement ran on the
//!    first node, if the DDL's thread there is still waiting for its
//!    metadata locks, the DDL had not finished, so whatever the write
//!    touched it touched before the DDL, and it goes on. Otherwise it waits
//!    until the DDL is numbered (or failed), at most `lock_wait_timeout`,
//!    as MariaDB would make a write on the DDL's tables wait.
//!
//! So a DDL waiting for a long transaction on its tables holds up no other
//! write; a DDL that is executing holds up the writes that finish on the
//! first node meanwhile, until it has run on A. DDLs run one at a time.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::{watch, Mutex, MutexGuard};
use tokio::time::Instant;

use super::control;

/// The processlist state of a thread waiting for metadata locks.
const WAITING_FOR_METADATA_LOCK: &str = "Waiting for table metadata lock";

/// How often a waiting write asks again whether the DDL is still waiting
/// for its locks (it may go back to waiting: an online ALTER does, for the
/// transactions that wrote its table meanwhile).
const ASK_AGAIN: Duration = Duration::from_millis(20);

/// The DDL in flight, as the writes around it see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    /// The node it runs on first, and its thread there.
    first_node: String,
    thread: u32,
    /// It has finished on the first node.
    past_first: bool,
}

/// Shared by every session: the one DDL in flight, if any.
pub struct AloneStatements {
    one_at_a_time: Mutex<()>,
    in_flight: watch::Sender<Option<InFlight>>,
}

/// Why a write or a DDL could not go on.
#[derive(Debug, thiserror::Error)]
pub enum AloneError {
    #[error("waited past lock_wait_timeout for a statement that runs alone")]
    LockWaitTimeout,
    #[error("cannot ask the first node about the statement that runs alone: {0}")]
    Node(#[from] mysql_async::Error),
}

impl Default for AloneStatements {
    fn default() -> Self {
        AloneStatements {
            one_at_a_time: Mutex::new(()),
            in_flight: watch::Sender::new(None),
        }
    }
}

impl AloneStatements {
    /// Phase "wait for the previous DDL": at most `limit`.
    pub async fn enter(&self, limit: Duration) -> Result<Turn<'_>, AloneError> {
        let guard = tokio::time::timeout(limit, self.one_at_a_time.lock())
            .await
            .map_err(|_| AloneError::LockWaitTimeout)?;
        Ok(Turn {
            _one_at_a_time: guard,
            in_flight: &self.in_flight,
        })
    }

    /// Rule 2, called by a write after its statement ran on `first_node`
    /// (`conn` is a connection there whose own state does not matter).
    pub async fn wait_behind(
        &self,
        first_node: &str,
        conn: &mut Conn,
        limit: Duration,
    ) -> Result<(), AloneError> {
        let mut watched = self.in_flight.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            let current = watched.borrow_and_update().clone();
            let Some(ddl) = current else {
                return Ok(());
            };
            if ddl.first_node == first_node
                && !ddl.past_first
                && waits_for_metadata_lock(conn, ddl.thread).await?
            {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AloneError::LockWaitTimeout);
            }
            let pause = ASK_AGAIN.min(deadline - now);
            // A change (the DDL moved on or ended) or the pause: look again.
            let _ = tokio::time::timeout(pause, watched.changed()).await;
        }
    }

    /// True while a DDL is in flight: only then does a write ask.
    pub fn any_in_flight(&self) -> bool {
        self.in_flight.borrow().is_some()
    }
}

/// A DDL's turn: while it lives, writes see the DDL in flight; dropping it
/// (after the DDL's number, or when it failed) lets them all go.
pub struct Turn<'a> {
    _one_at_a_time: MutexGuard<'a, ()>,
    in_flight: &'a watch::Sender<Option<InFlight>>,
}

impl Turn<'_> {
    /// Before the DDL is sent to its first node.
    pub fn starts_on(&self, first_node: &str, thread: u32) {
        self.in_flight.send_replace(Some(InFlight {
            first_node: first_node.to_string(),
            thread,
            past_first: false,
        }));
    }

    /// The DDL finished on its first node (whatever its result).
    pub fn past_first_node(&self) {
        self.in_flight.send_modify(|ddl| {
            if let Some(ddl) = ddl {
                ddl.past_first = true;
            }
        });
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.in_flight.send_replace(None);
    }
}

async fn waits_for_metadata_lock(conn: &mut Conn, thread: u32) -> Result<bool, AloneError> {
    let state: Option<Option<String>> = conn.query_first(control::thread_state(thread)).await?;
    Ok(state.flatten().as_deref() == Some(WAITING_FOR_METADATA_LOCK))
}
