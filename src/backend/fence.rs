//! Fencing at every start: before lockstep settles the commits the last run
//! (or, with `[ha]`, the old active instance) left in doubt and serves
//! anyone, it ends every connection lockstep's node account holds on every
//! node (the last run's sessions and appliers) and waits until they are
//! gone.
//!
//! Why, after a stop: a node does not notice its client gone while it runs
//! a statement (an `ALTER TABLE` copying rows goes on and commits), so what
//! the last run left in flight is only settled once its sessions are gone
//! (`chain::cut_serialized`, `chain::serialized_binlog`).
//!
//! Why, at a takeover: the old active may only be paused (SIGSTOP, a frozen VM). It
//! stops acknowledging writes once its lease's time is past (`ship`), but a
//! session that had its commit number acknowledged just before the pause
//! would, on waking, send its COMMIT to the master: a commit the new
//! active, which asked the master meanwhile, had recorded as never made.
//! Its connections ended, that COMMIT has nowhere to go, and what those
//! sessions held open is rolled back by the nodes. A new connection of the
//! woken instance cannot write: every write waits for an acknowledgement
//! first, which it no longer gives.
//!
//! The node account is lockstep's own: other clients that share it lose
//! their connections at a takeover too.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use crate::backend::Node;

/// How long a start waits for the ended connections to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// Ends every other connection of lockstep's account on each node it can
/// reach; nodes it cannot reach are named in the log (they are down, or
/// the old active may still reach them: the fence does not hold there).
pub async fn end_other_connections(nodes: &[Node]) {
    for node in nodes {
        match end_on(node).await {
            Ok(0) => {}
            Ok(ended) => {
                info!(node = %node.name, ended, "start: the last run's connections ended")
            }
            Err(e) => {
                warn!(node = %node.name, error = %e, "start: cannot end the last run's connections on this node")
            }
        }
    }
}

async fn end_on(node: &Node) -> Result<usize, mysql_async::Error> {
    let mut conn = node.connect_admin().await?;
    let others = || {
        "SELECT ID FROM information_schema.PROCESSLIST \
         WHERE USER = SUBSTRING_INDEX(USER(), '@', 1) AND ID <> CONNECTION_ID()"
    };
    let ids: Vec<u64> = conn.query(others()).await?;
    for id in &ids {
        // Gone already (it ended by itself meanwhile): nothing to do.
        let _ = conn.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    // KILL only marks a connection: it ends (rolling back what it held)
    // when its thread notices.
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let left: Vec<u64> = conn.query(others()).await?;
        if !left.iter().any(|id| ids.contains(id)) {
            break;
        }
        if Instant::now() > deadline {
            warn!(node = %node.name, "start: ended connections still there after 10 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = conn.disconnect().await;
    Ok(ids.len())
}
