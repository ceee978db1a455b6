//! `GET /journal/stats`, `/journal/show/{id}`, `/journal/list`: what
//! `lockstep journal` asks a running lockstep (which holds the journal open).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use uuid::Uuid;

use crate::journal::inspect::{self, Exported, Filter, Line, Shown, Stats};
use crate::shared::Shared;

type Answer<T> = Result<Json<T>, (StatusCode, String)>;

fn failed(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) async fn stats(State(shared): State<Arc<Shared>>) -> Answer<Stats> {
    let journal = shared.chain.journal.clone();
    let stats = tokio::task::spawn_blocking(move || inspect::stats(&journal))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    Ok(Json(stats))
}

pub(super) async fn show(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Answer<Shown> {
    let id = Uuid::parse_str(&id).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    // Results are journaled without waiting: let them land first.
    shared.chain.journal.settle().await.map_err(failed)?;
    match inspect::show(&shared.chain.journal, id).map_err(failed)? {
        Some(shown) => Ok(Json(shown)),
        None => Err((
            StatusCode::NOT_FOUND,
            format!("no request {id} in the journal"),
        )),
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(filter): Query<Filter>,
) -> Answer<Vec<Line>> {
    let journal = shared.chain.journal.clone();
    let lines = tokio::task::spawn_blocking(move || inspect::list(&journal, &filter))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    Ok(Json(lines))
}

/// Every committed commit with its entries: `lockstep replay --config`
/// replays a running lockstep's journal from this.
pub(super) async fn export(State(shared): State<Arc<Shared>>) -> Answer<Vec<Exported>> {
    shared.chain.journal.settle().await.map_err(failed)?;
    let journal = shared.chain.journal.clone();
    let commits = tokio::task::spawn_blocking(move || inspect::export(&journal))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    Ok(Json(commits))
}
