//! The durable journal (sled): every write-path statement is here before it
//! is sent to any node, and every commit sequence number says which
//! statements it committed. The tail appliers replay from it.
//!
//! Trees: `entries` (requestId, 16 bytes, sorting by time as ids are UUID
//! v7 → the entry as first written, `records.rs`), `outcomes` (what changed
//! in an entry since, and the tails' results, as small records of their own),
//! `commits` (sequence number, big-endian u64 → `CommitRecord` JSON) and
//! `nodes`. All writes go through one writer thread (`writer.rs`) that
//! batches and fsyncs.

pub mod entry;
pub mod inspect;
mod records;
pub mod shipping;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

pub use entry::{
    BinlogMarks, BinlogPlace, CommitRecord, CommitState, Context, Entry, EntryKind, EntryState,
    FileContent, NodeResult, NodeThread, Outcome, Param, Rows, SessionState, SqlText, Statement,
    Verdict,
};
use records::EntryRecords;
use shipping::{MayAct, ShipmentSender, ShippedChange, ShippedTree};
use writer::{TreeName, Write, Writer};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal in {dir}: {reason}")]
    Open { dir: PathBuf, reason: String },
    #[error("the journal cannot write: {0}")]
    Write(String),
    #[error("the journal is unreadable: {0}")]
    Read(String),
}

/// sled's page cache for the journal.
const JOURNAL_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The `nodes` tree's key for the current master (node names are the other
/// keys; no node name starts with a NUL byte).
const MASTER_KEY: &[u8] = b"\0master";
/// The journal's lineage (in the nodes tree, so that a standby's copy
/// carries it): made once, when a journal starts empty; the journal an
/// instance copied from the active, or served as the active, has the same.
/// etcd names the lineage of the journal that holds every acknowledged
/// commit (`ha::coordinator`): an instance whose directory was lost and
/// started afresh has another one, and does not take over with it.
const LINEAGE_KEY: &[u8] = b"\0lineage";
/// The `nodes` tree's key for the last commit retention removed.
const PURGED_KEY: &[u8] = b"\0purged";

