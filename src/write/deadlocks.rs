//! Lock cycles across the two nodes, which neither node's deadlock
//! detector can see.
//!
//! Every write runs on B, then on A, so the two nodes take a write's row
//! locks in the same order and a cycle shows on one node, where InnoDB
//! breaks it at once. One kind of lock is taken on A alone: a job queue's
//! claim, `SELECT … FOR UPDATE SKIP LOCKED` inside a transaction (`read`).
//! A session that did not claim a row and writes it (an admin's `UPDATE …
//! WHERE id = 7` while a worker holds 7) passes B and waits on A for the
//! worker; the worker's own write of that row waits on B for the admin's
//! open statement. Directly, MariaDB would make the admin wait for the
//! worker; here each waits for the other until `innodb_lock_wait_timeout`.
//!
//! The watcher looks for such cycles whenever a client command has run
//! for `SUSPECT_AFTER`: it reads each node's row-lock waits, maps the
//! threads to lockstep's sessions (`shared::registry`), and looks for a
//! cycle with a wait on each node. Seen twice in a row (the two nodes are
//! read one after the other), its victim is a session waiting on A: its
//! statement there is interrupted (`KILL QUERY`), and the session answers
//! it with 1213 as a deadlock, its transaction rolled back everywhere
//! (`statement`), as MariaDB ends a deadlock's victim. The claim, which
//! came first, goes on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{debug, warn};

use crate::backend::Node;
use crate::protocol::control;
use crate::shared::Shared;

/// How often the watcher looks.
const POLL: Duration = Duration::from_millis(100);

/// A command running this long may be waiting in a cycle: only then are
/// the nodes asked (nothing is asked while every command is quick).
const SUSPECT_AFTER: Duration = Duration::from_millis(200);

/// Which node a wait is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Master,
    Sync,
}

/// Session `waiting` waits on `side` for a lock session `holder` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Wait {
    waiting: u32,
    holder: u32,
    side: Side,
}

/// Starts the watcher; it runs as long as lockstep does.
pub fn spawn(shared: Arc<Shared>) {
    tokio::spawn(watch(shared));
}

async fn watch(shared: Arc<Shared>) {
    let mut connections: HashMap<String, Conn> = HashMap::new();
    let mut suspect: Option<u32> = None;
    loop {
        tokio::time::sleep(POLL).await;
        if !shared.registry.has_command_older_than(SUSPECT_AFTER) {
            suspect = None;
            continue;
        }
        let Some(sync) = shared.sync_node() else {
            continue;
        };
        let master = shared.master_node();
        let Some(waits) = waits_on_both(&shared, &master, &sync, &mut connections).await else {
            continue;
        };
        let victim = victim_of_a_cycle(&waits);
        match (victim, suspect) {
            // The same cycle in two looks: it will not end by itself.
            (Some(victim), Some(seen)) if victim == seen => {
                suspect = None;
                interrupt(&shared, &master, victim, &mut connections).await;
            }
            (victim, _) => suspect = victim,
        }
    }
}

/// Every row-lock wait between sessions on the master and on the
/// synchronous slave; `None` when a node could not be asked.
async fn waits_on_both(
    shared: &Shared,
    master: &Node,
    sync: &Node,
    connections: &mut HashMap<String, Conn>,
) -> Option<Vec<Wait>> {
    let on_master = row_lock_waits(master, connections).await?;
    if on_master.is_empty() {
        return Some(Vec::new());
    }
    let on_sync = row_lock_waits(sync, connections).await?;
    let threads = shared.registry.threads();
    let by_master: HashMap<u32, u32> = threads
        .iter()
        .filter_map(|t| Some((t.master_thread?, t.id)))
        .collect();
    let by_sync: HashMap<u32, u32> = threads
        .iter()
        .filter_map(|t| match &t.sync_thread {
            Some((node, thread)) if *node == sync.name => Some((*thread, t.id)),
            _ => None,
        })
        .collect();
    let sessions = |pairs: Vec<(u32, u32)>, by: &HashMap<u32, u32>, side: Side| {
        pairs
            .into_iter()
            .filter_map(|(waiting, holder)| {
                Some(Wait {
                    waiting: *by.get(&waiting)?,
                    holder: *by.get(&holder)?,
                    side,
                })
            })
            .collect::<Vec<_>>()
    };
    let mut waits = sessions(on_master, &by_master, Side::Master);
    waits.extend(sessions(on_sync, &by_sync, Side::Sync));
    Some(waits)
}

