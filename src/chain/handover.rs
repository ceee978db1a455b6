//! How the synchronous role moves between nodes while the master stays:
//! the slave holding it leaves (it broke, failed an entry, or diverged) and
//! a node replaying the journal takes it once caught up.

use std::sync::Arc;

use std::time::Duration;

use tracing::{error, info, warn};

use super::tail::{Tail, TailError};
use super::Chain;
use crate::compare::notify::Event;
use crate::metrics;

/// How long a node about to take the synchronous role waits for writes to
/// drain.
const DRAIN: Duration = Duration::from_secs(1);

/// `node` leaves the synchronous role, for `reason`. With `rejoin` (it
/// only missed entries) it replays the journal from where it is and may
/// take the role again; without (it diverged) it is quarantined. Nothing
/// happens when it no longer held the role.
pub fn sync_leaves(chain: &Arc<Chain>, node: &str, reason: String, rejoin: bool) {
    if !chain.roles.leave_sync(node, reason.clone()) {
        return;
    }
    error!(%node, %reason, "the synchronous slave left its role; writes go on with the master and the journal");
    if rejoin {
        if let Some(tail) = Tail::for_node(chain, node) {
            tail.spawn();
        }
    } else {
        let (chain, node) = (chain.clone(), node.to_string());
        tokio::spawn(async move { quarantine(&chain, &node, reason).await });
    }
}

/// `node` diverged: no more traffic until an operator re-syncs it (the mark
/// is journaled, so a restart keeps it out).
pub async fn quarantine(chain: &Chain, node: &str, reason: String) {
    let Some(member) = chain.roles.member(node) else {
        return;
    };
    error!(%node, %reason, "node quarantined: it diverged from the master; it gets no more traffic until it is re-synced");
    member.status.quarantine(reason.clone());
    metrics::count_for_node(&metrics::get().quarantines, node);
    if let Err(e) = chain.journal.set_quarantine(node, Some(&reason)).await {
        error!(error = %e, "cannot journal the quarantine");
    }
    chain.notifier.notify(Event::NodeQuarantined {
        node: node.to_string(),
        reason,
    });
}

/// An applier found its node caught up with the synchronous role vacant:
/// with writes drained (the gate held exclusively) it applies the last
/// commits and takes the role. False when another node took it first.
pub(super) async fn take_sync(tail: &mut Tail) -> Result<bool, TailError> {
    // An idle open transaction may hold B's part for long: wait in short
    // turns (`Gate::drain_sync_role`), give up after a while and try again
    // later. A transaction begun on A alone that has not reached B does
    // not hold it up; its first statement for B goes to this node.
    let Some(_gate) = tail.chain.gate.drain_sync_role(DRAIN).await else {
        info!("writes did not drain within a second; the synchronous role waits");
        tokio::time::sleep(DRAIN).await;
        return Ok(false);
    };
    if tail.chain.roles.sync().is_some() {
        return Ok(false);
    }
    tail.catch_up().await?;
    if !tail.chain.roles.take_sync(&tail.node.name) {
        warn!("caught up, but the synchronous role is not free");
        return Ok(false);
    }
    info!("caught up: the node is the synchronous slave now");
    tail.chain.notifier.notify(Event::NodeRejoined {
        node: tail.node.name.clone(),
    });
    Ok(true)
}
