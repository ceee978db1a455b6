//! `GET /check`: `lockstep check` against the running lockstep. Writes are
//! held (the gate) while every caught-up node opens its consistent
//! snapshot, so all of them show the same commit; the comparison itself
//! runs after writes resume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use tracing::info;

use crate::chain::roles::Role;
use crate::check::{self, Report, Snapshot};
use crate::shared::Shared;

/// How long writes may take to drain, and tails to catch up, before the
/// check gives up on them.
const DRAIN: Duration = Duration::from_secs(10);
const CATCH_UP: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub(super) struct CheckQuery {
    table: Option<String>,
    chunk_rows: Option<u64>,
}

pub(super) async fn check(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<CheckQuery>,
) -> Result<Json<Report>, (StatusCode, String)> {
    let failed = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let (reference, others, skipped) = snapshots(&shared).await.map_err(failed)?;
    let mut report = check::compare(
        reference,
        others,
        query.table.as_deref(),
        query.chunk_rows.unwrap_or(10_000),
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    report.skipped.extend(skipped);
    info!(
        differs = report.differs(),
        tables = report.tables.len(),
        "check done"
    );
    Ok(Json(report))
}

type Snapshots = (Snapshot, Vec<Snapshot>, Vec<(String, String)>);

/// The master's snapshot and those of the nodes that have every commit,
/// opened with writes held.
async fn snapshots(shared: &Shared) -> Result<Snapshots, String> {
    let chain = &shared.chain;
    let gate = tokio::time::timeout(DRAIN, chain.gate.close())
        .await
        .map_err(|_| "writes did not drain within 10 s; try again".to_string())?;
    let last = chain.journal.last_seq();
    let master = chain.roles.master();
    let mut skipped = Vec::new();
    let mut eligible = Vec::new();
    let deadline = Instant::now() + CATCH_UP;
    for member in chain.roles.members() {
        let name = &member.node.name;
        match chain.roles.role_of(name) {
            Role::Master => continue,
            Role::Sync => eligible.push(member.node.clone()),
            Role::Quarantined | Role::Down => {
                skipped.push((name.clone(), chain.roles.role_of(name).name().to_string()));
            }
            Role::Tail | Role::CatchingUp => {
                while member.status.applied() < last && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if member.status.applied() >= last {
                    eligible.push(member.node.clone());
                } else {
                    skipped.push((
                        name.clone(),
                        format!("behind: at commit {} of {last}", member.status.applied()),
                    ));
                }
            }
        }
    }
    let reference = check::open_snapshot(&master)
        .await
        .map_err(|e| e.to_string())?;
    let mut others = Vec::new();
    for node in eligible {
        match check::open_snapshot(&node).await {
            Ok(snapshot) => others.push(snapshot),
            Err(e) => skipped.push((node.name.clone(), e.to_string())),
        }
    }
    drop(gate);
    Ok((reference, others, skipped))
}