/// (waiting thread, blocking thread) for every row-lock wait on `node`,
/// through an admin connection kept between looks.
async fn row_lock_waits(
    node: &Node,
    connections: &mut HashMap<String, Conn>,
) -> Option<Vec<(u32, u32)>> {
    let conn = match connections.entry(node.name.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => match node.connect_admin().await {
            Ok(conn) => e.insert(conn),
            Err(err) => {
                debug!(node = %node.name, error = %err, "cannot ask for lock waits");
                return None;
            }
        },
    };
    match conn.query::<(u32, u32), _>(control::ROW_LOCK_WAITS).await {
        Ok(waits) => Some(waits),
        Err(err) => {
            debug!(node = %node.name, error = %err, "cannot read lock waits");
            connections.remove(&node.name);
            None
        }
    }
}

/// The session to interrupt when `waits` hold a cycle through both nodes:
/// one that waits on the master in it (its statement passed B, and holds
/// there what the other waits for). The smallest id, so that two looks
/// at the same cycle name the same victim.
fn victim_of_a_cycle(waits: &[Wait]) -> Option<u32> {
    let mut victims: Vec<u32> = waits
        .iter()
        .filter(|w| w.side == Side::Master)
        .filter(|w| crosses_nodes_back_to(waits, w))
        .map(|w| w.waiting)
        .collect();
    victims.sort_unstable();
    victims.first().copied()
}

/// Whether `start` (a wait on the master) is part of a cycle that also
/// waits on the synchronous slave: a path of waits from `start`'s holder
/// back to its waiting session, through at least one wait on B.
fn crosses_nodes_back_to(waits: &[Wait], start: &Wait) -> bool {
    // (session, through B yet)
    let mut seen: HashSet<(u32, bool)> = HashSet::new();
    let mut stack = vec![(start.holder, false)];
    while let Some((session, via_sync)) = stack.pop() {
        if session == start.waiting && via_sync {
            return true;
        }
        if !seen.insert((session, via_sync)) {
            continue;
        }
        for w in waits.iter().filter(|w| w.waiting == session) {
            stack.push((w.holder, via_sync || w.side == Side::Sync));
        }
    }
    false
}

/// Interrupts `victim`'s statement on the master; its session answers
/// 1213 (`registry::take_deadlock_victim`).
async fn interrupt(
    shared: &Shared,
    master: &Node,
    victim: u32,
    connections: &mut HashMap<String, Conn>,
) {
    let Some(thread) = shared
        .registry
        .threads()
        .into_iter()
        .find(|t| t.id == victim)
        .and_then(|t| t.master_thread)
    else {
        return;
    };
    warn!(
        session = victim,
        master_thread = thread,
        "a lock cycle across the master and the synchronous slave: \
         interrupting this session's statement on the master (it gets 1213)"
    );
    shared.registry.mark_deadlock_victim(victim);
    crate::metrics::get().lock_cycles_broken.inc();
    let Some(conn) = connections.get_mut(&master.name) else {
        return;
    };
    if let Err(err) = conn.query_drop(control::kill_query(thread)).await {
        warn!(error = %err, "cannot interrupt a lock cycle's victim");
        shared.registry.take_deadlock_victim(victim);
        connections.remove(&master.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(waiting: u32, holder: u32, side: Side) -> Wait {
        Wait {
            waiting,
            holder,
            side,
        }
    }

    #[test]
    fn a_cycle_through_both_nodes_names_the_session_waiting_on_the_master() {
        // The admin (7) passed B and waits on A for the worker (3), whose
        // write waits on B for the admin.
        let waits = [wait(7, 3, Side::Master), wait(3, 7, Side::Sync)];
        assert_eq!(victim_of_a_cycle(&waits), Some(7));
        // Longer: 7 waits on A for 3, 3 on A for 5, 5 on B for 7.
        let waits = [
            wait(7, 3, Side::Master),
            wait(3, 5, Side::Master),
            wait(5, 7, Side::Sync),
        ];
        assert_eq!(victim_of_a_cycle(&waits), Some(3));
    }

    #[test]
    fn waits_without_a_cycle_through_both_nodes_name_no_one() {
        // Plain queueing on each node.
        let waits = [wait(7, 3, Side::Master), wait(8, 3, Side::Sync)];
        assert_eq!(victim_of_a_cycle(&waits), None);
        // A cycle on the master alone is InnoDB's to break.
        let waits = [wait(7, 3, Side::Master), wait(3, 7, Side::Master)];
        assert_eq!(victim_of_a_cycle(&waits), None);
        assert_eq!(victim_of_a_cycle(&[]), None);
    }
}
