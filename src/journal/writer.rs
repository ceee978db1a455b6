//! The journal's single writer: group commit with a real fsync.
//!
//! sled 0.34 must not be flushed from several tasks at once (concurrent
//! `flush_async` deadlocks, sled issue 1308), and its `flush` only calls
//! `sync_file_range`, which neither flushes the device cache nor syncs
//! metadata. So one thread takes every pending write, applies them all,
//! flushes once, then fsyncs the files sled wrote, and only then tells the
//! waiting sessions their entries are durable. Concurrent sessions share one
//! flush per batch.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::entry::{Entry, NodeResult};
use super::shipping::{
    acknowledge, Ack, Shipment, ShipmentSender, ShippedChange, ShippedTree, ToShip,
};
use tracing::{debug, error};

/// Most writes taken into one batch.
const MAX_BATCH: usize = 4096;

/// Which tree a write goes to.
#[derive(Debug, Clone, Copy)]
pub enum TreeName {
    Entries,
    Commits,
    /// Node name → why it is quarantined (empty value: removed).
    Nodes,
    /// No tree: a barrier, acknowledged once everything sent before it is
    /// applied and flushed.
    Barrier,
    /// A node's result (the value) appended to the entry under the key, in
    /// this thread, so that nodes reporting at the same time lose nothing.
    EntryResult,
    /// Retention: the entry under the key is removed.
    RemoveEntry,
    /// Retention: the commit record under the key is removed.
    RemoveCommit,
    /// A standby: a value the active stored, copied.
    Copied(ShippedTree),
    /// A standby: a key the active removed.
    CopiedRemoval(ShippedTree),
    /// A standby that starts copying anew: every tree is emptied.
    ClearAll,
}

pub struct Write {
    pub tree: TreeName,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Told once the write is durable (or why it is not).
    pub durable: Option<oneshot::Sender<Result<(), String>>>,
}

pub struct Writer {
    pub db: sled::Db,
    pub entries: sled::Tree,
    pub commits: sled::Tree,
    pub nodes: sled::Tree,
    pub dir: PathBuf,
    pub fsynced_blobs: HashSet<OsString>,
    /// sled's log file, opened once for its fsyncs.
    pub log: Option<File>,
    /// Counts finished batches: the tail appliers wait on it.
    pub batches: watch::Sender<u64>,
    /// Once a flush failed nothing more is acknowledged: the journal's state
    /// on disk is unknown. Shared, so that sessions refuse writes up front.
    pub failed: Arc<OnceLock<String>>,
    /// Set once a standby may follow (`Journal::ship_to`): each batch goes
    /// there, with the acknowledgements its waiters are owed.
    pub shipping: Arc<Mutex<Option<ShipmentSender>>>,
}

/// What applying one write changed.
enum Applied {
    /// Nothing stored (a barrier, or a result for an entry already gone).
    Nothing,
    /// The write's value stored under its key.
    Set(ShippedTree),
    /// The write's key removed.
    Removed(ShippedTree),
    /// A result appended: the entry as stored now.
    Appended(Vec<u8>),
}

impl Applied {
    /// The change as a standby receives it (copied only when one may).
    fn shipped(self, write: &Write) -> Option<ShippedChange> {
        let (tree, value) = match self {
            Applied::Nothing => return None,
            Applied::Set(tree) => (tree, Some(write.value.clone())),
            Applied::Removed(tree) => (tree, None),
            Applied::Appended(entry) => (ShippedTree::Entries, Some(entry)),
        };
        Some(ShippedChange {
            tree,
            key: write.key.clone(),
            value,
        })
    }
}

