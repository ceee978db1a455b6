//! The active instance's side of the journal copy: every batch its journal
//! writer applies goes to each connected standby, and a batch's waiters
//! (sessions waiting for their commit to be durable) are told so only once
//! every standby waited for has the batch on its disk.
//!
//! A standby joins with a copy of the trees taken while batches go on,
//! then every batch from the one it joined at (see `journal::shipping` for
//! why that ends exact). Once it acknowledged a batch sent after its copy,
//! acknowledgements wait for it (`Standing::Joining`); once it also has
//! every batch told to clients before that, etcd names it (`InStep`). The
//! active removes one from etcd before it stops waiting for it: etcd never
//! names a standby that may lack an acknowledged commit, and only those it
//! names may take over (`coordinator`).
//!
//! With no standby in step (none configured, none alive, one still
//! copying), a commit is acknowledged once it is on the active's disk: the
//! service stays up, and etcd then names only the active as a holder, so
//! no standby takes over with a partial journal. A standby that has not
//! acknowledged a batch within `ack_timeout` is dropped the same way.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tracing::{error, info, info_span, warn, Instrument};

use super::coordinator::{Coordinator, LeaseClock};
use super::wire::{Frame, WireError};
use crate::journal::shipping::{Ack, Shipment, ShippedChange, ToShip};
use crate::journal::Journal;
use crate::shared::instances::StandbyStatus;

/// Changes per `Copy` frame.
const COPY_CHUNK: usize = 512;

/// A batch as every standby receives it.
struct Shipped {
    batch: u64,
    flushed: bool,
    changes: Vec<ShippedChange>,
}

struct Link {
    name: String,
    queue: UnboundedSender<Arc<Shipped>>,
    /// The last batch before its copy: batches after it are streamed.
    joined_after: u64,
    acked: u64,
    standing: Standing,
    /// When the oldest batch it has not acknowledged was shipped.
    waiting_since: Option<Instant>,
}

/// Where a standby is on its way to holding every acknowledged commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Receiving its copy: commits do not wait for it, etcd does not name it.
    Copying,
    /// It acknowledged a batch after its copy: commits wait for it from
    /// now on, but batches up to `told_through` may have been acknowledged
    /// to clients without it. etcd names it only once it has them all.
    Joining { told_through: u64 },
    /// etcd names it as a holder: it has every acknowledged commit, and
    /// commits wait for it.
    InStep,
}

impl Link {
    /// Whether acknowledgements wait for this standby's.
    fn waited_for(&self) -> bool {
        self.standing != Standing::Copying
    }
}

struct State {
    /// Acknowledgements are given only while it holds.
    lease: LeaseClock,
    links: HashMap<u64, Link>,
    next_link: u64,
    last_batch: u64,
    /// Acknowledgements held until a standby in step has their batch.
    held: VecDeque<(u64, Vec<Ack>)>,
    /// Batches made past the lease, not shipped (`hold_back`).
    held_back: Vec<Arc<Shipped>>,
}

impl State {
    fn any_waited_for(&self) -> bool {
        self.links.values().any(Link::waited_for)
    }

    /// The last batch *every* standby waited for has on its disk: etcd
    /// lets any standby it names take over, so a batch is acknowledged only
    /// once each of them holds it (one of them would not do: the other could
    /// win the takeover without it).
    fn waited_for_acked(&self) -> u64 {
        self.links
            .values()
            .filter(|l| l.waited_for())
            .map(|l| l.acked)
            .min()
            .unwrap_or(0)
    }

    /// Whether the waiters of `batch` wait for a standby.
    fn holds_back_acks_of(&self, batch: u64) -> bool {
        self.any_waited_for() && self.waited_for_acked() < batch
    }

    /// Tells the waiters every standby waited for now covers; all of them
    /// when none is waited for any more.
    fn release_acknowledged(&mut self) {
        if self.any_waited_for() {
            self.release_through(self.waited_for_acked());
        } else {
            self.release_all();
        }
    }

