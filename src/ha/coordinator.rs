//! What the instances agree on, kept in etcd: which instance is active
//! (a key held by its lease) and which instances hold a whole, current
//! copy of the journal (a key the active keeps up to date).
//!
//! Two keys:
//! - `lockstep/active`: the active instance (`ActiveInstance`, JSON), put
//!   with the active's lease: it disappears when the active stops renewing
//!   it (dead, paused, cut off from etcd).
//! - `lockstep/journal`: `JournalHolders`, who may take over without losing
//!   an acknowledged commit: the last active, and the standbys the active
//!   waits for before it acknowledges a commit. Kept without a lease: it
//!   matters most when the active is gone.
//!
//! - `lockstep/beat`: the active's heartbeat, put every tenth of
//!   `lease_ms` while `lockstep/active` still names it.
//!
//! Taking over is one etcd transaction: the active key is absent (its etcd
//! lease ran out: up to `lease_ms` rounded up to whole seconds, plus etcd's
//! 500 ms sweep) or the heartbeat has not moved for 0.45 × `lease_ms`, and
//! the holders key is as this instance read it (and names it, or is absent:
//! a new cluster); then all three are written. No two instances can win it
//! for the same state, and none whose copy may lack a commit can win it at
//! all.
//!
//! The heartbeat is what makes a takeover fast, and the active's own clock
//! what makes it safe: the active acts only until 0.4 × `lease_ms` after
//! it *sent* its last heartbeat that etcd confirmed. A standby first saw that
//! heartbeat's revision after it was sent, and takes over only once it has
//! seen no newer one for 0.45 × `lease_ms` by its own clock, and only if etcd
//! still holds that revision (the transaction compares it): by then the old
//! active's authority has ended, whatever happened to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::members::Members;
use crate::config::Ha;

const ACTIVE_KEY: &str = "lockstep/active";
const HOLDERS_KEY: &str = "lockstep/journal";
const BEAT_KEY: &str = "lockstep/beat";
const PREFIX: &str = "lockstep/";

/// Heartbeat attempts per period.
const BEAT_TRIES: usize = 3;

/// The pause before a failed lease renewal is tried again.
const RENEWAL_RETRY: Duration = Duration::from_millis(25);

/// How long one etcd request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd holds a value lockstep cannot read under {key}: {reason}")]
    BadValue { key: &'static str, reason: String },
    #[error("this instance is no longer the active one in etcd")]
    NotActive,
}

/// Where the active instance serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveInstance {
    pub name: String,
    /// Its MySQL listener: standbys pass clients there.
    pub listen: SocketAddr,
    /// Where standbys copy its journal from.
    pub journal_listen: SocketAddr,
}

/// Who holds every acknowledged commit in its journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHolders {
    /// The active instance, or the last one.
    pub active: String,
    /// Standbys in step: the active acknowledges a commit only once each
    /// of them has it.
    pub in_step: Vec<String>,
    /// The lineage of their journal (`Journal::lineage`). An instance
    /// listed by name whose journal is another (its directory was lost and
    /// it started afresh) lacks the commits. Absent in what an earlier
    /// version wrote: the name alone decides then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
}

impl JournalHolders {
    /// Whether the instance `name`, whose journal has `lineage`, holds
    /// every acknowledged commit.
    pub fn holds(&self, name: &str, lineage: Option<&str>) -> bool {
        let listed = self.active == name || self.in_step.iter().any(|n| n == name);
        let same_journal = match (&self.journal, lineage) {
            (None, _) => true,
            (Some(theirs), Some(mine)) => theirs == mine,
            (Some(_), None) => false,
        };
        listed && same_journal
    }
}

/// The outcome of one attempt to become active.
#[derive(Debug)]
pub enum TakeOver {
    Won(Lease),
    /// Another instance is active (or won meanwhile).
    Taken,
    /// This instance's copy may lack acknowledged commits.
    NotAHolder(JournalHolders),
}

/// The active's lease in etcd, renewed by a task of its own.
#[derive(Debug)]
pub struct Lease {
    pub id: i64,
    /// Turns false once the lease may have expired: the instance must stop
    /// acting as the active one.
    pub alive: watch::Receiver<bool>,
    /// Until when the lease surely holds, by this process's clock.
    pub holds: LeaseClock,
}

