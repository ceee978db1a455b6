//! Which node does what: one master, at most one synchronous slave, the
//! rest tail nodes (README, "Roles and failover").
//!
//! Roles move: the synchronous slave leaves its role when it fails or
//! breaks, a caught-up tail node takes the vacant role, and the synchronous
//! slave becomes the master when the master dies. Every move happens here,
//! under one lock, so a session or an applier never sees two masters.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::tail::TailStatus;
use crate::backend::Node;

/// A configured node and what lockstep follows of it.
pub struct Member {
    pub node: Node,
    /// Its applier's position and trouble, while it replays the journal.
    pub status: Arc<TailStatus>,
}

/// A node's role, as `SHOW LOCKSTEP NODES` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Sync,
    /// Replaying the journal, caught up; it may take the synchronous role.
    Tail,
    /// Replaying the journal but behind, unreachable or failing an entry.
    CatchingUp,
    /// Diverged: no traffic until an operator re-syncs it.
    Quarantined,
    /// The master lockstep failed over from; it catches up as a tail once back.
    Down,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Sync => "sync",
            Role::Tail => "tail",
            Role::CatchingUp => "catching-up",
            Role::Quarantined => "quarantined",
            Role::Down => "down",
        }
    }
}

struct Assignment {
    master: usize,
    sync: Option<usize>,
    /// Why no node holds the synchronous role, while none does.
    no_sync: Option<String>,
    /// Masters lockstep failed over from (until they rejoin as tails).
    failed_masters: Vec<usize>,
}

pub struct Roles {
    members: Vec<Member>,
    assignment: RwLock<Assignment>,
}

impl Roles {
    /// `nodes` in chain order; `master` names the current master (the first
    /// node unless a failover moved it). The next node in order is the
    /// synchronous slave.
    pub fn new(nodes: Vec<Node>, master: Option<&str>) -> Roles {
        let master = master
            .and_then(|m| nodes.iter().position(|n| n.name == m))
            .unwrap_or(0);
        let sync = (1..nodes.len()).map(|i| (master + i) % nodes.len()).next();
        let members = nodes
            .into_iter()
            .map(|node| Member {
                node,
                status: Arc::new(TailStatus::default()),
            })
            .collect();
        Roles {
            members,
            assignment: RwLock::new(Assignment {
                master,
                sync,
                no_sync: None,
                failed_masters: Vec::new(),
            }),
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.node.name == name)
    }

    pub fn master(&self) -> Node {
        let a = self.read();
        self.members[a.master].node.clone()
    }

    pub fn sync(&self) -> Option<Node> {
        let a = self.read();
        a.sync.map(|i| self.members[i].node.clone())
    }

    /// Why the synchronous role is vacant, while it is.
    pub fn no_sync_reason(&self) -> Option<String> {
        let a = self.read();
        match a.sync {
            Some(_) => None,
            None => Some(
                a.no_sync
                    .clone()
                    .unwrap_or_else(|| "no slave is configured".into()),
            ),
        }
    }

    /// `node` leaves the synchronous role; false when it did not hold it
    /// (another session or applier moved it first).
    pub fn leave_sync(&self, node: &str, reason: String) -> bool {
        let mut a = self.write();
        match a.sync {
            Some(i) if self.members[i].node.name == node => {
                self.members[i].status.set_left_role(Some(reason.clone()));
                a.sync = None;
                a.no_sync = Some(format!("{node} left it: {reason}"));
                true
            }
            _ => false,
        }
    }

    /// `node` takes the vacant synchronous role; false when it is not vacant.
    pub fn take_sync(&self, node: &str) -> bool {
        let Some(i) = self.index(node) else {
            return false;
        };
        let mut a = self.write();
        if a.sync.is_some() || a.master == i {
            return false;
        }
        a.sync = Some(i);
        a.no_sync = None;
        self.members[i].status.set_left_role(None);
        a.failed_masters.retain(|&m| m != i);
        true
    }

    /// `node` becomes the master in place of the current one, which is
    /// remembered as failed. Returns the old master's name.
    pub fn promote(&self, node: &str) -> Option<String> {
        let i = self.index(node)?;
        let mut a = self.write();
        let old = a.master;
        if old == i {
            return None;
        }
        a.master = i;
        a.failed_masters.push(old);
        if a.sync == Some(i) {
            a.sync = None;
            a.no_sync = Some(format!("{node} became the master"));
        }
        Some(self.members[old].node.name.clone())
    }

    /// A failed master caught up from the journal: it is a tail node now.
    pub fn rejoined(&self, node: &str) {
        if let Some(i) = self.index(node) {
            self.write().failed_masters.retain(|&m| m != i);
        }
    }

    pub fn role_of(&self, node: &str) -> Role {
        let Some(i) = self.index(node) else {
            return Role::Down;
        };
        let member = &self.members[i];
        let a = self.read();
        if a.master == i {
            Role::Master
        } else if a.sync == Some(i) {
            Role::Sync
        } else if member.status.quarantine_reason().is_some() {
            Role::Quarantined
        } else if a.failed_masters.contains(&i) {
            Role::Down
        } else if member.status.last_error().is_none()
            && member.status.caught_up.load(Ordering::Relaxed)
        {
            Role::Tail
        } else {
            Role::CatchingUp
        }
    }

    fn index(&self, node: &str) -> Option<usize> {
        self.members.iter().position(|m| m.node.name == node)
    }

    // A panic while holding this lock cannot leave the assignment half
    // changed (each change is a few plain stores), so a poisoned lock is usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Assignment> {
        self.assignment.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Assignment> {
        self.assignment.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn nodes(names: &[&str]) -> Vec<Node> {
        names
            .iter()
            .map(|n| {
                Node::from_config(&config::Node {
                    name: n.to_string(),
                    url: "mysql://root@127.0.0.1:1".into(),
                })
                .expect("url")
            })
            .collect()
    }

    #[test]
    fn the_synchronous_slave_becomes_master_and_the_role_is_vacant() {
        let roles = Roles::new(nodes(&["a", "b", "c"]), None);
        assert_eq!(roles.sync().map(|n| n.name), Some("b".into()));
        assert_eq!(roles.promote("b").as_deref(), Some("a"));
        assert_eq!(roles.master().name, "b");
        assert!(roles.sync().is_none());
        assert_eq!(roles.role_of("a"), Role::Down);
        assert!(!roles.take_sync("b"), "the master cannot be its own slave");
        assert!(roles.take_sync("c"));
        assert!(!roles.take_sync("a"), "the role is taken");
    }

    #[test]
    fn a_journaled_master_keeps_its_role_after_a_restart() {
        let roles = Roles::new(nodes(&["a", "b", "c"]), Some("b"));
        assert_eq!(roles.master().name, "b");
        assert_eq!(roles.sync().map(|n| n.name), Some("c".into()));
    }

    #[test]
    fn only_the_holder_leaves_the_synchronous_role() {
        let roles = Roles::new(nodes(&["a", "b", "c"]), None);
        assert!(!roles.leave_sync("c", "x".into()));
        assert!(roles.leave_sync("b", "broke".into()));
        assert!(roles.no_sync_reason().is_some_and(|r| r.contains("broke")));
    }
}
