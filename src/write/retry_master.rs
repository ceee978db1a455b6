//! Policy `retry-master`: a statement the master refused and the first
//! slave passed is re-run until the master passes it, in the write path's
//! order (B first, then A, commit on A, then on B), by a task of its own.
//! The client already has the master's error; a notification says when it
//! finally passed. Entries still retrying when lockstep stops are taken up
//! again at start (`resume`).

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{info, info_span, warn, Instrument};

use crate::chain::outcome;
use crate::chain::replay_state::AppliedState;
use crate::compare;
use crate::compare::notify::Event;
use crate::journal::{CommitState, Entry, EntryState, NodeResult, Outcome};
use crate::protocol::insert_id::{self, Question, Reported};
use crate::protocol::{commit, control};
use crate::shared::Shared;

/// Starts retrying `entry` on the master.
pub(super) fn spawn(shared: Arc<Shared>, entry: Entry) {
    let span = info_span!("retry_master", request_id = %entry.id);
    tokio::spawn(retry_until_passed(shared, entry).instrument(span));
}

/// Takes up the entries that were being retried when lockstep stopped.
pub(crate) fn resume(shared: &Arc<Shared>) {
    let retrying: Vec<Entry> = shared
        .chain
        .journal
        .entries()
        .filter_map(Result::ok)
        .filter(|e| e.state == EntryState::RetryingOnMaster)
        .collect();
    for entry in retrying {
        info!(request_id = %entry.id, "resuming the retry of a statement the master refused");
        spawn(shared.clone(), entry);
    }
}

async fn retry_until_passed(shared: Arc<Shared>, mut entry: Entry) {
    let initial = Duration::from_millis(shared.compare.retry_initial_ms);
    let max = Duration::from_millis(shared.compare.retry_max_ms);
    let mut delay = initial;
    loop {
        tokio::time::sleep(delay).await;
        match attempt(&shared, &mut entry).await {
            Ok(_) => {
                let attempts = entry
                    .results
                    .iter()
                    .filter(|r| r.node == entry.master)
                    .count();
                shared.chain.notifier.notify(Event::PassedAfterRetry {
                    request_id: entry.id.to_string(),
                    node: entry.master.clone(),
                    attempts,
                });
                return;
            }
            Err(e) => {
                shared.chain.journal.write(&entry);
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "the master still refuses it");
                delay = (delay * 2).min(max);
            }
        }
    }
}

