//! What lockstep answers itself: KILL with lockstep's ids, `SELECT @@socket`,
//! COM_FIELD_LIST, COM_STATISTICS, COM_PROCESS_KILL, COM_DEBUG.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use opensrv_mysql::{Column, ColumnType, ErrorKind, InitWriter, OkResponse, QueryResultWriter};
use tokio::io::AsyncWrite;
use tracing::info;

use super::session::Session;
use crate::error::{ClientError, SendError};
use crate::sql::quote;
use crate::wire::encode;

/// `KILL QUERY|CONNECTION thread` on `node`, through an admin connection.
async fn kill_on(
    node: &crate::backend::Node,
    query_only: bool,
    thread: u32,
) -> Result<(), ClientError> {
    let mut admin = node
        .connect_admin()
        .await
        .map_err(|e| ClientError::BackendUnreachable {
            node: node.name.clone(),
            address: node.address(),
            reason: e.to_string(),
        })?;
    let verb = if query_only { "QUERY" } else { "CONNECTION" };
    let result = admin.query_drop(format!("KILL {verb} {thread}")).await;
    let _ = admin.disconnect().await;
    match result {
        Ok(()) => Ok(()),
        // The backend thread ended on its own meanwhile: nothing to kill there.
        Err(mysql_async::Error::Server(e)) if e.code == ErrorKind::ER_NO_SUCH_THREAD as u16 => {
            Ok(())
        }
        Err(e) => Err(ClientError::from_backend(&node.name, e)),
    }
}

const COM_STATISTICS: u8 = 0x09;
const COM_PROCESS_KILL: u8 = 0x0c;
const COM_DEBUG: u8 = 0x0d;

