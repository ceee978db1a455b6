//! What `lockstep journal` shows: totals, one entry with every node's
//! result, and entries by state, time and session.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CommitRecord, Entry, EntryState, Journal, JournalError};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub entries: u64,
    pub commits: u64,
    pub last_seq: u64,
    /// Bytes the journal's directory holds.
    pub size_bytes: u64,
    /// Microseconds since the Unix epoch.
    pub oldest_us: Option<i64>,
    pub newest_us: Option<i64>,
    pub entry_states: BTreeMap<String, u64>,
    pub commit_states: BTreeMap<String, u64>,
}

/// One entry and the commit that applied it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shown {
    pub entry: Entry,
    pub commit: Option<CommitRecord>,
}

/// Which entries `list` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filter {
    pub state: Option<String>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub session: Option<u32>,
}

/// One line of `list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub id: Uuid,
    pub created_us: i64,
    pub session: u32,
    pub user: String,
    pub kind: String,
    pub state: String,
    pub statement: String,
}

pub fn stats(journal: &Journal) -> Result<Stats, JournalError> {
    let mut stats = Stats {
        last_seq: journal.last_seq(),
        size_bytes: journal.size_on_disk(),
        ..Stats::default()
    };
    for entry in journal.entries() {
        let entry = entry?;
        stats.entries += 1;
        stats.oldest_us = Some(
            stats
                .oldest_us
                .map_or(entry.created_us, |o| o.min(entry.created_us)),
        );
        stats.newest_us = Some(
            stats
                .newest_us
                .map_or(entry.created_us, |n| n.max(entry.created_us)),
        );
        *stats
            .entry_states
            .entry(state_name(&entry.state))
            .or_default() += 1;
    }
    for record in journal.commit_records() {
        let record = record?;
        stats.commits += 1;
        let state = serde_json::to_value(record.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *stats.commit_states.entry(state).or_default() += 1;
    }
    Ok(stats)
}

pub fn show(journal: &Journal, id: Uuid) -> Result<Option<Shown>, JournalError> {
    let Some(entry) = journal.entry(id)? else {
        return Ok(None);
    };
    let commit = match entry.state {
        EntryState::Committed { seq } => journal.commit_record(seq)?,
        _ => None,
    };
    Ok(Some(Shown { entry, commit }))
}

pub fn list(journal: &Journal, filter: &Filter) -> Result<Vec<Line>, JournalError> {
    let mut lines = Vec::new();
    for entry in journal.entries() {
        let entry = entry?;
        let state = state_name(&entry.state);
        let wanted = filter.state.as_ref().is_none_or(|s| *s == state)
            && filter.since_us.is_none_or(|t| entry.created_us >= t)
            && filter.until_us.is_none_or(|t| entry.created_us <= t)
            && filter.session.is_none_or(|s| entry.session == s);
        if !wanted {
            continue;
        }
        lines.push(Line {
            id: entry.id,
            created_us: entry.created_us,
            session: entry.session,
            user: entry.user.clone(),
            kind: serde_json::to_value(entry.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            state,
            statement: statement_text(&entry),
        });
    }
    Ok(lines)
}

/// `committed`, `failed`, … (the state without its data).
pub fn state_name(state: &EntryState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn statement_text(entry: &Entry) -> String {
    String::from_utf8_lossy(&entry.statement.sql().to_bytes()).into_owned()
}

/// One settled commit with its entries, as `GET /journal/export` sends it
/// (one per line) for `lockstep replay` against a running lockstep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exported {
    pub record: CommitRecord,
    pub entries: Vec<Entry>,
}

/// Every committed commit, with its entries, in commit order.
pub fn export(journal: &Journal) -> Result<Vec<Exported>, JournalError> {
    let mut out = Vec::new();
    for record in journal.commit_records() {
        let record = record?;
        if record.state != super::CommitState::Committed {
            continue;
        }
        let mut ids = record.statements.clone();
        if !ids.contains(&record.request_id) {
            ids.push(record.request_id);
        }
        let mut entries = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(entry) = journal.entry(id)? {
                entries.push(entry);
            }
        }
        out.push(Exported { record, entries });
    }
    Ok(out)
}

/// Writes exported commits into `journal` (a scratch one), durably.
pub async fn import(journal: &Journal, commits: &[Exported]) -> Result<(), JournalError> {
    for commit in commits {
        for entry in &commit.entries {
            journal.write(entry);
        }
        journal.resolve_commit(&commit.record, commit.record.state);
        journal.advance_seq_past(commit.record.seq);
    }
    journal.settle().await
}
