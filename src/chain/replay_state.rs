//! The origin session's state, reproduced on a connection of lockstep's own
//! that replays its statements (the tail appliers, the master retrier).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::warn;

use super::outcome::outcome_of_error;
use crate::backend::ServerInfo;
use crate::journal::SessionState;

/// Why replaying the state failed: the connection's error.
type ReplayError = mysql_async::Error;

/// The origin-session state the applier's connection currently reproduces.
#[derive(Default)]
pub struct AppliedState {
    current: Option<SessionState>,
}

impl AppliedState {
    /// Between transactions: a fresh session with exactly `want`.
    pub async fn prepare(
        &mut self,
        conn: &mut Conn,
        want: &SessionState,
        server: &ServerInfo,
    ) -> Result<(), ReplayError> {
        if self.current.as_ref() == Some(want) {
            return Ok(());
        }
        self.current = None;
        conn.reset().await?;
        if let Some(set_names) = server.set_names_for(want.collation) {
            conn.query_drop(set_names).await?;
        }
        if let Some(schema) = &want.schema {
            use_schema(conn, schema).await?;
        }
        for statement in &want.statements {
            run_state_statement(conn, &statement.to_bytes()).await;
        }
        self.current = Some(want.clone());
        Ok(())
    }

    /// Inside a transaction (a reset would roll it back): the changes the
    /// origin session made since the last statement.
    pub async fn follow(
        &mut self,
        conn: &mut Conn,
        want: &SessionState,
        server: &ServerInfo,
    ) -> Result<(), ReplayError> {
        let Some(current) = self.current.as_mut() else {
            return self.prepare(conn, want, server).await;
        };
        if current == want {
            return Ok(());
        }
        if current.schema != want.schema {
            if let Some(schema) = &want.schema {
                use_schema(conn, schema).await?;
            }
        }
        let already = if want.statements.starts_with(&current.statements) {
            current.statements.len()
        } else {
            0
        };
        for statement in &want.statements[already..] {
            run_state_statement(conn, &statement.to_bytes()).await;
        }
        *current = want.clone();
        Ok(())
    }
}

async fn use_schema(conn: &mut Conn, schema: &str) -> Result<(), mysql_async::Error> {
    let sql = [
        b"USE ".as_slice(),
        &crate::sql::quote::identifier(schema.as_bytes()),
    ]
    .concat();
    conn.query_drop(sql).await
}

/// Session state is best effort on the tail: the origin session's statement
/// succeeded on the master, so a failure here is logged, not fatal.
async fn run_state_statement(conn: &mut Conn, sql: &[u8]) {
    if let Err(e) = conn.query_drop(sql).await {
        let outcome = outcome_of_error(e);
        warn!(sql = %String::from_utf8_lossy(sql), ?outcome, "session statement failed on the tail");
    }
}
