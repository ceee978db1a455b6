//! `SHOW LOCKSTEP …` on the client port: what lockstep knows about its
//! nodes and about one request, answered by lockstep itself.

use std::io;

use opensrv_mysql::QueryResultWriter;
use tokio::io::AsyncWrite;
use uuid::Uuid;

use super::session::Session;
use crate::chain::roles::Role;
use crate::compare::verdict::Verdict;
use crate::error::ClientError;
use crate::journal::{Entry, EntryState, NodeResult, Outcome};

impl Session {
    /// `SHOW LOCKSTEP NODES`: one row per node, in chain order.
    pub(super) async fn show_nodes<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let chain = self.shared.chain.clone();
        let last = chain.journal.last_seq();
        let rows: Vec<Vec<Option<String>>> = chain
            .roles
            .members()
            .iter()
            .map(|member| {
                let role = chain.roles.role_of(&member.node.name);
                // The master and the synchronous slave have every commit;
                // a quarantined node's position is not followed.
                let (applied, problem) = match role {
                    // Whether writes are protected by a synchronous copy.
                    Role::Master => (
                        Some(last),
                        chain
                            .roles
                            .no_sync_reason()
                            .map(|why| format!("no synchronous slave in place: {why}")),
                    ),
                    Role::Sync => (Some(last), None),
                    Role::Quarantined => (None, member.status.quarantine_reason()),
                    _ => {
                        let status = &member.status;
                        let problem = match (status.left_role(), status.last_error()) {
                            (Some(left), Some(now)) => Some(format!("{left}; now: {now}")),
                            (left, now) => now.or(left),
                        };
                        (Some(status.applied()), problem)
                    }
                };
                vec![
                    Some(member.node.name.clone()),
                    Some(member.node.address()),
                    Some(role.name().to_string()),
                    applied.map(|a| a.to_string()),
                    applied.map(|a| last.saturating_sub(a).to_string()),
                    problem,
                ]
            })
            .collect();
        let columns = ["node", "address", "role", "applied_seq", "lag", "problem"];
        self.answer_table(w, &columns, &rows).await
    }

    /// `SHOW LOCKSTEP STATUS`: name/value rows about the whole of lockstep.
    pub(super) async fn show_status<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let chain = self.shared.chain.clone();
        let rows: Vec<Vec<Option<String>>> = [
            ("version", Some(env!("CARGO_PKG_VERSION").to_string())),
            ("master", Some(chain.roles.master().name)),
            ("sync_slave", chain.roles.sync().map(|n| n.name)),
            ("no_sync_slave_because", chain.roles.no_sync_reason()),
            (
                "min_sync_slaves",
                Some(self.shared.min_sync_slaves.to_string()),
            ),
            ("last_seq", Some(chain.journal.last_seq().to_string())),
            (
                "client_connections",
                Some(self.shared.registry.len().to_string()),
            ),
            (
                "journal_dir",
                Some(chain.journal.dir().display().to_string()),
            ),
            ("active_instance", self.shared.instances.active()),
            ("standbys", standbys(&self.shared.instances)),
        ]
        .into_iter()
        .map(|(name, value)| vec![Some(name.to_string()), value])
        .collect();
        self.answer_table(w, &["variable", "value"], &rows).await
    }

    /// `SHOW LOCKSTEP REQUEST '<id>'`: one row per node that ran it.
    pub(super) async fn show_request<W: AsyncWrite + Send + Unpin>(
        &mut self,
        w: QueryResultWriter<'_, W>,
        id: &str,
    ) -> io::Result<()> {
        // Results are journaled without waiting: let them land first.
        if let Err(e) = self.shared.chain.journal.settle().await {
            let err = ClientError::JournalUnavailable(e.to_string());
            return self.driver.answer(w, Err(err)).await;
        }
        let entry = match Uuid::parse_str(id) {
            Ok(uuid) => self.shared.chain.journal.entry(uuid),
            Err(_) => {
                return self
                    .driver
                    .answer(w, Err(ClientError::unknown_request(id)))
                    .await
            }
        };
        let entry = match entry {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                return self
                    .driver
                    .answer(w, Err(ClientError::unknown_request(id)))
                    .await
            }
            Err(e) => {
                let err = ClientError::JournalUnavailable(e.to_string());
                return self.driver.answer(w, Err(err)).await;
            }
        };
        let rows = request_rows(&entry);
        let columns = ["node", "state", "result", "attempts", "last_error", "entry"];
        self.answer_table(w, &columns, &rows).await
    }
}

