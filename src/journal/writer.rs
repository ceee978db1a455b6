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

use super::records::{self, EntryRecords};
use super::shipping::{
    acknowledge, Ack, Shipment, ShipmentSender, ShippedChange, ShippedTree, ToShip,
};
use tracing::{debug, error};

/// Most writes taken into one batch.
const MAX_BATCH: usize = 4096;

/// Which tree a write goes to.
#[derive(Debug, Clone, Copy)]
pub enum TreeName {
    /// An entry as it is now (`Write::entry`): its body, state and results
    /// (`records`), each stored only where it differs.
    Entry,
    Commits,
    /// Node name → why it is quarantined (empty value: removed).
    Nodes,
    /// No tree: a barrier, acknowledged once everything sent before it is
    /// applied and flushed.
    Barrier,
    /// A node's result (the value) appended to the entry under the key, in
    /// this thread, so that nodes reporting at the same time lose nothing.
    EntryResult,
    /// Retention: the entry under the key is removed, with its records.
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
    /// `TreeName::Entry`: what to store.
    pub entry: Option<Box<EntryRecords>>,
    /// Told once the write is durable (or why it is not).
    pub durable: Option<oneshot::Sender<Result<(), String>>>,
}

impl Write {
    /// Whether applying it may resolve (or add, or remove) a commit record.
    fn changes_commits(&self) -> bool {
        matches!(
            self.tree,
            TreeName::Commits
                | TreeName::RemoveCommit
                | TreeName::Copied(ShippedTree::Commits)
                | TreeName::CopiedRemoval(ShippedTree::Commits)
                | TreeName::ClearAll
        )
    }
}

pub struct Writer {
    pub db: sled::Db,
    pub entries: sled::Tree,
    /// Each entry's state and results (`records`).
    pub outcomes: sled::Tree,
    pub commits: sled::Tree,
    pub nodes: sled::Tree,
    pub dir: PathBuf,
    pub fsynced_blobs: HashSet<OsString>,
    /// sled's log file, opened once for its fsyncs.
    pub log: Option<File>,
    /// Counts finished batches (the numbers a standby follows).
    pub batches: watch::Sender<u64>,
    /// Counts finished batches that wrote commit records: the tail
    /// appliers wait on it for the next commit's resolution. Most batches
    /// hold only entries of statements still in their transaction, and
    /// waking every tail for each of them cost a thread switch per client
    /// statement on a machine whose cores the nodes need.
    pub commits_changed: watch::Sender<u64>,
    /// Once a flush failed nothing more is acknowledged: the journal's state
    /// on disk is unknown. Shared, so that sessions refuse writes up front.
    pub failed: Arc<OnceLock<String>>,
    /// Set once a standby may follow (`Journal::ship_to`): each batch goes
    /// there, with the acknowledgements its waiters are owed.
    pub shipping: Arc<Mutex<Option<ShipmentSender>>>,
}

/// What a batch changed, as a standby receives it (collected only when
/// one may follow).
struct Changes {
    ships: bool,
    list: Vec<ShippedChange>,
}

impl Changes {
    fn set(&mut self, tree: ShippedTree, key: &[u8], value: &[u8]) {
        if self.ships {
            self.list.push(ShippedChange {
                tree,
                key: key.to_vec(),
                value: Some(value.to_vec()),
            });
        }
    }

    fn removed(&mut self, tree: ShippedTree, key: &[u8]) {
        if self.ships {
            self.list.push(ShippedChange {
                tree,
                key: key.to_vec(),
                value: None,
            });
        }
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
        if outcome.is_err() || batch.iter().any(Write::changes_commits) {
            self.commits_changed.send_modify(|n| *n += 1);
        }
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
        let mut changes = Changes {
            ships,
            list: Vec::new(),
        };
        for write in batch {
            self.apply(write, &mut changes)
                .map_err(|e| format!("sled: {e}"))?;
        }
        Ok(changes.list)
    }

    fn apply(&self, write: &Write, changes: &mut Changes) -> Result<(), sled::Error> {
        let key = write.key.as_slice();
        match write.tree {
            TreeName::Entry => {
                if let Some(records) = &write.entry {
                    self.store_entry(key, records, changes)?;
                }
            }
            TreeName::Commits => self.set(ShippedTree::Commits, key, &write.value, changes)?,
            TreeName::Nodes if write.value.is_empty() => {
                self.remove(ShippedTree::Nodes, key, changes)?
            }
            TreeName::Nodes => self.set(ShippedTree::Nodes, key, &write.value, changes)?,
            TreeName::Barrier => {}
            TreeName::RemoveEntry => self.remove_entry(key, changes)?,
            TreeName::RemoveCommit => self.remove(ShippedTree::Commits, key, changes)?,
            TreeName::EntryResult => self.append_result(key, &write.value, changes)?,
            TreeName::Copied(tree) => self.set(tree, key, &write.value, changes)?,
            TreeName::CopiedRemoval(tree) => self.remove(tree, key, changes)?,
            TreeName::ClearAll => {
                for tree in [&self.entries, &self.outcomes, &self.commits, &self.nodes] {
                    tree.clear()?;
                }
            }
        }
        Ok(())
    }

