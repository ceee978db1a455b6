//! The synchronous slave B's side: running lockstep's and the client's
//! statements on B's session connection.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{error, warn};

use super::work::{Pinning, Work};
use super::Driver;
use crate::chain::{handover, outcome};
use crate::error::ClientError;
use crate::journal::{Entry, EntryState, NodeResult, Outcome};
use crate::protocol::control;
use crate::protocol::insert_id::{self, Generated, Question, Reported};

/// How B's part of a statement went, for A's part.
pub(crate) struct SyncPart {
    /// B passed it, or there is no B.
    pub passed: bool,
    /// What B generated: A's `insert_id`, the client's LAST_INSERT_ID().
    pub generated: Option<Generated>,
}

impl Driver {
    /// B's part of a statement: runs it there after `pin` and records B's
    /// result (and the AUTO_INCREMENT value it generated, found out as
    /// `question` says) in `entry`. An error goes to the client and
    /// A never runs the statement: B unreachable, or a timing error there
    /// (`outcome::TIMING_ERRORS`, already undone; B keeps its role) on
    /// tables that can be undone.
    pub(super) async fn run_first_on_sync(
        &mut self,
        work: &Work,
        pin: Option<Pinning>,
        entry: &mut Entry,
        in_txn: bool,
        question: Question,
    ) -> Result<SyncPart, ClientError> {
        let sync = match self.run_on_sync(work, pin).await {
            Ok(Some(sync)) => sync,
            Ok(None) => return self.going_on_without_sync(entry),
            Err(err) => {
                self.finish_entry(entry, EntryState::Failed);
                return Err(err);
            }
        };
        entry.results.push(sync.clone());
        // A failed statement's changes to a MyISAM (or other
        // non-transactional) table stay on B whatever lockstep undoes, as
        // they stay on A directly: then A must run it too, however the
        // error came about.
        let undoable = !self.shared.chain.nontransactional.named_in(work.sql());
        if outcome::is_timing_error(&sync.outcome) && undoable {
            self.finish_entry(entry, EntryState::Failed);
            return Err(self.undo_timing_error_on_sync(&sync.outcome, in_txn).await);
        }
        let Outcome::Ok {
            last_insert_id,
            affected_rows,
            ..
        } = sync.outcome
        else {
            return Ok(SyncPart {
                passed: false,
                generated: None,
            });
        };
        let info = self.sync.as_ref().map(|c| c.info().into_owned());
        let reported = Reported::of_answer(
            last_insert_id,
            affected_rows,
            info.as_deref().unwrap_or(""),
            self.state.found_rows,
        );
        match self
            .generated_on_sync(work.sql(), question, reported, entry.id)
            .await
        {
            Ok(generated) => {
                entry.context.insert_id = generated.insert_id;
                Ok(SyncPart {
                    passed: true,
                    generated: Some(generated),
                })
            }
            Err(e) => {
                // B's part died with its connection.
                self.sync_lost(&e.to_string());
                entry.results.retain(|r| r.node != sync.node);
                self.going_on_without_sync(entry)
            }
        }
    }

    /// No B (any more) for this statement: a write goes on to A where the
    /// settings allow one without B.
    fn going_on_without_sync(&mut self, entry: &mut Entry) -> Result<SyncPart, ClientError> {
        let without = SyncPart {
            passed: true,
            generated: None,
        };
        if let Err(err) = self.refuse_without_sync() {
            self.finish_entry(entry, EntryState::Failed);
            return Err(err);
        }
        Ok(without)
    }

    /// What B's statement generated (`protocol::insert_id`).
    async fn generated_on_sync(
        &mut self,
        sql: &[u8],
        question: Question,
        reported: Reported,
        request_id: uuid::Uuid,
    ) -> Result<Generated, mysql_async::Error> {
        let previous = self.last_insert_id;
        match (question, self.sync.as_mut()) {
            (Question::OkPacket, _) | (_, None) => {
                Ok(insert_id::from_ok_packet(reported, previous))
            }
            (question, Some(conn)) => {
                let node = insert_id::Node {
                    conn,
                    schema: self.state.schema.as_deref(),
                    tops: &self.shared.column_tops,
                    request_id,
                };
                insert_id::generated(node, sql, question, reported, previous).await
            }
        }
    }

    /// Runs `work` on B after `pin`; None without B.
    pub(super) async fn run_on_sync(
        &mut self,
        work: &Work,
        pin: Option<Pinning>,
    ) -> Result<Option<NodeResult>, ClientError> {
        let Some(node) = self.shared.sync_node() else {
            return Ok(None);
        };
        let Some(conn) = self.sync.as_mut() else {
            self.sync_lost("no connection");
            return Ok(None);
        };
        if let Some(content) = &self.client_file {
            outcome::give_local_infile(conn, content);
        }
        let started = std::time::Instant::now();
        let outcome = work.run_on_sync_after(conn, pin.as_ref()).await;
        crate::metrics::observe_node(&node.name, started.elapsed().as_secs_f64());
        if let Outcome::Lost { reason } = &outcome {
            self.sync_lost(reason);
            return Ok(None);
        }
        Ok(Some(NodeResult {
            node: node.name,
            outcome,
            verdict: None,
        }))
    }

