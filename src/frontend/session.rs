//! One client session: opensrv's shim, holding the session's connections to
//! the master (A) and the synchronous slave (B), and its prepared statements.
//!
//! Each session has its own connection per node because that is where
//! transactions, SET variables, temporary tables and prepared statements
//! live. Which node sees a statement is the router's decision (`router`);
//! the write path itself is in `write.rs`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Statement};
use opensrv_mysql::{
    AsyncMysqlShim, CapabilityFlags, ClientInfo, InitWriter, OkResponse, ParamValue,
    QueryResultWriter, StatementMetaWriter, StatusFlags,
};
use tokio::io::AsyncWrite;
use tracing::{debug, error, info, warn};

use super::auth::{self, Credential};
use super::error::{ClientError, SendError};
use super::write::OpenTransaction;
use crate::backend::{Node, ServerInfo, SessionParams};
use crate::compare::notify::Event;
use crate::frontend::registry::Registry;
use crate::journal::{Journal, SessionState};
use crate::router::Route;
use crate::sql::intercept::{intercept, Intercepted, Renames};

/// What every session shares.
pub struct Shared {
    pub users: HashMap<Vec<u8>, Credential>,
    pub master: Node,
    /// The first slave, as configured: runs every write before the master
    /// while it holds the synchronous role (see `sync_node`).
    pub sync: Option<Node>,
    /// Why the first slave lost the synchronous role, once it did.
    pub sync_quarantine: std::sync::Mutex<Option<String>>,
    /// The first slave's catch-up while it is out of the synchronous role.
    pub sync_catch_up: std::sync::Mutex<Option<Arc<crate::chain::tail::TailStatus>>>,
    pub server: ServerInfo,
    pub registry: Registry,
    pub journal: Journal,
    /// Held shared by every write in progress (an autocommit statement, an
    /// open transaction), exclusively by a statement that runs alone across
    /// the chain (DDL): see `write.rs`.
    pub gate: Arc<tokio::sync::RwLock<()>>,
    pub nontransactional: crate::chain::nontransactional::NonTransactional,
    pub notifier: crate::compare::notify::Notifier,
    /// `[compare]`: retries and policies.
    pub compare: crate::config::Compare,
    /// The tail nodes and their appliers' status.
    pub tails: Vec<(Node, Arc<crate::chain::tail::TailStatus>)>,
}

impl Shared {
    /// The node in the synchronous role, if any: the first slave unless it
    /// was quarantined.
    pub fn sync_node(&self) -> Option<Node> {
        if self.sync_quarantine_reason().is_some() {
            return None;
        }
        self.sync.clone()
    }

    /// The first slave is synchronous again (called with writes drained).
    pub fn end_sync_quarantine(&self) {
        if let Ok(mut q) = self.sync_quarantine.lock() {
            *q = None;
        }
        if let Ok(mut c) = self.sync_catch_up.lock() {
            *c = None;
        }
    }

    /// The first slave stays out, for this reason (journaled: a restart
    /// keeps it out).
    pub async fn replace_sync_quarantine(&self, reason: String) {
        if let Err(e) = self
            .journal
            .set_quarantine(&node_name(self), Some(&reason))
            .await
        {
            error!(error = %e, "cannot journal the quarantine");
        }
        if let Ok(mut q) = self.sync_quarantine.lock() {
            *q = Some(reason);
        }
        if let Ok(mut c) = self.sync_catch_up.lock() {
            *c = None;
        }
    }

    pub fn sync_quarantine_reason(&self) -> Option<String> {
        self.sync_quarantine.lock().ok().and_then(|q| q.clone())
    }

