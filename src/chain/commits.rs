//! `lockstep.commits` on every node: which requestIds the node committed,
//! with their commit sequence numbers. Written inside the same transaction
//! as the work it records, so after any crash a node's own table says
//! exactly what it has, and nothing is applied twice.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use uuid::Uuid;

/// Creates the table where it is missing (lockstep's own bookkeeping, run
/// directly on each node at start, not through the journal).
pub async fn ensure_table(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS lockstep")
        .await?;
    // No timestamps: the table must be identical on every node.
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS lockstep.commits (\
           request_id BINARY(16) NOT NULL PRIMARY KEY, \
           seq BIGINT UNSIGNED NOT NULL, \
           UNIQUE KEY seq (seq)\
         ) ENGINE=InnoDB",
    )
    .await
}

/// The highest commit sequence number the node has (0: none).
pub async fn last_seq(conn: &mut Conn) -> Result<u64, mysql_async::Error> {
    let row: Option<Row> = conn
        .query_first("SELECT COALESCE(MAX(seq), 0) FROM lockstep.commits")
        .await?;
    Ok(row
        .and_then(|r| r.get_opt::<u64, usize>(0))
        .and_then(Result::ok)
        .unwrap_or(0))
}

/// What a node has committed: how many commits, up to which number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub count: u64,
    pub last_seq: u64,
}

pub async fn position(conn: &mut Conn) -> Result<Position, mysql_async::Error> {
    let row: Option<Row> = conn
        .query_first("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM lockstep.commits")
        .await?;
    let get = |i: usize| {
        row.as_ref()
            .and_then(|r| r.get_opt::<u64, usize>(i))
            .and_then(Result::ok)
            .unwrap_or(0)
    };
    Ok(Position {
        count: get(0),
        last_seq: get(1),
    })
}

/// Whether the node committed `request_id`.
pub async fn has(conn: &mut Conn, request_id: Uuid) -> Result<bool, mysql_async::Error> {
    let row: Option<Row> = conn
        .query_first(format!(
            "SELECT 1 FROM lockstep.commits WHERE request_id = x'{}'",
            request_id.simple()
        ))
        .await?;
    Ok(row.is_some())
}

/// The statement recording several commits applied in one transaction.
pub fn records(commits: &[(Uuid, u64)]) -> String {
    let values: Vec<String> = commits
        .iter()
        .map(|(request_id, seq)| format!("(x'{}', {seq})", request_id.simple()))
        .collect();
    format!(
        "INSERT INTO lockstep.commits (request_id, seq) VALUES {}",
        values.join(", ")
    )
}

/// The statement recording a commit; it runs inside the committing transaction.
pub fn record(request_id: Uuid, seq: u64) -> String {
    format!(
        "INSERT INTO lockstep.commits (request_id, seq) VALUES (x'{}', {seq})",
        request_id.simple()
    )
}