/// Until when the lease surely holds: the moment the last renewal that
/// etcd confirmed was *sent*, plus the lease's time. A process that was
/// paused (SIGSTOP, a VM freeze) finds it past on waking, before its
/// renewal task could tell it the lease is gone.
#[derive(Debug, Clone)]
pub struct LeaseClock {
    until: Arc<Mutex<Instant>>,
}

impl LeaseClock {
    pub(crate) fn new(until: Instant) -> LeaseClock {
        LeaseClock {
            until: Arc::new(Mutex::new(until)),
        }
    }

    pub(crate) fn extend(&self, until: Instant) {
        if let Ok(mut held) = self.until.lock() {
            *held = (*held).max(until);
        }
    }

    /// Whether this instance may still act as the active one.
    pub fn holds(&self) -> bool {
        self.until
            .lock()
            .map(|u| Instant::now() < *u)
            .unwrap_or(false)
    }
}

/// The active's heartbeat, in fractions of `lease_ms` (module doc).
#[derive(Debug, Clone, Copy)]
pub struct Beat {
    /// How often the active puts it.
    pub every: Duration,
    /// How long after sending a confirmed heartbeat the active may act.
    pub authority: Duration,
    /// How long a standby must see no new heartbeat before it takes over.
    pub silence: Duration,
}

impl Beat {
    fn of(lease: Duration) -> Beat {
        Beat {
            every: lease / 10,
            authority: lease * 2 / 5,
            silence: lease * 9 / 20,
        }
    }
}

/// What a standby reads of etcd in one request.
#[derive(Debug, Default)]
pub struct Seen {
    pub active: Option<ActiveInstance>,
    /// The heartbeat's revision (0: none yet).
    pub beat: i64,
}

#[derive(Clone)]
pub struct Coordinator {
    members: Members,
    me: ActiveInstance,
    lease_seconds: i64,
    pub beat: Beat,
}

impl Coordinator {
    pub async fn connect(ha: &Ha, listen: SocketAddr) -> Result<Coordinator, CoordinatorError> {
        let options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(REQUEST_TIMEOUT);
        let members = Members::connect(&ha.etcd, options).await?;
        Ok(Coordinator {
            members,
            me: ActiveInstance {
                name: ha.name.clone(),
                listen: ha.reachable(listen),
                journal_listen: ha.reachable(ha.journal_listen),
            },
            lease_seconds: ha.lease_seconds(),
            beat: Beat::of(Duration::from_millis(ha.lease_ms)),
        })
    }

    pub fn name(&self) -> &str {
        &self.me.name
    }

