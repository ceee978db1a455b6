//! Statements that commit implicitly (DDL) and the writes around them.
//!
//! A DDL cannot share a transaction, so its commit number is taken after
//! the master ran it, when its metadata locks are already released. The
//! journal still lists it in the master's order because of three rules:
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
//!    knows, so the rule asks the servers the one thing that proves where a
//!    write stands, the DDL thread's state:
//!    - *before A* (`wait_before_master`), after the write ran on B: if the
//!      DDL still waits for a lock on B (a metadata lock, or a row lock: a
//!      `CREATE TABLE … AS SELECT` reads its source under shared row
//!      locks), it had not finished there, so whatever the write touched it
//!      touched before the DDL could; if it waits for one on A, it has not
//!      run on A, and a write on its tables will queue behind it there
//!      (MariaDB's own locks, which also detect a deadlock with a
//!      transaction that read the table on A and now writes it, as they
//!      would directly);
//!    - *before the number* (`wait_before_number`), after the write's work
//!      ran on A: if the DDL reached A and does not wait for a lock there, the write may have touched its tables after it, and waits
//!      for the DDL's number.
//!
//!    Otherwise the write waits until the DDL is numbered (or failed), at
//!    most `lock_wait_timeout`, as MariaDB makes a write on the DDL's tables
//!    wait, asking again every 20 ms.
//!
//! So a DDL waiting for a long transaction on its tables holds up no other
//! write; a DDL that is executing holds up the writes that finish on B
//! meanwhile, until it has run on A. DDLs run one at a time.
//!
//! 3. **A write the first node refused and A passes is numbered before
//!    the DDL only if the DDL had not run on the first node yet.** Such a
//!    write changed nothing on the first node (it failed there), so rule 1
//!    does not make the DDL wait for it; and A's verdict makes the first
//!    node leave its role and replay that write from the journal. Were the
//!    DDL to run on the first node meanwhile and the write to be numbered
//!    before it on A, the node would replay the write after a DDL it
//!    already has: another default, another column, silently. So between
//!    the first node's refusal and A's verdict the write holds a *refusal*
//!    (`admit_refused`); a DDL's turn first shuts out new refusals and
//!    waits (at most `lock_wait_timeout`) until the held ones are judged
//!    (`Turn::shut_out_refusals`), then follows the roles again (the node
//!    may have left). A write refused after that waits behind the DDL as in
//!    rule 2, except that the DDL waiting for a lock on the first node is
//!    no reason to go on unless the write's own transaction may hold it.
//!    An autocommit write's caller ends lockstep's transaction around it
//!    on the first node before it waits: the refused statement still
//!    holds its tables' metadata locks there, and the DDL would wait for
//!    them while the write waits for the DDL.
//!
//! Reads go to A alone, so a transaction that only read the DDL's table
//! holds a metadata lock on A that B never saw: before the first node runs
//! the DDL, A's session waits for such transactions by taking the DDL's
//! table locks and letting go at once (`write::serialized`,
//! docs/write-protocol.md "Waits").

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::{watch, Mutex, MutexGuard};
use tokio::time::Instant;

use super::control;
use crate::backend::Node;

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
    /// Its thread on A, once it is sent there (after the first node).
    master_thread: Option<u32>,
}

/// What the writes and the DDL in flight share.
#[derive(Debug, Default)]
struct State {
    /// The DDL in flight, once announced on its first node.
    ddl: Option<InFlight>,
    /// A DDL's turn admits no new refusal (rule 3).
    refusals_shut: bool,
    /// Writes the first node refused that A has not judged yet (rule 3).
    refusals: usize,
}

/// Shared by every session: the one DDL in flight, if any.
pub struct SerializedStatements {
    one_at_a_time: Mutex<()>,
    state: Arc<watch::Sender<State>>,
}

/// Why a write or a DDL could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SerializedError {
    #[error("waited past lock_wait_timeout for a serialized statement")]
    LockWaitTimeout,
    #[error("cannot ask a node about the serialized statement: {0}")]
    Node(#[from] mysql_async::Error),
}

