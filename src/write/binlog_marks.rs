//! The marks a serialized statement leaves before it runs: the sessions of
//! the first node and the master enter lockstep's GTID domain under a
//! number chosen above both nodes' (`protocol::binlog_marks`), journaled
//! with the entry, so that a restart can tell which nodes ran it.

use std::sync::atomic::{AtomicBool, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error as BackendError, Row};
use tracing::warn;

use super::Driver;
use crate::error::ClientError;
use crate::journal::entry::now_us;
use crate::journal::{BinlogMarks, BinlogPlace, NodeThread};
use crate::protocol::binlog_marks::{next_seq_no, seq_in_lockstep_domain};
use crate::protocol::control;

impl Driver {
    /// Reads where both nodes' binary logs stand, picks the statement's
    /// number and puts both sessions in lockstep's domain under it: two
    /// round trips per node, for a statement that runs alone anyway. A node
    /// that does not log, or refuses the domain, is not marked. With
    /// `text_inserts` (a text whose INSERTs are pinned only once a node ran
    /// it) the log's file and offset too, one more trip: a restart may have
    /// to read the values there (`protocol::text_inserts`).
    ///
    /// The master's first trip also proves its connection alive before the
    /// first node runs a statement nothing can undo: a session whose master
    /// connection died while it was idle (the master restarted before any
    /// failover) would otherwise have B run the DDL and then find A gone,
    /// and B would hold a change the master never saw (found by
    /// `tests/ha.rs`: B quarantined, one copy left). That error ends the
    /// session before any node ran anything.
    pub(super) async fn mark_binlogs(
        &mut self,
        text_inserts: bool,
    ) -> Result<Option<BinlogMarks>, ClientError> {
        let sync_name = self.sync_name.clone().unwrap_or_default();
        let master_name = self.master_name.clone();
        let (sync_at, master_at) = tokio::join!(
            position_of(self.sync.as_mut(), &sync_name),
            position_of(self.master.as_mut(), &master_name),
        );
        let master_at = master_at.map_err(|e| ClientError::from_backend(&master_name, e))?;
        // B's connection lost shows when B runs the statement: A runs it first.
        let sync_at = sync_at.unwrap_or(None);
        let (sync_place, master_place) = if text_inserts {
            tokio::join!(
                place_of(self.sync.as_mut().filter(|_| sync_at.is_some())),
                place_of(self.master.as_mut().filter(|_| master_at.is_some())),
            )
        } else {
            (None, None)
        };
        if sync_at.is_none() && master_at.is_none() {
            return Ok(None);
        }
        let seq_no = next_seq_no(
            u64::try_from(now_us()).unwrap_or_default(),
            sync_at.into_iter().chain(master_at),
        );
        let (sync_thread, master_thread) = tokio::join!(
            enter_domain(
                self.sync.as_mut().filter(|_| sync_at.is_some()),
                seq_no,
                &sync_name
            ),
            enter_domain(
                self.master.as_mut().filter(|_| master_at.is_some()),
                seq_no,
                &master_name
            ),
        );
        let sessions: Vec<NodeThread> = [
            (sync_name, sync_thread, sync_place),
            (master_name, master_thread, master_place),
        ]
        .into_iter()
        .filter_map(|(node, thread, binlog_from)| {
            Some(NodeThread {
                node,
                thread: thread?,
                binlog_from,
            })
        })
        .collect();
        Ok((!sessions.is_empty()).then_some(BinlogMarks { seq_no, sessions }))
    }

    /// The sessions that `mark_binlogs` put in lockstep's domain go back to
    /// the server's: the client's later statements are not lockstep's.
    pub(super) async fn leave_marked_domain(&mut self, marks: Option<&BinlogMarks>) {
        let Some(marks) = marks else {
            return;
        };
        let marked = |name: &str| marks.sessions.iter().any(|s| s.node == name);
        if marked(&self.sync_node_name()) {
            if let Some(conn) = self.sync.as_mut() {
                let _ = conn.query_drop(control::LEAVE_GTID_DOMAIN).await;
            }
        }
        if marked(&self.master_name) {
            if let Some(conn) = self.master.as_mut() {
                let _ = conn.query_drop(control::LEAVE_GTID_DOMAIN).await;
            }
        }
    }
}

/// Where the node's binary log stands in lockstep's domain (None: no
/// session, or the node does not log or refuses to say); an error when
/// the connection itself failed.
async fn position_of(conn: Option<&mut Conn>, node: &str) -> Result<Option<u64>, BackendError> {
    let Some(conn) = conn else {
        return Ok(None);
    };
    let row: Option<(Option<i64>, Option<String>)> =
        match conn.query_first(control::READ_BINLOG_POSITION).await {
            Ok(row) => row,
            Err(BackendError::Server(e)) => {
                warn_once(node, &e.message);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
    let Some((log_bin, position)) = row else {
        return Ok(None);
    };
    if log_bin != Some(1) {
        warn_once(node, "its binary log is off");
        return Ok(None);
    }
    Ok(Some(seq_in_lockstep_domain(
        position.as_deref().unwrap_or_default(),
    )))
}

/// The file and offset where the node's binary log writes next: the
/// statement's events follow.
async fn place_of(conn: Option<&mut Conn>) -> Option<BinlogPlace> {
    let row: Option<Row> = conn?.query_first(control::READ_BINLOG_PLACE).await.ok()?;
    let row = row?;
    Some(BinlogPlace {
        file: row.get_opt::<String, usize>(0)?.ok()?,
        pos: row.get_opt::<u64, usize>(1)?.ok()?,
    })
}

/// The session's thread id, once it is in lockstep's domain under `seq_no`.
async fn enter_domain(conn: Option<&mut Conn>, seq_no: u64, node: &str) -> Option<u32> {
    let conn = conn?;
    if let Err(e) = conn.query_drop(control::enter_gtid_domain(seq_no)).await {
        warn_once(node, &e.to_string());
        return None;
    }
    Some(conn.id())
}

/// Once per process: without marks a restart in the middle of a DDL can
/// only name it (README, "lockstep stopped during a serialized statement").
fn warn_once(node: &str, why: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn!(
            %node,
            reason = %why,
            "serialized statements leave no mark in this node's binary log: a restart in the middle of one cannot tell whether it ran here"
        );
    }
}
