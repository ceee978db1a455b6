//! Statements relayed to the master: COM_QUERY, the prepared-statement
//! commands, COM_INIT_DB and COM_RESET_CONNECTION.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Statement;
use opensrv_mysql::{InitWriter, ParamValue, QueryResultWriter, StatementMetaWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tracing::debug;

use super::params;
use super::session::Session;
use crate::error::{ClientError, SendError};
use crate::router::{self, Route};
use crate::sql::intercept::{intercept, original_names, Intercepted, Renames};
use crate::sql::load_data::{self, ClientFile, ServerFile};
use crate::sql::quote;
use crate::sql::sequences;
use crate::sql::unpinnable;
use crate::wire::encode;
use crate::write::PreparedStatement;
use crate::write::Work;

/// The largest client file lockstep takes for `LOAD DATA LOCAL INFILE`:
/// its content is held in memory and journaled with the statement.
const CLIENT_FILE_LIMIT: usize = 64 << 20;

impl Session {
    /// COM_QUERY: routed, then run where the route says.
    pub(super) async fn run_query<W: AsyncWrite + Send + Unpin>(
        &mut self,
        sql: Vec<u8>,
        renames: &Renames,
        mut w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let route = router::route(&sql);
        if let Some(file) = load_data::server_file(&sql) {
            return self.load_server_file(sql, file, route, renames, w).await;
        }
        match load_data::client_file(&sql) {
            ClientFile::None => {
                self.driver
                    .dispatch(Work::Text(sql), route, renames, w)
                    .await
            }
            ClientFile::AmongSeveral => {
                self.driver
                    .answer(w, Err(ClientError::client_file_among_several()))
                    .await
            }
            ClientFile::Named(_) if !self.driver.params.local_files => {
                self.driver
                    .answer(w, Err(ClientError::client_files_disabled()))
                    .await
            }
            ClientFile::Named(name) => {
                // As MariaDB does: the file first, then the statement runs.
                let file = w.local_infile(&name, CLIENT_FILE_LIMIT).await?;
                if file.truncated {
                    let err = ClientError::client_file_too_large(CLIENT_FILE_LIMIT);
                    return self.driver.answer(w, Err(err)).await;
                }
                self.driver.client_file = Some(file.content.into());
                let answered = self
                    .driver
                    .dispatch(Work::Text(sql), route, renames, w)
                    .await;
                self.driver.client_file = None;
                answered
            }
        }
    }

    /// `LOAD DATA INFILE` of a file on the master's machine: read there
    /// once, loaded as a LOCAL file by the others (`write::server_file`).
    async fn load_server_file<W: AsyncWrite + Send + Unpin>(
        &mut self,
        sql: Vec<u8>,
        file: ServerFile,
        route: Route,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let content = match self.driver.read_master_file(&file).await {
            Ok(Some(content)) => content,
            Ok(None) => {
                return self
                    .driver
                    .dispatch(Work::Text(sql), route, renames, w)
                    .await
            }
            Err(err) => return self.driver.answer(w, Err(err)).await,
        };
        self.driver.client_file = Some(content);
        self.driver.master_text = Some(sql);
        let answered = self
            .driver
            .dispatch(Work::Text(file.as_local), route, renames, w)
            .await;
        self.driver.client_file = None;
        self.driver.master_text = None;
        answered
    }

    /// COM_STMT_PREPARE: prepared on the master; the client gets lockstep's
    /// own statement id and the master's parameter and column definitions.
    pub(super) async fn prepare<W: AsyncWrite + Send + Unpin>(
        &mut self,
        query: &[u8],
        w: StatementMetaWriter<'_, W>,
    ) -> io::Result<()> {
        let (sql, mut renames): (Vec<u8>, Renames) = match intercept(query, self.client()) {
            Intercepted::Relay(r) => (r.sql.into_owned(), r.renames),
            _ => (query.to_vec(), Vec::new()),
        };
        // Every execution must run with the same values on every node.
        let (sql, pins) = match unpinnable::rewrite_for_prepare(&sql) {
            Some(pinned) => {
                renames.extend(pinned.renames);
                (pinned.sql, pinned.variables)
            }
            None => (sql, Vec::new()),
        };
        let sql = self.driver.ordered_limit(sql).await;
        // Each execution takes its sequence values once (`sql::sequences`).
        let (sql, sequences) = match sequences::calls(&sql) {
            None => (sql, Vec::new()),
            Some(sequences::Calls::PerRow) => {
                return w.send_error(&crate::write::per_row_sequence()).await;
            }
            Some(sequences::Calls::Once(calls)) => {
                let (text, sequence_renames) = sequences::with_variables(&sql, &calls);
                renames.extend(sequence_renames);
                (text, calls.into_iter().map(|c| c.sequence).collect())
            }
        };
        if has_named_params(&sql) {
            let err = ClientError::parse_error(
                "You have an error in your SQL syntax: named parameters (:name) \
                 are not MariaDB syntax",
            );
            return w.send_error(&err).await;
        }
        let node = self.driver.master_name.clone();
        let Some(conn) = self.driver.master.as_mut() else {
            let err = self.driver.lost_master();
            w.send_error(&err).await?;
            self.driver.note_failure(&err);
            return Ok(());
        };
        let prepared = conn.prep(sql.as_slice()).await;
        crate::fail_points::pause_here(crate::fail_points::PREPARED_ON_MASTER).await;
        let prepared = match prepared {
            Ok(stmt) => self.prepare_on_sync(&sql).await.map(|sync| (stmt, sync)),
            Err(e) => Err(ClientError::from_backend(&node, e)),
        };
        match prepared {
            Ok((stmt, sync)) => {
                let params: Vec<_> = stmt
                    .params()
                    .iter()
                    .map(|c| encode::column(c, c.name_ref(), None))
                    .collect();
                let names = original_names(&renames, &stmt.columns());
                let extended = stmt.columns_extended_metadata();
                let columns: Vec<_> = stmt
                    .columns()
                    .iter()
                    .zip(&names)
                    .enumerate()
                    .map(|(i, (c, name))| encode::column(c, name, extended.get(i)))
                    .collect();
                let id = self.allocate_statement_id();
                let route = router::route(&sql);
                self.driver.statements.insert(
                    id,
                    PreparedStatement {
                        backend: stmt,
                        sync,
                        sql,
                        route,
                        renames,
                        pins,
                        sequences,
                    },
                );
                w.reply(id, &params, &columns).await
            }
            Err(err) => {
                w.send_error(&err).await?;
                self.driver.note_failure(&err);
                Ok(())
            }
        }
    }

    /// COM_STMT_EXECUTE: routed as its text was at prepare time; rows are
    /// relayed in the binary protocol.
    pub(super) async fn execute<W: AsyncWrite + Send + Unpin>(
        &mut self,
        id: u32,
        client_params: &[ParamValue<'_>],
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let Some(stmt) = self.driver.statements.get(&id).cloned() else {
            let err = ClientError::unknown_prepared_statement(id, "mysqld_stmt_execute");
            return w.send_error(&err).await;
        };
        let work = Work::Prepared {
            id,
            sql: stmt.sql,
            master: stmt.backend,
            sync: stmt.sync,
            params: params::to_backend(client_params),
            pins: stmt.pins,
            sequences: stmt.sequences,
        };
        self.driver
            .dispatch(work, stmt.route, &stmt.renames, w)
            .await
    }

    /// The same statement prepared on B's session (None without B).
    async fn prepare_on_sync(&mut self, sql: &[u8]) -> Result<Option<Statement>, ClientError> {
        let Some(node) = self.shared.sync_node() else {
            return Ok(None);
        };
        let Some(conn) = self.driver.sync.as_mut() else {
            self.driver.sync_lost("no connection");
            return Ok(None);
        };
        match conn.prep(sql).await {
            Ok(stmt) => Ok(Some(stmt)),
            Err(e) => self.driver.sync_failed(&node.name, e).map(|()| None),
        }
    }

    /// COM_STMT_CLOSE: never answered.
    pub(super) async fn close_statement(&mut self, id: u32) {
        let Some(stmt) = self.driver.statements.remove(&id) else {
            return;
        };
        if let Some(conn) = self.driver.master.as_mut() {
            if let Err(e) = conn.close(stmt.backend).await {
                let err = ClientError::from_backend(&self.driver.master_name, e);
                self.driver.note_failure(&err);
            }
        }
        if let (Some(conn), Some(sync_stmt)) = (self.driver.sync.as_mut(), stmt.sync) {
            if let Err(e) = conn.close(sync_stmt).await {
                // B's trouble is not the client's: a broken connection
                // takes B out of its role, an error there is only logged.
                let node = self.driver.sync_node_name();
                if let Err(err) = self.driver.sync_failed(&node, e) {
                    debug!(error = %err, "closing a statement on the synchronous slave failed");
                }
            }
        }
    }

    /// COM_INIT_DB, as `USE`.
    pub(super) async fn init_db<W: AsyncWrite + Send + Unpin>(
        &mut self,
        schema: &[u8],
        w: InitWriter<'_, W>,
    ) -> io::Result<()> {
        let mut sql = b"USE ".to_vec();
        sql.extend_from_slice(&quote::identifier(schema));
        let outcome = match self.driver.sync_control_bytes(&sql).await {
            Ok(()) => self.driver.run_on_master(&sql).await,
            Err(err) => Err(err),
        };
        if outcome.is_ok() {
            self.driver.refresh_schema().await;
        }
        self.driver.answer_init(w, outcome).await
    }

    /// COM_RESET_CONNECTION: the backend session is reset the same way.
    pub(super) async fn reset_connection<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: InitWriter<'_, W>,
    ) -> io::Result<()> {
        self.driver.statements.clear();
        self.driver.sql_prepared_pins.clear();
        // A reset rolls back the open transaction on both nodes.
        self.driver.txn = None;
        self.driver.holds_table_locks = false;
        self.driver.state.forget_statements();
        self.driver.last_insert_id = crate::protocol::insert_id::LastInsertId::known(0);
        let node = self.driver.master_name.clone();
        let sync_reset = match (self.driver.sync.as_mut(), self.shared.sync_node()) {
            (Some(conn), Some(sync)) => conn
                .reset()
                .await
                .map(|_| ())
                .map_err(|e| ClientError::from_backend(&sync.name, e)),
            _ => Ok(()),
        };
        let sync_reset = match sync_reset {
            Err(err) if err.ends_session() => {
                self.driver.sync_lost(&err.to_string());
                Ok(())
            }
            other => other,
        };
        let outcome = match (sync_reset, self.driver.master.as_mut()) {
            (Err(err), _) => Err(err),
            (Ok(()), Some(conn)) => match conn.reset().await {
                // The reset session takes the globals as they are now.
                Ok(_) => match self.driver.adopt_master_defaults().await {
                    Ok(()) => {
                        self.driver.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
                        Ok(self.driver.ok())
                    }
                    Err(err) => Err(err),
                },
                Err(e) => Err(ClientError::from_backend(&node, e)),
            },
            (Ok(()), None) => Err(self.driver.lost_master()),
        };
        self.driver.answer_init(w, outcome).await
    }
}

/// mysql_async turns `:name` in a prepared statement's text into `?` and then
/// refuses positional values for it, closing its connection. MariaDB has no
/// such placeholders (the text is a syntax error there), so such a text is
/// refused before it reaches mysql_async.
fn has_named_params(sql: &[u8]) -> bool {
    match mysql_common::named_params::ParsedNamedParams::parse(sql) {
        Ok(parsed) => !parsed.params().is_empty(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::has_named_params;

    #[test]
    fn named_params_outside_literals_are_found() {
        assert!(has_named_params(b"SELECT :name"));
        assert!(!has_named_params(b"SELECT ':name', @a := 1, ?"));
        assert!(!has_named_params(b"SELECT `a:b` FROM t"));
    }
}