    fn in_step_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .links
            .values()
            .filter(|l| l.standing == Standing::InStep)
            .map(|l| l.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Records that standby `id` has every batch through `batch`, and tells
    /// the waiters that now may be. Returns the standby's name when etcd is
    /// to name it now: it has every batch acknowledged without it.
    fn record_ack(&mut self, id: u64, batch: u64) -> Option<String> {
        let last_batch = self.last_batch;
        let link = self.links.get_mut(&id)?;
        link.acked = link.acked.max(batch);
        link.waiting_since = (link.acked < last_batch).then(Instant::now);
        if link.standing == Standing::Copying && link.acked > link.joined_after {
            // Batches up to the last one shipped may have been told
            // without it; from here on every batch waits for it.
            link.standing = Standing::Joining {
                told_through: last_batch,
            };
        }
        let to_name = match link.standing {
            Standing::Joining { told_through } if link.acked >= told_through => {
                Some(link.name.clone())
            }
            _ => None,
        };
        self.release_acknowledged();
        to_name
    }

    fn is_joining(&self, id: u64) -> bool {
        self.links
            .get(&id)
            .is_some_and(|l| matches!(l.standing, Standing::Joining { .. }))
    }

    /// Tells the waiters of every batch up to `batch`.
    fn release_through(&mut self, batch: u64) {
        while self.held.front().is_some_and(|(b, _)| *b <= batch) {
            if let Some((_, acks)) = self.held.pop_front() {
                acknowledge(acks, &self.lease);
            }
        }
    }

    /// Sends a batch to every standby, after those held back; holds it
    /// back past the lease.
    fn ship(&mut self, shipped: Arc<Shipped>) {
        self.last_batch = shipped.batch;
        if !self.lease.holds() {
            self.hold_back(shipped);
            return;
        }
        let mut due = std::mem::take(&mut self.held_back);
        due.push(shipped);
        let now = Instant::now();
        for link in self.links.values_mut() {
            // A standby that joined since has them in its copy.
            for shipped in due.iter().filter(|s| s.batch > link.joined_after) {
                let _ = link.queue.send(shipped.clone());
                link.waiting_since.get_or_insert(now);
            }
        }
    }

    /// Past its lease this instance writes nothing more into a standby's
    /// copy: a standby may take over with it, and what this instance did
    /// after its lease ended (an entry marked failed that the master ran,
    /// found by `tests/ha.rs`) is not the new active's to inherit. The
    /// batches wait here: when a late renewal shows the lease held all
    /// along (no one took over), they go out first, in order; when it did
    /// not, this instance starts again as a standby and they are dropped.
    /// The links stay: a standby cut off would leave etcd listing it in
    /// step while this instance acknowledged commits without it.
    fn hold_back(&mut self, shipped: Arc<Shipped>) {
        if self.held_back.is_empty() {
            warn!(
                batch = shipped.batch,
                "the lease ran out: the standbys get nothing more from this instance unless it holds again"
            );
        }
        self.held_back.push(shipped);
    }

    fn release_all(&mut self) {
        let lease = self.lease.clone();
        for (_, acks) in self.held.drain(..) {
            acknowledge(acks, &lease);
        }
    }
}

/// Tells waiting sessions their writes are durable, while this instance
/// still holds its lease; once it does not, they are told the write failed,
/// so that nothing is committed on the nodes on the strength of it (a
/// standby may have taken over).
fn acknowledge(acks: Vec<Ack>, lease: &LeaseClock) {
    let outcome = if lease.holds() {
        Ok(())
    } else {
        Err(LEASE_RUN_OUT.to_string())
    };
    for ack in acks {
        let _ = ack.send(outcome.clone());
    }
}

const LEASE_RUN_OUT: &str =
    "this lockstep instance's lease has run out: it is no longer the active one";

/// The journal's copy service of the active instance.
#[derive(Clone)]
pub struct JournalShipping {
    state: Arc<Mutex<State>>,
    journal: Journal,
    coordinator: Coordinator,
    /// Serializes etcd updates of the in-step list, so they land in order.
    etcd: Arc<tokio::sync::Mutex<()>>,
    ack_timeout: Duration,
    lease: LeaseClock,
}

impl JournalShipping {
    /// Starts shipping `journal`'s batches and serving standbys on
    /// `listener`.
    pub fn start(
        journal: Journal,
        listener: TcpListener,
        coordinator: Coordinator,
        lease: LeaseClock,
        ack_timeout: Duration,
    ) -> JournalShipping {
        let (tx, rx) = unbounded_channel();
        let shipping = JournalShipping {
            state: Arc::new(Mutex::new(State {
                lease: lease.clone(),
                links: HashMap::new(),
                next_link: 0,
                last_batch: *journal.batches().borrow(),
                held: VecDeque::new(),
                held_back: Vec::new(),
            })),
            journal: journal.clone(),
            coordinator,
            etcd: Arc::new(tokio::sync::Mutex::new(())),
            ack_timeout,
            lease,
        };
        journal.ship_to(tx);
        tokio::spawn(shipping.clone().distribute(rx));
        tokio::spawn(shipping.clone().accept(listener));
        tokio::spawn(shipping.clone().watch_for_silent_standbys());
        shipping
    }