/// Each node's results for the entry, summed up: in the order the nodes
/// first ran it.
fn request_rows(entry: &Entry) -> Vec<Vec<Option<String>>> {
    let mut nodes: Vec<&str> = Vec::new();
    for r in &entry.results {
        if !nodes.contains(&r.node.as_str()) {
            nodes.push(&r.node);
        }
    }
    nodes
        .into_iter()
        .map(|node| {
            let attempts: Vec<&NodeResult> =
                entry.results.iter().filter(|r| r.node == node).collect();
            let last = attempts[attempts.len() - 1];
            let last_error = attempts.iter().rev().find_map(|r| error_text(&r.outcome));
            vec![
                Some(node.to_string()),
                Some(node_state(last, attempts.len(), node == entry.master)),
                Some(summary(&last.outcome)),
                Some(attempts.len().to_string()),
                last_error,
                Some(entry_state(&entry.state)),
            ]
        })
        .collect()
}

fn node_state(last: &NodeResult, attempts: usize, is_master: bool) -> String {
    let state = match (&last.verdict, is_master, last.outcome.is_ok()) {
        (_, true, true) if attempts > 1 => "passed after retry",
        (_, true, true) => "passed",
        (_, true, false) => "failed",
        (Some(Verdict::Agree), _, _) if attempts > 1 => "passed after retry",
        (Some(Verdict::Agree), _, _) => "passed",
        (Some(Verdict::BothFailed), _, _) => "failed, as on the master",
        (Some(Verdict::NodeFailed), _, _) => "failed where the master passed",
        (Some(Verdict::MasterFailed), _, _) => "undone (the master failed it)",
        (Some(Verdict::Diverged { .. }), _, _) => "diverged",
        (None, _, _) => "ran; not compared yet",
    };
    match &last.verdict {
        Some(Verdict::Diverged { what }) => format!("{state}: {what}"),
        _ => state.to_string(),
    }
}

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok {
            affected_rows,
            last_insert_id,
            warnings,
            rows,
            ..
        } => {
            let mut text = format!(
                "ok: {affected_rows} affected, insert id {last_insert_id}, {warnings} warnings"
            );
            if let Some(rows) = rows {
                text.push_str(&format!(", {} rows (sha1 {})", rows.count, rows.checksum));
            }
            text
        }
        Outcome::Error { code, message, .. } => format!("error {code}: {message}"),
        Outcome::Lost { reason } => format!("connection lost: {reason}"),
    }
}

fn error_text(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Ok { .. } => None,
        other => Some(summary(other)),
    }
}

fn entry_state(state: &EntryState) -> String {
    match state {
        EntryState::Pending => "pending".into(),
        EntryState::InTransaction => "in an open transaction".into(),
        EntryState::Committed { seq } => format!("committed, seq {seq}"),
        EntryState::Failed => "failed".into(),
        EntryState::RetryingOnMaster => "retrying on the master".into(),
        EntryState::RolledBack => "rolled back".into(),
        EntryState::Done => "done".into(),
    }
}

/// `name (in step, N batches behind)`, comma-separated; None without `[ha]`.
fn standbys(instances: &crate::shared::instances::Instances) -> Option<String> {
    instances.active()?;
    let listed: Vec<String> = instances
        .standbys()
        .iter()
        .map(|s| {
            let state = if s.in_step { "in step" } else { "copying" };
            format!("{} ({state}, {} batches behind)", s.name, s.batches_behind)
        })
        .collect();
    Some(listed.join(", "))
}
