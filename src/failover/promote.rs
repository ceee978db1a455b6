//! Replacing a dead master: writes drain, the synchronous slave (or, when
//! none holds the role, the first node that can catch up from the journal)
//! applies whatever it lacks and becomes the master.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::chain::roles::Role;
use crate::chain::tail::{InDoubt, Tail};
use crate::chain::Chain;
use crate::compare::notify::Event;
use crate::shared::Shared;

/// How long in-flight writes get to finish on their own before their
/// sessions are ended (a master that hangs instead of dying keeps them).
const DRAIN: Duration = Duration::from_secs(5);

/// Replaces `dead` as master, unless it was replaced already. Sessions
/// with an open transaction lose it (their clients see 2013, as from a
/// MariaDB server that died); the others move to the new master at their
/// next statement.
pub async fn fail_over(shared: Arc<Shared>, dead: String, reason: String) {
    let _one = shared.failover.running.lock().await;
    if shared.master_node().name != dead {
        return;
    }
    let started = Instant::now();
    error!(master = %dead, %reason, "the master is down: failing over");
    shared.registry.kill_in_transaction();
    let _gate = match tokio::time::timeout(DRAIN, shared.chain.gate.close()).await {
        Ok(closed) => closed,
        Err(_) => {
            warn!("writes in flight did not finish: ending their sessions");
            shared.registry.abort_busy();
            shared.chain.gate.close().await
        }
    };
    let mut delay = Duration::from_millis(100);
    let new = loop {
        match promote_one(&shared.chain, &dead).await {
            Some(new) => break new,
            None => {
                error!(
                    retry_in_ms = delay.as_millis() as u64,
                    "no node can become the master yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    info!(old = %dead, new = %new, took_ms = started.elapsed().as_millis() as u64,
        "failover done: writes resume on the new master");
    shared.chain.notifier.notify(Event::MasterReplaced {
        old: dead.clone(),
        new,
    });
    // The old master catches up from the journal once it is back.
    if let Some(tail) = Tail::for_node(&shared.chain, &dead) {
        tail.spawn();
    }
}

/// The first candidate that catches up from the journal becomes the
/// master: the synchronous slave first (it has every acknowledged write),
/// then the others in chain order. The choice is journaled before anyone
/// writes to it, so a restart never hands the role back to `dead`.
pub async fn promote_one(chain: &Arc<Chain>, dead: &str) -> Option<String> {
    let roles = &chain.roles;
    let sync = roles.sync().map(|n| n.name);
    let mut candidates: Vec<String> = sync.into_iter().collect();
    for member in roles.members() {
        let name = &member.node.name;
        let eligible = name != dead
            && !candidates.contains(name)
            && !matches!(roles.role_of(name), Role::Quarantined | Role::Down);
        if eligible {
            candidates.push(name.clone());
        }
    }
    for name in &candidates {
        let Some(mut tail) = Tail::for_node(chain, name) else {
            continue;
        };
        tail.in_doubt = InDoubt::Commit;
        tail.status.pause_applier().await;
        match tail.catch_up().await {
            Ok(()) => {
                if let Err(e) = chain.journal.set_master(name).await {
                    // Writes cannot be journaled either: none is acknowledged
                    // until the journal works, so the role may move.
                    error!(error = %e, "cannot journal the new master");
                }
                roles.promote(name);
                crate::metrics::get().failovers.inc();
                // Its applier stays stopped while it is master; one started
                // later (it lost the role) must not stop at once.
                tail.status.resume();
                return Some(name.clone());
            }
            Err(e) => {
                warn!(node = %name, error = %e, "cannot become the master");
                resume_applier(chain, name);
            }
        }
    }
    None
}

/// A candidate that did not become the master goes on replaying the journal
/// (the synchronous slave had no applier: it gets one).
fn resume_applier(chain: &Arc<Chain>, node: &str) {
    if let Some(tail) = Tail::for_node(chain, node) {
        tail.status.resume();
        if chain.roles.sync().map(|n| n.name).as_deref() != Some(node) {
            tail.spawn();
        }
    }
}