    pub fn standbys(&self) -> Vec<StandbyStatus> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .links
            .values()
            .map(|l| StandbyStatus {
                name: l.name.clone(),
                in_step: l.standing == Standing::InStep,
                batches_behind: state.last_batch.saturating_sub(l.acked.max(l.joined_after)),
            })
            .collect()
    }

    /// Each batch of the writer, as soon as it is applied: to every
    /// standby. Once it is durable on this disk, its waiters: held for a
    /// standby in step, or told at once (no standby in step, or one has
    /// acknowledged the batch already: its sync ran beside the active's).
    async fn distribute(self, mut rx: UnboundedReceiver<ToShip>) {
        while let Some(event) = rx.recv().await {
            match event {
                ToShip::Batch(shipment) => self.send_to_standbys(shipment),
                ToShip::Durable { batch, acks } => self.hold_or_tell(batch, acks),
            }
        }
    }

    fn send_to_standbys(&self, shipment: Shipment) {
        let shipped = Arc::new(Shipped {
            batch: shipment.batch,
            flushed: shipment.flushed,
            changes: shipment.changes,
        });
        if let Ok(mut state) = self.state.lock() {
            state.ship(shipped);
        }
    }

    fn hold_or_tell(&self, batch: u64, acks: Vec<Ack>) {
        if acks.is_empty() {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            acknowledge(acks, &self.lease);
            return;
        };
        if state.holds_back_acks_of(batch) {
            state.held.push_back((batch, acks));
        } else {
            acknowledge(acks, &state.lease);
        }
    }

    async fn accept(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let shipping = self.clone();
                    tokio::spawn(
                        shipping
                            .serve_standby(stream)
                            .instrument(info_span!("standby", %peer)),
                    );
                }
                Err(e) => {
                    error!(error = %e, "journal listener failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_standby(self, stream: TcpStream) {
        let (mut reader, writer) = stream.into_split();
        let name = match Frame::read_from(&mut reader).await {
            Ok(Some(Frame::Hello { name })) => name,
            other => {
                warn!(
                    ?other,
                    "a journal connection did not introduce itself: closed"
                );
                return;
            }
        };
        if !self.lease.holds() {
            warn!(standby = %name, "a standby asked for the journal past this instance's lease: refused");
            return;
        }
        let (queue, batches) = unbounded_channel();
        let id = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let id = state.next_link;
            state.next_link += 1;
            let joined_after = state.last_batch;
            state.links.insert(
                id,
                Link {
                    name: name.clone(),
                    queue,
                    joined_after,
                    acked: 0,
                    standing: Standing::Copying,
                    waiting_since: None,
                },
            );
            id
        };
        info!(standby = %name, "standby joined: copying the journal to it");
        let outcome = tokio::select! {
            sent = self.send_copy_then_batches(id, writer, batches) => sent,
            read = self.read_acks(id, &mut reader) => read,
        };
        match outcome {
            Ok(()) => info!(standby = %name, "standby left"),
            Err(e) => warn!(standby = %name, error = %e, "standby connection ended"),
        }
        self.drop_link(id).await;
    }

