//! Serialized statements the last run stopped in the middle of.
//!
//! A statement that commits by itself (DDL) is journaled before it runs on
//! the first node, runs there, then on the master, and is numbered after.
//! lockstep stopping in between (killed, its machine gone, a standby taking
//! over) leaves an entry without a number, while the first node, and
//! perhaps the master, hold the change. Nothing can undo a DDL, so the
//! restart finishes it the way the master decides (`protocol::binlog_marks`
//! reads from the binary log which nodes ran it): numbered when the master
//! ran it, run on the master when only the first node did, dropped when no
//! node did. Without marks (no binary log) it can only be named, loudly, for
//! `lockstep check`. A text whose INSERT values were not yet pinned takes
//! those the node that ran it first logged (`chain::logged_inserts`). This
//! runs before any client is served, so the number it takes is in the
//! master's order.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tracing::{error, info, warn};

use super::logged_inserts;
use super::replay;
use super::roles::Roles;
use super::tail::ReplayBounds;
use crate::backend::Node;
use crate::journal::{
    CommitRecord, CommitState, Entry, EntryKind, EntryState, Journal, JournalError,
};
use crate::protocol::binlog_marks::{self, seq_in_lockstep_domain, Finish};
use crate::protocol::{commit, control};

/// ER_DUP_ENTRY.
const DUPLICATE_ENTRY: u16 = 1062;

/// How many of the newest entries are looked through: the cut statement is
/// the last serialized one, and only writes that ran around it follow it.
const NEWEST: usize = 10_000;

/// What the restart did that the roles must know.
#[derive(Debug, Default)]
pub struct Finished {
    /// A commit was numbered that some nodes lack (the synchronous slave
    /// of this start may be one of them).
    pub numbered: bool,
    /// A statement whose master cannot be asked: left for after the start's
    /// failover (`Attempt::BeforeFailover`).
    pub waits_for_failover: bool,
}

/// Which pass over the cut statements this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Before the start fails over from a master that is down. A statement
    /// whose master cannot be asked is left alone:
    /// the failover that follows makes a node the master, and that node
    /// decides (marking it failed now would leave the first node, perhaps
    /// the next master, holding a change the journal says never happened:
    /// found by `tests/ha.rs`, a takeover while the master was restarting).
    BeforeFailover,
    /// The last pass: what no one can tell is named for `lockstep check`.
    Last,
}

pub async fn finish_cut_serialized(
    roles: &Roles,
    journal: &Journal,
    attempt: Attempt,
) -> Result<Finished, JournalError> {
    let mut finished = Finished::default();
    for mut entry in unnumbered(journal)? {
        let sql = String::from_utf8_lossy(&entry.statement.sql().to_bytes()).into_owned();
        let marks = NodesRan::read(roles, &entry).await;
        let first_ran = marks.first.as_ref().map(|f| f.1);
        if attempt == Attempt::BeforeFailover
            && entry.binlog_marks.is_some()
            && marks.master.is_none()
        {
            warn!(request_id = %entry.id, %sql, "lockstep stopped during this statement that commits by itself and the master cannot be asked: decided once the start has a master");
            finished.waits_for_failover = true;
            continue;
        }
        match binlog_marks::finish(marks.master, first_ran) {
            Finish::Number => {
                // The replays take the values the master made.
                logged_inserts::pin_from(&marks.master_node, &mut entry).await;
                let seq = number(journal, &mut entry).await?;
                finished.numbered = true;
                record_on(&marks.master_node, &entry, seq).await;
                match &marks.first {
                    Some((node, Some(true))) => record_on(node, &entry, seq).await,
                    Some((node, _)) => {
                        warn!(node = %node.name, seq, "the first node did not run the cut statement: it gets it from the journal");
                    }
                    None => {}
                }
                info!(request_id = %entry.id, seq, %sql, "lockstep stopped during this statement that commits by itself; the master ran it: numbered, every node gets it");
            }
            Finish::RunOnMaster => {
                let Some((first, _)) = &marks.first else {
                    continue;
                };
                // The master, then every replay, takes the values the first
                // node made.
                logged_inserts::pin_from(first, &mut entry).await;
                let seq = number(journal, &mut entry).await?;
                finished.numbered = true;
                record_on(first, &entry, seq).await;
                let bounds = ReplayBounds {
                    from: seq,
                    until: seq,
                };
                match replay::apply(journal.clone(), marks.master_node.clone(), bounds).await {
                    Ok(_) => {
                        info!(request_id = %entry.id, seq, %sql, node = %first.name, "lockstep stopped during this statement that commits by itself after it ran on the first node: it ran on the master too, and is numbered");
                        lift_quarantine_for(journal, first, &entry).await?;
                    }
                    Err(e) => {
                        refused_by_master(journal, &mut entry, seq, first, &sql, &e).await?;
                    }
                }
            }
            Finish::Drop => {
                info!(request_id = %entry.id, %sql, "lockstep stopped during this statement that commits by itself before any node ran it: it failed");
                entry.state = EntryState::Failed;
                journal.write(&entry);
            }
            Finish::Unknown => {
                error!(request_id = %entry.id, %sql, "lockstep stopped while this statement that commits by itself was running, and the nodes' binary logs cannot tell where it ran: a node may hold it where others do not; run `lockstep check`");
                entry.state = EntryState::Failed;
                journal.write(&entry);
            }
        }
    }
    journal.settle().await?;
    Ok(finished)
}