    /// The active instance, if any, and its heartbeat's revision.
    pub async fn look(&mut self) -> Result<Seen, CoordinatorError> {
        let response = self
            .members
            .call(|mut etcd| async move {
                etcd.get(PREFIX, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
        let mut seen = Seen::default();
        for kv in response.kvs() {
            match kv.key() {
                k if k == ACTIVE_KEY.as_bytes() => {
                    seen.active = Some(decode(ACTIVE_KEY, kv.value())?)
                }
                k if k == BEAT_KEY.as_bytes() => seen.beat = kv.mod_revision(),
                _ => {}
            }
        }
        Ok(seen)
    }

    /// The holders key as it is, and its revision (0: absent).
    pub async fn holders(&mut self) -> Result<(Option<JournalHolders>, i64), CoordinatorError> {
        let response = self
            .members
            .call(|mut etcd| async move { etcd.get(HOLDERS_KEY, None).await })
            .await?;
        match response.kvs().first() {
            Some(kv) => Ok((Some(decode(HOLDERS_KEY, kv.value())?), kv.mod_revision())),
            None => Ok((None, 0)),
        }
    }

    /// Tries to become the active instance. `copy_whole`: this instance's
    /// journal is a whole copy (it served as the active, or it finished its
    /// copy as a standby); a standby whose copy was cut short never takes
    /// over, whatever etcd says.
    /// `silent_beat`: take over from an active whose heartbeat stayed at
    /// this revision for `beat.silence` (None: only if no instance is
    /// active).
    /// `lineage`: this instance's journal's (`Journal::lineage`).
    pub async fn try_take_over(
        &mut self,
        copy_whole: bool,
        lineage: Option<String>,
        silent_beat: Option<i64>,
    ) -> Result<TakeOver, CoordinatorError> {
        let (holders, revision) = self.holders().await?;
        if let Some(holders) = &holders {
            if !copy_whole || !holders.holds(&self.me.name, lineage.as_deref()) {
                return Ok(TakeOver::NotAHolder(holders.clone()));
            }
        }
        let asked = Instant::now();
        let seconds = self.lease_seconds;
        let lease = self
            .members
            .call(|mut etcd| async move { etcd.lease_grant(seconds, None).await })
            .await?
            .id();
        let me = encode(&self.me);
        let now_holding = encode(&JournalHolders {
            active: self.me.name.clone(),
            in_step: Vec::new(),
            journal: lineage,
        });
        let nobody_else = match silent_beat {
            None => Compare::create_revision(ACTIVE_KEY, CompareOp::Equal, 0),
            Some(beat) => Compare::mod_revision(BEAT_KEY, CompareOp::Equal, beat),
        };
        let txn = Txn::new()
            .when([
                nobody_else,
                Compare::mod_revision(HOLDERS_KEY, CompareOp::Equal, revision),
            ])
            .and_then([
                TxnOp::put(
                    ACTIVE_KEY,
                    me.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::put(HOLDERS_KEY, now_holding, None),
                TxnOp::put(BEAT_KEY, me, None),
            ]);
        let taken = self
            .members
            .call(|mut etcd| async move { etcd.txn(txn).await })
            .await?;
        if !taken.succeeded() {
            let _ = self
                .members
                .call(|mut etcd| async move { etcd.lease_revoke(lease).await })
                .await;
            return Ok(TakeOver::Taken);
        }
        let holds = LeaseClock::new(asked + self.beat.authority);
        let (alive_tx, alive) = watch::channel(true);
        let alive_tx = Arc::new(alive_tx);
        self.keep_alive(lease, alive_tx.clone()).await?;
        self.keep_beating(holds.clone(), alive_tx);
        Ok(TakeOver::Won(Lease {
            id: lease,
            alive,
            holds,
        }))
    }

    /// Records which standbys are in step, while this instance is the
    /// active one (else `NotActive`).
    /// `lineage`: the active's journal's, which the standbys' copies share.
    pub async fn set_in_step(
        &mut self,
        in_step: Vec<String>,
        lineage: Option<String>,
    ) -> Result<(), CoordinatorError> {
        let holders = encode(&JournalHolders {
            active: self.me.name.clone(),
            in_step,
            journal: lineage,
        });
        let txn = Txn::new()
            .when([Compare::value(
                ACTIVE_KEY,
                CompareOp::Equal,
                encode(&self.me),
            )])
            .and_then([TxnOp::put(HOLDERS_KEY, holders, None)]);
        let recorded = self
            .members
            .call(|mut etcd| async move { etcd.txn(txn).await })
            .await?;
        if recorded.succeeded() {
            Ok(())
        } else {
            Err(CoordinatorError::NotActive)
        }
    }

    /// Gives the active role up at once (a clean shutdown): a standby need
    /// not wait for the lease to run out.
    pub async fn step_down(&mut self, lease: i64) {
        let revoked = self
            .members
            .call(|mut etcd| async move { etcd.lease_revoke(lease).await })
            .await;
        if let Err(e) = revoked {
            warn!(error = %e, "could not give up the lease; it runs out by itself");
        }
    }

    fn lease_time(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.unsigned_abs())
    }

    /// Renews the etcd lease a third of its time; `alive` turns false when
    /// etcd says it ran out or no renewal got through for its whole time.
    /// A renewal stream is bound to one etcd member: when it breaks (that
    /// member went away), a new one is opened on the next member.
    async fn keep_alive(
        &mut self,
        lease: i64,
        alive: Arc<watch::Sender<bool>>,
    ) -> Result<(), CoordinatorError> {
        let members = self.members.clone();
        let (mut place, mut client) = members.pick();
        let first = client.lease_keep_alive(lease).await;
        if first.is_err() {
            members.failed(place);
        }
        let mut stream = Some(first?);
        let ttl = self.lease_time();
        let every = ttl / 3;
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                let renewal = async {
                    let (keeper, responses) = match stream.as_mut() {
                        Some(open) => open,
                        None => stream.insert(client.lease_keep_alive(lease).await?),
                    };
                    keeper.keep_alive().await?;
                    responses.message().await
                };
                match tokio::time::timeout(every, renewal).await {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => renewed = Instant::now(),
                    Ok(Ok(Some(_))) => {
                        error!(lease, "etcd says the lease has run out");
                        let _ = alive.send(false);
                        return;
                    }
                    outcome => {
                        warn!(lease, outcome = ?outcome.map(|r| r.map(|_| ())), "lease renewal failed: renewing through a new stream on the next member");
                        stream = None;
                        members.failed(place);
                        (place, client) = members.pick();
                        // etcd gone altogether fails every attempt at once:
                        // not a busy loop meanwhile.
                        tokio::time::sleep(RENEWAL_RETRY).await;
                        if renewed.elapsed() >= ttl {
                            error!(lease, "no lease renewal got through for the lease's time");
                            let _ = alive.send(false);
                            return;
                        }
                        continue;
                    }
                }
                tokio::time::sleep(every.saturating_sub(Duration::from_millis(20))).await;
            }
        });
        info!(lease, ttl_s = ttl.as_secs(), "lease taken");
        Ok(())
    }

