//! One client session: opensrv's shim, holding the session's connections to
//! the master (A) and the synchronous slave (B), and its prepared statements.
//!
//! Each session has its own connection per node because that is where
//! transactions, SET variables, temporary tables and prepared statements
//! live. Which node sees a statement is the router's decision (`router`);
//! the write path itself is in `write/`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Statement};
use opensrv_mysql::{
    AsyncMysqlShim, CapabilityFlags, ClientInfo, InitWriter, OkResponse, ParamValue,
    QueryResultWriter, StatementMetaWriter, StatusFlags,
};
use tokio::io::AsyncWrite;
use tracing::{debug, info, warn};

use super::error::{ClientError, SendError};
use super::write::OpenTransaction;
use crate::auth;
use crate::backend::{Node, SessionParams};
use crate::journal::{SessionState, SqlText};
use crate::protocol::control;
use crate::protocol::insert_id::LastInsertId;
use crate::router::Route;
use crate::shared::Shared;
use crate::sql::intercept::{
    intercept, mentions_found_rows, mentions_row_count, with_found_rows, with_row_count, Client,
    Intercepted, Renames,
};

#[derive(Clone)]
pub(super) struct PreparedStatement {
    /// The statement on the master.
    pub backend: Statement,
    /// The same statement on the synchronous slave.
    pub sync: Option<Statement>,
    pub sql: Vec<u8>,
    pub route: Route,
    pub renames: Renames,
    /// Unpinnable calls the text reads from `@lockstep_pin_N` variables.
    pub pins: Vec<crate::sql::unpinnable::Pin>,
    /// The sequences of the `NEXTVAL` calls the text reads from
    /// `@lockstep_seq_call_N` variables (`sql::sequences`).
    pub sequences: Vec<String>,
}

/// What `EXECUTE name` must set for a `PREPARE name FROM '…'` whose string
/// calls unpinnable functions.
pub(super) struct PrepareStringPins {
    pub pins: Vec<crate::sql::unpinnable::Pin>,
    /// Result column names the pin variables changed, for the client.
    pub renames: Renames,
}

