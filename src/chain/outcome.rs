//! Running a statement on a node that is not answering the client (B, the
//! tail) and summarizing what it did, for the journal and the compare step.

use futures_util::StreamExt;
use mysql_async::prelude::{Protocol, Queryable, StatementLike};
use mysql_async::{AfterQuery, Conn, Params, Pipeline, QueryResult, Row, Value};
use opensrv_mysql::ErrorKind;

use crate::compare::digest::Digest;
use crate::journal::{Outcome, Statement};

/// Errors a server raises because of timing or momentary load, not because
/// of the statement or the data: the same statement can pass on one node
/// and fail on another. On B they go back to the client as they are (the
/// client would get them from MariaDB directly too, and retries them); A
/// never runs the statement and B keeps its role.
pub const TIMING_ERRORS: &[ErrorKind] = &[
    ErrorKind::ER_CHECKREAD,
    ErrorKind::ER_OUTOFMEMORY,
    ErrorKind::ER_OUT_OF_SORTMEMORY,
    ErrorKind::ER_OUT_OF_RESOURCES,
    ErrorKind::ER_LOCK_WAIT_TIMEOUT,
    ErrorKind::ER_LOCK_TABLE_FULL,
    ErrorKind::ER_LOCK_DEADLOCK,
    ErrorKind::ER_QUERY_INTERRUPTED,
    ErrorKind::ER_AUTOINC_READ_FAILED,
    ErrorKind::ER_XA_RBTIMEOUT,
    ErrorKind::ER_XA_RBDEADLOCK,
    ErrorKind::ER_TOO_MANY_CONCURRENT_TRXS,
    ErrorKind::ER_LOCK_ABORTED,
];

/// MariaDB's ER_STATEMENT_TIMEOUT (`max_statement_time` exceeded), which the
/// vendored (MySQL) list lacks: a timing error too.
const ER_STATEMENT_TIMEOUT: u16 = 1969;

/// Gives `conn` the content of the file the next `LOAD DATA LOCAL
/// INFILE` on it names (whatever the name): the bytes the client sent.
pub fn give_local_infile(conn: &mut Conn, content: &bytes::Bytes) {
    let content = content.clone();
    conn.set_infile_handler(async move {
        Ok(futures_util::stream::once(async move { Ok(content) }).boxed())
    });
}

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

/// Runs `pin` (lockstep's own text) and then the prepared statement in
/// one round trip (`Conn::exec_iter_after_query`). The statement runs
/// even when the pin fails: then it is `Lost`, and the caller drops the
/// connection, which undoes it with the transaction it ran in.
pub async fn run_prepared_after(
    conn: &mut Conn,
    pin: &str,
    stmt: &mysql_async::Statement,
    params: Params,
) -> Outcome {
    let result = match conn
        .exec_iter_after_query(pin.as_bytes(), stmt, params)
        .await
    {
        Ok(AfterQuery::Ran(mut result)) => digest_sets(&mut result).await,
        Ok(AfterQuery::QueryFailed(e)) => {
            return Outcome::Lost {
                reason: format!(
                "lockstep's pinning statements failed ({e}); the statement after them ran unpinned"
            ),
            }
        }
        Err(e) => Err(e),
    };
    summarize(conn, result)
}

/// The answer a pipeline owes for a text (`Conn::write_pipeline`), its
/// rows read into a digest.
pub async fn text_answer(conn: &mut Conn, pipeline: &mut Pipeline) -> Outcome {
    let result = match conn.next_text_answer(pipeline).await {
        Ok(mut result) => digest_sets(&mut result).await,
        Err(e) => Err(e),
    };
    summarize(conn, result)
}

/// The answers a pipeline owes for a pin and the execution written
/// behind it. The execution ran even when the pin failed: then it is
/// `Lost`, as in `run_prepared_after`.
pub async fn exec_answer_after_pin(
    conn: &mut Conn,
    pipeline: &mut Pipeline,
    stmt: &mysql_async::Statement,
) -> Outcome {
    let pinned = match conn.next_text_answer(pipeline).await {
        Ok(result) => result.drop_result().await,
        Err(e) => Err(e),
    };
    let result = match conn.next_exec_answer(pipeline, stmt).await {
        Ok(mut result) => digest_sets(&mut result).await,
        Err(e) => Err(e),
    };
    if let Err(e) = pinned {
        return Outcome::Lost {
            reason: format!(
                "lockstep's pinning statements failed ({e}); the statement after them ran unpinned"
            ),
        };
    }
    summarize(conn, result)
}

/// Runs a journaled statement: its text, or the prepared statement with its
/// parameters (prepared afresh on this connection).
pub async fn run_statement(conn: &mut Conn, statement: &Statement) -> Outcome {
    match statement {
        Statement::Text { sql } => run_text(conn, &sql.to_bytes()).await,
        Statement::LocalInfile { sql, content } => {
            give_local_infile(conn, &content.0);
            run_text(conn, &sql.to_bytes()).await
        }
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
) -> Result<Digest, mysql_async::Error> {
    let mut digest = Digest::default();
    while let Some(mut stream) = result.stream::<Row>().await? {
        if stream.columns_ref().is_empty() {
            if let Some(ok) = stream.ok_packet() {
                digest.insert_id(ok.last_insert_id().unwrap_or(0));
            }
        } else {
            digest.columns(stream.columns_ref());
        }
        // OK-only sets too must be read to their end.
        while let Some(row) = stream.next().await {
            digest.row(&row?);
        }
    }
    Ok(digest)
}

/// What the node reported for its last result (the AUTO_INCREMENT value
/// of its first inserting statement), or its error.
pub fn summarize(conn: &Conn, result: Result<Digest, mysql_async::Error>) -> Outcome {
    match result {
        Ok(digest) => Outcome::Ok {
            affected_rows: conn.affected_rows(),
            last_insert_id: digest
                .first_insert_id()
                .unwrap_or_else(|| conn.last_insert_id().unwrap_or(0)),
            warnings: conn.get_warnings(),
            insert_ids: digest.result_insert_ids(),
            rows: digest.finish(),
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

/// An error on B that goes back to the client instead of reaching A
/// (`TIMING_ERRORS`).
pub fn is_timing_error(outcome: &Outcome) -> bool {
    outcome.error_code().is_some_and(is_timing_code)
}

/// Whether a server error code is one of the timing errors.
pub fn is_timing_code(code: u16) -> bool {
    code == ER_STATEMENT_TIMEOUT || TIMING_ERRORS.iter().any(|kind| *kind as u16 == code)
}