    /// Runs lockstep's own statement on B; a broken connection ends the session.
    pub(super) async fn sync_control(&mut self, sql: &str) -> Result<(), ClientError> {
        self.sync_control_bytes(sql.as_bytes()).await
    }

    pub(crate) async fn sync_control_bytes(&mut self, sql: &[u8]) -> Result<(), ClientError> {
        if self.shared.sync_node().is_none() {
            return Ok(());
        }
        let Some(conn) = self.sync.as_mut() else {
            self.sync_lost("no connection");
            return Ok(());
        };
        match conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => self.sync_failed(&self.sync_node_name(), e),
        }
    }

    /// An error from B: B's own (relayed), or a broken connection, which
    /// takes B out of the synchronous role and is not the client's problem.
    pub(crate) fn sync_failed(
        &mut self,
        node: &str,
        e: mysql_async::Error,
    ) -> Result<(), ClientError> {
        let err = ClientError::from_backend(node, e);
        if err.ends_session() {
            self.sync_lost(&err.to_string());
            return Ok(());
        }
        Err(err)
    }

    /// B's connection broke: B leaves the synchronous role (it replays the
    /// journal once reachable, and may take the role back) and this session
    /// goes on without it; what B had of the session's open transaction died
    /// with the connection, and reaches it from the journal.
    pub(crate) fn sync_lost(&mut self, reason: &str) {
        warn!(reason, "lost the synchronous slave; going on without it");
        self.leave_sync_role(format!("connection lost: {reason}"), true);
    }

    /// The node this session uses as synchronous slave leaves the role
    /// (see `handover::sync_leaves`).
    pub(super) fn leave_sync_role(&mut self, reason: String, rejoin: bool) {
        // Its open transaction there, if any, ends with the connection,
        // once the others' connections there ended.
        let own = self.sync.take();
        self.shared.registry.set_sync_thread(self.id, None);
        let node = self
            .sync_name
            .take()
            .or_else(|| self.shared.sync_node().map(|n| n.name));
        if let Some(node) = node {
            handover::sync_leaves(&self.shared.chain, &node, reason, rejoin);
            self.end_connections_on_old_sync(&node, own);
        }
    }

    /// The other sessions' connections to a node that left the synchronous
    /// role end at once. Until each session's next command they would keep
    /// their transactions open there, and their row locks would hold up the
    /// node's applier and their own statements still running on it, up to
    /// `innodb_lock_wait_timeout`, in a wait no server sees as a deadlock
    /// (the order test found a 50 s stall). Each session then finds its
    /// connection lost and goes on without the node, as it would anyway.
    ///
    /// This session's own connection (`own`) ends last: a DDL waiting
    /// there for its transaction's locks is stopped before it could run,
    /// rather than run on the node ahead of this transaction, which the
    /// node replays from the journal before the DDL
    /// (`protocol::serialized`, rule 3).
    fn end_connections_on_old_sync(&self, node: &str, own: Option<Conn>) {
        let threads = self.shared.registry.sync_threads_on(node, self.id);
        let Some(member) = self.shared.chain.roles.member(node) else {
            return;
        };
        if threads.is_empty() {
            return;
        }
        let node = member.node.clone();
        tokio::spawn(async move {
            if let Ok(mut admin) = node.connect_admin().await {
                for thread in threads {
                    // A thread that ended meanwhile is no error worth a word.
                    let _ = admin.query_drop(control::kill_connection(thread)).await;
                }
                let _ = admin.disconnect().await;
            }
            drop(own);
        });
    }

    /// `min_sync_slaves = 1`: no write while no slave is synchronous.
    /// The session's connection counts only while its node still holds
    /// the role: a health check can take B out between the session's look
    /// at the roles and its statement, and a connection to a node that
    /// left the role is no synchronous slave (a write then went to A alone
    /// and was acknowledged: `tests/failover.rs`, under load).
    pub(super) fn refuse_without_sync(&self) -> Result<(), ClientError> {
        if self.shared.min_sync_slaves == 0 || self.holds_the_sync_role() {
            return Ok(());
        }
        let why = self
            .shared
            .chain
            .roles
            .no_sync_reason()
            .unwrap_or_else(|| "this session lost its connection to it".into());
        Err(ClientError::NoSyncSlave(why))
    }

    /// Ends B's part of a statement or transaction; a failure is logged
    /// (the client's answer is already decided by A).
    pub(super) async fn sync_finish(&mut self, sql: &str) {
        if let Err(err) = self.sync_control(sql).await {
            error!(error = %err, sql, "the synchronous slave could not finish");
        }
    }

    /// This session has a connection to the node that holds the
    /// synchronous role now.
    fn holds_the_sync_role(&self) -> bool {
        self.sync.is_some()
            && self
                .shared
                .sync_node()
                .is_some_and(|node| self.sync_name.as_deref() == Some(node.name.as_str()))
    }

    pub(crate) fn sync_node_name(&self) -> String {
        self.sync_name.clone().unwrap_or_default()
    }
}