/// The `lockstep.commits` rows of a serialized statement numbered before
/// lockstep stopped, on the master and on the node that ran it first (its
/// binary log, or else its result in the entry, says so): a node without
/// its row would count itself behind and run the statement again; one
/// that did not run it is left without, and counts itself behind. A row
/// already there is left as it is.
pub async fn record_numbered(
    roles: &Roles,
    journal: &Journal,
    record: &CommitRecord,
    master: Option<&mut mysql_async::Conn>,
) {
    let row = control::record(record.request_id, record.seq);
    if let Some(conn) = master {
        let _ = conn.query_drop(&row).await;
    }
    let Ok(Some(mut entry)) = journal.entry(record.request_id) else {
        return;
    };
    // The master ran it first and the pin of its text's values did not
    // reach the journal: the replays take the values the master logged.
    if let Some(master) = roles.member(&entry.master) {
        if logged_inserts::pin_from(&master.node, &mut entry).await {
            journal.write(&entry);
        }
    }
    for member in roles.members() {
        let node = &member.node;
        if node.name == entry.master {
            continue;
        }
        let passed = entry
            .results
            .iter()
            .any(|r| r.node == node.name && r.outcome.is_ok());
        let marked = entry
            .binlog_marks
            .as_ref()
            .is_some_and(|m| m.sessions.iter().any(|s| s.node == node.name));
        let ran = if marked {
            ran_on(node, &entry).await.unwrap_or(passed)
        } else {
            passed
        };
        if ran {
            record_on(node, &entry, record.seq).await;
        }
    }
}

/// Serialized entries still Pending, without a commit record.
fn unnumbered(journal: &Journal) -> Result<Vec<Entry>, JournalError> {
    // An entry's last state may not have reached the disk where its
    // commit record did: numbered ones are finished.
    let numbered: std::collections::HashSet<_> = journal
        .commit_records_newest_first()
        .take(NEWEST)
        .filter_map(Result::ok)
        .map(|r| r.request_id)
        .collect();
    Ok(journal
        .entries_newest_first()
        .take(NEWEST)
        .filter_map(Result::ok)
        .filter(|e| e.kind == EntryKind::Serialized && e.state == EntryState::Pending)
        .filter(|e| !numbered.contains(&e.id))
        .collect())
}

/// Whether the master, and the node that ran the statement first, ran it.
struct NodesRan {
    master_node: Node,
    master: Option<bool>,
    /// None: the master ran it first (no synchronous slave then).
    first: Option<(Node, Option<bool>)>,
}

impl NodesRan {
    /// The master that decides is the statement's, unless a failover since
    /// made the node that ran it first the master: then that node is asked
    /// as the master, and what it did is what every node gets (the old
    /// master, sent the statement after it, cannot have run what it did
    /// not; when it did, its binary log tells its applier so).
    async fn read(roles: &Roles, entry: &Entry) -> NodesRan {
        let today = roles.master();
        let marked = |name: &str| {
            entry
                .binlog_marks
                .iter()
                .flat_map(|m| m.sessions.iter())
                .any(|s| s.node == name)
        };
        let master_node = if today.name != entry.master && marked(&today.name) {
            today
        } else {
            roles
                .member(&entry.master)
                .map(|m| m.node.clone())
                .unwrap_or(today)
        };
        let master = ran_on(&master_node, entry).await;
        let first = entry
            .binlog_marks
            .iter()
            .flat_map(|m| m.sessions.iter())
            .find(|s| s.node != entry.master && s.node != master_node.name)
            .and_then(|s| roles.member(&s.node))
            .map(|m| m.node.clone());
        let first = match first {
            Some(node) => {
                let ran = ran_on(&node, entry).await;
                Some((node, ran))
            }
            None => None,
        };
        NodesRan {
            master_node,
            master,
            first,
        }
    }
}

