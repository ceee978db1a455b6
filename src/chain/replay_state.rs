//! The origin session's state, reproduced on a connection of lockstep's own
//! that replays its statements (the tail appliers, the master retrier).

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::warn;

use super::outcome::{self, outcome_of_error};
use crate::backend::ServerInfo;
use crate::journal::{Outcome, SessionState, Statement};

/// Most statements kept prepared on the connection.
const PREPARED_KEPT: usize = 256;

/// Why replaying the state failed: the connection's error.
type ReplayError = mysql_async::Error;

/// The origin-session state the applier's connection currently reproduces,
/// and the statements prepared on it in that state.
#[derive(Default)]
pub struct AppliedState {
    current: Option<SessionState>,
    /// By text. Kept only while the state stays the same: a prepared
    /// statement resolves its tables in the schema (and parses with the
    /// sql_mode) of the moment it was prepared.
    prepared: HashMap<Vec<u8>, mysql_async::Statement>,
    /// A replayed text changed the connection's session beyond `current`
    /// (`SET NAMES latin1; INSERT …`): no other session's state may
    /// continue from it, so the next one between transactions starts fresh.
    changed_by_text: bool,
}

impl AppliedState {
    /// Between transactions: a session with exactly `want`, fresh unless it
    /// is the current one gone on.
    pub async fn prepare(
        &mut self,
        conn: &mut Conn,
        want: &SessionState,
        server: &ServerInfo,
    ) -> Result<(), ReplayError> {
        if std::mem::take(&mut self.changed_by_text) {
            self.current = None;
        }
        if self.current.as_ref() == Some(want) {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_some_and(|current| continues(current, want))
        {
            // The same session went on: a reset would drop its temporary
            // tables and the rows its replayed writes put in them.
            return self.catch_up(conn, want).await;
        }
        self.current = None;
        // The reset drops the connection's prepared statements too.
        self.prepared.clear();
        conn.reset().await?;
        if let Some(set_names) = server.set_names_for(want.collation) {
            conn.query_drop(set_names).await?;
        }
        if let Some(schema) = &want.schema {
            use_schema(conn, schema).await?;
        }
        for (statement, refused) in want.statements_as_run() {
            run_state_statement(conn, &statement.to_bytes(), refused).await;
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
        if self.current.is_none() {
            return self.prepare(conn, want, server).await;
        }
        self.catch_up(conn, want).await
    }

    /// From the current state to `want` without a reset: its schema and the
    /// statements it has beyond the current ones (all of them when it is
    /// not the current state gone on).
    async fn catch_up(&mut self, conn: &mut Conn, want: &SessionState) -> Result<(), ReplayError> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        if current == want {
            return Ok(());
        }
        for (_, statement) in self.prepared.drain() {
            let _ = conn.close(statement).await;
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
        for (statement, refused) in want.statements_as_run().skip(already) {
            run_state_statement(conn, &statement.to_bytes(), refused).await;
        }
        *current = want.clone();
        Ok(())
    }
}

impl AppliedState {
    /// The text just replayed changed the session (`router::text_changes_session`).
    pub fn changed_by_text(&mut self) {
        self.changed_by_text = true;
    }

    /// Runs a prepared statement (prepared on this connection once, in
    /// this state) with `pin`, lockstep's own text, written just ahead of
    /// it in the same round trip (`outcome::run_prepared_after`); any other
    /// statement after `pin` in its own trip.
    pub async fn run_after(
        &mut self,
        conn: &mut Conn,
        pin: &str,
        statement: &Statement,
    ) -> Outcome {
        let Statement::Prepared { sql, params } = statement else {
            if let Err(e) = conn.query_drop(pin).await {
                return outcome::outcome_of_error(e);
            }
            return outcome::run_statement(conn, statement).await;
        };
        let prepared = match self.prepared_on(conn, sql.to_bytes()).await {
            Ok(prepared) => prepared,
            Err(e) => return outcome::summarize(conn, Err(e)),
        };
        outcome::run_prepared_after(conn, pin, &prepared, outcome::params_of(params)).await
    }

    /// Room for `texts`, prepared together before any of them runs (a
    /// pipelined group): when those not kept yet would not fit beside the
    /// kept ones, every kept statement is closed first, as `prepared_on`
    /// would do in the middle of the group, closing statements the group
    /// prepared earlier and runs later (the node then answers 1243, an
    /// unknown statement handler). False when the group's distinct texts
    /// do not fit even then: it runs one by one.
    pub(super) async fn make_room_for(&mut self, conn: &mut Conn, texts: &[Vec<u8>]) -> bool {
        let distinct: HashSet<&Vec<u8>> = texts.iter().collect();
        if distinct.len() > PREPARED_KEPT {
            return false;
        }
        let missing = distinct
            .iter()
            .filter(|text| !self.prepared.contains_key(**text))
            .count();
        if self.prepared.len() + missing > PREPARED_KEPT {
            for (_, statement) in self.prepared.drain() {
                let _ = conn.close(statement).await;
            }
        }
        true
    }

    /// The connection's handle for the statement `text`, prepared now if
    /// it is not yet.
    pub(super) async fn prepared_on(
        &mut self,
        conn: &mut Conn,
        text: Vec<u8>,
    ) -> Result<mysql_async::Statement, mysql_async::Error> {
        if let Some(prepared) = self.prepared.get(&text) {
            return Ok(prepared.clone());
        }
        if self.prepared.len() >= PREPARED_KEPT {
            for (_, statement) in self.prepared.drain() {
                let _ = conn.close(statement).await;
            }
        }
        let prepared = conn.prep(String::from_utf8_lossy(&text).as_ref()).await?;
        self.prepared.insert(text, prepared.clone());
        Ok(prepared)
    }
}

/// Whether `want` is `current` with more statements run after it (and
/// perhaps another schema): what one session's state becomes as it goes on.
fn continues(current: &SessionState, want: &SessionState) -> bool {
    current.collation == want.collation
        && current.found_rows == want.found_rows
        && want.statements.starts_with(&current.statements)
        && want.refused.starts_with(&current.refused)
}

/// `USE schema`, the name (UTF-8) read as utf8mb4 whatever character set
/// the replayed session has chosen, which is kept.
async fn use_schema(conn: &mut Conn, schema: &str) -> Result<(), mysql_async::Error> {
    let sql = [
        b"SET @lockstep_charset = @@character_set_client, character_set_client = utf8mb4; USE "
            .as_slice(),
        &crate::sql::quote::identifier(schema.as_bytes()),
        b"; SET character_set_client = @lockstep_charset",
    ]
    .concat();
    conn.query_drop(sql).await
}

/// Session state is best effort on the tail: a statement the origin's nodes
/// passed and that fails here is logged, not fatal; one they refused is
/// expected to fail again.
async fn run_state_statement(conn: &mut Conn, sql: &[u8], refused: bool) {
    if let Err(e) = conn.query_drop(sql).await {
        let outcome = outcome_of_error(e);
        if !refused {
            warn!(sql = %String::from_utf8_lossy(sql), ?outcome, "session statement failed on the tail");
        }
    }
}