    /// Puts the heartbeat every `beat.every` while etcd names this instance
    /// active; each one etcd confirms extends `holds` to its send time plus
    /// `beat.authority`. A heartbeat refused (another instance is active)
    /// turns `alive` false. Heartbeats leave on a fixed schedule, each
    /// without waiting for the one before: a slow etcd delays their
    /// confirmations, not their sending, so the active stops only when etcd
    /// takes longer than `authority - every` to confirm.
    fn keep_beating(&self, holds: LeaseClock, alive: Arc<watch::Sender<bool>>) {
        let members = self.members.clone();
        let me = encode(&self.me);
        let beat = self.beat;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(beat.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while *alive.borrow() {
                ticks.tick().await;
                tokio::spawn(send_beat(
                    members.clone(),
                    me.clone(),
                    beat,
                    holds.clone(),
                    alive.clone(),
                ));
            }
        });
    }
}

/// One heartbeat (`Coordinator::keep_beating`). A member that went away
/// fails a request (at once, or at its timeout): tried again at once on the
/// next member, a few times.
async fn send_beat(
    members: Members,
    me: Vec<u8>,
    beat: Beat,
    holds: LeaseClock,
    alive: Arc<watch::Sender<bool>>,
) {
    for _ in 0..BEAT_TRIES {
        let (place, mut client) = members.pick();
        let sent = Instant::now();
        let txn = Txn::new()
            .when([Compare::value(ACTIVE_KEY, CompareOp::Equal, me.clone())])
            .and_then([TxnOp::put(BEAT_KEY, me.clone(), None)]);
        match tokio::time::timeout(beat.authority, client.txn(txn)).await {
            Ok(Ok(response)) if response.succeeded() => {
                holds.extend(sent + beat.authority);
                let took = sent.elapsed();
                if took > beat.authority / 2 {
                    warn!(
                        took_ms = took.as_millis() as u64,
                        authority_ms = beat.authority.as_millis() as u64,
                        "etcd confirmed a heartbeat slowly: past the authority the active stops (raise lease_ms if etcd is this slow)"
                    );
                }
                return;
            }
            Ok(Ok(_)) => {
                error!("etcd names another instance active");
                let _ = alive.send(false);
                return;
            }
            Ok(Err(e)) => {
                warn!(error = %e, "heartbeat failed");
                members.failed(place);
            }
            Err(_) => {
                warn!("heartbeat timed out");
                members.failed(place);
                return;
            }
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings and addresses: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(
    key: &'static str,
    bytes: &[u8],
) -> Result<T, CoordinatorError> {
    serde_json::from_slice(bytes).map_err(|e| CoordinatorError::BadValue {
        key,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_the_active_and_the_standbys_in_step() {
        let holders = JournalHolders {
            active: "ls1".into(),
            in_step: vec!["ls3".into()],
            journal: Some("j1".into()),
        };
        assert!(holders.holds("ls1", Some("j1")));
        assert!(holders.holds("ls3", Some("j1")));
        assert!(!holders.holds("ls2", Some("j1")));
    }

    /// The last active, started again on an empty directory (its disk
    /// lost), has a journal of another lineage: it is not a holder.
    #[test]
    fn a_holder_by_name_with_another_journal_holds_nothing() {
        let holders = JournalHolders {
            active: "ls1".into(),
            in_step: Vec::new(),
            journal: Some("j1".into()),
        };
        assert!(!holders.holds("ls1", Some("j2")));
        assert!(!holders.holds("ls1", None));
        let earlier = JournalHolders {
            journal: None,
            ..holders
        };
        assert!(
            earlier.holds("ls1", Some("j2")),
            "an earlier version's record: the name decides"
        );
    }
}
