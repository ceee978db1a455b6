//! Commit records lost when lockstep died. A commit's number and record are
//! written to the journal without waiting for the disk (the work itself is
//! durable before it runs anywhere); a record still in memory when lockstep
//! is killed is gone, while the master may have committed under that number.
//! At start, the nodes' `lockstep.commits` say which numbers were committed
//! and under which requestId: their records are rebuilt from the journaled
//! entries, so the other nodes still get that work. A number no node has
//! was never committed and is closed, so appliers do not wait for it.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::roles::Roles;
use crate::journal::{CommitRecord, CommitState, EntryKind, Journal, JournalError};

/// How far below the last number handed out records are looked for: they
/// are lost only in the last moments before lockstep died.
const WINDOW: u64 = 10_000;

pub async fn recover_commit_records(roles: &Roles, journal: &Journal) -> Result<(), JournalError> {
    let last = journal.last_seq();
    let from = last.saturating_sub(WINDOW);
    let mut missing = Vec::new();
    for seq in from + 1..=last {
        if journal.commit_record(seq)?.is_none() {
            missing.push(seq);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let (committed, unreachable) = committed_on_nodes(roles, from).await;
    for seq in missing {
        let record = match committed.get(&seq) {
            Some(request_id) => match rebuilt(journal, seq, *request_id)? {
                Some(record) => record,
                None => continue,
            },
            None => {
                info!(
                    seq,
                    ?unreachable,
                    "commit number no reachable node has: closed"
                );
                CommitRecord {
                    seq,
                    request_id: Uuid::nil(),
                    statements: Vec::new(),
                    serialized: false,
                    state: CommitState::Aborted,
                }
            }
        };
        let state = record.state;
        journal.resolve_commit(&record, state);
    }
    journal.settle().await
}

/// The record of commit `seq`, committed under `request_id` on some node.
fn rebuilt(
    journal: &Journal,
    seq: u64,
    request_id: Uuid,
) -> Result<Option<CommitRecord>, JournalError> {
    let Some(entry) = journal.entry(request_id)? else {
        error!(seq, %request_id, "a node committed a request the journal lacks; nodes without it stay behind");
        return Ok(None);
    };
    warn!(seq, %request_id, "commit record lost with lockstep: rebuilt from the nodes");
    let statements = if entry.applies.is_empty() {
        vec![request_id]
    } else {
        entry.applies.clone()
    };
    Ok(Some(CommitRecord {
        seq,
        request_id,
        statements,
        serialized: entry.kind == EntryKind::Serialized,
        state: CommitState::Committed,
    }))
}

/// Every number above `from` some reachable node committed, with its
/// requestId; and the nodes that could not be asked.
async fn committed_on_nodes(roles: &Roles, from: u64) -> (HashMap<u64, Uuid>, Vec<String>) {
    let mut committed = HashMap::new();
    let mut unreachable = Vec::new();
    for member in roles.members() {
        let rows = async {
            let mut conn = member.node.connect_admin().await?;
            let rows: Vec<Row> = conn
                .query(format!(
                    "SELECT seq, request_id FROM lockstep.commits WHERE seq > {from}"
                ))
                .await?;
            let _ = conn.disconnect().await;
            Ok::<_, mysql_async::Error>(rows)
        }
        .await;
        let Ok(rows) = rows else {
            unreachable.push(member.node.name.clone());
            continue;
        };
        for row in rows {
            let seq = row.get_opt::<u64, usize>(0).and_then(Result::ok);
            let id = row
                .get_opt::<Vec<u8>, usize>(1)
                .and_then(Result::ok)
                .and_then(|b| Uuid::from_slice(&b).ok());
            if let (Some(seq), Some(id)) = (seq, id) {
                committed.insert(seq, id);
            }
        }
    }
    (committed, unreachable)
}
