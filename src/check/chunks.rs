//! A table cut into chunks of its primary key's first column, and what a
//! chunk holds on one node: its row count and the exact sum of its rows'
//! SHA-1s cut to 64 bits (order-independent like pt-table-checksum's
//! BIT_XOR, but two equal rows do not cancel out).

use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};

use super::{CheckError, Snapshot};

/// A table's place in SQL, and how its rows are hashed.
pub struct Table {
    pub schema: String,
    pub name: String,
}

impl Table {
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

/// A range of the primary key's first column: `[lower, upper)`, open
/// where None. A table without a primary key is one chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    column: Option<String>,
    lower: Option<String>,
    upper: Option<String>,
}

impl std::fmt::Display for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            None => write!(f, "(whole table)"),
            Some(column) => write!(
                f,
                "{column} in [{}, {})",
                self.lower.as_deref().unwrap_or("start"),
                self.upper.as_deref().unwrap_or("end")
            ),
        }
    }
}

impl Chunk {
    fn condition(&self) -> String {
        let Some(column) = &self.column else {
            return "1".into();
        };
        let column = quote(column);
        match (&self.lower, &self.upper) {
            (None, None) => "1".into(),
            (Some(l), None) => format!("{column} >= {l}"),
            (None, Some(u)) => format!("{column} < {u}"),
            (Some(l), Some(u)) => format!("{column} >= {l} AND {column} < {u}"),
        }
    }
}

/// How a table is compared: its row hash and its chunks, planned on the
/// reference node.
pub struct Plan {
    row_hash: String,
    pub chunks: Vec<Chunk>,
}

pub async fn plan(
    snapshot: &mut Snapshot,
    table: &Table,
    chunk_rows: u64,
) -> Result<Plan, CheckError> {
    let node = snapshot.node.clone();
    let failed = |source| CheckError::Node {
        node: node.clone(),
        source,
    };
    let conn = &mut snapshot.conn;
    let where_table = format!(
        "TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        literal(&table.schema),
        literal(&table.name)
    );
    let columns: Vec<String> = conn
        .query(format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE {where_table} \
             ORDER BY ORDINAL_POSITION"
        ))
        .await
        .map_err(failed)?;
    let key: Option<String> = conn
        .query_first(format!(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE {where_table} \
             AND INDEX_NAME = 'PRIMARY' AND SEQ_IN_INDEX = 1"
        ))
        .await
        .map_err(failed)?;
    let row_hash = row_hash(&compared_columns(table, columns));
    let Some(key) = key else {
        return Ok(Plan {
            row_hash,
            chunks: vec![Chunk {
                column: None,
                lower: None,
                upper: None,
            }],
        });
    };
    let quoted = quote(&key);
    let bounds: Vec<Row> = conn
        .query(format!(
            // Aliases no column is likely to have: a key column named `n`
            // made `ORDER BY n` name the window function (error 4016).
            "SELECT lockstep_key FROM (SELECT {quoted} AS lockstep_key, \
             ROW_NUMBER() OVER (ORDER BY {quoted}) AS lockstep_row FROM {}) lockstep_rows \
             WHERE lockstep_row > 1 AND (lockstep_row - 1) % {} = 0 ORDER BY lockstep_key",
            table.quoted(),
            chunk_rows.max(1)
        ))
        .await
        .map_err(failed)?;
    let bounds: Vec<String> = bounds
        .into_iter()
        .filter_map(|mut r| r.take::<Value, usize>(0))
        .map(|v| v.as_sql(false))
        .collect();
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for bound in bounds {
        chunks.push(Chunk {
            column: Some(key.clone()),
            lower: lower.take(),
            upper: Some(bound.clone()),
        });
        lower = Some(bound);
    }
    chunks.push(Chunk {
        column: Some(key),
        lower,
        upper: None,
    });
    Ok(Plan { row_hash, chunks })
}

/// The row count and hash of `chunk` on one node.
pub async fn summary(
    snapshot: &mut Snapshot,
    table: &Table,
    plan: &Plan,
    chunk: &Chunk,
) -> Result<(u64, String), CheckError> {
    let row: Option<(u64, Option<String>)> = snapshot
        .conn
        .query_first(format!(
            "SELECT COUNT(*), SUM({}) FROM {} WHERE {}",
            plan.row_hash,
            table.quoted(),
            chunk.condition()
        ))
        .await
        .map_err(|source| CheckError::Node {
            node: snapshot.node.clone(),
            source,
        })?;
    let (count, sum) = row.unwrap_or((0, None));
    Ok((count, sum.unwrap_or_else(|| "0".into())))
}

/// A row's SHA-1 cut to 64 bits; NULLs are told apart from empty strings.
fn row_hash(columns: &[String]) -> String {
    let values: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let nulls: Vec<String> = values.iter().map(|c| format!("ISNULL({c})")).collect();
    format!(
        "CAST(CONV(LEFT(SHA1(CONCAT_WS('#', {}, CONCAT({}))), 16), 16, 10) AS UNSIGNED)",
        values.join(", "),
        nulls.join(", ")
    )
}

fn quote(name: &str) -> String {
    String::from_utf8_lossy(&crate::sql::quote::identifier(name.as_bytes())).into_owned()
}

fn literal(text: &str) -> String {
    Value::from(text).as_sql(false)
}

/// The columns whose values are compared. `lockstep.commits` is compared by
/// requestId only: its `seq` is NULL in the rows a node wrote as master
/// (`chain::commits::ensure_table`), so which commits a node has is the
/// comparable part.
fn compared_columns(table: &Table, columns: Vec<String>) -> Vec<String> {
    if table.schema == "lockstep" && table.name == "commits" {
        return vec!["request_id".to_string()];
    }
    columns
}
