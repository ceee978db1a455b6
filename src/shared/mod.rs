//! The state every part of a running lockstep shares: the users, the
//! chain (nodes, roles, journal), the client connection registry, the
//! failover state and the policies. A low floor: the front end, failover and
//! the admin endpoint all read it; it imports none of them.

pub mod instances;
pub mod registry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

use crate::auth::Credential;
use crate::backend::Node;
use crate::chain::Chain;
use registry::Registry;

/// What every session shares.
pub struct Shared {
    pub users: HashMap<Vec<u8>, Credential>,
    /// The nodes, their roles, the journal: see `chain`.
    pub chain: Arc<Chain>,
    pub registry: Registry,
    /// The names through which a read can write (stored functions, views).
    pub stored_functions: crate::chain::stored_functions::StoredFunctions,
    /// The triggers and routines each node would run with its own values:
    /// the statements that run them are refused.
    pub unrepeatable_bodies: crate::chain::unrepeatable_bodies::UnrepeatableBodies,
    /// The order `UPDATE`/`DELETE … LIMIT` without `ORDER BY` is given.
    pub table_keys: crate::chain::table_keys::TableKeys,
    /// The top value of each table's AUTO_INCREMENT column.
    pub column_tops: crate::protocol::insert_id::ColumnTops,
    /// `[compare]`: retries and policies.
    pub compare: crate::config::Compare,
    /// Node health and the master's replacement.
    pub failover: Failover,
    /// 1: writes are refused while no slave is synchronous.
    pub min_sync_slaves: u8,
    /// With `[ha]`: this instance's name and its standbys.
    pub instances: instances::Instances,
}

impl Shared {
    /// The node in the synchronous role, if any.
    pub fn sync_node(&self) -> Option<Node> {
        self.chain.roles.sync()
    }

    pub fn master_node(&self) -> Node {
        self.chain.roles.master()
    }
}

/// What sessions and the health monitor share about failover.
pub struct Failover {
    /// A session saw the master's connection break: check now.
    pub(crate) wake: Notify,
    /// One failover at a time.
    pub(crate) running: Mutex<()>,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Failover {
    pub fn new(interval: Duration, timeout: Duration) -> Failover {
        Failover {
            wake: Notify::new(),
            running: Mutex::new(()),
            interval,
            timeout,
        }
    }

    /// A session lost its connection to `node`: when it is the master, the
    /// health monitor checks it at once instead of at its next tick.
    pub fn suspect(&self, node: &str) {
        tracing::debug!(%node, "connection to a node broke; checking the master now");
        self.wake.notify_one();
    }
}