/// One try: B, then A, each on a connection of its own with the origin
/// session's state; the commit number is taken while A holds the
/// statement's locks, as in the write path. Returns the number it
/// committed with.
async fn attempt(shared: &Arc<Shared>, entry: &mut Entry) -> Result<u64, String> {
    let _gate = shared.chain.gate.enter().await;
    // The master of the moment (a failover may have moved the role).
    let node = shared.master_node();
    entry.master = node.name.clone();
    let mut master = replay_connection(shared, &node, entry).await?;
    let mut sync = match shared.sync_node() {
        Some(node) => Some((replay_connection(shared, &node, entry).await?, node.name)),
        None => None,
    };
    let mut context = entry.context.clone();
    context.insert_id = None;
    if let Some((conn, name)) = sync.as_mut() {
        let outcome = run(conn, control::BEGIN, &context, entry).await;
        record(entry, name, outcome.clone());
        match outcome {
            Outcome::Ok { .. } => {
                context.insert_id = generated_insert_id(shared, conn, entry, &outcome).await
            }
            other => {
                let _ = conn.query_drop(control::rollback_unpinned()).await;
                return Err(format!("the synchronous slave now fails it too: {other:?}"));
            }
        }
    }
    // A runs it with its row, then the number is taken while A holds the
    // statement's locks (protocol::commit), then A commits.
    let opening = control::then(control::BEGIN, &control::mark(entry.id));
    let outcome = run(&mut master, &opening, &context, entry).await;
    record(entry, &node.name, outcome.clone());
    if !outcome.is_ok() {
        let _ = master.query_drop(control::rollback_unpinned()).await;
        if let Some((conn, _)) = sync.as_mut() {
            let _ = conn.query_drop(control::rollback_unpinned()).await;
        }
        return Err(format!("{outcome:?}"));
    }
    if context.insert_id.is_none() {
        context.insert_id = generated_insert_id(shared, &mut master, entry, &outcome).await;
    }
    let journal = shared.chain.journal.clone();
    let reservation = match commit::number(&journal, entry.id, vec![entry.id], false).await {
        Ok(reservation) => reservation,
        Err(e) => {
            let _ = master.query_drop(control::rollback_unpinned()).await;
            if let Some((conn, _)) = sync.as_mut() {
                let _ = conn.query_drop(control::rollback_unpinned()).await;
            }
            return Err(e.to_string());
        }
    };
    let seq = reservation.seq();
    entry.context = context;
    if let Err(e) = master.query_drop(control::Wrap::Begin.commit()).await {
        // Whether the master committed is in doubt: the reservation says so
        // when dropped, and the tail asks the master's lockstep.commits.
        return Err(format!("commit on the master: {e}"));
    }
    // The entry as committed is journaled before its commit is resolved:
    // the tail reads it once the commit is.
    entry.state = EntryState::Committed { seq };
    compare::judge(entry, false);
    shared.chain.journal.write(entry);
    reservation.resolve(CommitState::Committed);
    if let Some((conn, name)) = sync.as_mut() {
        if let Err(e) = conn
            .query_drop(control::commit_recorded(entry.id, seq))
            .await
        {
            warn!(node = %name, error = %e, "the synchronous slave could not commit the retried statement");
            let _ = conn.query_drop(control::rollback_unpinned()).await;
        }
    }
    Ok(seq)
}

/// A connection to `node` with the origin session's state.
async fn replay_connection(
    shared: &Shared,
    node: &crate::backend::Node,
    entry: &Entry,
) -> Result<Conn, String> {
    let mut conn = node.connect_admin().await.map_err(|e| e.to_string())?;
    AppliedState::default()
        .prepare(&mut conn, &entry.session_state, &shared.chain.server)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// `opening`, the pinned context, then the statement.
async fn run(
    conn: &mut Conn,
    opening: &str,
    context: &crate::journal::Context,
    entry: &Entry,
) -> Outcome {
    let pin = control::then(opening, &control::replay_pin(context));
    if let Err(e) = conn.query_drop(pin).await {
        return outcome::outcome_of_error(e);
    }
    outcome::run_statement(conn, &entry.statement).await
}

/// The AUTO_INCREMENT value `outcome` generated on `conn`
/// (`protocol::insert_id`), the origin session's LAST_INSERT_ID() pinned
/// ahead of it by `replay_pin`. A failed question pins nothing: the
/// commit that follows on the same connection fails too.
async fn generated_insert_id(
    shared: &Shared,
    conn: &mut Conn,
    entry: &Entry,
    outcome: &Outcome,
) -> Option<u64> {
    let Outcome::Ok {
        last_insert_id,
        affected_rows,
        ..
    } = outcome
    else {
        return None;
    };
    let sql = entry.statement.sql().to_bytes();
    let question = Question::for_statement(&sql, false);
    let reported = Reported::of_answer(
        *last_insert_id,
        *affected_rows,
        &conn.info(),
        entry.session_state.found_rows,
    );
    let counted = insert_id::LastInsertId::known(entry.context.last_insert_id.unwrap_or(0));
    let node = insert_id::Node {
        conn,
        schema: entry.session_state.schema.as_deref(),
        tops: &shared.column_tops,
        request_id: entry.id,
    };
    insert_id::generated(node, &sql, question, reported, counted)
        .await
        .ok()
        .and_then(|generated| generated.insert_id)
}

fn record(entry: &mut Entry, node: &str, outcome: Outcome) {
    entry.results.push(NodeResult {
        node: node.to_string(),
        outcome,
        verdict: None,
    });
}
