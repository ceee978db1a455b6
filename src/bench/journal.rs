//! The journal micro-benchmark: durable entries per second and the time a
//! writer waits for its entry to be on disk, at 1, 8 and 64 concurrent
//! writers (real fsync, group commit).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::journal::entry::now_us;
use crate::journal::{
    Context, Entry, EntryKind, EntryState, Journal, SessionState, SqlText, Statement,
};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct JournalRun {
    pub writers: usize,
    pub entries_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn run(dir: &std::path::Path, seconds: u64) -> Result<Vec<JournalRun>, String> {
    let mut runs = Vec::new();
    for writers in [1usize, 8, 64] {
        let path = dir.join(format!("journal-{writers}"));
        let journal = Journal::open(&path).map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let mut waits = Vec::new();
                    while Instant::now() < until {
                        let started = Instant::now();
                        if journal.write_durable(&entry()).await.is_err() {
                            break;
                        }
                        waits.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    waits
                })
            })
            .collect();
        let mut waits = Vec::new();
        for task in tasks {
            waits.extend(task.await.map_err(|e| e.to_string())?);
        }
        journal.close();
        let _ = std::fs::remove_dir_all(&path);
        waits.sort_by(f64::total_cmp);
        let at = |q: f64| {
            waits
                .get(((waits.len() as f64) * q) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        runs.push(JournalRun {
            writers,
            entries_per_sec: waits.len() as f64 / seconds as f64,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        });
    }
    Ok(runs)
}

/// An entry the size of a typical sysbench write.
fn entry() -> Entry {
    Entry {
        id: Uuid::now_v7(),
        session: 1,
        user: "bench".into(),
        master: "a".into(),
        kind: EntryKind::Write,
        session_state: SessionState::default(),
        statement: Statement::Text {
            sql: SqlText::from_bytes(b"UPDATE sbtest1 SET k=k+1 WHERE id=5021"),
        },
        context: Context::now(),
        created_us: now_us(),
        results: Vec::new(),
        state: EntryState::Pending,
        applies: Vec::new(),
        binlog_marks: None,
    }
}
