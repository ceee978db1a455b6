//! Running a statement on a node that is not answering the client (B, the
//! tail) and summarizing what it did, for the journal and the compare step.

use futures_util::StreamExt;
use mysql_async::prelude::{Protocol, Queryable, StatementLike};
use mysql_async::{Conn, Params, QueryResult, Row, Value};

use crate::compare::digest::{Digest, Rows};
use crate::journal::{Outcome, Statement};

/// MariaDB's transient conflicts: the client retries them, as it would
/// against MySQL.
pub const DEADLOCK: u16 = 1213;
pub const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Runs a text statement; its rows are read into a digest, not kept.
pub async fn run_text(conn: &mut Conn, sql: &[u8]) -> Outcome {
    let result = match conn.query_iter(sql).await {
        Ok(mut result) => digest_sets(&mut result).await,
        Err(e) => Err(e),
    };
    summarize(conn, result)
}

/// Executes a prepared statement; its rows are read into a digest.
pub async fn run_prepared<S: StatementLike>(conn: &mut Conn, stmt: S, params: Params) -> Outcome {
    let result = match conn.exec_iter(stmt, params).await {
        Ok(mut result) => digest_sets(&mut result).await,
        Err(e) => Err(e),
    };
    summarize(conn, result)
}

/// Runs a journaled statement: its text, or the prepared statement with its
/// parameters (prepared afresh on this connection).
pub async fn run_statement(conn: &mut Conn, statement: &Statement) -> Outcome {
    match statement {
        Statement::Text { sql } => run_text(conn, &sql.to_bytes()).await,
        Statement::Prepared { sql, params } => {
            let text = String::from_utf8_lossy(&sql.to_bytes()).into_owned();
            run_prepared(conn, text.as_str(), params_of(params)).await
        }
    }
}

/// A journaled statement's parameters, for mysql_async.
pub fn params_of(params: &[crate::journal::Param]) -> Params {
    let values: Vec<Value> = params.iter().map(Value::from).collect();
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

/// Reads every result set of a response into a digest.
async fn digest_sets<P: Protocol + Unpin>(
    result: &mut QueryResult<'_, '_, P>,
) -> Result<Option<Rows>, mysql_async::Error> {
    let mut digest = Digest::default();
    while let Some(mut stream) = result.stream::<Row>().await? {
        if !stream.columns_ref().is_empty() {
            digest.columns(stream.columns_ref());
        }
        // OK-only sets too must be read to their end.
        while let Some(row) = stream.next().await {
            digest.row(&row?);
        }
    }
    Ok(digest.finish())
}

/// What the node reported for its last result, or its error.
pub fn summarize(conn: &Conn, result: Result<Option<Rows>, mysql_async::Error>) -> Outcome {
    match result {
        Ok(rows) => Outcome::Ok {
            affected_rows: conn.affected_rows(),
            last_insert_id: conn.last_insert_id().unwrap_or(0),
            warnings: conn.get_warnings(),
            rows,
        },
        Err(e) => outcome_of_error(e),
    }
}

pub fn outcome_of_error(e: mysql_async::Error) -> Outcome {
    match e {
        mysql_async::Error::Server(s) => Outcome::Error {
            code: s.code,
            state: s.state,
            message: s.message,
        },
        other => Outcome::Lost {
            reason: other.to_string(),
        },
    }
}

/// A conflict on B that goes back to the client instead of reaching A.
pub fn is_transient_conflict(outcome: &Outcome) -> bool {
    matches!(
        outcome.error_code(),
        Some(DEADLOCK) | Some(LOCK_WAIT_TIMEOUT)
    )
}
