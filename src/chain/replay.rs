//! `lockstep replay`: committed work from a journal applied to any
//! MySQL/MariaDB server in commit order, exactly as a tail node applies it
//! (same applier, same pinned context), or printed as SQL (`--dry-run`).
//! Idempotent: the target's own `lockstep.commits` says what it has.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use tracing::info;
use uuid::Uuid;

use super::nontransactional::NonTransactional;
use super::roles::Roles;
use super::tail::{Backoff, ReplayBounds, Tail, TailError};
use super::Chain;
use crate::backend::{Node, ServerInfo};
use crate::compare::notify::Notifier;
use crate::journal::{CommitState, Entry, Journal, JournalError, SessionState, Statement};
use crate::protocol::control::{self, UNPIN};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("target: {0}")]
    Target(#[from] mysql_async::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Apply(#[from] TailError),
    #[error("{0}")]
    Point(String),
    #[error("writing the SQL: {0}")]
    Output(#[from] std::io::Error),
}

/// A point in the journal: a commit number, a requestId, or a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Request(Uuid),
    /// Microseconds since the Unix epoch.
    Time(i64),
}

impl std::str::FromStr for Point {
    type Err = String;

    fn from_str(text: &str) -> Result<Point, String> {
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(Point::Seq(seq));
        }
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(Point::Request(id));
        }
        let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!(
                "{text:?} is not a commit number, a requestId or a time (2026-11-24 18:00:00, UTC)"
            )
        })?;
        let micros = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("{text:?} is before 1970"))?
            .as_micros();
        Ok(Point::Time(i64::try_from(micros).unwrap_or(i64::MAX)))
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub applied: u64,
    pub from: u64,
    pub until: u64,
}

/// The commit numbers `from` and `until` stand for: `from` is the first
/// commit to apply, `until` the last (a time: the last commit made at or
/// before it).
pub fn bounds(
    journal: &Journal,
    from: Option<&Point>,
    until: Option<&Point>,
) -> Result<ReplayBounds, ReplayError> {
    let from = match from {
        None => 1,
        Some(Point::Seq(seq)) => *seq,
        Some(point) => seq_of(journal, point)?.ok_or_else(|| not_found(point))?,
    };
    let until = match until {
        None => journal.last_seq(),
        Some(Point::Seq(seq)) => *seq,
        Some(point) => seq_of(journal, point)?.unwrap_or(0),
    };
    Ok(ReplayBounds { from, until })
}

fn not_found(point: &Point) -> ReplayError {
    ReplayError::Point(format!("the journal has no commit for {point:?}"))
}

/// The commit of a request (as committing request or as one of its
/// statements), or the last commit made at or before a time.
fn seq_of(journal: &Journal, point: &Point) -> Result<Option<u64>, ReplayError> {
    let mut found = None;
    for record in journal.commit_records() {
        let record = record?;
        match point {
            Point::Seq(seq) => return Ok(Some(*seq)),
            Point::Request(id) => {
                if record.request_id == *id || record.statements.contains(id) {
                    return Ok(Some(record.seq));
                }
            }
            Point::Time(micros) => {
                if record.state != CommitState::Committed {
                    continue;
                }
                match journal.entry(record.request_id)? {
                    Some(entry) if entry.created_us <= *micros => found = Some(record.seq),
                    Some(_) => break,
                    None => {}
                }
            }
        }
    }
    Ok(found)
}

/// Applies the commits in `bounds` the target lacks, logging progress
/// every few seconds.
pub async fn apply(
    journal: Journal,
    target: Node,
    bounds: ReplayBounds,
) -> Result<Summary, ReplayError> {
    let server = server_info(&target).await?;
    let chain = Arc::new(Chain {
        roles: Roles::new(vec![target.clone()], None),
        journal,
        server,
        notifier: Notifier::new(None),
        retry: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        gate: Default::default(),
        serialized: Default::default(),
        appliers: Default::default(),
        nontransactional: NonTransactional::unknown(),
    });
    let Some(mut tail) = Tail::for_node(&chain, &target.name) else {
        return Err(ReplayError::Point("no target".into()));
    };
    tail.replay = Some(bounds);
    let status = tail.status.clone();
    let progress = tokio::spawn(async move {
        let started = Instant::now();
        let mut every = tokio::time::interval(Duration::from_secs(5));
        every.tick().await;
        loop {
            every.tick().await;
            info!(
                at = status.applied(),
                until = bounds.until,
                applied = status.commits_applied.load(Ordering::Relaxed),
                seconds = started.elapsed().as_secs(),
                "replaying"
            );
        }
    });
    let outcome = tail.catch_up().await;
    progress.abort();
    outcome?;
    Ok(Summary {
        applied: tail.status.commits_applied.load(Ordering::Relaxed),
        from: bounds.from,
        until: bounds.until,
    })
}

async fn server_info(target: &Node) -> Result<ServerInfo, ReplayError> {
    let mut conn = target.connect_admin().await?;
    let server = ServerInfo::query(&mut conn).await?;
    let _ = conn.disconnect().await;
    Ok(server)
}