impl Default for SerializedStatements {
    fn default() -> Self {
        SerializedStatements {
            one_at_a_time: Mutex::new(()),
            state: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl SerializedStatements {
    /// Phase "wait for the previous DDL": at most `limit`.
    pub async fn enter(&self, limit: Duration) -> Result<Turn<'_>, SerializedError> {
        let guard = tokio::time::timeout(limit, self.one_at_a_time.lock())
            .await
            .map_err(|_| SerializedError::LockWaitTimeout)?;
        Ok(Turn {
            _one_at_a_time: guard,
            state: &self.state,
        })
    }

    /// Rule 2, before A: called by a write after its statement ran on B
    /// (`sync_conn`, a connection there whose own state does not matter).
    pub async fn wait_before_master(
        &self,
        sync_node: &str,
        sync_conn: &mut Conn,
        master: &mut MasterProbe,
        limit: Duration,
    ) -> Result<(), SerializedError> {
        let mut sync = Some((sync_node, sync_conn));
        self.wait_until(limit, &mut sync, master).await
    }

    /// Rule 2, before the number: called by a write whose work ran on A.
    pub async fn wait_before_number(
        &self,
        master: &mut MasterProbe,
        limit: Duration,
    ) -> Result<(), SerializedError> {
        self.wait_until(limit, &mut None, master).await
    }

    /// Waits until no DDL is in flight or `may_go` lets the write go on.
    async fn wait_until(
        &self,
        limit: Duration,
        sync: &mut Option<(&str, &mut Conn)>,
        master: &mut MasterProbe,
    ) -> Result<(), SerializedError> {
        let mut watched = self.state.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            let current = watched.borrow_and_update().ddl.clone();
            let Some(ddl) = current else {
                return Ok(());
            };
            if may_go(&ddl, sync, master).await? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SerializedError::LockWaitTimeout);
            }
            let pause = ASK_AGAIN.min(deadline - now);
            // A change (the DDL moved on or ended) or the pause: look again.
            let _ = tokio::time::timeout(pause, watched.changed()).await;
        }
    }

    /// True while a DDL is in flight (or its turn shuts out refusals):
    /// only then does a write ask.
    pub fn any_in_flight(&self) -> bool {
        let state = self.state.borrow();
        state.ddl.is_some() || state.refusals_shut
    }

    /// Rule 3: called by a write the first node (`sync_node`) refused,
    /// before A runs it. Without a DDL's turn in the way, the write holds
    /// a refusal until it is dropped (after A's verdict); otherwise it
    /// waits behind the DDL, at most `limit`, and goes on without one.
    pub async fn admit_refused(
        &self,
        sync_node: &str,
        sync_conn: &mut Conn,
        master: &mut MasterProbe,
        limit: Duration,
        in_txn: bool,
    ) -> Result<Option<Refusal>, SerializedError> {
        let mut watched = self.state.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(refusal) = self.hold_refusal() {
                return Ok(Some(refusal));
            }
            let ddl = watched.borrow_and_update().ddl.clone();
            if let Some(ddl) = ddl {
                if refused_may_go(&ddl, sync_node, sync_conn, master, in_txn).await? {
                    return Ok(None);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SerializedError::LockWaitTimeout);
            }
            let pause = ASK_AGAIN.min(deadline - now);
            let _ = tokio::time::timeout(pause, watched.changed()).await;
        }
    }

    /// A refusal, unless a DDL's turn shuts them out: checked and counted
    /// in one step, so that a DDL never misses one (`Turn::shut_out_refusals`).
    pub fn hold_refusal(&self) -> Option<Refusal> {
        let held = self.state.send_if_modified(|state| {
            if state.refusals_shut || state.ddl.is_some() {
                return false;
            }
            state.refusals += 1;
            true
        });
        held.then(|| Refusal {
            state: self.state.clone(),
        })
    }
}

/// A write the first node refused, until A judged it (rule 3).
pub struct Refusal {
    state: Arc<watch::Sender<State>>,
}

impl Drop for Refusal {
    fn drop(&mut self) {
        self.state.send_modify(|state| state.refusals -= 1);
    }
}

/// A DDL's turn: while it lives, writes see the DDL in flight; dropping it
/// (after the DDL's number, or when it failed) lets them all go.
pub struct Turn<'a> {
    _one_at_a_time: MutexGuard<'a, ()>,
    state: &'a watch::Sender<State>,
}

