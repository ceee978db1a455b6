//! Statements relayed to the master: COM_QUERY, the prepared-statement
//! commands, COM_INIT_DB and COM_RESET_CONNECTION.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Params;
use opensrv_mysql::{InitWriter, ParamValue, QueryResultWriter, StatementMetaWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tracing::warn;

use super::error::{ClientError, SendError};
use super::relay::{self, SetsEnd};
use super::session::{PreparedStatement, Session};
use super::{encode, params};
use crate::sql::intercept::{intercept, original_name, Intercepted, Renames};
use crate::sql::quote;

impl Session {
    /// COM_QUERY: the statement's whole response, relayed.
    pub(super) async fn relay_query<W: AsyncWrite + Send + Unpin>(
        &mut self,
        sql: &[u8],
        renames: &[(Vec<u8>, Vec<u8>)],
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let shared = self.shared.clone();
        let node = shared.master.name.as_str();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            return self.answer(w, Err(err)).await;
        };
        self.busy = true;
        let started = conn.query_iter(sql).await;
        let end = relay::relay_response(node, started, w, renames, &mut self.status).await?;
        self.end_response(end).await
    }

    /// Ends a relayed response: the last terminator once the master's final
    /// status is known, or the bookkeeping of the error the client got.
    async fn end_response<W: AsyncWrite + Send + Unpin>(
        &mut self,
        end: SetsEnd<'_, W>,
    ) -> io::Result<()> {
        self.busy = false;
        match (end, self.master.as_ref()) {
            (SetsEnd::Complete(w), Some(conn)) => relay::finish(conn, w, &mut self.status).await,
            (SetsEnd::Complete(w), None) => w.no_more_results().await,
            (SetsEnd::Failed(err), _) => {
                self.note_failure(&err);
                Ok(())
            }
        }
    }

    /// COM_STMT_PREPARE: prepared on the master; the client gets lockstep's
    /// own statement id and the master's parameter and column definitions.
    pub(super) async fn prepare<W: AsyncWrite + Send + Unpin>(
        &mut self,
        query: &[u8],
        w: StatementMetaWriter<'_, W>,
    ) -> io::Result<()> {
        let (sql, renames): (Vec<u8>, Renames) = match intercept(query, self.id) {
            Intercepted::Relay(r) => (r.sql.into_owned(), r.renames),
            _ => (query.to_vec(), Vec::new()),
        };
        if has_named_params(&sql) {
            let err = ClientError::Server {
                code: 1064,
                state: "42000".into(),
                message: "You have an error in your SQL syntax: named parameters (:name) \
                          are not MariaDB syntax"
                    .into(),
            };
            return w.send_error(&err).await;
        }
        let node = self.shared.master.name.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            w.send_error(&err).await?;
            self.note_failure(&err);
            return Ok(());
        };
        match conn.prep(sql.as_slice()).await {
            Ok(stmt) => {
                let params: Vec<_> = stmt
                    .params()
                    .iter()
                    .map(|c| encode::column(c, |n| n))
                    .collect();
                let columns: Vec<_> = stmt
                    .columns()
                    .iter()
                    .map(|c| encode::column(c, |n| original_name(&renames, n)))
                    .collect();
                let id = self.allocate_statement_id();
                self.statements.insert(
                    id,
                    PreparedStatement {
                        backend: stmt,
                        renames,
                    },
                );
                w.reply(id, &params, &columns).await
            }
            Err(e) => {
                let err = ClientError::from_backend(&node, e);
                w.send_error(&err).await?;
                self.note_failure(&err);
                Ok(())
            }
        }
    }

    /// COM_STMT_EXECUTE: executed on the master, rows relayed in the binary protocol.
    pub(super) async fn execute<W: AsyncWrite + Send + Unpin>(
        &mut self,
        id: u32,
        client_params: &[ParamValue<'_>],
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let shared = self.shared.clone();
        let node = shared.master.name.as_str();
        let Some(stmt) = self.statements.get(&id) else {
            let msg =
                format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute");
            return w.error_raw(1243, b"HY000", msg.as_bytes()).await;
        };
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            return self.answer(w, Err(err)).await;
        };
        let values = params::to_backend(client_params);
        let backend_params = if values.is_empty() {
            Params::Empty
        } else {
            Params::Positional(values)
        };
        self.busy = true;
        let started = conn.exec_iter(&stmt.backend, backend_params).await;
        let end = relay::relay_response(node, started, w, &stmt.renames, &mut self.status).await?;
        self.end_response(end).await
    }

    /// COM_STMT_CLOSE: never answered.
    pub(super) async fn close_statement(&mut self, id: u32) {
        let Some(stmt) = self.statements.remove(&id) else {
            return;
        };
        if let Some(conn) = self.master.as_mut() {
            if let Err(e) = conn.close(stmt.backend).await {
                let err = ClientError::from_backend(&self.shared.master.name, e);
                self.note_failure(&err);
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
        let outcome = self.run_on_master(&sql).await;
        if outcome.is_ok() {
            self.params.db = Some(String::from_utf8_lossy(schema).into_owned());
        }
        self.answer_init(w, outcome).await
    }

    /// COM_RESET_CONNECTION: the backend session is reset the same way.
    pub(super) async fn reset_connection<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: InitWriter<'_, W>,
    ) -> io::Result<()> {
        self.statements.clear();
        let node = self.shared.master.name.clone();
        let outcome = match self.master.as_mut() {
            Some(conn) => match conn.reset().await {
                Ok(_) => {
                    self.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
                    Ok(self.ok())
                }
                Err(e) => Err(ClientError::from_backend(&node, e)),
            },
            None => Err(self.lost_master()),
        };
        self.answer_init(w, outcome).await
    }

    /// Runs a statement without a result set on the master; the OK as the
    /// client should get it.
    pub(super) async fn run_on_master(
        &mut self,
        sql: &[u8],
    ) -> Result<opensrv_mysql::OkResponse, ClientError> {
        let node = self.shared.master.name.clone();
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
    pub(super) async fn answer<W: AsyncWrite + Send + Unpin>(
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
    pub(super) async fn answer_init<W: AsyncWrite + Send + Unpin>(
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