impl Writer {
    /// Runs until every sender is gone; the last batch is flushed too.
    pub fn run(mut self, rx: Receiver<Write>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            self.write_batch(batch);
        }
        // Closing: what was applied without a flush reaches the disk now.
        if self.failed.get().is_none() {
            if let Err(e) = self.apply_ship_and_flush(&[], true, None, 0) {
                error!(error = %e, "journal: the final flush failed");
            }
        }
        debug!("journal writer stopped");
    }

    fn write_batch(&mut self, batch: Vec<Write>) {
        let started = Instant::now();
        let size = batch.len();
        // A batch nobody waits for is applied without a flush: it becomes
        // durable with the next flushed batch (sled also flushes by itself
        // every half second). Writes are applied in order, so a flushed batch
        // always covers every earlier write.
        let must_flush = batch.iter().any(|w| w.durable.is_some());
        // Read once: the batch is shipped whole or not at all.
        let shipping = self.shipping.lock().ok().and_then(|s| s.clone());
        let number = *self.batches.borrow() + 1;
        let outcome = self.apply_ship_and_flush(&batch, must_flush, shipping.as_ref(), number);
        if let Err(e) = &outcome {
            error!(error = %e, "journal write failed: writes are refused from now on");
            let _ = self.failed.set(e.clone());
        }
        let outcome = match (self.failed.get(), outcome) {
            (Some(e), _) => Err(e.clone()),
            (None, Ok(())) => Ok(()),
            (None, Err(e)) => Err(e),
        };
        self.batches.send_modify(|n| *n += 1);
        let acks: Vec<_> = batch.into_iter().filter_map(|w| w.durable).collect();
        match outcome {
            Ok(()) => Self::acknowledge(shipping, number, acks),
            Err(e) => {
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
        }
        let m = crate::metrics::get();
        m.journal_batches.inc();
        m.journal_entries.inc_by(size as u64);
        m.journal_batch_size.observe(size as f64);
        if must_flush {
            m.journal_flush_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        debug!(
            size,
            flushed = must_flush,
            micros = started.elapsed().as_micros() as u64,
            "journal batch written"
        );
    }

    /// A batch is durable here: its waiters are told so, or, when a standby
    /// may follow, they go to the shipping side, which tells them once a
    /// standby has the batch too.
    fn acknowledge(shipping: Option<ShipmentSender>, batch: u64, acks: Vec<Ack>) {
        let unshipped = match shipping {
            Some(sender) => match sender.send(ToShip::Durable { batch, acks }) {
                Ok(()) => return,
                // The shipping side is gone (shutting down): what is on
                // this disk is all there is.
                Err(returned) => match returned.0 {
                    ToShip::Durable { acks, .. } => acks,
                    ToShip::Batch(_) => Vec::new(),
                },
            },
            None => acks,
        };
        acknowledge(unshipped);
    }

    /// Applies the batch; with a standby that may follow, hands it over
    /// before the local flush, so that both disks sync at once.
    fn apply_ship_and_flush(
        &mut self,
        batch: &[Write],
        flush: bool,
        shipping: Option<&ShipmentSender>,
        number: u64,
    ) -> Result<(), String> {
        let changes = self.apply_batch(batch, shipping.is_some())?;
        if let Some(sender) = shipping {
            // Gone (shutting down): the waiters are told from this disk.
            let _ = sender.send(ToShip::Batch(Shipment {
                batch: number,
                changes,
                flushed: flush,
            }));
        }
        if flush {
            self.db.flush().map_err(|e| format!("sled flush: {e}"))?;
            self.fsync_files().map_err(|e| format!("fsync: {e}"))?;
        }
        Ok(())
    }

    fn apply_batch(&mut self, batch: &[Write], ships: bool) -> Result<Vec<ShippedChange>, String> {
        if let Some(e) = self.failed.get() {
            return Err(e.clone());
        }
        // Alone (no `[ha]`), nothing is copied for shipping.
        let mut changes = Vec::new();
        for write in batch {
            let applied = self.apply(write)?;
            if ships {
                changes.extend(applied.shipped(write));
            }
        }
        Ok(changes)
    }

    fn apply(&self, write: &Write) -> Result<Applied, String> {
        let key = write.key.as_slice();
        let insert = |tree: &sled::Tree, shipped: ShippedTree| {
            tree.insert(key, write.value.as_slice())
                .map_err(|e| format!("sled insert: {e}"))?;
            Ok(Applied::Set(shipped))
        };
        let remove = |tree: &sled::Tree, shipped: ShippedTree| {
            tree.remove(key).map_err(|e| format!("sled remove: {e}"))?;
            Ok(Applied::Removed(shipped))
        };
        match write.tree {
            TreeName::Entries => {
                let previous = self
                    .entries
                    .insert(key, write.value.as_slice())
                    .map_err(|e| format!("sled insert: {e}"))?;
                count_entry_write(previous.is_some());
                Ok(Applied::Set(ShippedTree::Entries))
            }
            TreeName::Commits => insert(&self.commits, ShippedTree::Commits),
            TreeName::Nodes if write.value.is_empty() => remove(&self.nodes, ShippedTree::Nodes),
            TreeName::Nodes => insert(&self.nodes, ShippedTree::Nodes),
            TreeName::Barrier => Ok(Applied::Nothing),
            TreeName::RemoveEntry => remove(&self.entries, ShippedTree::Entries),
            TreeName::RemoveCommit => remove(&self.commits, ShippedTree::Commits),
            TreeName::EntryResult => Ok(match self.append_result(key, &write.value)? {
                Some(entry) => {
                    count_entry_write(true);
                    Applied::Appended(entry)
                }
                None => Applied::Nothing,
            }),
            TreeName::Copied(tree) => insert(self.tree(tree), tree),
            TreeName::CopiedRemoval(tree) => remove(self.tree(tree), tree),
            TreeName::ClearAll => {
                for tree in [&self.entries, &self.commits, &self.nodes] {
                    tree.clear().map_err(|e| format!("sled clear: {e}"))?;
                }
                Ok(Applied::Nothing)
            }
        }
    }

    fn tree(&self, tree: ShippedTree) -> &sled::Tree {
        match tree {
            ShippedTree::Entries => &self.entries,
            ShippedTree::Commits => &self.commits,
            ShippedTree::Nodes => &self.nodes,
        }
    }

    /// Appends a node's result to the stored entry; returns the entry as
    /// stored now (None: the entry is gone).
    fn append_result(&self, key: &[u8], result: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let Some(stored) = self
            .entries
            .get(key)
            .map_err(|e| format!("sled get: {e}"))?
        else {
            return Ok(None);
        };
        let mut entry: Entry =
            serde_json::from_slice(&stored).map_err(|e| format!("entry: {e}"))?;
        let result: NodeResult =
            serde_json::from_slice(result).map_err(|e| format!("result: {e}"))?;
        entry.results.push(result);
        let value = serde_json::to_vec(&entry).map_err(|e| format!("entry: {e}"))?;
        self.entries
            .insert(key, value.as_slice())
            .map_err(|e| format!("sled insert: {e}"))?;
        Ok(Some(value))
    }

    /// fsyncs sled's log file, and blob files it created since the last batch.
    fn fsync_files(&mut self) -> std::io::Result<()> {
        let log = match self.log.take() {
            Some(log) => log,
            None => File::open(self.dir.join("db"))?,
        };
        log.sync_data()?;
        self.log = Some(log);
        let blobs = self.dir.join("blobs");
        let mut new_blob = false;
        if let Ok(listing) = std::fs::read_dir(&blobs) {
            let mut present = HashSet::new();
            for item in listing {
                let name = item?.file_name();
                if !self.fsynced_blobs.contains(&name) {
                    if !sync_if_present(&blobs.join(&name))? {
                        continue;
                    }
                    new_blob = true;
                }
                present.insert(name);
            }
            // sled deletes blobs it no longer needs: forget those.
            self.fsynced_blobs = present;
        }
        if new_blob {
            fsync_dir(&blobs)?;
        }
        Ok(())
    }
}

/// Counts a whole entry written (`rewrite`: over one already stored).
fn count_entry_write(rewrite: bool) {
    let m = crate::metrics::get();
    m.journal_entry_writes.inc();
    if rewrite {
        m.journal_entry_rewrites.inc();
    }
}

/// fsyncs a file that sled may delete at any moment (a blob it no longer
/// needs, removed between the listing and the open): gone, it needs no
/// sync and is no failure. Whether it was there.
fn sync_if_present(path: &Path) -> std::io::Result<bool> {
    match File::open(path) {
        Ok(file) => file.sync_all().map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A directory's fsync makes the files created in it durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::sync_if_present;

    /// A blob sled deleted between the listing and the sync failed the
    /// whole journal with ENOENT (seen in a bench run: every write after
    /// it refused with 1026).
    #[test]
    fn a_blob_deleted_before_its_sync_is_no_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blob = dir.path().join("1");
        std::fs::write(&blob, b"value").expect("write");
        assert!(sync_if_present(&blob).expect("synced"));
        std::fs::remove_file(&blob).expect("remove");
        assert!(!sync_if_present(&blob).expect("gone is fine"));
    }
}