impl Session {
    /// `SELECT @@socket` → NULL: lockstep has no socket, and a driver that
    /// prefers sockets must not find the backend's and go around lockstep.
    pub(super) async fn answer_select_socket<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        self.answer_one_value(w, "@@socket", None).await
    }

    /// `SELECT LOCKSTEP_REQUEST_ID()`: the requestId of the session's last
    /// write-path statement, NULL before the first.
    pub(super) async fn answer_request_id<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let id = self.driver.last_request_id.map(|id| id.to_string());
        self.answer_one_value(w, "LOCKSTEP_REQUEST_ID()", id.as_deref())
            .await
    }

    /// A result set of one string column and one row.
    async fn answer_one_value<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
        name: &str,
        value: Option<&str>,
    ) -> io::Result<()> {
        let row = vec![value.map(str::to_string)];
        self.answer_table(w, &[name], &[row]).await
    }

    /// A result set of string columns made by lockstep itself.
    pub(super) async fn answer_table<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
        names: &[&str],
        rows: &[Vec<Option<String>>],
    ) -> io::Result<()> {
        let columns = names
            .iter()
            .map(|name| {
                let mut column = Column::new(name, ColumnType::MYSQL_TYPE_VAR_STRING);
                column.charset = self.shared.chain.server.default_collation.into();
                column.column_length = 255 * 4;
                column
            })
            .collect();
        let mut writer = w.start_owned(columns).await?;
        let mut payload = Vec::new();
        for row in rows {
            payload.clear();
            for value in row {
                match value {
                    Some(v) => encode::put_lenenc_bytes(&mut payload, v.as_bytes()),
                    None => payload.push(0xfb),
                }
            }
            writer.write_row_payload(&payload).await?;
        }
        let status = self.driver.status;
        writer
            .finish_one_with(status, 0)
            .await?
            .no_more_results_with(status, 0)
            .await
    }

    /// KILL [QUERY] with a lockstep connection id: the master's thread of
    /// that session gets the same KILL; KILL CONNECTION also ends the session.
    pub(super) async fn kill(
        &mut self,
        query_only: bool,
        id: u64,
    ) -> Result<OkResponse, ClientError> {
        let target = self
            .shared
            .registry
            .target(id)
            .ok_or(ClientError::NoSuchThread(id))?;
        info!(target_conn = id, query_only, "KILL");
        // B may be running the statement (it runs first): both at once,
        // so that the statement stops as fast as it would directly.
        let master = self.shared.master_node();
        let sync = target.sync_thread.and_then(|(name, thread)| {
            Some((self.shared.chain.roles.member(&name)?.node.clone(), thread))
        });
        let on_master = async {
            match target.master_thread {
                Some(thread) => kill_on(&master, query_only, thread).await,
                None => Ok(()),
            }
        };
        let on_sync = async {
            match &sync {
                Some((node, thread)) => kill_on(node, query_only, *thread).await,
                None => Ok(()),
            }
        };
        let (on_master, on_sync) = tokio::join!(on_master, on_sync);
        on_master?;
        if let Err(err) = on_sync {
            // B's thread ends with the session anyway; the client's KILL
            // is about the master's answer.
            tracing::warn!(error = %err, "KILL on the synchronous slave failed");
        }
        if !query_only {
            if id == u64::from(self.id) {
                // Killing oneself: MariaDB answers ER_CONNECTION_KILLED and closes.
                self.driver.master = None;
                self.driver.closing = true;
                return Err(ClientError::connection_killed());
            }
            self.shared.registry.kill(id);
        }
        Ok(self.driver.ok())
    }

    /// COM_FIELD_LIST: the table's column definitions (as `SELECT * … LIMIT 0`
    /// reports them), filtered by the LIKE-style wildcard.
    pub(super) async fn field_list<W: AsyncWrite + Send + Unpin>(
        &mut self,
        table: &[u8],
        wildcard: &[u8],
        w: InitWriter<'_, W>,
    ) -> io::Result<()> {
        let mut sql = b"SELECT * FROM ".to_vec();
        sql.extend_from_slice(&quote::identifier(table));
        sql.extend_from_slice(b" LIMIT 0");
        let node = self.driver.master_name.clone();
        let columns = match self.driver.master.as_mut() {
            Some(conn) => match conn.query_iter(sql.as_slice()).await {
                Ok(result) => {
                    let extended = result.columns_extended_metadata();
                    let columns: Vec<Column> = result
                        .columns_ref()
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| wildcard.is_empty() || like(wildcard, c.name_ref()))
                        .map(|(i, c)| encode::column(c, c.name_ref(), extended.get(i)))
                        .collect();
                    match result.drop_result().await {
                        Ok(()) => Ok(columns),
                        Err(e) => Err(ClientError::from_backend(&node, e)),
                    }
                }
                Err(e) => Err(ClientError::from_backend(&node, e)),
            },
            None => Err(self.driver.lost_master()),
        };
        match columns {
            Ok(columns) => w.field_list(&columns, self.driver.status).await,
            Err(err) => {
                w.send_error(&err).await?;
                self.driver.note_failure(&err);
                Ok(())
            }
        }
    }

    pub(super) async fn other_command<W: AsyncWrite + Send + Unpin>(
        &mut self,
        command: u8,
        payload: &[u8],
        w: InitWriter<'_, W>,
    ) -> io::Result<()> {
        match command {
            COM_PROCESS_KILL => {
                let outcome = match payload.get(..4) {
                    Some(id) => {
                        let id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
                        self.kill(false, u64::from(id)).await
                    }
                    None => Err(ClientError::malformed_packet()),
                };
                self.driver.answer_init(w, outcome).await
            }
            COM_STATISTICS => match self.statistics().await {
                Ok(text) => w.raw_packet(text.as_bytes()).await,
                Err(err) => self.driver.answer_init(w, Err(err)).await,
            },
            COM_DEBUG => w.eof(self.driver.status).await,
            _ => w.send_error(&ClientError::unknown_command()).await,
        }
    }

    /// COM_STATISTICS' one-line answer, from the master's counters.
    async fn statistics(&mut self) -> Result<String, ClientError> {
        let node = self.driver.master_name.clone();
        let Some(conn) = self.driver.master.as_mut() else {
            return Err(self.driver.lost_master());
        };
        let rows: Vec<Row> = conn
            .query(
                "SHOW GLOBAL STATUS WHERE Variable_name IN \
                 ('Uptime','Threads_connected','Questions','Slow_queries','Opened_tables','Open_tables')",
            )
            .await
            .map_err(|e| ClientError::from_backend(&node, e))?;
        let value = |name: &str| -> u64 {
            rows.iter()
                .find(|r| r.get::<String, _>(0).as_deref() == Some(name))
                .and_then(|r| r.get::<String, _>(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let uptime = value("Uptime").max(1);
        let questions = value("Questions");
        Ok(format!(
            "Uptime: {}  Threads: {}  Questions: {}  Slow queries: {}  Opens: {}  Open tables: {}  Queries per second avg: {:.3}",
            uptime,
            value("Threads_connected"),
            questions,
            value("Slow_queries"),
            value("Opened_tables"),
            value("Open_tables"),
            questions as f64 / uptime as f64
        ))
    }
}

/// SQL LIKE with `%` and `_` (and `\` escaping), ASCII case-insensitive as
/// column names are.
fn like(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|i| like(rest, &text[i..])),
        Some((b'_', rest)) => !text.is_empty() && like(rest, &text[1..]),
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == rest.first() && like(&rest[1..], &text[1..])
        }
        Some((&p, rest)) => {
            text.first().is_some_and(|t| t.eq_ignore_ascii_case(&p)) && like(rest, &text[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like(b"%", b"anything"));
        assert!(like(b"i_", b"id"));
        assert!(like(b"I%", b"id"));
        assert!(!like(b"x%", b"id"));
        assert!(like(b"a\\_b", b"a_b"));
        assert!(!like(b"a\\_b", b"axb"));
    }
}
