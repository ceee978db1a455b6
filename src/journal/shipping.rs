//! What the journal hands to a standby (`ha`): each batch the writer
//! applied, as the key-value changes it made, in the writer's order.
//!
//! Every change is shipped as the value it left (an appended node result
//! travels as its record), so that applying a change twice
//! is harmless: a standby that joins copies the trees while batches go on
//! (a copy that may already hold some of them) and then applies every batch
//! from the one it joined at, and ends with the active's trees exactly.
//!
//! When shipping is on, the writer hands each batch over as soon as it is
//! applied, before its own flush, so that the standby's sync and the
//! active's overlap; once the batch is durable on the active's disk the
//! writer hands over its waiters too, instead of telling them, and the
//! shipping side tells them once a standby in step has the batch on its
//! disk as well (or at once when no standby is in step).

use tokio::sync::oneshot;

/// One of the journal's trees, as shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShippedTree {
    Entries = 1,
    Commits = 2,
    Nodes = 3,
    /// Entries' states and results (`records`).
    Outcomes = 4,
}

impl ShippedTree {
    pub fn from_byte(byte: u8) -> Option<ShippedTree> {
        match byte {
            1 => Some(ShippedTree::Entries),
            2 => Some(ShippedTree::Commits),
            3 => Some(ShippedTree::Nodes),
            4 => Some(ShippedTree::Outcomes),
            _ => None,
        }
    }
}

/// One change to one key: the value it holds now, or None when removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedChange {
    pub tree: ShippedTree,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A writer's acknowledgement, owed to a session waiting for durability.
pub type Ack = oneshot::Sender<Result<(), String>>;

/// One batch the writer applied; `flushed`: it is being made durable
/// (someone waits for it).
pub struct Shipment {
    /// The writer's batch counter after this batch (see `Journal::batches`).
    pub batch: u64,
    pub changes: Vec<ShippedChange>,
    pub flushed: bool,
}

/// What the writer hands to the shipping side, in its order.
pub enum ToShip {
    /// A batch, applied and not yet flushed here: for the standbys.
    Batch(Shipment),
    /// The batch is durable on this disk: its waiters, owed once a standby
    /// in step has it too.
    Durable { batch: u64, acks: Vec<Ack> },
}

/// Tells every waiting session its write is durable.
pub fn acknowledge(acks: Vec<Ack>) {
    for ack in acks {
        let _ = ack.send(Ok(()));
    }
}

/// Where the writer sends each batch once shipping is on.
pub type ShipmentSender = tokio::sync::mpsc::UnboundedSender<ToShip>;

/// Whether this lockstep instance may still act on the nodes (`ha`: while
/// its lease holds). Asked right before a commit leaves for a node.
pub type MayAct = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;
