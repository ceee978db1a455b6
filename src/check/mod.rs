//! `lockstep check`: the data of every node compared at one consistent
//! point, per table and in chunks of the primary key (like
//! pt-table-checksum), against the master's.
//!
//! The point: each node opens a consistent snapshot while no write is in
//! flight and every node has the same last commit (a running lockstep holds
//! its writes for that moment; a stopped one has none). Then each chunk's
//! row count and the sum of its rows' SHA-1s (cut to 64 bits) are compared.

mod chunks;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::{Deserialize, Serialize};

use crate::backend::Node;
use crate::chain::commits;
use chunks::Table;

/// Schemas that are the server's own, never compared.
const SYSTEM_SCHEMAS: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("node {node}: {source}")]
    Node {
        node: String,
        source: mysql_async::Error,
    },
    #[error("{0}")]
    NotComparable(String),
}

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The node the others were compared with (the master).
    pub reference: String,
    /// How many commits every compared node had.
    pub commits: u64,
    pub tables: Vec<TableReport>,
    /// Nodes left out, and why (down, behind, quarantined).
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    pub chunks: usize,
    /// Chunks that differ: node, chunk, what the reference has, what it has.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub node: String,
    pub chunk: String,
    pub reference: String,
    pub found: String,
}

impl Report {
    pub fn differs(&self) -> bool {
        self.tables.iter().any(|t| !t.differences.is_empty())
    }

    /// One line per table, then the differences.
    pub fn text(&self) -> String {
        let mut out = format!(
            "compared with {} at its commit count {}\n",
            self.reference, self.commits
        );
        for (node, why) in &self.skipped {
            out.push_str(&format!("not compared: {node}: {why}\n"));
        }
        for t in &self.tables {
            let verdict = if t.differences.is_empty() {
                "identical".to_string()
            } else {
                let nodes: std::collections::BTreeSet<&str> =
                    t.differences.iter().map(|d| d.node.as_str()).collect();
                format!(
                    "DIFFERS on {}",
                    nodes.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            out.push_str(&format!(
                "{}: {verdict} ({} rows, {} chunks)\n",
                t.table, t.rows, t.chunks
            ));
            for d in &t.differences {
                out.push_str(&format!(
                    "  {} chunk {}: {} has {}, {} has {}\n",
                    t.table, d.chunk, self.reference, d.reference, d.node, d.found
                ));
            }
        }
        out
    }
}

/// A node's connection inside its consistent snapshot.
pub struct Snapshot {
    pub node: String,
    pub conn: Conn,
    pub commits: u64,
}

/// Opens a consistent snapshot on `node` and reads how many commits it has
/// there. Nodes are at the same point when they have as many commits: each
/// has one `lockstep.commits` row per commit it has, and with writes held
/// (or lockstep stopped) they apply the same journal in the same order.
/// (The master's rows carry no numbers, so the highest number is no point.)
pub async fn open_snapshot(node: &Node) -> Result<Snapshot, CheckError> {
    let failed = |source| CheckError::Node {
        node: node.name.clone(),
        source,
    };
    let mut conn = node.connect_admin().await.map_err(failed)?;
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         START TRANSACTION WITH CONSISTENT SNAPSHOT",
    )
    .await
    .map_err(failed)?;
    let commits = commits::position(&mut conn).await.map_err(failed)?.count;
    Ok(Snapshot {
        node: node.name.clone(),
        conn,
        commits,
    })
}

/// Compares every table of `reference` (or the one named `only`, as
/// `db.table`) with the same on `others`, chunk by chunk.
pub async fn compare(
    mut reference: Snapshot,
    mut others: Vec<Snapshot>,
    only: Option<&str>,
    chunk_rows: u64,
) -> Result<Report, CheckError> {
    let mut report = Report {
        reference: reference.node.clone(),
        commits: reference.commits,
        ..Report::default()
    };
    others.retain(|s| {
        if s.commits == reference.commits {
            return true;
        }
        report.skipped.push((
            s.node.clone(),
            format!(
                "has {} commits, the reference {}: not the same point",
                s.commits, reference.commits
            ),
        ));
        false
    });
    for table in tables(&mut reference, only).await? {
        let plan = chunks::plan(&mut reference, &table, chunk_rows).await?;
        let mut table_report = TableReport {
            table: table.display(),
            rows: 0,
            chunks: plan.chunks.len(),
            differences: Vec::new(),
        };
        for chunk in &plan.chunks {
            let expected = chunks::summary(&mut reference, &table, &plan, chunk).await?;
            table_report.rows += expected.0;
            for other in &mut others {
                let found = chunks::summary(other, &table, &plan, chunk).await?;
                if found != expected {
                    table_report.differences.push(Difference {
                        node: other.node.clone(),
                        chunk: chunk.to_string(),
                        reference: describe(expected.clone()),
                        found: describe(found),
                    });
                }
            }
        }
        report.tables.push(table_report);
    }
    Ok(report)
}

fn describe((rows, hash): (u64, String)) -> String {
    format!("{rows} rows (row hash sum {hash})")
}

/// Every base table outside the system schemas (or the one named `only`,
/// as `db.table`).
async fn tables(snapshot: &mut Snapshot, only: Option<&str>) -> Result<Vec<Table>, CheckError> {
    let rows: Vec<Row> = snapshot
        .conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .await
        .map_err(|source| CheckError::Node {
            node: snapshot.node.clone(),
            source,
        })?;
    let names: Vec<Table> = rows
        .iter()
        .filter_map(|r| {
            Some(Table {
                schema: r.get_opt::<String, usize>(0)?.ok()?,
                name: r.get_opt::<String, usize>(1)?.ok()?,
            })
        })
        .filter(|table| only.is_none_or(|o| o == table.display()))
        .collect();
    if let (Some(only), true) = (only, names.is_empty()) {
        return Err(CheckError::NotComparable(format!(
            "no table {only} on {}",
            snapshot.node
        )));
    }
    Ok(names)
}