    fn set(
        &self,
        tree: ShippedTree,
        key: &[u8],
        value: &[u8],
        changes: &mut Changes,
    ) -> Result<(), sled::Error> {
        self.tree(tree).insert(key, value)?;
        changes.set(tree, key, value);
        Ok(())
    }

    fn remove(
        &self,
        tree: ShippedTree,
        key: &[u8],
        changes: &mut Changes,
    ) -> Result<(), sled::Error> {
        self.tree(tree).remove(key)?;
        changes.removed(tree, key);
        Ok(())
    }

    fn remove_if_present(
        &self,
        tree: ShippedTree,
        key: &[u8],
        changes: &mut Changes,
    ) -> Result<(), sled::Error> {
        if self.tree(tree).contains_key(key)? {
            self.remove(tree, key, changes)?;
        }
        Ok(())
    }

    /// Stores an entry as it is now (`records`): the first write stores
    /// body and outcome in one value; a later one only a changed outcome,
    /// which replaces the tails' results too (the entry written is the
    /// whole truth, as when entries were stored whole). A changed body (it
    /// never changes on the write path) rewrites the entry, counted.
    fn store_entry(
        &self,
        id: &[u8],
        entry: &EntryRecords,
        changes: &mut Changes,
    ) -> Result<(), sled::Error> {
        let Some(stored) = self.entries.get(id)? else {
            count_entry_write(false);
            return self.set(ShippedTree::Entries, id, &entry.framed(), changes);
        };
        let outcome_key = records::outcome_key(id);
        let first_outcome = match records::Stored::of(&stored) {
            Ok(records::Stored::Framed { body, outcome }) if body == entry.body.as_slice() => {
                outcome.to_vec()
            }
            // Another body, or an entry stored whole by an earlier version.
            _ => {
                count_entry_write(true);
                self.set(ShippedTree::Entries, id, &entry.framed(), changes)?;
                self.remove_if_present(ShippedTree::Outcomes, &outcome_key, changes)?;
                return self.remove_tail_results(id, changes);
            }
        };
        let current = self.outcomes.get(&outcome_key)?;
        let current = current.as_deref().unwrap_or(&first_outcome);
        if current == entry.outcome.as_slice() {
            return Ok(());
        }
        self.set(ShippedTree::Outcomes, &outcome_key, &entry.outcome, changes)?;
        self.remove_tail_results(id, changes)
    }

    /// Removes the tails' results (contiguous from position 0).
    fn remove_tail_results(&self, id: &[u8], changes: &mut Changes) -> Result<(), sled::Error> {
        let mut position = 0;
        loop {
            let key = records::result_key(id, position);
            if !self.outcomes.contains_key(&key)? {
                return Ok(());
            }
            self.remove(ShippedTree::Outcomes, &key, changes)?;
            position += 1;
        }
    }

    /// How many results the entry has stored: positions are contiguous
    /// from 0, so the first one missing. Probed with point reads: a sled
    /// range or prefix scan copies the whole leaf it starts in, which on
    /// this thread, once per write, cost more than the rewrites it saved.
    fn stored_results(&self, id: &[u8]) -> Result<u32, sled::Error> {
        let mut count = 0;
        while self.outcomes.contains_key(records::result_key(id, count))? {
            count += 1;
        }
        Ok(count)
    }

    /// Appends a node's result to a stored entry, at the next position (an
    /// entry already gone gets nothing).
    fn append_result(
        &self,
        id: &[u8],
        result: &[u8],
        changes: &mut Changes,
    ) -> Result<(), sled::Error> {
        if !self.entries.contains_key(id)? {
            return Ok(());
        }
        let next = self.stored_results(id)?;
        self.set(
            ShippedTree::Outcomes,
            &records::result_key(id, next),
            result,
            changes,
        )
    }

    /// Removes an entry and every record of it.
    fn remove_entry(&self, id: &[u8], changes: &mut Changes) -> Result<(), sled::Error> {
        self.remove(ShippedTree::Entries, id, changes)?;
        let keys: Vec<sled::IVec> = self
            .outcomes
            .scan_prefix(records::prefix(id))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.remove(ShippedTree::Outcomes, &key, changes)?;
        }
        Ok(())
    }

    fn tree(&self, tree: ShippedTree) -> &sled::Tree {
        match tree {
            ShippedTree::Entries => &self.entries,
            ShippedTree::Outcomes => &self.outcomes,
            ShippedTree::Commits => &self.commits,
            ShippedTree::Nodes => &self.nodes,
        }
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

/// Counts an entry's body written (`rewrite`: over another one stored).
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