fn dir_size(dir: &Path) -> u64 {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return 0;
    };
    listing
        .filter_map(Result::ok)
        .map(|item| match item.metadata() {
            Ok(m) if m.is_dir() => dir_size(&item.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub commits: u64,
    pub entries: u64,
    /// The last commit number removed (0: none).
    pub through: u64,
}

/// A handle on the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// None once closed.
    tx: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    entries: sled::Tree,
    outcomes: sled::Tree,
    commits: sled::Tree,
    nodes: sled::Tree,
    /// The last commit sequence number handed out. Taking a number and
    /// queueing its record happen under this lock, so records reach the
    /// writer in sequence order and no number is ever skipped silently.
    last_seq: Mutex<u64>,
    batches: watch::Receiver<u64>,
    commits_changed: watch::Receiver<u64>,
    /// Set by the writer when a write or flush failed: nothing is
    /// acknowledged after that.
    failed: Arc<OnceLock<String>>,
    /// Where the writer ships its batches (`ship_to`).
    shipping: Arc<Mutex<Option<ShipmentSender>>>,
    /// Set with standbys: whether this instance still holds its lease.
    may_act: OnceLock<MayAct>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and starts its writer.
    /// Opens a journal that must exist already (tools that read one).
    pub fn open_existing(dir: &Path) -> Result<Journal, JournalError> {
        if !dir.join("db").exists() {
            return Err(JournalError::Open {
                dir: dir.to_path_buf(),
                reason: "no journal there".into(),
            });
        }
        Journal::open(dir)
    }

    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let open_err = |reason: String| JournalError::Open {
            dir: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let db = sled::Config::new()
            .path(dir)
            // sled's default page cache is 1 GiB: lockstep reads recent
            // entries (tails, SHOW LOCKSTEP REQUEST), not the whole journal.
            .cache_capacity(JOURNAL_CACHE_BYTES)
            .open()
            .map_err(|e| open_err(e.to_string()))?;
        let entries = db
            .open_tree("entries")
            .map_err(|e| open_err(e.to_string()))?;
        let outcomes = db
            .open_tree("outcomes")
            .map_err(|e| open_err(e.to_string()))?;
        let commits = db
            .open_tree("commits")
            .map_err(|e| open_err(e.to_string()))?;
        let nodes = db.open_tree("nodes").map_err(|e| open_err(e.to_string()))?;
        if nodes
            .get(LINEAGE_KEY)
            .map_err(|e| open_err(e.to_string()))?
            .is_none()
        {
            // Before the writer starts: nothing else writes yet.
            let lineage = uuid::Uuid::new_v4().to_string();
            nodes
                .insert(LINEAGE_KEY, lineage.as_bytes())
                .map_err(|e| open_err(e.to_string()))?;
            db.flush().map_err(|e| open_err(e.to_string()))?;
        }
        writer::fsync_dir(dir).map_err(|e| open_err(e.to_string()))?;
        let last_seq = match commits.last().map_err(|e| open_err(e.to_string()))? {
            Some((key, _)) => {
                seq_from_key(&key).ok_or_else(|| open_err("bad commit key".into()))?
            }
            None => 0,
        };
        let (batches_tx, batches) = watch::channel(0);
        let (commits_changed_tx, commits_changed) = watch::channel(0);
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(OnceLock::new());
        let shipping = Arc::new(Mutex::new(None));
        let writer = Writer {
            db,
            entries: entries.clone(),
            outcomes: outcomes.clone(),
            commits: commits.clone(),
            nodes: nodes.clone(),
            dir: dir.to_path_buf(),
            fsynced_blobs: HashSet::new(),
            log: None,
            batches: batches_tx,
            commits_changed: commits_changed_tx,
            failed: failed.clone(),
            shipping: shipping.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                entries,
                outcomes,
                commits,
                nodes,
                last_seq: Mutex::new(last_seq),
                batches,
                commits_changed,
                failed,
                shipping,
                may_act: OnceLock::new(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops the writer after it has flushed everything sent so far, and
    /// releases the directory (sled locks it while open). Later writes
    /// through any clone fail.
    pub fn close(&self) {
        if let Ok(mut tx) = self.inner.tx.lock() {
            tx.take();
        }
        let writer = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    /// Why the journal refuses writes, once a write or flush failed.
    pub fn failure(&self) -> Option<String> {
        self.inner.failed.get().cloned()
    }

    /// Writes `entry` and waits until it is on disk.
    pub async fn write_durable(&self, entry: &Entry) -> Result<(), JournalError> {
        self.write_flushed(entry)?.wait().await
    }

    /// Writes `entry` with a flush, without waiting for it: the caller does
    /// other work meanwhile and waits on the handle before it relies on it.
    pub fn write_flushed(&self, entry: &Entry) -> Result<Durable, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.send_entry(entry, Some(tx))?;
        Ok(Durable(rx))
    }

    /// Appends a node's result to an entry already journaled, without
    /// waiting. Safe while other nodes report results for the same entry;
    /// a whole-entry `write` must not race with it (the write path writes
    /// entries whole before their commit is resolved, the tails and the
    /// retrier append after).
    pub fn append_result(&self, id: Uuid, result: &NodeResult) {
        let _ = self.send(
            TreeName::EntryResult,
            id.as_bytes().to_vec(),
            encode(result),
            None,
        );
    }

    /// Records (or, with None, clears) that `node` is quarantined, so that
    /// a restart keeps it out; durable once this returns.
    pub async fn set_quarantine(
        &self,
        node: &str,
        reason: Option<&str>,
    ) -> Result<(), JournalError> {
        let value = reason.map(|r| r.as_bytes().to_vec()).unwrap_or_default();
        self.send(TreeName::Nodes, node.as_bytes().to_vec(), value, None)?;
        self.settle().await
    }

    /// Records which node is the master now, so that a restart after a
    /// failover does not hand the role back to a node that is behind;
    /// durable once this returns.
    pub async fn set_master(&self, node: &str) -> Result<(), JournalError> {
        self.send(
            TreeName::Nodes,
            MASTER_KEY.to_vec(),
            node.as_bytes().to_vec(),
            None,
        )?;
        self.settle().await
    }

    /// The master as last journaled (None before the first failover).
    pub fn master(&self) -> Result<Option<String>, JournalError> {
        self.nodes_text(MASTER_KEY)
    }

    /// The journal's lineage (`LINEAGE_KEY`); None only in a standby's
    /// journal between the start of a copy and the copy of that key.
    pub fn lineage(&self) -> Result<Option<String>, JournalError> {
        self.nodes_text(LINEAGE_KEY)
    }

    /// A text value of the `nodes` tree.
    fn nodes_text(&self, key: &[u8]) -> Result<Option<String>, JournalError> {
        let value = self
            .inner
            .nodes
            .get(key)
            .map_err(|e| JournalError::Read(e.to_string()))?;
        Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Bytes the journal's directory holds.
    pub fn size_on_disk(&self) -> u64 {
        dir_size(self.dir())
    }

    /// The last commit number retention removed (0: none); a node that
    /// lacks a commit up to it cannot catch up from this journal.
    pub fn purged_through(&self) -> Result<u64, JournalError> {
        let value = self
            .inner
            .nodes
            .get(PURGED_KEY)
            .map_err(|e| JournalError::Read(e.to_string()))?;
        Ok(value
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Removes the commits numbered up to `through` made before
    /// `older_than_us`, with their entries, and the entries older than that
    /// which no commit will apply (failed, rolled back, reads, session
    /// statements). Durable once this returns.
    pub async fn purge(&self, through: u64, older_than_us: i64) -> Result<Purged, JournalError> {
        let mut purged = Purged::default();
        for record in self.commit_records() {
            let record = record?;
            // A commit still under way stops the pass: nothing after it goes.
            let settled = matches!(record.state, CommitState::Committed | CommitState::Aborted);
            if record.seq > through || !settled {
                break;
            }
            let made = self.entry(record.request_id)?.map_or(0, |e| e.created_us);
            if made >= older_than_us {
                break;
            }
            let mut ids = record.statements.clone();
            if !ids.contains(&record.request_id) {
                ids.push(record.request_id);
            }
            for id in ids {
                self.send(
                    TreeName::RemoveEntry,
                    id.as_bytes().to_vec(),
                    Vec::new(),
                    None,
                )?;
                purged.entries += 1;
            }
            self.send(
                TreeName::RemoveCommit,
                record.seq.to_be_bytes().to_vec(),
                Vec::new(),
                None,
            )?;
            purged.commits += 1;
            purged.through = record.seq;
        }
        let bound = purged.through.max(self.purged_through()?);
        for entry in self.entries() {
            let entry = entry?;
            // Keys are UUID v7: the entries come oldest first.
            if entry.created_us >= older_than_us {
                break;
            }
            let done = match entry.state {
                EntryState::Committed { seq } => seq <= bound,
                EntryState::Pending | EntryState::InTransaction | EntryState::RetryingOnMaster => {
                    false
                }
                EntryState::Failed | EntryState::RolledBack | EntryState::Done => true,
            };
            if done {
                self.send(
                    TreeName::RemoveEntry,
                    entry.id.as_bytes().to_vec(),
                    Vec::new(),
                    None,
                )?;
                purged.entries += 1;
            }
        }
        if purged.through > 0 {
            self.send(
                TreeName::Nodes,
                PURGED_KEY.to_vec(),
                purged.through.to_be_bytes().to_vec(),
                None,
            )?;
        }
        self.settle().await?;
        Ok(purged)
    }

    /// The quarantined nodes and why.
    pub fn quarantines(&self) -> Result<Vec<(String, String)>, JournalError> {
        self.inner
            .nodes
            .iter()
            .filter(|item| !matches!(item, Ok((k, _)) if k.starts_with(b"\0")))
            .map(|item| {
                let (k, v) = item.map_err(|e| JournalError::Read(e.to_string()))?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    /// Waits until everything written before is applied (and flushed), so
    /// that reads see it.
    pub async fn settle(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        self.send(TreeName::Barrier, Vec::new(), Vec::new(), Some(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(JournalError::Write(e)),
            Err(_) => Err(JournalError::Write("the journal writer stopped".into())),
        }
    }

    /// Writes `entry` (a later state of it, results) without waiting: it is
    /// durable with the next batch.
    pub fn write(&self, entry: &Entry) {
        let _ = self.send_entry(entry, None);
    }

    /// Takes the next commit sequence number for `statements`, committed
    /// under `request_id`; its record is `Reserved` until the reservation
    /// is resolved.
    pub fn reserve_commit(
        &self,
        request_id: Uuid,
        statements: Vec<Uuid>,
        serialized: bool,
    ) -> Result<Reservation, JournalError> {
        let mut last = self
            .inner
            .last_seq
            .lock()
            .map_err(|_| JournalError::Write("sequence lock poisoned".into()))?;
        let record = CommitRecord {
            seq: *last + 1,
            request_id,
            statements,
            serialized,
            state: CommitState::Reserved,
        };
        // Flushed: the master is asked to commit under this number only once
        // the number is on disk (see `Reservation::durable`).
        let (tx, rx) = oneshot::channel();
        self.send(
            TreeName::Commits,
            record.seq.to_be_bytes().to_vec(),
            encode(&record),
            Some(tx),
        )?;
        *last = record.seq;
        Ok(Reservation {
            journal: self.clone(),
            record,
            durable: Some(Durable(rx)),
            resolved: false,
        })
    }

    /// Records how a reserved commit ended.
    pub fn resolve_commit(&self, record: &CommitRecord, state: CommitState) {
        let resolved = CommitRecord {
            state,
            ..record.clone()
        };
        let _ = self.send_commit(&resolved);
    }

    /// Makes sure no sequence number below `seq` is handed out again (the
    /// nodes may know numbers the journal lost).
    pub fn advance_seq_past(&self, seq: u64) {
        if let Ok(mut last) = self.inner.last_seq.lock() {
            *last = (*last).max(seq);
        }
    }

    /// The lowest commit number the journal has a record of (u64::MAX when
    /// it has none).
    pub fn first_seq(&self) -> Result<u64, JournalError> {
        let first = self
            .inner
            .commits
            .first()
            .map_err(|e| JournalError::Read(e.to_string()))?;
        Ok(first
            .and_then(|(key, _)| seq_from_key(&key))
            .unwrap_or(u64::MAX))
    }

    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.lock().map(|l| *l).unwrap_or(0)
    }

    pub fn commit_record(&self, seq: u64) -> Result<Option<CommitRecord>, JournalError> {
        let value = self
            .inner
            .commits
            .get(seq.to_be_bytes())
            .map_err(|e| JournalError::Read(e.to_string()))?;
        value.map(|v| decode(&v)).transpose()
    }

    pub fn entry(&self, id: Uuid) -> Result<Option<Entry>, JournalError> {
        let body = self
            .inner
            .entries
            .get(id.as_bytes())
            .map_err(|e| JournalError::Read(e.to_string()))?;
        body.map(|body| self.assemble(id.as_bytes(), &body))
            .transpose()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, JournalError>> + '_ {
        self.inner.entries.iter().map(|item| {
            let (id, value) = item.map_err(|e| JournalError::Read(e.to_string()))?;
            self.assemble(&id, &value)
        })
    }

    /// Every entry, newest first.
    pub fn entries_newest_first(&self) -> impl Iterator<Item = Result<Entry, JournalError>> + '_ {
        self.inner.entries.iter().rev().map(|item| {
            let (id, value) = item.map_err(|e| JournalError::Read(e.to_string()))?;
            self.assemble(&id, &value)
        })
    }

    /// An entry's later outcome and its tails' results, read with point
    /// reads (a sled prefix scan copies the whole leaf it starts in).
    fn records_of(&self, id: &[u8]) -> sled::Result<(Option<sled::IVec>, Vec<sled::IVec>)> {
        let outcomes = &self.inner.outcomes;
        let later = outcomes.get(records::outcome_key(id))?;
        let mut results = Vec::new();
        while let Some(result) = outcomes.get(records::result_key(id, results.len() as u32))? {
            results.push(result);
        }
        Ok((later, results))
    }

    /// An entry from its stored value and its records.
    fn assemble(&self, id: &[u8], value: &[u8]) -> Result<Entry, JournalError> {
        let (later, results) = self
            .records_of(id)
            .map_err(|e| JournalError::Read(e.to_string()))?;
        records::assemble(value, later.as_deref(), &results)
    }

    /// Every commit record, the last number first.
    pub fn commit_records_newest_first(
        &self,
    ) -> impl Iterator<Item = Result<CommitRecord, JournalError>> + '_ {
        self.inner.commits.iter().rev().map(|item| {
            let (_, v) = item.map_err(|e| JournalError::Read(e.to_string()))?;
            decode(&v)
        })
    }

    /// Every commit record, in sequence order.
    pub fn commit_records(&self) -> impl Iterator<Item = Result<CommitRecord, JournalError>> + '_ {
        self.inner.commits.iter().map(|item| {
            let (_, v) = item.map_err(|e| JournalError::Read(e.to_string()))?;
            decode(&v)
        })
    }

    /// Changes each time a batch of writes has reached sled and the disk.
    pub fn batches(&self) -> watch::Receiver<u64> {
        self.inner.batches.clone()
    }

    /// Changes each time a batch that wrote commit records (a number
    /// taken, a commit resolved) has reached sled: what a tail waiting for
    /// the next commit waits on.
    pub fn commits_changed(&self) -> watch::Receiver<u64> {
        self.inner.commits_changed.clone()
    }

    /// From now on every batch goes to `sender` with the acknowledgements
    /// its waiters are owed: a write is durable once the receiver says so
    /// (`shipping`).
    pub fn ship_to(&self, sender: ShipmentSender) {
        if let Ok(mut shipping) = self.inner.shipping.lock() {
            *shipping = Some(sender);
        }
    }

    /// From now on `may_act` says whether this instance may still commit
    /// on the nodes (`ha`: its lease holds); set once.
    pub fn act_only_while(&self, may_act: MayAct) {
        let _ = self.inner.may_act.set(may_act);
    }

    /// Whether this instance may send a commit to a node now: its journal
    /// works and, with standbys, its lease holds. Asked with no wait
    /// between the answer and the commit leaving, so that an instance paused
    /// past its lease (another took over meanwhile) does not commit on
    /// waking.
    pub fn may_act(&self) -> bool {
        self.inner.failed.get().is_none() && self.inner.may_act.get().is_none_or(|may| may())
    }

    /// Every key of every tree as it is now, for a standby's first copy.
    /// Not a snapshot: batches applied meanwhile may show in it, and are
    /// shipped after it anyway (`shipping`).
    pub fn copy_of_trees(&self) -> impl Iterator<Item = Result<ShippedChange, JournalError>> + '_ {
        let trees = [
            (ShippedTree::Entries, &self.inner.entries),
            (ShippedTree::Outcomes, &self.inner.outcomes),
            (ShippedTree::Commits, &self.inner.commits),
            (ShippedTree::Nodes, &self.inner.nodes),
        ];
        trees.into_iter().flat_map(|(shipped, tree)| {
            tree.iter().map(move |item| {
                let (key, value) = item.map_err(|e| JournalError::Read(e.to_string()))?;
                Ok(ShippedChange {
                    tree: shipped,
                    key: key.to_vec(),
                    value: Some(value.to_vec()),
                })
            })
        })
    }

    /// A standby: empties every tree before a new copy of the active's.
    pub fn clear_for_copy(&self) -> Result<(), JournalError> {
        self.send(TreeName::ClearAll, Vec::new(), Vec::new(), None)
    }

    /// A standby: applies changes the active made, in order; with
    /// `flush`, the handle says when they are on disk.
    pub fn apply_copied(
        &self,
        changes: Vec<ShippedChange>,
        flush: bool,
    ) -> Result<Option<Durable>, JournalError> {
        for change in changes {
            let (tree, value) = match change.value {
                Some(value) => (TreeName::Copied(change.tree), value),
                None => (TreeName::CopiedRemoval(change.tree), Vec::new()),
            };
            self.send(tree, change.key, value, None)?;
        }
        if !flush {
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        self.send(TreeName::Barrier, Vec::new(), Vec::new(), Some(tx))?;
        Ok(Some(Durable(rx)))
    }

    fn send_commit(&self, record: &CommitRecord) -> Result<(), JournalError> {
        self.send(
            TreeName::Commits,
            record.seq.to_be_bytes().to_vec(),
            encode(record),
            None,
        )
    }

    /// Sends an entry as it is now, encoded here rather than in the writer
    /// thread, which every session shares.
    fn send_entry(
        &self,
        entry: &Entry,
        durable: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), JournalError> {
        self.send_write(Write {
            tree: TreeName::Entry,
            key: entry.id.as_bytes().to_vec(),
            value: Vec::new(),
            entry: Some(Box::new(EntryRecords::of(entry))),
            durable,
        })
    }

    fn send(
        &self,
        tree: TreeName,
        key: Vec<u8>,
        value: Vec<u8>,
        durable: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), JournalError> {
        self.send_write(Write {
            tree,
            key,
            value,
            entry: None,
            durable,
        })
    }

    fn send_write(&self, write: Write) -> Result<(), JournalError> {
        let tx = self
            .inner
            .tx
            .lock()
            .map_err(|_| JournalError::Write("journal channel poisoned".into()))?;
        let Some(tx) = tx.as_ref() else {
            return Err(JournalError::Write("the journal is closed".into()));
        };
        tx.send(write)
            .map_err(|_| JournalError::Write("the journal writer stopped".into()))
    }
}

/// A write on its way to the disk (`Journal::write_flushed`).
pub struct Durable(oneshot::Receiver<Result<(), String>>);

impl Durable {
    /// Returns once the write (and every write sent before it) is on disk.
    pub async fn wait(self) -> Result<(), JournalError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(JournalError::Write(e)),
            Err(_) => Err(JournalError::Write("the journal writer stopped".into())),
        }
    }
}

/// A commit sequence number taken for a commit under way.
///
/// Dropped unresolved (the session's task was cancelled in the middle of the
/// master's commit), it records the commit as in doubt: the tail then asks
/// the master's `lockstep.commits` instead of waiting for ever.
pub struct Reservation {
    journal: Journal,
    record: CommitRecord,
    /// The record's flush, until waited for.
    durable: Option<Durable>,
    resolved: bool,
}

impl Reservation {
    pub fn seq(&self) -> u64 {
        self.record.seq
    }

    /// Returns once the reserved record (and every write sent before it, the
    /// work it commits among them) is on disk.
    pub async fn durable(&mut self) -> Result<(), JournalError> {
        match self.durable.take() {
            Some(durable) => durable.wait().await,
            None => Ok(()),
        }
    }

    pub fn resolve(mut self, state: CommitState) {
        self.resolved = true;
        self.journal.resolve_commit(&self.record, state);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.resolved {
            self.journal
                .resolve_commit(&self.record, CommitState::InDoubt);
        }
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own types serialize infallibly (no maps with non-string keys).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Read(e.to_string()))
}

fn seq_from_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal in `dir` opened again after it was closed and dropped:
    /// sled's background flusher lets go of the directory's file lock a
    /// moment after the last handle, later still under load (a full
    /// `cargo test` saw "could not acquire lock" once).
    fn reopen(dir: &Path) -> Journal {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Journal::open(dir) {
                Ok(journal) => return journal,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
    }

    fn entry(sql: &str) -> Entry {
        Entry {
            id: Uuid::now_v7(),
            session: 1,
            user: "app".into(),
            master: "a".into(),
            kind: EntryKind::Write,
            session_state: SessionState::default(),
            statement: Statement::Text {
                sql: SqlText::from_bytes(sql.as_bytes()),
            },
            context: Context::now(),
            created_us: entry::now_us(),
            results: Vec::new(),
            state: EntryState::Pending,
            applies: Vec::new(),
            binlog_marks: None,
        }
    }

    /// A prepared statement's DOUBLE and FLOAT parameters are replayed from
    /// the journal: they must come back as the same bits.
    #[test]
    fn float_parameters_read_back_exactly() {
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut params = vec![Param::Double(29.114342270398918), Param::Double(0.1 + 0.2)];
        for _ in 0..2000 {
            // xorshift: many doubles of every magnitude.
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let d = f64::from_bits(bits);
            if d.is_finite() {
                params.push(Param::Double(d));
            }
            if (d as f32).is_finite() {
                params.push(Param::Float(d as f32));
            }
        }
        params.extend([
            Param::Double(f64::INFINITY),
            Param::Double(f64::NEG_INFINITY),
            Param::Float(f32::NAN),
        ]);
        let back: Vec<Param> = decode(&encode(&params)).expect("decode");
        assert_eq!(back.len(), params.len());
        for (sent, read) in params.iter().zip(&back) {
            match (sent, read) {
                (Param::Double(a), Param::Double(b)) if a.is_finite() => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{a}")
                }
                (Param::Double(a), Param::Double(b)) => assert_eq!(a, b),
                (Param::Float(a), Param::Float(b)) if a.is_nan() => assert!(b.is_nan()),
                (Param::Float(a), Param::Float(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{a}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn concurrent_durable_writes_share_batches_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids = {
            let journal = Journal::open(dir.path()).expect("open");
            let mut tasks = Vec::new();
            for i in 0..64 {
                let journal = journal.clone();
                tasks.push(tokio::spawn(async move {
                    let e = entry(&format!("INSERT INTO t VALUES ({i})"));
                    journal.write_durable(&e).await.expect("durable");
                    e.id
                }));
            }
            let mut ids = Vec::new();
            for t in tasks {
                ids.push(t.await.expect("task"));
            }
            let batches = *journal.batches().borrow();
            assert!(
                batches < 64,
                "64 writers shared batches ({batches} batches)"
            );
            ids
        };
        // Let the writer thread finish its last batch and close sled.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let journal = reopen(dir.path());
        for id in ids {
            assert!(journal.entry(id).expect("read").is_some(), "{id} lost");
        }
    }

    #[tokio::test]
    async fn commit_numbers_follow_each_other_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let journal = Journal::open(dir.path()).expect("open");
            let a = journal
                .reserve_commit(Uuid::now_v7(), vec![], false)
                .expect("reserve");
            let b = journal
                .reserve_commit(Uuid::now_v7(), vec![], false)
                .expect("reserve");
            assert_eq!((a.seq(), b.seq()), (1, 2));
            b.resolve(CommitState::Committed);
            drop(a);
            journal.write_durable(&entry("x")).await.expect("flush");
            journal.close();
        }
        let journal = reopen(dir.path());
        assert_eq!(journal.last_seq(), 2);
        let b = journal.commit_record(2).expect("read").expect("present");
        assert_eq!(b.state, CommitState::Committed);
        let a = journal.commit_record(1).expect("read").expect("present");
        assert_eq!(a.state, CommitState::InDoubt, "dropped unresolved");
    }

    fn result(node: &str, affected_rows: u64) -> NodeResult {
        NodeResult {
            node: node.into(),
            outcome: Outcome::Ok {
                affected_rows,
                last_insert_id: 0,
                warnings: 0,
                rows: None,
                insert_ids: Vec::new(),
            },
            verdict: None,
        }
    }

    /// An entry reads back as last written, with the results appended
    /// since, across a reopen, and its records go with it: the ways the
    /// write path changes an entry, each stored without rewriting it whole.
    #[tokio::test]
    async fn an_entry_reads_back_as_last_written_with_results_appended_since() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut e = entry("INSERT INTO t VALUES (NULL)");
        {
            let journal = Journal::open(dir.path()).expect("open");
            journal.write(&e);
            e.results = vec![result("b", 1), result("a", 1)];
            e.context.insert_id = Some(41);
            e.state = EntryState::Committed { seq: 1 };
            journal.write(&e);
            journal.append_result(e.id, &result("c", 1));
            journal.append_result(e.id, &result("d", 0));
            journal.settle().await.expect("settle");
            let read = journal.entry(e.id).expect("read").expect("present");
            let nodes: Vec<_> = read.results.iter().map(|r| r.node.as_str()).collect();
            assert_eq!(nodes, ["b", "a", "c", "d"]);
            assert_eq!(read.context.insert_id, Some(41));
            assert_eq!(read.state, EntryState::Committed { seq: 1 });
            // Written again with fewer results (B's part dropped): exactly
            // those, as a whole entry written over another meant.
            e.results = vec![result("a", 1)];
            journal.write(&e);
            journal.close();
        }
        let journal = reopen(dir.path());
        let read = journal.entry(e.id).expect("read").expect("present");
        assert_eq!(encode(&read), encode(&e));
        let listed: Vec<_> = journal.entries().map(|r| r.expect("read")).collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(encode(&listed[0]), encode(&e));
        journal
            .send(
                TreeName::RemoveEntry,
                e.id.as_bytes().to_vec(),
                Vec::new(),
                None,
            )
            .expect("remove");
        journal.settle().await.expect("settle");
        assert!(journal.entry(e.id).expect("read").is_none());
        assert_eq!(
            journal.inner.outcomes.len(),
            0,
            "no record outlives its entry"
        );
    }

    /// A journal written before results, state and context had records of
    /// their own still reads, and a result appended to one of its entries
    /// comes after the ones it holds.
    #[tokio::test]
    async fn an_entry_stored_whole_by_an_earlier_version_still_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = Journal::open(dir.path()).expect("open");
        let mut old = entry("UPDATE t SET v = 1");
        old.results = vec![result("b", 1), result("a", 1)];
        old.state = EntryState::Committed { seq: 3 };
        journal
            .inner
            .entries
            .insert(old.id.as_bytes(), encode(&old))
            .expect("insert");
        assert_eq!(
            encode(&journal.entry(old.id).expect("read").expect("present")),
            encode(&old)
        );
        journal.append_result(old.id, &result("c", 1));
        journal.settle().await.expect("settle");
        let read = journal.entry(old.id).expect("read").expect("present");
        let nodes: Vec<_> = read.results.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["b", "a", "c"]);
        assert_eq!(read.state, EntryState::Committed { seq: 3 });
    }

    /// A standby's copy of the trees reads the same entries as the active.
    #[tokio::test]
    async fn a_copy_of_the_trees_reads_the_same_entries() {
        let active_dir = tempfile::tempdir().expect("temp dir");
        let standby_dir = tempfile::tempdir().expect("temp dir");
        let active = Journal::open(active_dir.path()).expect("open");
        let mut e = entry("INSERT INTO t VALUES (1)");
        e.results = vec![result("b", 1), result("a", 1)];
        e.state = EntryState::Committed { seq: 1 };
        active.write(&e);
        active.append_result(e.id, &result("c", 1));
        active.settle().await.expect("settle");
        let copy: Vec<_> = active.copy_of_trees().map(|c| c.expect("copy")).collect();
        let standby = Journal::open(standby_dir.path()).expect("open");
        if let Some(durable) = standby.apply_copied(copy, true).expect("apply") {
            durable.wait().await.expect("durable");
        }
        let on_active = active.entry(e.id).expect("read").expect("present");
        let on_standby = standby.entry(e.id).expect("read").expect("present");
        assert_eq!(encode(&on_standby), encode(&on_active));
        assert_eq!(on_standby.results.len(), 3);
    }
}