    async fn send_copy_then_batches<W: AsyncWrite + Unpin>(
        &self,
        id: u64,
        writer: W,
        mut batches: UnboundedReceiver<Arc<Shipped>>,
    ) -> Result<(), WireError> {
        let mut writer = BufWriter::new(writer);
        let joined_after = self.joined_after(id);
        Frame::Clear.write_to(&mut writer).await?;
        let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel(4);
        let journal = self.journal.clone();
        // sled reads block: the copy is read on a thread of its own.
        let reading = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(COPY_CHUNK);
            for change in journal.copy_of_trees() {
                let change = change.map_err(|e| e.to_string())?;
                chunk.push(change);
                if chunk.len() == COPY_CHUNK
                    && chunks_tx.blocking_send(std::mem::take(&mut chunk)).is_err()
                {
                    return Err("the standby went away".to_string());
                }
            }
            if !chunk.is_empty() {
                let _ = chunks_tx.blocking_send(chunk);
            }
            Ok(())
        });
        let mut copied = 0usize;
        while let Some(changes) = chunks.recv().await {
            copied += changes.len();
            Frame::Copy { changes }.write_to(&mut writer).await?;
        }
        match reading.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WireError::Io(std::io::Error::other(e))),
            Err(e) => return Err(WireError::Io(std::io::Error::other(e.to_string()))),
        }
        Frame::CopyDone {
            batch: joined_after,
        }
        .write_to(&mut writer)
        .await?;
        info!(
            keys = copied,
            after_batch = joined_after,
            "journal copy sent"
        );
        // A standby is in step once it acknowledges a batch after its copy:
        // an idle journal makes one (an empty, flushed batch).
        let journal = self.journal.clone();
        tokio::spawn(async move { journal.settle().await });
        while let Some(shipped) = batches.recv().await {
            Frame::Batch {
                batch: shipped.batch,
                flushed: shipped.flushed,
                changes: shipped.changes.clone(),
            }
            .write_to(&mut writer)
            .await?;
        }
        Ok(())
    }

    async fn read_acks<R: AsyncRead + Unpin>(
        &self,
        id: u64,
        reader: &mut R,
    ) -> Result<(), WireError> {
        loop {
            match Frame::read_from(reader).await? {
                Some(Frame::Ack { batch }) => self.acknowledged(id, batch).await?,
                Some(_) => return Err(WireError::Malformed("a standby sent other than an ack")),
                None => return Ok(()),
            }
        }
    }

    /// A standby has every batch up to `batch`: the waiters of those
    /// batches are told; a standby that now holds every acknowledged commit
    /// is named in etcd.
    async fn acknowledged(&self, id: u64, batch: u64) -> Result<(), WireError> {
        let to_name = match self.state.lock() {
            Ok(mut state) => state.record_ack(id, batch),
            Err(_) => return Ok(()),
        };
        if let Some(name) = to_name {
            self.name_in_etcd(id, name).await;
        }
        Ok(())
    }

    /// Adds a joining standby to etcd's holders, then counts it in step.
    /// Failing, it stays joining (commits still wait for it): retried at
    /// its next ack.
    async fn name_in_etcd(&self, id: u64, name: String) {
        let _etcd = self.etcd.lock().await;
        let mut names = match self.state.lock() {
            // Dropped meanwhile, or named by an earlier ack: nothing to do.
            Ok(state) if state.is_joining(id) => state.in_step_names(),
            _ => return,
        };
        names.push(name.clone());
        names.sort();
        names.dedup();
        let mut coordinator = self.coordinator.clone();
        if let Err(e) = coordinator.set_in_step(names, self.lineage()).await {
            warn!(standby = %name, error = %e, "could not record the standby as in step; retried at its next ack");
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            if let Some(link) = state.links.get_mut(&id) {
                link.standing = Standing::InStep;
            }
        }
        info!(standby = %name, "standby in step: it holds every acknowledged commit");
    }

    /// This journal's lineage, which etcd names with the holders.
    fn lineage(&self) -> Option<String> {
        self.journal.lineage().ok().flatten()
    }

    fn joined_after(&self, id: u64) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.links.get(&id).map(|l| l.joined_after))
            .unwrap_or(0)
    }

    /// A standby is gone (or dropped): it leaves etcd's list first, then
    /// the waiters it held are told, when no other standby in step remains.
    async fn drop_link(&self, id: u64) {
        let _etcd = self.etcd.lock().await;
        let (was_in_step, remaining) = {
            let Ok(state) = self.state.lock() else {
                return;
            };
            let was_in_step = state
                .links
                .get(&id)
                .is_some_and(|l| l.standing == Standing::InStep);
            let mut remaining = state.in_step_names();
            if let Some(link) = state.links.get(&id) {
                remaining.retain(|n| n != &link.name);
            }
            (was_in_step, remaining)
        };
        // Commits go on waiting for it until etcd no longer names it.
        if was_in_step {
            let mut coordinator = self.coordinator.clone();
            while let Err(e) = coordinator
                .set_in_step(remaining.clone(), self.lineage())
                .await
            {
                // Until etcd knows, the standby could take over: commits
                // keep waiting rather than be acknowledged without it.
                error!(error = %e, "could not remove a standby from etcd's list; commits wait");
                if matches!(e, super::coordinator::CoordinatorError::NotActive) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if let Ok(mut state) = self.state.lock() {
            state.links.remove(&id);
            state.release_acknowledged();
        }
    }

    /// A standby that acknowledges nothing for `ack_timeout` (paused, cut
    /// off without the connection breaking) is dropped.
    async fn watch_for_silent_standbys(self) {
        let every = (self.ack_timeout / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            let silent: Vec<(u64, String)> = match self.state.lock() {
                Ok(state) => state
                    .links
                    .iter()
                    .filter(|(_, l)| {
                        l.waited_for()
                            && l.waiting_since
                                .is_some_and(|t| t.elapsed() >= self.ack_timeout)
                    })
                    .map(|(id, l)| (*id, l.name.clone()))
                    .collect(),
                Err(_) => return,
            };
            for (id, name) in silent {
                warn!(standby = %name, timeout_ms = self.ack_timeout.as_millis() as u64, "standby acknowledged nothing in time: commits no longer wait for it");
                self.drop_link(id).await;
            }
        }
    }
}

/// Binds the journal listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(batch: u64) -> Arc<Shipped> {
        Arc::new(Shipped {
            batch,
            flushed: true,
            changes: Vec::new(),
        })
    }

    fn link(joined_after: u64) -> (Link, UnboundedReceiver<Arc<Shipped>>) {
        let (queue, rx) = unbounded_channel();
        let link = Link {
            name: "ls2".into(),
            queue,
            joined_after,
            acked: 0,
            standing: Standing::InStep,
            waiting_since: None,
        };
        (link, rx)
    }

    fn state_with(links: Vec<Link>, last_batch: u64) -> State {
        State {
            lease: LeaseClock::new(Instant::now() + Duration::from_secs(60)),
            links: links
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i as u64, l))
                .collect(),
            next_link: 9,
            last_batch,
            held: VecDeque::new(),
            held_back: Vec::new(),
        }
    }

    /// The waiters of `batch`, as the journal writer hands them over once
    /// the batch is on this disk.
    fn durable(
        state: &mut State,
        batch: u64,
    ) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (ack, told) = tokio::sync::oneshot::channel();
        if state.holds_back_acks_of(batch) {
            state.held.push_back((batch, vec![ack]));
        } else {
            acknowledge(vec![ack], &state.lease);
        }
        told
    }

    fn was_told(told: &mut tokio::sync::oneshot::Receiver<Result<(), String>>) -> bool {
        matches!(told.try_recv(), Ok(Ok(())))
    }

    /// etcd lets either of two standbys in step take over: a commit is
    /// acknowledged only once both have it (one of them did not do: the
    /// other could take over without it).
    #[test]
    fn a_commit_waits_for_every_standby_in_step() {
        let (first, _rx1) = link(0);
        let (mut second, _rx2) = link(0);
        second.name = "ls3".into();
        let mut state = state_with(vec![first, second], 5);
        let mut told = durable(&mut state, 5);
        assert_eq!(state.record_ack(0, 5), None);
        assert!(!was_told(&mut told), "told with one standby of two");
        assert_eq!(state.record_ack(1, 5), None);
        assert!(was_told(&mut told));
    }

    /// A standby that has just acknowledged its first batch after its copy
    /// may still lack batches told to clients without it: etcd names it
    /// only once it has them, while every later batch already waits for it.
    #[test]
    fn a_joining_standby_is_named_once_it_has_every_batch_told_without_it() {
        let (mut joining, _rx) = link(3);
        joining.standing = Standing::Copying;
        let mut state = state_with(vec![joining], 3);
        // Batches 4..=6 shipped and told while it was copying.
        state.last_batch = 6;
        for batch in 4..=6 {
            let mut told = durable(&mut state, batch);
            assert!(was_told(&mut told), "no standby waited for yet");
        }
        assert_eq!(state.record_ack(0, 4), None, "named lacking 5 and 6");
        state.last_batch = 7;
        let mut later = durable(&mut state, 7);
        assert!(!was_told(&mut later), "a batch after joining waits for it");
        assert_eq!(state.record_ack(0, 6), Some("ls2".into()));
        assert!(!was_told(&mut later));
        state.record_ack(0, 7);
        assert!(was_told(&mut later));
    }

    fn received(rx: &mut UnboundedReceiver<Arc<Shipped>>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|s| s.batch)).collect()
    }

    /// Past the lease nothing reaches a standby; a late renewal that shows
    /// the lease held all along sends the held batches first, in order,
    /// and none to a standby whose copy has them already.
    #[test]
    fn batches_past_the_lease_wait_until_it_holds_again() {
        let now = Instant::now();
        let lease = LeaseClock::new(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
        let (early, mut early_rx) = link(0);
        let mut state = State {
            lease: lease.clone(),
            links: HashMap::from([(0, early)]),
            next_link: 1,
            last_batch: 0,
            held: VecDeque::new(),
            held_back: Vec::new(),
        };
        state.ship(shipped(1));
        state.ship(shipped(2));
        assert_eq!(received(&mut early_rx), Vec::<u64>::new());
        assert_eq!(state.last_batch, 2);

        lease.extend(Instant::now() + Duration::from_secs(60));
        let (late, mut late_rx) = link(2);
        state.links.insert(1, late);
        state.ship(shipped(3));
        assert_eq!(received(&mut early_rx), vec![1, 2, 3]);
        assert_eq!(received(&mut late_rx), vec![3]);
    }
}
