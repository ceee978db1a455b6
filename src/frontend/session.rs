//! One client session: opensrv's shim. It holds what belongs to the client
//! (its handshake, its address, the statement ids it was given) and turns
//! each protocol callback into calls on its `write::Driver`, which holds
//! the session's connections to the master (A) and the synchronous slave
//! (B) and runs the write protocol.
//!
//! Each session has its own connection per node because that is where
//! transactions, SET variables, temporary tables and prepared statements
//! live. Which node sees a statement is the router's decision (`router`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use opensrv_mysql::{
    AsyncMysqlShim, CapabilityFlags, ClientInfo, InitWriter, ParamValue, QueryResultWriter,
    StatementMetaWriter, StatusFlags,
};
use tokio::io::AsyncWrite;
use tracing::{debug, info, warn};

use crate::auth;
use crate::backend::SessionParams;
use crate::error::{ClientError, SendError};
use crate::shared::Shared;
use crate::sql::intercept::{intercept, with_found_rows, with_row_count, Client, Intercepted};
use crate::write::Driver;

pub struct Session {
    pub(super) id: u32,
    salt: [u8; auth::SALT_LEN],
    peer: SocketAddr,
    pub(super) shared: Arc<Shared>,
    /// `user@host`, as `USER()` answers directly.
    pub(super) user_at_host: String,
    next_statement_id: u32,
    /// The session's side of the write protocol: its connections to the
    /// nodes and everything lockstep tracks of its state there.
    pub(super) driver: Driver,
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        let id = shared.registry.register();
        Session {
            id,
            salt: auth::new_salt(),
            peer,
            shared: shared.clone(),
            user_at_host: String::new(),
            next_statement_id: 1,
            driver: Driver::new(shared.clone(), id),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn allocate_statement_id(&mut self) -> u32 {
        loop {
            let id = self.next_statement_id;
            self.next_statement_id = self.next_statement_id.wrapping_add(1).max(1);
            if !self.driver.statements.contains_key(&id) {
                return id;
            }
        }
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
                self.driver.answer(w, outcome).await
            }
            Intercepted::KillUnsupported => {
                let err = ClientError::NotSupported("KILL USER and KILL QUERY ID".into());
                self.driver.answer(w, Err(err)).await
            }
            Intercepted::RequestId => self.answer_request_id(w).await,
            Intercepted::ShowNodes => self.show_nodes(w).await,
            Intercepted::ShowStatus => self.show_status(w).await,
            Intercepted::ShowRequest(id) => self.show_request(w, &id).await,
            Intercepted::ShowUnknown => {
                let err = ClientError::NotSupported("this SHOW LOCKSTEP command".into());
                self.driver.answer(w, Err(err)).await
            }
            Intercepted::Relay(rewrite) => {
                // FOUND_ROWS() first: asking A for ROW_COUNT() is a SELECT,
                // which sets A's FOUND_ROWS().
                let rewrite = match self.driver.found_rows_for_write(&rewrite.sql).await {
                    Some(found_rows) => with_found_rows(rewrite, found_rows),
                    None => rewrite,
                };
                let rewrite = match self.driver.row_count_for(&rewrite.sql).await {
                    Some(row_count) => with_row_count(rewrite, row_count),
                    None => rewrite,
                };
                let answered = self
                    .run_query(rewrite.sql.into_owned(), &rewrite.renames, w)
                    .await;
                self.driver.count_node_round_trips();
                answered
            }
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
        let user = String::from_utf8_lossy(&client.username).into_owned();
        self.user_at_host = format!("{}@{}", user, self.peer.ip());
        let params = SessionParams {
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
        match self.driver.open(user, params).await {
            Ok(()) => {
                info!(user = %self.driver.user, db = ?self.driver.params.db, "client connected");
                // The baseline: setting up the connections is no statement's.
                self.driver.count_node_round_trips();
                w.ok_with(self.driver.ok()).await?;
                Ok(true)
            }
            Err(err) => {
                warn!(user = %self.driver.user, error = %err, "cannot open the session's backend connection");
                w.send_error(&err).await?;
                Ok(false)
            }
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
        if self.driver.busy {
            let node = self
                .shared
                .chain
                .roles
                .member(&self.driver.master_name)
                .map(|m| m.node.clone());
            if let (Some(thread), Some(node)) = (self.driver.master.as_ref().map(Conn::id), node) {
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
        self.driver.status
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
        self.driver.closing || self.shared.registry.is_killed(self.id)
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
        if let Some(conn) = self.driver.master.take() {
            let _ = conn.disconnect().await;
        }
        if let Some(conn) = self.driver.sync.take() {
            let _ = conn.disconnect().await;
        }
        self.driver.txn = None;
        self.driver.holds_table_locks = false;
        self.driver.statements.clear();
        self.driver.sql_prepared_pins.clear();
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
        self.driver.follow_roles().await;
        let mut carried = None;
        if let Some(kept) = self.driver.kept_warnings.take() {
            if let Some(errors_only) = crate::write::kept_warnings::asked_for(query) {
                let answered = self
                    .driver
                    .answer_kept_warnings(&kept, errors_only, w)
                    .await;
                // SHOW WARNINGS clears nothing: asked again, the same.
                self.driver.kept_warnings = Some(kept);
                return answered;
            }
            if crate::write::kept_warnings::uses_no_table(query)
                && !self.shared.stored_functions.named_in(query)
            {
                carried = Some(kept);
            }
        }
        let answered = self.answer_query(query, w).await;
        // A statement that uses no table and made no warning of its own
        // leaves MariaDB's diagnostics as they were.
        if let Some(kept) = carried {
            if self
                .driver
                .master
                .as_ref()
                .is_some_and(|c| c.get_warnings() == 0)
            {
                self.driver.kept_warnings = Some(kept);
            }
        }
        answered
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a [u8],
        w: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        self.driver.follow_roles().await;
        self.driver.kept_warnings = None;
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
        self.driver.follow_roles().await;
        self.driver.kept_warnings = None;
        let answered = self.execute(id, params, w).await;
        self.driver.count_node_round_trips();
        answered
    }

    async fn on_close<'a>(&'a mut self, id: u32)
    where
        W: 'async_trait,
    {
        self.close_statement(id).await
    }

    async fn on_init<'a>(&'a mut self, schema: &'a [u8], w: InitWriter<'a, W>) -> io::Result<()> {
        self.driver.kept_warnings = None;
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
