//! Failover: the master's health, and its replacement when it dies
//! (README, "Roles and failover").
//!
//! The master is declared down after a failed health check (a ping on a
//! connection of lockstep's own, or a new connection when that one broke)
//! or when a session needs to know whether it committed something and
//! cannot reach it. Once declared down it is replaced: nothing brings it
//! back as master before it caught up as a tail node.

pub mod health;
mod promote;

use crate::shared::Shared;
use std::sync::Arc;

pub use crate::shared::Failover;

pub use promote::{fail_over, promote_one};

/// Whether the master a session used (`node`) is gone: already replaced,
/// or unreachable now, in which case it is declared down and replaced. A
/// session whose commit on it is in doubt relies on this answer: after
/// `true`, `node` is never master again before it caught up from the
/// journal, so the commit may be completed on the other nodes.
pub async fn master_is_gone(shared: &Arc<Shared>, node: &str) -> bool {
    if shared.master_node().name != node {
        return true;
    }
    let Some(member) = shared.chain.roles.member(node) else {
        return true;
    };
    match health::check(&member.node, shared.failover.timeout).await {
        Ok(()) => false,
        Err(reason) => {
            tokio::spawn(fail_over(shared.clone(), node.to_string(), reason));
            true
        }
    }
}
