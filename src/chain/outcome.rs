//! Running a statement on a node that is not answering the client (B, the
//! tail) and summarizing what it did, for the journal and the compare step.

use mysql_async::prelude::{Queryable, StatementLike};
use mysql_async::{Conn, Params};

use crate::journal::Outcome;

/// MariaDB's transient conflicts: the client retries them, as it would
/// against MySQL.
pub const DEADLOCK: u16 = 1213;
pub const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Runs a text statement (all its results are read and dropped).
pub async fn run_text(conn: &mut Conn, sql: &[u8]) -> Outcome {
    let result = conn.query_drop(sql).await;
    summarize(conn, result)
}

/// Executes a prepared statement (all its results are read and dropped).
pub async fn run_prepared<S: StatementLike>(conn: &mut Conn, stmt: S, params: Params) -> Outcome {
    let result = conn.exec_drop(stmt, params).await;
    summarize(conn, result)
}

/// What the node reported for its last result, or its error.
pub fn summarize(conn: &Conn, result: Result<(), mysql_async::Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok {
            affected_rows: conn.affected_rows(),
            last_insert_id: conn.last_insert_id().unwrap_or(0),
            warnings: conn.get_warnings(),
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