/// Prints, as SQL the `mariadb` client runs, the commits in `bounds` the
/// target lacks; sends nothing to it.
pub async fn dry_run(
    journal: &Journal,
    target: &Node,
    bounds: ReplayBounds,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let mut conn = target.connect_admin().await?;
    let server = ServerInfo::query(&mut conn).await?;
    let present = present_on(&mut conn).await;
    let _ = conn.disconnect().await;
    writeln!(
        out,
        "-- lockstep replay --dry-run: commits {}..={}",
        bounds.from, bounds.until
    )?;
    writeln!(out, "CREATE DATABASE IF NOT EXISTS lockstep;")?;
    writeln!(out, "CREATE TABLE IF NOT EXISTS lockstep.commits (request_id BINARY(16) NOT NULL PRIMARY KEY, seq BIGINT UNSIGNED NOT NULL, UNIQUE KEY seq (seq)) ENGINE=InnoDB;")?;
    let mut summary = Summary {
        applied: 0,
        from: bounds.from,
        until: bounds.until,
    };
    let mut session: Option<SessionState> = None;
    for seq in bounds.from..=bounds.until {
        let Some(record) = journal.commit_record(seq)? else {
            continue;
        };
        if record.state != CommitState::Committed || present.contains(&seq) {
            continue;
        }
        writeln!(out, "-- commit {seq} (request {})", record.request_id)?;
        for (i, id) in record.statements.iter().enumerate() {
            let Some(entry) = journal.entry(*id)? else {
                return Err(TailError::MissingEntry {
                    seq,
                    request_id: *id,
                }
                .into());
            };
            if session.as_ref() != Some(&entry.session_state) {
                write_session(out, &entry.session_state, &server)?;
                session = Some(entry.session_state.clone());
            }
            if i == 0 && !record.serialized {
                writeln!(out, "{};", control::BEGIN)?;
            }
            write_statement(out, &entry)?;
        }
        writeln!(
            out,
            "{}; COMMIT; {UNPIN};",
            control::record(record.request_id, seq)
        )?;
        summary.applied += 1;
    }
    Ok(summary)
}

/// The commit numbers the target has (none when it has no table yet).
async fn present_on(conn: &mut mysql_async::Conn) -> HashSet<u64> {
    let rows: Result<Vec<Row>, _> = conn.query("SELECT seq FROM lockstep.commits").await;
    rows.unwrap_or_default()
        .iter()
        .filter_map(|r| r.get_opt::<u64, usize>(0).and_then(Result::ok))
        .collect()
}

fn write_session(
    out: &mut impl Write,
    state: &SessionState,
    server: &ServerInfo,
) -> std::io::Result<()> {
    // The schema's name is UTF-8: read as utf8mb4, before the session's
    // own character set.
    if let Some(schema) = &state.schema {
        let quoted = crate::sql::quote::identifier(schema.as_bytes());
        writeln!(out, "SET NAMES utf8mb4;")?;
        writeln!(out, "USE {};", String::from_utf8_lossy(&quoted))?;
    }
    if let Some(set_names) = server.set_names_for(state.collation) {
        writeln!(out, "{set_names};")?;
    }
    for (statement, refused) in state.statements_as_run() {
        let sql = String::from_utf8_lossy(&statement.to_bytes()).into_owned();
        if refused {
            // The client's `mariadb` would stop at its error.
            writeln!(
                out,
                "-- refused in the origin session: {}",
                sql.replace('\n', " ")
            )?;
        } else {
            writeln!(out, "{sql};")?;
        }
    }
    Ok(())
}

fn write_statement(out: &mut impl Write, entry: &Entry) -> std::io::Result<()> {
    writeln!(out, "{};", control::replay_pin(&entry.context))?;
    match &entry.statement {
        Statement::Text { sql } => {
            let text = String::from_utf8_lossy(&sql.to_bytes()).into_owned();
            writeln!(out, "{};", text.trim_end_matches([';', ' ', '\n']))
        }
        Statement::Prepared { sql, params } => {
            let text = String::from_utf8_lossy(&sql.to_bytes()).into_owned();
            let quoted = mysql_async::Value::from(text).as_sql(false);
            writeln!(out, "PREPARE lockstep_replay FROM {quoted};")?;
            let names: Vec<String> = (1..=params.len())
                .map(|i| format!("@lockstep_replay_{i}"))
                .collect();
            for (name, param) in names.iter().zip(params) {
                let value = mysql_async::Value::from(param).as_sql(false);
                writeln!(out, "SET {name} = {value};")?;
            }
            if names.is_empty() {
                writeln!(out, "EXECUTE lockstep_replay;")?;
            } else {
                writeln!(out, "EXECUTE lockstep_replay USING {};", names.join(", "))?;
            }
            writeln!(out, "DEALLOCATE PREPARE lockstep_replay;")
        }
        Statement::LocalInfile { sql, content } => {
            // SQL cannot carry the file: `mariadb --local-infile` would
            // read a file of that name on this machine instead.
            writeln!(
                out,
                "-- the client's file ({} bytes) is in the journal; `lockstep replay` without --dry-run gives it",
                content.0.len()
            )?;
            let text = String::from_utf8_lossy(&sql.to_bytes()).into_owned();
            writeln!(out, "{};", text.trim_end_matches([';', ' ', '\n']))
        }
    }
}
