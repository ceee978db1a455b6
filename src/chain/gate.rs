//! The chain's gate: what a write in flight holds, so that whatever must
//! see no write in flight (a promotion, a handover of the synchronous
//! role, a check, the shutdown, a DDL that reads rows) can wait for the
//! writes to end and keep new ones out meanwhile.
//!
//! It has two locks, always taken in this order:
//! - `writes`: held shared by every write from its start to its end (an
//!   autocommit statement, a transaction from its BEGIN, a DDL);
//! - `sync_role`: held shared by a write from the moment it has (or is
//!   about to have) a part on B, the synchronous slave, to its end.
//!
//! They differ only for a transaction begun on A alone (B's side opens with
//! its first statement for B): until then it holds nothing on B, and a
//! handover of the synchronous role, which waits for `sync_role` only, need
//! not wait for it. An idle transaction (a pooled connection left after
//! `BEGIN; SELECT …`) held a vacant synchronous role vacant for as long as it
//! stayed open when there was one lock. DDL still waits for it: it holds
//! table metadata locks on A that the DDL would wait for on A while the
//! transaction's next write waited for the DDL (measured: a lazily taken
//! single gate stalled `tests/order.rs` for `innodb_lock_wait_timeout`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use tokio::time::Instant;

/// How long a drain holds up new writes at a time while it waits for the
/// writes in flight to end, and how long it then lets them pass.
const QUEUE_FOR: Duration = Duration::from_millis(200);
const LET_PASS_FOR: Duration = Duration::from_millis(800);

#[derive(Default)]
pub struct Gate {
    writes: Arc<RwLock<()>>,
    sync_role: Arc<RwLock<()>>,
}

/// A write's hold on the gate (only held, never read: its drop lets go).
pub struct WriteHold {
    on_sync: Option<OwnedRwLockReadGuard<()>>,
    _write: OwnedRwLockReadGuard<()>,
}

/// The whole gate held exclusively: no write in flight, no role handover.
pub struct Closed {
    _sync_role: OwnedRwLockWriteGuard<()>,
    _writes: OwnedRwLockWriteGuard<()>,
}

/// Every write drained, for a serialized statement that must run alone
/// (it still holds B's part shared, as any write: a handover waits for it).
pub struct WritesDrained {
    _on_sync: OwnedRwLockReadGuard<()>,
    _writes: OwnedRwLockWriteGuard<()>,
}

/// No write with a part on B in flight: the synchronous role may change
/// hands.
pub struct SyncRoleDrained {
    _sync_role: OwnedRwLockWriteGuard<()>,
}

impl Gate {
    /// A write that has a part on B from its start.
    pub async fn enter(&self) -> WriteHold {
        let mut hold = self.enter_on_master().await;
        hold.reach_sync(self).await;
        hold
    }

    /// A transaction begun on A alone: `WriteHold::reach_sync` once its
    /// first statement goes to B.
    pub async fn enter_on_master(&self) -> WriteHold {
        WriteHold {
            on_sync: None,
            _write: self.writes.clone().read_owned().await,
        }
    }

    /// Waits for every write to end and keeps new ones out, and any role
    /// handover, until the result drops.
    pub async fn close(&self) -> Closed {
        let writes = self.writes.clone().write_owned().await;
        Closed {
            _sync_role: self.sync_role.clone().write_owned().await,
            _writes: writes,
        }
    }

    /// No write in flight, none starting, waited for at most `limit` in
    /// turns (`drain`). None when no moment without writes came.
    pub async fn drain_writes(&self, limit: Duration) -> Option<WritesDrained> {
        let writes = drain(&self.writes, limit).await?;
        Some(WritesDrained {
            _on_sync: self.sync_role.clone().read_owned().await,
            _writes: writes,
        })
    }

    /// No write with a part on B in flight, none starting, waited for at
    /// most `limit` in turns (`drain`).
    pub async fn drain_sync_role(&self, limit: Duration) -> Option<SyncRoleDrained> {
        let sync_role = drain(&self.sync_role, limit).await?;
        Some(SyncRoleDrained {
            _sync_role: sync_role,
        })
    }
}

impl WriteHold {
    /// The write now has a part on B: a handover waits for it from here.
    pub async fn reach_sync(&mut self, gate: &Gate) {
        if self.on_sync.is_none() {
            self.on_sync = Some(gate.sync_role.clone().read_owned().await);
        }
    }

    /// Its statement for B was refused before reaching B: a handover need
    /// not wait for it after all.
    pub fn leave_sync(&mut self) {
        self.on_sync = None;
    }

    /// Whether a handover waits for this write.
    pub fn reaches_sync(&self) -> bool {
        self.on_sync.is_some()
    }
}

/// `lock` held exclusively, waited for at most `limit`, in turns: queued
/// for `QUEUE_FOR` (new holders wait behind it while those in flight end),
/// then out of the queue for `LET_PASS_FOR` (new holders pass). Queued for
/// the whole wait, one transaction left open (a session idle with
/// autocommit off after a write) held up every write of every session for
/// all of it.
async fn drain(lock: &Arc<RwLock<()>>, limit: Duration) -> Option<OwnedRwLockWriteGuard<()>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(guard) = lock.clone().try_write_owned() {
            return Some(guard);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let queued = lock.clone().write_owned();
        if let Ok(guard) = tokio::time::timeout(left.min(QUEUE_FOR), queued).await {
            return Some(guard);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(LET_PASS_FOR)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_transaction_begun_on_the_master_alone_does_not_hold_up_a_handover() {
        let gate = Gate::default();
        let mut begun = gate.enter_on_master().await;
        assert!(gate.drain_sync_role(SHORT).await.is_some());
        // Once its first statement goes to B, the handover waits for it.
        begun.reach_sync(&gate).await;
        assert!(begun.reaches_sync());
        assert!(gate.drain_sync_role(SHORT).await.is_none());
        drop(begun);
        assert!(gate.drain_sync_role(SHORT).await.is_some());
    }

    #[tokio::test]
    async fn a_transaction_begun_on_the_master_alone_holds_up_a_drain_of_writes() {
        let gate = Gate::default();
        let begun = gate.enter_on_master().await;
        assert!(gate.drain_writes(SHORT).await.is_none());
        drop(begun);
        assert!(gate.drain_writes(SHORT).await.is_some());
    }

    #[tokio::test]
    async fn closing_waits_for_both() {
        let gate = Gate::default();
        let drained = gate.drain_sync_role(SHORT).await;
        let closing = tokio::time::timeout(SHORT, gate.close()).await;
        assert!(closing.is_err(), "a handover in progress holds up a close");
        drop(drained);
        let write = gate.enter().await;
        let closing = tokio::time::timeout(SHORT, gate.close()).await;
        assert!(closing.is_err(), "a write holds up a close");
        drop(write);
        let _closed = gate.close().await;
    }
}
