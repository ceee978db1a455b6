//! `lockstep.commits` on every node: which requestIds the node committed,
//! with their commit sequence numbers. Written inside the same transaction
//! as the work it records, so after any crash a node's own table says
//! exactly what it has, and nothing is applied twice.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use uuid::Uuid;

/// Creates the table where it is missing (lockstep's own bookkeeping, run
/// directly on each node at start, not through the journal).
///
/// `seq` is NULL in the rows a node wrote as master: the master records a
/// commit by requestId ahead of the work, before its number exists
/// (`protocol::control::mark`); `number_master_rows` fills them in when
/// the node replays the journal again.
pub async fn ensure_table(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS lockstep")
        .await?;
    // No timestamps: the table must be identical on every node.
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS lockstep.commits (\
           request_id BINARY(16) NOT NULL PRIMARY KEY, \
           seq BIGINT UNSIGNED NULL, \
           UNIQUE KEY seq (seq)\
         ) ENGINE=InnoDB",
    )
    .await?;
    // A table made by an earlier version had seq NOT NULL.
    let nullable: Option<String> = conn
        .query_first(
            "SELECT IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'lockstep' AND TABLE_NAME = 'commits' AND COLUMN_NAME = 'seq'",
        )
        .await?;
    if nullable.as_deref() == Some("NO") {
        conn.query_drop("ALTER TABLE lockstep.commits MODIFY seq BIGINT UNSIGNED NULL")
            .await?;
    }
    Ok(())
}

/// How many master rows are numbered in one statement.
const NUMBERING_BATCH: usize = 500;

/// Gives the rows this node wrote while it was master (seq NULL) their
/// commit numbers, from `numbers` (requestId → number, from the journal),
/// so that its position is known before it replays the journal. Returns
/// how many rows the journal could not number (commits it no longer has).
pub async fn number_master_rows(
    conn: &mut Conn,
    numbers: impl Fn(Uuid) -> Option<u64>,
) -> Result<usize, mysql_async::Error> {
    let ids: Vec<Vec<u8>> = conn
        .query("SELECT request_id FROM lockstep.commits WHERE seq IS NULL")
        .await?;
    let mut unknown = 0;
    let mut known = Vec::new();
    for id in ids.iter().filter_map(|id| Uuid::from_slice(id).ok()) {
        match numbers(id) {
            Some(seq) => known.push((id, seq)),
            None => unknown += 1,
        }
    }
    for batch in known.chunks(NUMBERING_BATCH) {
        let cases: String = batch
            .iter()
            .map(|(id, seq)| format!(" WHEN x'{}' THEN {seq}", id.simple()))
            .collect();
        let list: Vec<String> = batch
            .iter()
            .map(|(id, _)| format!("x'{}'", id.simple()))
            .collect();
        conn.query_drop(format!(
            "UPDATE lockstep.commits SET seq = CASE request_id{cases} END \
             WHERE request_id IN ({})",
            list.join(", ")
        ))
        .await?;
    }
    Ok(unknown)
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
