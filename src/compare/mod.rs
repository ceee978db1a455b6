//! The compare module (the source article's "Result Compare Server"): each
//! node's result for a requestId is summarized (`digest`), compared with the
//! master's (`verdict`), and the verdict decides what happens to the node.

pub mod digest;
pub mod notify;
pub mod verdict;

use crate::journal::{Entry, EntryKind, Outcome};
use verdict::{compare, Compared, Verdict};

/// The master's (last) result in `entry`, once it has one: a statement
/// re-run on the master (policy retry-master) is judged by its final result.
pub fn master_outcome(entry: &Entry) -> Option<&Outcome> {
    entry
        .results
        .iter()
        .rev()
        .find(|r| r.node == entry.master)
        .map(|r| &r.outcome)
}

/// Gives every node result of `entry` that has none its verdict against the
/// result of the node that was master when it ran; returns those that are not agreements. `replay`: the results
/// come from a replay on a connection of lockstep's own, which cannot have
/// the client's CLIENT_FOUND_ROWS, so affected rows are not compared for
/// sessions that asked for it.
///
/// The rows of a plain read are not compared: B and A take their snapshots
/// at different moments, so a read may legitimately see different rows
/// (it changes nothing, so nothing diverges). Nor are those of a statement
/// that answers with the node's report about itself (`ANALYZE <write>`,
/// `REPAIR`, `OPTIMIZE`), nor those of a `SELECT … FOR UPDATE SKIP LOCKED`,
/// which skips the rows other sessions hold on each node at that moment.
pub fn judge(entry: &mut Entry, replay: bool) -> Vec<(String, Verdict)> {
    let ignore_affected_rows = replay && entry.session_state.found_rows;
    let sql = entry.statement.sql().to_bytes();
    let compare_rows = entry.kind != EntryKind::Read
        && !crate::router::answers_with_node_report(&sql)
        && !crate::router::skips_locked_rows(&sql);
    let Some(reference) = master_outcome(entry).cloned() else {
        return Vec::new();
    };
    let master = entry.master.clone();
    let mut disagreements = Vec::new();
    for result in entry.results.iter_mut() {
        if result.node == master || result.verdict.is_some() {
            continue;
        }
        let verdict = compare(
            &reference,
            &result.outcome,
            Compared {
                affected_rows: !ignore_affected_rows,
                rows: compare_rows,
            },
        );
        crate::metrics::count_verdict(verdict.name());
        if !verdict.is_agreement() {
            disagreements.push((result.node.clone(), verdict.clone()));
        }
        result.verdict = Some(verdict);
    }
    disagreements
}