pub struct Session {
    pub(super) id: u32,
    salt: [u8; auth::SALT_LEN],
    peer: SocketAddr,
    pub(super) shared: Arc<Shared>,
    pub(super) user: String,
    /// `user@host`, as `USER()` answers directly.
    pub(super) user_at_host: String,
    pub(super) params: SessionParams,
    pub(super) master: Option<Conn>,
    /// The node `master` is a connection to.
    pub(super) master_name: String,
    /// The session's connection to the synchronous slave, when there is one.
    pub(super) sync: Option<Conn>,
    /// The node `sync` is a connection to.
    pub(super) sync_name: Option<String>,
    /// The client's open transaction, as lockstep tracks it on B.
    pub(super) txn: Option<OpenTransaction>,
    /// What the tail must reproduce of this session (journaled with each write).
    pub(super) state: SessionState,
    pub(super) last_request_id: Option<uuid::Uuid>,
    /// What LAST_INSERT_ID() returns in this session (journaled for replays).
    pub(super) last_insert_id: LastInsertId,
    /// The time the client fixed with `SET timestamp = …`, as A reports it.
    pub(super) fixed_timestamp: Option<String>,
    /// What ROW_COUNT() gives after the client's last statement, when that
    /// statement ran on A through the write path (lockstep's own COMMIT and
    /// SET ran after it there, so A's session has lost the value): the next
    /// text's `ROW_COUNT()` calls become this literal.
    pub(super) row_count: Option<i64>,
    pub(super) statements: HashMap<u32, PreparedStatement>,
    next_statement_id: u32,
    /// The unpinnable calls of the client's `PREPARE name FROM '…'`
    /// statements, by name: each `EXECUTE name` sets their pin variables.
    pub(super) sql_prepared_pins: HashMap<String, PrepareStringPins>,
    /// The status flags of the last response: what PING and other answers
    /// lockstep makes up itself report (autocommit, in transaction).
    pub(super) status: StatusFlags,
    /// A statement is running on the master for this session: if the
    /// session ends now (client gone), that statement must be killed.
    pub(super) busy: bool,
    /// Close the client connection after the current answer.
    pub(super) closing: bool,
    /// The client holds `LOCK TABLES` on A and B: lockstep must not send
    /// `BEGIN` (it releases them); see `control::Wrap`.
    pub(super) holds_table_locks: bool,
    /// The content of the client's file for the `LOAD DATA LOCAL INFILE`
    /// being run: given to B and A, and journaled with the statement.
    pub(super) client_file: Option<bytes::Bytes>,
    /// The commands sent on the master and sync connections already
    /// counted in the metrics, with each connection's id.
    commands_counted: [Option<(u32, u64)>; 2],
    /// The diagnostics of a committed transaction's last statement, for
    /// the client's next `SHOW WARNINGS` (`kept_warnings`).
    pub(super) kept_warnings: Option<super::kept_warnings::KeptWarnings>,
    /// A command since the last COMMIT or ROLLBACK answered with warnings
    /// on the master: they may still be its diagnostics at the COMMIT.
    pub(super) warned_since_commit: bool,
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        let id = shared.registry.register();
        Session {
            id,
            salt: auth::new_salt(),
            peer,
            shared,
            user: String::new(),
            user_at_host: String::new(),
            params: SessionParams::default(),
            master: None,
            master_name: String::new(),
            sync: None,
            sync_name: None,
            txn: None,
            state: SessionState::default(),
            last_request_id: None,
            last_insert_id: LastInsertId::known(0),
            row_count: None,
            fixed_timestamp: None,
            statements: HashMap::new(),
            next_statement_id: 1,
            sql_prepared_pins: HashMap::new(),
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            busy: false,
            client_file: None,
            commands_counted: [None, None],
            kept_warnings: None,
            warned_since_commit: false,
            closing: false,
            holds_table_locks: false,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn allocate_statement_id(&mut self) -> u32 {
        loop {
            let id = self.next_statement_id;
            self.next_statement_id = self.next_statement_id.wrapping_add(1).max(1);
            if !self.statements.contains_key(&id) {
                return id;
            }
        }
    }

    /// Records that an error was sent; a lost backend ends the session.
    pub(super) fn note_failure(&mut self, err: &ClientError) {
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
    async fn connect_nodes(&mut self) -> Result<(), ClientError> {
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

    /// A COM_QUERY past the kept warnings: answered by lockstep or relayed.
    async fn answer_query<W: AsyncWrite + Send + Unpin>(
        &mut self,
        query: &[u8],
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        match intercept(query, self.client()) {
            Intercepted::SelectSocket => self.answer_select_socket(w).await,
            Intercepted::Kill { query_only, id } => {
                let outcome = self.kill(query_only, id).await;
                self.answer(w, outcome).await
            }
            Intercepted::KillUnsupported => {
                let err = ClientError::NotSupported("KILL USER and KILL QUERY ID".into());
                self.answer(w, Err(err)).await
            }
            Intercepted::RequestId => self.answer_request_id(w).await,
            Intercepted::ShowNodes => self.show_nodes(w).await,
            Intercepted::ShowStatus => self.show_status(w).await,
            Intercepted::ShowRequest(id) => self.show_request(w, &id).await,
            Intercepted::ShowUnknown => {
                let err = ClientError::NotSupported("this SHOW LOCKSTEP command".into());
                self.answer(w, Err(err)).await
            }
            Intercepted::Relay(rewrite) => {
                // FOUND_ROWS() first: asking A for ROW_COUNT() is a SELECT,
                // which sets A's FOUND_ROWS().
                let rewrite = match self.found_rows_for_write(&rewrite.sql).await {
                    Some(found_rows) => with_found_rows(rewrite, found_rows),
                    None => rewrite,
                };
                let rewrite = match self.row_count_for(&rewrite.sql).await {
                    Some(row_count) => with_row_count(rewrite, row_count),
                    None => rewrite,
                };
                let answered = self
                    .run_query(rewrite.sql.into_owned(), &rewrite.renames, w)
                    .await;
                self.count_node_commands();
                answered
            }
        }
    }

    /// Adds the commands this session sent to the master and to the
    /// synchronous slave since the last count to the metrics (issue budget:
    /// a statement's cost in node round trips, counted, not timed).
    fn count_node_commands(&mut self) {
        if self.master.as_ref().is_some_and(|c| c.get_warnings() > 0) {
            self.warned_since_commit = true;
        }
        let conns = [
            (self.master.as_ref(), "master"),
            (self.sync.as_ref(), "sync"),
        ];
        for (i, (conn, role)) in conns.into_iter().enumerate() {
            let Some(conn) = conn else {
                self.commands_counted[i] = None;
                continue;
            };
            let now = (conn.id(), conn.commands_sent());
            let before = match self.commands_counted[i] {
                Some((id, sent)) if id == now.0 => sent,
                // A new connection: its set-up is not a statement's cost.
                _ => now.1,
            };
            crate::metrics::count_session_node_commands(role, now.1.saturating_sub(before));
            self.commands_counted[i] = Some(now);
        }
    }

    /// The value of ROW_COUNT() for a text that may call it: known when the
    /// last statement took the write path, asked of A otherwise (A's
    /// session still has it, but a write would run after lockstep's pinning
    /// SET there, and B and the tail have their own). As a literal, the
    /// call gives the same value everywhere.
    async fn row_count_for(&mut self, sql: &[u8]) -> Option<i64> {
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
    async fn found_rows_for_write(&mut self, sql: &[u8]) -> Option<i64> {
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
    pub(super) async fn adopt_master_defaults(&mut self) -> Result<(), ClientError> {
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

    async fn connect_node(&self, node: &Node) -> Result<Conn, ClientError> {
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

    /// The client as the functions that name it see it.
    pub(super) fn client(&self) -> Client<'_> {
        Client {
            connection_id: self.id,
            user: &self.user_at_host,
        }
    }

    /// Answers a new (or changed) user's session: connect, then OK or the error.
    async fn start_session<W: AsyncWrite + Send + Unpin>(
        &mut self,
        client: &ClientInfo,
        w: InitWriter<'_, W>,
    ) -> io::Result<bool> {
        self.user = String::from_utf8_lossy(&client.username).into_owned();
        self.user_at_host = format!("{}@{}", self.user, self.peer.ip());
        self.params = SessionParams {
            collation: client.collation,
            found_rows: client
                .capabilities
                .contains(CapabilityFlags::CLIENT_FOUND_ROWS),
            interactive: client
                .capabilities
                .contains(CapabilityFlags::CLIENT_INTERACTIVE),
            local_files: client
                .capabilities
                .contains(CapabilityFlags::CLIENT_LOCAL_FILES),
            extended_metadata: client.extended_metadata,
            db: client
                .db
                .as_ref()
                .map(|db| String::from_utf8_lossy(db).into_owned()),
        };
        match self.connect_nodes().await {
            Ok(()) => {
                info!(user = %self.user, db = ?self.params.db, "client connected");
                // The baseline: setting up the connections is no statement's.
                self.count_node_commands();
                w.ok_with(self.ok()).await?;
                Ok(true)
            }
            Err(err) => {
                warn!(user = %self.user, error = %err, "cannot open the session's backend connection");
                w.send_error(&err).await?;
                Ok(false)
            }
        }
    }

    /// Follows the roles: a session outside a transaction moves to a new
    /// master (the synchronous slave it already holds a connection to, when
    /// that is the node promoted) and to a new synchronous slave, with its
    /// state; a session inside one loses it with the old master, as a
    /// client of a MariaDB server that died would (2013, then reconnect).
    pub(super) async fn follow_roles(&mut self) {
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
            if self.sync.is_none() && self.txn.is_none() && self.master.is_some() {
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
    async fn follow_master(&mut self, master: Node) {
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
        let Some((conn, statements)) = moved else {
            warn!(new = %master.name, "cannot reach the new master");
            self.master = None;
            return;
        };
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
    async fn connect_with_state(
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
    pub(super) fn ok(&self) -> OkResponse {
        OkResponse {
            status_flags: self.status,
            ..Default::default()
        }
    }

    pub(super) fn lost_master(&self) -> ClientError {
        ClientError::BackendLost {
            node: self.master_name.clone(),
            reason: "no connection".into(),
        }
    }
}

/// A command in progress, for KILL (see `Registry::begin_command`).
struct Command {
    shared: Arc<Shared>,
    id: u32,
}

impl Command {
    fn begin(shared: &Arc<Shared>, id: u32) -> Option<Command> {
        shared.registry.begin_command(id).then(|| Command {
            shared: shared.clone(),
            id,
        })
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        self.shared.registry.end_command(self.id);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.registry.remove(self.id);
        // The client left while the master was still working for it (e.g. it
        // disconnected mid-result): stop that work, as MariaDB would when its
        // own client goes away, instead of letting it run to completion.
        if self.busy {
            let node = self
                .shared
                .chain
                .roles
                .member(&self.master_name)
                .map(|m| m.node.clone());
            if let (Some(thread), Some(node)) = (self.master.as_ref().map(Conn::id), node) {
                tokio::spawn(async move {
                    if let Ok(mut admin) = node.connect_admin().await {
                        let _ = admin.query_drop(format!("KILL CONNECTION {thread}")).await;
                        let _ = admin.disconnect().await;
                    }
                });
            }
        }
        debug!(conn_id = self.id, "session ended");
    }
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> AsyncMysqlShim<W> for Session {
    type Error = io::Error;

    fn version(&self) -> String {
        self.shared.chain.server.version.clone()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    fn character_set(&self) -> u8 {
        self.shared.chain.server.default_collation
    }

    fn status_flags(&self) -> StatusFlags {
        self.status
    }

    fn salt(&self) -> [u8; auth::SALT_LEN] {
        self.salt
    }

    async fn authenticate(
        &self,
        auth_plugin: &str,
        username: &[u8],
        salt: &[u8],
        auth_data: &[u8],
    ) -> bool {
        let accepted = auth_plugin == "mysql_native_password"
            && self
                .shared
                .users
                .get(username)
                .is_some_and(|c| c.verify(salt, auth_data));
        if !accepted {
            info!(user = %String::from_utf8_lossy(username), peer = %self.peer, "access denied");
        }
        accepted
    }

    fn peer_host(&self) -> String {
        self.peer.ip().to_string()
    }

    fn should_close(&self) -> bool {
        self.closing || self.shared.registry.is_killed(self.id)
    }

    async fn on_connect<'a>(
        &'a mut self,
        client: &'a ClientInfo,
        w: InitWriter<'a, W>,
    ) -> io::Result<bool> {
        self.start_session(client, w).await
    }

    async fn on_change_user<'a>(
        &'a mut self,
        client: &'a ClientInfo,
        w: InitWriter<'a, W>,
    ) -> io::Result<bool> {
        // A changed user gets a fresh session, as from MariaDB: a new backend
        // connection drops the old one's transaction, variables and statements.
        if let Some(conn) = self.master.take() {
            let _ = conn.disconnect().await;
        }
        if let Some(conn) = self.sync.take() {
            let _ = conn.disconnect().await;
        }
        self.txn = None;
        self.holds_table_locks = false;
        self.statements.clear();
        self.sql_prepared_pins.clear();
        self.start_session(client, w).await
    }

    async fn on_query<'a>(
        &'a mut self,
        query: &'a [u8],
        w: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let Some(_command) = Command::begin(&self.shared, self.id) else {
            return w.send_error(&ClientError::connection_killed()).await;
        };
        self.follow_roles().await;
        let mut carried = None;
        if let Some(kept) = self.kept_warnings.take() {
            if let Some(errors_only) = super::kept_warnings::asked_for(query) {
                let answered = self.answer_kept_warnings(&kept, errors_only, w).await;
                // SHOW WARNINGS clears nothing: asked again, the same.
                self.kept_warnings = Some(kept);
                return answered;
            }
            if super::kept_warnings::uses_no_table(query)
                && !self.shared.stored_functions.named_in(query)
            {
                carried = Some(kept);
            }
        }
        let answered = self.answer_query(query, w).await;
        // A statement that uses no table and made no warning of its own
        // leaves MariaDB's diagnostics as they were.
        if let Some(kept) = carried {
            if self.master.as_ref().is_some_and(|c| c.get_warnings() == 0) {
                self.kept_warnings = Some(kept);
            }
        }
        answered
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a [u8],
        w: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        self.follow_roles().await;
        self.kept_warnings = None;
        self.prepare(query, w).await
    }

    async fn on_execute<'a>(
        &'a mut self,
        id: u32,
        params: &'a [ParamValue<'a>],
        w: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let Some(_command) = Command::begin(&self.shared, self.id) else {
            return w.send_error(&ClientError::connection_killed()).await;
        };
        self.follow_roles().await;
        self.kept_warnings = None;
        let answered = self.execute(id, params, w).await;
        self.count_node_commands();
        answered
    }

    async fn on_close<'a>(&'a mut self, id: u32)
    where
        W: 'async_trait,
    {
        self.close_statement(id).await
    }

    async fn on_init<'a>(&'a mut self, schema: &'a [u8], w: InitWriter<'a, W>) -> io::Result<()> {
        self.kept_warnings = None;
        self.init_db(schema, w).await
    }

    async fn on_field_list<'a>(
        &'a mut self,
        table: &'a [u8],
        wildcard: &'a [u8],
        w: InitWriter<'a, W>,
    ) -> io::Result<()> {
        self.field_list(table, wildcard, w).await
    }

    async fn on_reset_connection<'a>(&'a mut self, w: InitWriter<'a, W>) -> io::Result<()> {
        self.reset_connection(w).await
    }

    fn on_set_multi_statements(&mut self, enabled: bool) {
        debug!(enabled, "client set CLIENT_MULTI_STATEMENTS");
    }

    async fn on_other_command<'a>(
        &'a mut self,
        command: u8,
        payload: &'a [u8],
        w: InitWriter<'a, W>,
    ) -> io::Result<()> {
        self.other_command(command, payload, w).await
    }
}