impl Turn<'_> {
    /// Rule 3, before the DDL's roles are settled: no write refused from
    /// now on is numbered ahead of it, and it waits, at most `limit`, for
    /// those refused before to be judged by A.
    pub async fn shut_out_refusals(&self, limit: Duration) -> Result<(), SerializedError> {
        self.state.send_modify(|state| state.refusals_shut = true);
        let mut watched = self.state.subscribe();
        let judged = tokio::time::timeout(limit, watched.wait_for(|state| state.refusals == 0))
            .await
            .map(|_| ());
        judged.map_err(|_| SerializedError::LockWaitTimeout)
    }

    /// Before the DDL is sent to its first node.
    pub fn starts_on(&self, first_node: &str, thread: u32) {
        self.state.send_modify(|state| {
            state.ddl = Some(InFlight {
                first_node: first_node.to_string(),
                thread,
                past_first: false,
                master_thread: None,
            })
        });
    }

    /// Before the DDL is sent to A, after its first node.
    pub fn runs_on_master(&self, thread: u32) {
        self.state.send_modify(|state| {
            if let Some(ddl) = &mut state.ddl {
                ddl.master_thread = Some(thread);
            }
        });
    }

    /// The DDL finished on its first node (whatever its result).
    pub fn past_first_node(&self) {
        self.state.send_modify(|state| {
            if let Some(ddl) = &mut state.ddl {
                ddl.past_first = true;
            }
        });
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.state.send_modify(|state| {
            state.ddl = None;
            state.refusals_shut = false;
        });
    }
}

/// Whether the write may go on past `ddl`: before A (`sync` is B), when
/// the DDL waits for its locks on B or on A; before the number (`sync` is
/// None), unless the DDL reached A and does not wait for its locks there.
async fn may_go(
    ddl: &InFlight,
    sync: &mut Option<(&str, &mut Conn)>,
    master: &mut MasterProbe,
) -> Result<bool, SerializedError> {
    match sync {
        Some((node, conn)) => {
            if waits_on_first_node(ddl, node, conn).await? {
                return Ok(true);
            }
            waits_on_master(ddl, master, false).await
        }
        None => waits_on_master(ddl, master, true).await,
    }
}

/// Rule 3: whether a write the first node refused may go on to A past
/// `ddl`: when the DDL waits for a lock on A (a write on its tables
/// queues behind it there), or, in a transaction (which may hold what it
/// waits for), when it waits for one on the first node. Otherwise it
/// waits until the DDL is numbered.
async fn refused_may_go(
    ddl: &InFlight,
    sync_node: &str,
    sync_conn: &mut Conn,
    master: &mut MasterProbe,
    in_txn: bool,
) -> Result<bool, SerializedError> {
    if in_txn && waits_on_first_node(ddl, sync_node, sync_conn).await? {
        return Ok(true);
    }
    waits_on_master(ddl, master, false).await
}

/// The DDL runs first on `node` (`conn` is a connection there), has not
/// finished there, and waits for a lock.
async fn waits_on_first_node(
    ddl: &InFlight,
    node: &str,
    conn: &mut Conn,
) -> Result<bool, SerializedError> {
    if ddl.first_node != node || ddl.past_first {
        return Ok(false);
    }
    waits_for_a_lock(conn, ddl.thread).await
}

/// The DDL reached A and waits there for a lock; `unsent` when it has not
/// reached A yet.
async fn waits_on_master(
    ddl: &InFlight,
    master: &mut MasterProbe,
    unsent: bool,
) -> Result<bool, SerializedError> {
    match ddl.master_thread {
        Some(thread) => master.waits_for_a_lock(thread).await,
        None => Ok(unsent),
    }
}

/// A connection to A of lockstep's own, opened when first needed, to ask
/// about the DDL's thread there without touching the client's session (its
/// warnings, ROW_COUNT()).
pub struct MasterProbe {
    node: Node,
    conn: Option<Conn>,
}

impl MasterProbe {
    pub fn new(node: Node) -> MasterProbe {
        MasterProbe { node, conn: None }
    }

    async fn waits_for_a_lock(&mut self, thread: u32) -> Result<bool, SerializedError> {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self.conn.insert(self.node.connect_admin().await?),
        };
        waits_for_a_lock(conn, thread).await
    }

    pub async fn close(self) {
        if let Some(conn) = self.conn {
            let _ = conn.disconnect().await;
        }
    }
}

async fn waits_for_a_lock(conn: &mut Conn, thread: u32) -> Result<bool, SerializedError> {
    let waits: Option<u8> = conn
        .query_first(control::thread_waits_for_lock(thread))
        .await?;
    Ok(waits == Some(1))
}