/// Whether `node` ran the entry's statement: its number in lockstep's GTID
/// domain reached the entry's (None: not marked, or unreachable).
async fn ran_on(node: &Node, entry: &Entry) -> Option<bool> {
    let marks = entry.binlog_marks.as_ref()?;
    let session = marks.sessions.iter().find(|s| s.node == node.name)?;
    let mut conn = node.connect_admin().await.ok()?;
    // The dead run's session may still be running it (a node does not
    // notice a client gone while it copies rows): it is ended first, and
    // what it ran is then what the binary log holds.
    if !stop_thread(&mut conn, node, session.thread).await {
        return None;
    }
    let row: Option<(Option<i64>, Option<String>)> =
        conn.query_first(control::READ_BINLOG_POSITION).await.ok()?;
    let _ = conn.disconnect().await;
    let (_, position) = row?;
    let now = seq_in_lockstep_domain(position.as_deref().unwrap_or_default());
    binlog_marks::ran(marks.seq_no, Some(now))
}

/// Ends the earlier run's session on the node and waits until it is gone
/// (a DDL it was running rolls back); false when it outlives the wait.
async fn stop_thread(conn: &mut mysql_async::Conn, node: &Node, thread: u32) -> bool {
    const GONE_WITHIN: Duration = Duration::from_secs(60);
    let deadline = Instant::now() + GONE_WITHIN;
    let mut killed = false;
    loop {
        let there: Option<bool> = conn
            .query_first(control::own_thread_exists(thread))
            .await
            .ok()
            .flatten();
        match there {
            Some(false) => return true,
            None => return false,
            Some(true) if Instant::now() > deadline => {
                error!(node = %node.name, thread, "the last run's session is still running the cut statement after 60 s");
                return false;
            }
            Some(true) => {}
        }
        if !killed {
            info!(node = %node.name, thread, "the last run's session is still there: it is ended");
            // Gone meanwhile: nothing to do.
            let _ = conn.query_drop(control::kill_connection(thread)).await;
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Its commit number, taken now: no client is served yet, so it follows
/// every commit the master made.
async fn number(journal: &Journal, entry: &mut Entry) -> Result<u64, JournalError> {
    let record = commit::number(journal, entry.id, vec![entry.id], true).await?;
    let seq = record.seq();
    entry.state = EntryState::Committed { seq };
    journal.write(entry);
    record.resolve(CommitState::Committed);
    journal.settle().await?;
    Ok(seq)
}

/// The node ran it: its `lockstep.commits` says so, so that no applier runs
/// it there again.
async fn record_on(node: &Node, entry: &Entry, seq: u64) {
    let recorded = async {
        let mut conn = node.connect_admin().await?;
        conn.query_drop(control::record(entry.id, seq)).await?;
        conn.disconnect().await
    }
    .await;
    match recorded {
        Ok(()) => {}
        // Its session recorded it before lockstep stopped.
        Err(mysql_async::Error::Server(e)) if e.code == DUPLICATE_ENTRY => {}
        Err(e) => {
            warn!(node = %node.name, seq, error = %e, "cannot record on the node that it ran the cut statement: its applier finds it in the binary log")
        }
    }
}

/// Why the first node leaves the chain when the journal refused the pinned
/// values of a text it ran (`write::serialized`): until the next start
/// finishes the text on the master, it holds rows the master lacks.
pub fn unjournaled_text_reason(request_id: uuid::Uuid, error: &str) -> String {
    format!(
        "request {request_id}: it ran a text that commits by itself whose values the journal \
         refused ({error}); the next start finishes it on the master"
    )
}

/// The first node, quarantined for the text the restart just finished on
/// the master (`unjournaled_text_reason`), holds the master's data again:
/// it catches up from the journal like any node behind.
async fn lift_quarantine_for(
    journal: &Journal,
    first: &Node,
    entry: &Entry,
) -> Result<(), JournalError> {
    let marked = format!("request {}:", entry.id);
    let quarantined_for_it = journal
        .quarantines()?
        .iter()
        .any(|(node, reason)| *node == first.name && reason.starts_with(&marked));
    if quarantined_for_it {
        info!(node = %first.name, request_id = %entry.id, "quarantine lifted: the text it held alone ran on the master");
        journal.set_quarantine(&first.name, None).await?;
    }
    Ok(())
}

/// The master refused what the first node ran: the number is given up, and
/// the first node, which holds a change nothing else has, is quarantined.
async fn refused_by_master(
    journal: &Journal,
    entry: &mut Entry,
    seq: u64,
    first: &Node,
    sql: &str,
    e: &replay::ReplayError,
) -> Result<(), JournalError> {
    if let Some(record) = journal.commit_record(seq)? {
        journal.resolve_commit(&record, CommitState::Aborted);
    }
    entry.state = EntryState::Failed;
    journal.write(entry);
    let reason = format!(
        "it ran request {} ({sql}) which the master refused at restart ({e}); rebuild it",
        entry.id
    );
    error!(node = %first.name, request_id = %entry.id, %sql, error = %e, "the master refused the cut statement the first node ran: that node is quarantined");
    journal.set_quarantine(&first.name, Some(&reason)).await
}