    /// Takes the first slave out of the synchronous role: every session stops
    /// using it at its next command. With `rejoin` (it only missed entries)
    /// it catches up from the journal and comes back; without (it diverged)
    /// it stays out until an operator re-syncs it.
    pub fn quarantine_sync(self: &Arc<Self>, reason: String, rejoin: bool) {
        if let Ok(mut q) = self.sync_quarantine.lock() {
            if q.is_none() {
                if rejoin {
                    super::sync_rejoin::spawn(self.clone());
                } else {
                    // Kept out across restarts: a diverged node is not
                    // trusted again until an operator says it is re-synced.
                    let (journal, node, why) =
                        (self.journal.clone(), node_name(self), reason.clone());
                    tokio::spawn(async move {
                        if let Err(e) = journal.set_quarantine(&node, Some(&why)).await {
                            error!(error = %e, "cannot journal the quarantine");
                        }
                    });
                }
                let node = self
                    .sync
                    .as_ref()
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                error!(%node, %reason,
                    "synchronous slave quarantined: it gets no more traffic until it is re-synced");
                self.notifier.notify(Event::NodeQuarantined {
                    node,
                    reason: reason.clone(),
                });
                *q = Some(reason);
            }
        }
    }
}

fn node_name(shared: &Shared) -> String {
    shared
        .sync
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_default()
}

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
}

