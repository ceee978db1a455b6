//! The session's connections to the nodes: opening them for a client,
//! following the roles when failover or a handover moves them, running
//! lockstep's own statements on the master, and answering the client with
//! an OK or the error a node gave.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Statement};
use opensrv_mysql::{InitWriter, OkResponse, QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tracing::{debug, info, warn};

use super::Driver;
use crate::backend::{Node, SessionParams};
use crate::error::{ClientError, SendError};
use crate::journal::{SessionState, SqlText};
use crate::protocol::control;
use crate::protocol::insert_id::LastInsertId;
use crate::router::Route;
use crate::sql::intercept::{mentions_found_rows, mentions_row_count};
use crate::wire::relay::{self, SetsEnd};

impl Driver {
    /// Opens the session's connections to the nodes for `user`, as a client
    /// that logged in with `params` gets them (the client-facing session
    /// calls it at login and at COM_CHANGE_USER; tests drive a `Driver`
    /// with no client connection from here).
    pub async fn open(&mut self, user: String, params: SessionParams) -> Result<(), ClientError> {
        self.user = user;
        self.params = params;
        self.connect_nodes().await
    }

    /// Records that an error was sent; a lost backend ends the session.
    pub(crate) fn note_failure(&mut self, err: &ClientError) {
        if err.ends_session() {
            warn!(error = %err, "backend connection lost; closing the client connection");
            self.shared.failover.suspect(&self.master_name);
            self.master = None;
            self.txn = None;
            self.closing = true;
        } else {
            debug!(code = err.code(), error = %err, "statement failed");
        }
    }
    /// Opens the session's connections (master, then synchronous slave) for `params`.
    pub(super) async fn connect_nodes(&mut self) -> Result<(), ClientError> {
        let shared = self.shared.clone();
        let node = shared.master_node();
        let master = match self.connect_node(&node).await {
            Ok(conn) => conn,
            Err(err) => {
                if err.ends_session() {
                    shared.failover.suspect(&node.name);
                }
                return Err(err);
            }
        };
        self.shared
            .registry
            .set_master_thread(self.id, Some(master.id()));
        self.master = Some(master);
        self.master_name = node.name;
        if let Some(sync) = shared.sync_node() {
            match self.connect_node(&sync).await {
                Ok(conn) => {
                    self.shared
                        .registry
                        .set_sync_thread(self.id, Some((sync.name.clone(), conn.id())));
                    self.sync = Some(conn);
                    self.sync_name = Some(sync.name);
                }
                // The master alone can serve; B catches up when it is back.
                Err(err) if err.ends_session() => {
                    self.sync_name = Some(sync.name);
                    self.sync_lost(&err.to_string());
                }
                Err(err) => return Err(err),
            }
        }
        self.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        self.txn = None;
        self.last_insert_id = LastInsertId::known(0);
        self.state = SessionState {
            schema: self.params.db.clone(),
            collation: self.params.collation,
            found_rows: self.params.found_rows,
            ..SessionState::default()
        };
        self.adopt_master_defaults().await
    }
    /// Adds the round trips this session made to the master and to the
    /// synchronous slave since the last count to the metrics (issue budget:
    /// a statement's cost in node round trips, counted, not timed).
    pub(crate) fn count_node_round_trips(&mut self) {
        if self.master.as_ref().is_some_and(|c| c.get_warnings() > 0) {
            self.warned_since_commit = true;
        }
        let conns = [
            (self.master.as_ref(), "master"),
            (self.sync.as_ref(), "sync"),
        ];
        for (i, (conn, role)) in conns.into_iter().enumerate() {
            let Some(conn) = conn else {
                self.round_trips_counted[i] = None;
                continue;
            };
            let now = (conn.id(), conn.round_trips());
            let before = match self.round_trips_counted[i] {
                Some((id, sent)) if id == now.0 => sent,
                // A new connection: its set-up is not a statement's cost.
                _ => now.1,
            };
            crate::metrics::count_session_node_round_trips(role, now.1.saturating_sub(before));
            self.round_trips_counted[i] = Some(now);
        }
    }
    /// The value of ROW_COUNT() for a text that may call it: known when the
    /// last statement took the write path, asked of A otherwise (A's
    /// session still has it, but a write would run after lockstep's pinning
    /// SET there, and B and the tail have their own). As a literal, the
    /// call gives the same value everywhere.
    pub(crate) async fn row_count_for(&mut self, sql: &[u8]) -> Option<i64> {
        if !mentions_row_count(sql) {
            return None;
        }
        if self.row_count.is_some() {
            return self.row_count;
        }
        let conn = self.master.as_mut()?;
        conn.query_first::<i64, _>("SELECT ROW_COUNT()")
            .await
            .ok()
            .flatten()
    }
    /// The value of FOUND_ROWS() for a write that may call it: the client's
    /// last SELECT ran on A alone, so only A's session has it. Asked of A
    /// (a SELECT, after which A's own FOUND_ROWS() is 1: README, limits).
    pub(crate) async fn found_rows_for_write(&mut self, sql: &[u8]) -> Option<i64> {
        if !mentions_found_rows(sql) || crate::router::route(sql) == Route::Read {
            return None;
        }
        let conn = self.master.as_mut()?;
        conn.query_first::<i64, _>("SELECT FOUND_ROWS()")
            .await
            .ok()
            .flatten()
    }
    /// The session variables a new session takes from the server's globals
    /// (`control::SESSION_DEFAULTS`), read on A: B's session takes the same
    /// values, and the tail replays the session's statements under them.
    pub(crate) async fn adopt_master_defaults(&mut self) -> Result<(), ClientError> {
        let node = self.master_name.clone();
        let Some(master) = self.master.as_mut() else {
            return Err(self.lost_master());
        };
        let values: Option<Row> = match master.query_first(control::read_session_defaults()).await {
            Ok(values) => values,
            Err(e) => {
                let err = ClientError::from_backend(&node, e);
                if err.ends_session() {
                    return Err(err);
                }
                // A server without one of these variables: the session
                // goes on with its own, as before.
                warn!(error = %err, "cannot read the session's settings on the master; the tail uses its own");
                return Ok(());
            }
        };
        let values: Vec<Option<String>> = match values {
            Some(row) => (0..row.len())
                .map(|i| {
                    row.get_opt::<Option<String>, usize>(i)
                        .and_then(Result::ok)
                        .flatten()
                })
                .collect(),
            None => Vec::new(),
        };
        let Some(set) = control::set_session_defaults(&values) else {
            return Ok(());
        };
        if let (Some(sync), Some(name)) = (self.sync.as_mut(), self.sync_name.clone()) {
            if let Err(e) = sync.query_drop(&set).await {
                let err = ClientError::from_backend(&name, e);
                if err.ends_session() {
                    self.sync_lost(&err.to_string());
                } else {
                    warn!(error = %err, "the synchronous slave refused the master's session settings");
                }
            }
        }
        self.state
            .remember(SqlText::from_bytes(set.as_bytes()), false);
        Ok(())
    }
    pub(super) async fn connect_node(&self, node: &Node) -> Result<Conn, ClientError> {
        match node
            .connect_session(&self.params, &self.shared.chain.server)
            .await
        {
            Ok(conn) => Ok(conn),
            Err(mysql_async::Error::Server(e)) => Err(ClientError::from_backend(
                &node.name,
                mysql_async::Error::Server(e),
            )),
            Err(e) => Err(ClientError::BackendUnreachable {
                node: node.name.clone(),
                address: node.address(),
                reason: e.to_string(),
            }),
        }
    }
    /// Follows the roles: a session outside a transaction moves to a new
    /// master (the synchronous slave it already holds a connection to, when
    /// that is the node promoted) and to a new synchronous slave, with its
    /// state (inside a transaction too, while B holds nothing of it); a
    /// session inside one loses it with the old master, as a client of a
    /// MariaDB server that died would (2013, then reconnect).
    pub(crate) async fn follow_roles(&mut self) {
        let master = self.shared.master_node();
        if self.master.is_some() && self.master_name != master.name {
            self.follow_master(master).await;
        }
        let sync = self.shared.sync_node();
        let moved = match (&sync, &self.sync_name) {
            (Some(node), Some(name)) => node.name != *name,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if moved {
            info!(from = ?self.sync_name, "leaving a node that is no longer the synchronous slave");
            self.sync = None;
            self.sync_name = None;
            self.shared.registry.set_sync_thread(self.id, None);
        }
        if let Some(node) = sync {
            let holds_nothing_on_b = self.txn.is_none() || self.begun_on_master_alone();
            if self.sync.is_none() && holds_nothing_on_b && self.master.is_some() {
                self.sync_name = Some(node.name.clone());
                match self.connect_with_state(&node).await {
                    Ok((conn, statements)) => {
                        for (id, stmt) in statements {
                            if let Some(prepared) = self.statements.get_mut(&id) {
                                prepared.sync = Some(stmt);
                            }
                        }
                        info!(node = %node.name, "joined the synchronous slave");
                        self.shared
                            .registry
                            .set_sync_thread(self.id, Some((node.name.clone(), conn.id())));
                        self.sync = Some(conn);
                    }
                    // Writes without it would leave it behind: out again.
                    Err(err) => {
                        self.sync_lost(&format!("session {} cannot connect to it: {err}", self.id))
                    }
                }
            }
        }
    }
    /// The master changed under this session (failover).
    pub(super) async fn follow_master(&mut self, master: Node) {
        // Table locks do not move to another server.
        self.holds_table_locks = false;
        if self.txn.is_some() {
            warn!(old = %self.master_name, new = %master.name,
                "the master changed during this session's transaction: it is lost");
            self.master = None;
            self.sync = None;
            self.sync_name = None;
            self.txn = None;
            return;
        }
        let moved = if self.sync_name.as_deref() == Some(master.name.as_str()) {
            // The promoted slave has this session's state already.
            self.sync_name = None;
            let statements = self
                .statements
                .iter_mut()
                .filter_map(|(id, p)| Some((*id, p.sync.take()?)))
                .collect();
            self.sync.take().map(|conn| (conn, statements))
        } else {
            self.connect_with_state(&master).await.ok()
        };
        let Some((mut conn, mut statements)) = moved else {
            warn!(new = %master.name, "cannot reach the new master");
            self.master = None;
            return;
        };
        // A statement prepared while no node held the synchronous role (a
        // prepare that raced the promotion) has no handle on the promoted
        // slave; kept, its old master's handle would name another
        // statement or none there (1243, seen in `tests/order.rs`).
        let missing: Vec<(u32, Vec<u8>)> = self
            .statements
            .iter()
            .filter(|(id, _)| !statements.iter().any(|(kept, _)| kept == *id))
            .map(|(id, prepared)| (*id, prepared.sql.clone()))
            .collect();
        for (id, sql) in missing {
            match conn.prep(sql.as_slice()).await {
                Ok(stmt) => statements.push((id, stmt)),
                Err(e) => {
                    warn!(new = %master.name, error = %e, "cannot prepare the session's statements on the new master");
                    self.master = None;
                    return;
                }
            }
        }
        for (id, stmt) in statements {
            if let Some(prepared) = self.statements.get_mut(&id) {
                prepared.backend = stmt;
            }
        }
        info!(old = %self.master_name, new = %master.name, "session moved to the new master");
        self.shared
            .registry
            .set_master_thread(self.id, Some(conn.id()));
        self.master = Some(conn);
        self.master_name = master.name;
    }
    /// A new connection to `node` with this session's state: its SET
    /// statements replayed, its prepared statements prepared there (by
    /// client statement id).
    pub(super) async fn connect_with_state(
        &mut self,
        node: &Node,
    ) -> Result<(Conn, Vec<(u32, Statement)>), ClientError> {
        let mut conn = self.connect_node(node).await?;
        let backend = |e| ClientError::from_backend(&node.name, e);
        for (statement, refused) in self.state.statements_as_run() {
            match conn.query_drop(statement.to_bytes()).await {
                Ok(()) => {}
                // It fails again here, after the same work.
                Err(mysql_async::Error::Server(_)) if refused => {}
                Err(e) => return Err(backend(e)),
            }
        }
        let mut statements = Vec::with_capacity(self.statements.len());
        for (id, prepared) in &self.statements {
            statements.push((
                *id,
                conn.prep(prepared.sql.as_slice()).await.map_err(backend)?,
            ));
        }
        Ok((conn, statements))
    }
    /// An OK packet with the session's status.
    pub(crate) fn ok(&self) -> OkResponse {
        OkResponse {
            status_flags: self.status,
            ..Default::default()
        }
    }
    pub(crate) fn lost_master(&self) -> ClientError {
        ClientError::BackendLost {
            node: self.master_name.clone(),
            reason: "no connection".into(),
        }
    }
    /// Before B runs what it cannot undo: the master's connection answers
    /// (COM_PING, one round trip). A connection that died while the session
    /// was idle (the master restarted before any failover) would show only
    /// once B had run it, leaving B with a change the master never saw.
    pub(crate) async fn master_answers(&mut self) -> Result<(), ClientError> {
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            return Err(self.lost_master());
        };
        conn.ping()
            .await
            .map_err(|e| ClientError::from_backend(&node, e))
    }
    /// Runs a statement without a result set on the master; the OK as the
    /// client should get it.
    pub(crate) async fn run_on_master(
        &mut self,
        sql: &[u8],
    ) -> Result<opensrv_mysql::OkResponse, ClientError> {
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            return Err(self.lost_master());
        };
        match conn.query_drop(sql).await {
            Ok(()) => {
                let ok = conn
                    .last_ok_packet()
                    .map(relay::ok_response)
                    .unwrap_or_default();
                self.status = ok.status_flags;
                Ok(ok)
            }
            Err(e) => {
                let err = ClientError::from_backend(&node, e);
                if err.ends_session() {
                    warn!(error = %err, "lost the master connection");
                }
                Err(err)
            }
        }
    }
    /// Answers a COM_QUERY with an OK or an error.
    pub(crate) async fn answer<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
        outcome: Result<opensrv_mysql::OkResponse, ClientError>,
    ) -> io::Result<()> {
        match outcome {
            Ok(ok) => w.completed(ok).await,
            Err(err) => {
                w.send_error(&err).await?;
                self.note_failure(&err);
                Ok(())
            }
        }
    }
    /// Answers a command other than COM_QUERY with an OK or an error.
    pub(crate) async fn answer_init<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: InitWriter<'_, W>,
        outcome: Result<opensrv_mysql::OkResponse, ClientError>,
    ) -> io::Result<()> {
        match outcome {
            Ok(ok) => w.ok_with(ok).await,
            Err(err) => {
                w.send_error(&err).await?;
                self.note_failure(&err);
                Ok(())
            }
        }
    }
    /// Ends a relayed response: the last terminator once the master's final
    /// status is known, or the bookkeeping of the error the client got.
    /// True when the statement succeeded.
    pub(super) async fn end_response<W: AsyncWrite + Send + Unpin>(
        &mut self,
        end: SetsEnd<'_, W>,
    ) -> io::Result<bool> {
        self.busy = false;
        match (end, self.master.as_ref()) {
            (SetsEnd::Complete(w), Some(conn)) => {
                relay::finish(conn, w, &mut self.status).await?;
                Ok(true)
            }
            (SetsEnd::Complete(w), None) => {
                w.no_more_results().await?;
                Ok(true)
            }
            (SetsEnd::Failed(err), _) => {
                self.note_failure(&err);
                Ok(false)
            }
            (SetsEnd::Refused(w, _), _) => {
                let err = relay::unexpected_refusal(w).await?;
                self.note_failure(&err);
                Ok(false)
            }
        }
    }
}