pub struct Session {
    pub(super) id: u32,
    salt: [u8; auth::SALT_LEN],
    peer: SocketAddr,
    pub(super) shared: Arc<Shared>,
    pub(super) user: String,
    pub(super) params: SessionParams,
    pub(super) master: Option<Conn>,
    /// The session's connection to the synchronous slave, when there is one.
    pub(super) sync: Option<Conn>,
    /// The client's open transaction, as lockstep tracks it on B.
    pub(super) txn: Option<OpenTransaction>,
    /// What the tail must reproduce of this session (journaled with each write).
    pub(super) state: SessionState,
    pub(super) last_request_id: Option<uuid::Uuid>,
    /// What LAST_INSERT_ID() returns in this session (journaled for replays).
    pub(super) last_insert_id: u64,
    pub(super) statements: HashMap<u32, PreparedStatement>,
    next_statement_id: u32,
    /// The status flags of the last response: what PING and other answers
    /// lockstep makes up itself report (autocommit, in transaction).
    pub(super) status: StatusFlags,
    /// A statement is running on the master for this session: if the
    /// session ends now (client gone), that statement must be killed.
    pub(super) busy: bool,
    /// Close the client connection after the current answer.
    pub(super) closing: bool,
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
            params: SessionParams::default(),
            master: None,
            sync: None,
            txn: None,
            state: SessionState::default(),
            last_request_id: None,
            last_insert_id: 0,
            statements: HashMap::new(),
            next_statement_id: 1,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            busy: false,
            closing: false,
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
        let master = self.connect_node(&shared.master).await?;
        self.shared
            .registry
            .set_master_thread(self.id, Some(master.id()));
        self.master = Some(master);
        if let Some(sync) = shared.sync_node() {
            match self.connect_node(&sync).await {
                Ok(conn) => self.sync = Some(conn),
                // The master alone can serve; B catches up when it is back.
                Err(err) if err.ends_session() => self.sync_lost(&err.to_string()),
                Err(err) => return Err(err),
            }
        }
        self.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        self.txn = None;
        self.last_insert_id = 0;
        self.state = SessionState {
            schema: self.params.db.clone(),
            collation: self.params.collation,
            found_rows: self.params.found_rows,
            statements: Vec::new(),
        };
        Ok(())
    }

    async fn connect_node(&self, node: &Node) -> Result<Conn, ClientError> {
        match node
            .connect_session(&self.params, &self.shared.server)
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

    /// Answers a new (or changed) user's session: connect, then OK or the error.
    async fn start_session<W: AsyncWrite + Send + Unpin>(
        &mut self,
        client: &ClientInfo,
        w: InitWriter<'_, W>,
    ) -> io::Result<bool> {
        self.user = String::from_utf8_lossy(&client.username).into_owned();
        self.params = SessionParams {
            collation: client.collation,
            found_rows: client
                .capabilities
                .contains(CapabilityFlags::CLIENT_FOUND_ROWS),
            db: client
                .db
                .as_ref()
                .map(|db| String::from_utf8_lossy(db).into_owned()),
        };
        match self.connect_nodes().await {
            Ok(()) => {
                info!(user = %self.user, db = ?self.params.db, "client connected");
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

    /// Follows the first slave's role: stops using it once it lost the
    /// synchronous role (its open transaction there dies with the
    /// connection), and connects to it again, outside a transaction, once it
    /// is back.
    pub(super) async fn follow_sync_role(&mut self) {
        match (self.shared.sync_node(), self.sync.is_some()) {
            (None, true) => {
                info!("leaving the quarantined synchronous slave");
                self.sync = None;
            }
            (Some(node), false) if self.txn.is_none() && self.master.is_some() => {
                if let Err(err) = self.reconnect_sync(&node).await {
                    // Writes without it would leave it behind: out again.
                    self.shared.quarantine_sync(
                        format!("session {} cannot reconnect to it: {err}", self.id),
                        true,
                    );
                }
            }
            _ => {}
        }
    }

    /// A new connection to the synchronous slave with this session's state:
    /// its SET statements replayed, its prepared statements prepared there.
    async fn reconnect_sync(&mut self, node: &Node) -> Result<(), ClientError> {
        let mut conn = self.connect_node(node).await?;
        let backend = |e| ClientError::from_backend(&node.name, e);
        for statement in &self.state.statements {
            conn.query_drop(statement.to_bytes())
                .await
                .map_err(backend)?;
        }
        for prepared in self.statements.values_mut() {
            prepared.sync = Some(conn.prep(prepared.sql.as_slice()).await.map_err(backend)?);
        }
        info!(node = %node.name, "joined the synchronous slave again");
        self.sync = Some(conn);
        Ok(())
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
            node: self.shared.master.name.clone(),
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

/// What a killed session answers, as MariaDB does.
fn killed() -> ClientError {
    ClientError::Server {
        code: 1927,
        state: "70100".into(),
        message: "Connection was killed".into(),
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.registry.remove(self.id);
        // The client left while the master was still working for it (e.g. it
        // disconnected mid-result): stop that work, as MariaDB would when its
        // own client goes away, instead of letting it run to completion.
        if self.busy {
            if let Some(thread) = self.master.as_ref().map(Conn::id) {
                let node = self.shared.master.clone();
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
        self.shared.server.version.clone()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    fn character_set(&self) -> u8 {
        self.shared.server.default_collation
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
        self.statements.clear();
        self.start_session(client, w).await
    }

    async fn on_query<'a>(
        &'a mut self,
        query: &'a [u8],
        w: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let Some(_command) = Command::begin(&self.shared, self.id) else {
            return w.send_error(&killed()).await;
        };
        self.follow_sync_role().await;
        match intercept(query, self.id) {
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
            Intercepted::ShowRequest(id) => self.show_request(w, &id).await,
            Intercepted::ShowUnknown => {
                let err = ClientError::NotSupported("this SHOW LOCKSTEP command".into());
                self.answer(w, Err(err)).await
            }
            Intercepted::Relay(rewrite) => {
                self.run_query(rewrite.sql.into_owned(), &rewrite.renames, w)
                    .await
            }
        }
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a [u8],
        w: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        self.follow_sync_role().await;
        self.prepare(query, w).await
    }

    async fn on_execute<'a>(
        &'a mut self,
        id: u32,
        params: &'a [ParamValue<'a>],
        w: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let Some(_command) = Command::begin(&self.shared, self.id) else {
            return w.send_error(&killed()).await;
        };
        self.follow_sync_role().await;
        self.execute(id, params, w).await
    }

    async fn on_close<'a>(&'a mut self, id: u32)
    where
        W: 'async_trait,
    {
        self.close_statement(id).await
    }

    async fn on_init<'a>(&'a mut self, schema: &'a [u8], w: InitWriter<'a, W>) -> io::Result<()> {
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
