//! The admin endpoint's two answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::chain::roles::Role;
use crate::metrics::{self, NodeLabel, NodeRoleLabel};
use crate::shared::instances::StandbyStatus;
use crate::shared::Shared;

const ROLES: [Role; 6] = [
    Role::Master,
    Role::Sync,
    Role::Tail,
    Role::CatchingUp,
    Role::Quarantined,
    Role::Down,
];

/// `GET /metrics`: the node gauges are read from the roles now.
pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let m = metrics::get();
    let chain = &shared.chain;
    let last = chain.journal.last_seq();
    m.journal_last_seq.set(gauge(last));
    m.journal_bytes.set(gauge(chain.journal.size_on_disk()));
    m.client_connections
        .set(gauge(shared.registry.len() as u64));
    for node in nodes(&shared) {
        let label = NodeLabel {
            node: node.name.clone(),
        };
        for role in ROLES {
            let held = i64::from(role.name() == node.role);
            m.node_role
                .get_or_create(&NodeRoleLabel {
                    node: node.name.clone(),
                    role: role.name().to_string(),
                })
                .set(held);
        }
        m.node_up
            .get_or_create(&label)
            .set(i64::from(node.problem.is_none() || node.role == "master"));
        if let Some(applied) = node.applied_seq {
            m.node_applied_seq.get_or_create(&label).set(gauge(applied));
            m.node_lag_commits
                .get_or_create(&label)
                .set(gauge(last.saturating_sub(applied)));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

#[derive(Serialize)]
pub(super) struct Status {
    last_seq: u64,
    client_connections: usize,
    /// Why writes have no synchronous copy, while they have none.
    no_sync_slave: Option<String>,
    nodes: Vec<NodeStatus>,
    /// With `[ha]`: "active" (a standby answers "standby"), this instance
    /// and its standbys.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    standbys: Option<Vec<StandbyStatus>>,
}

#[derive(Serialize)]
struct NodeStatus {
    name: String,
    address: String,
    role: &'static str,
    applied_seq: Option<u64>,
    problem: Option<String>,
}

/// `GET /status`
pub(super) async fn status(State(shared): State<Arc<Shared>>) -> Json<Status> {
    Json(Status {
        last_seq: shared.chain.journal.last_seq(),
        client_connections: shared.registry.len(),
        no_sync_slave: shared.chain.roles.no_sync_reason(),
        nodes: nodes(&shared),
        role: shared.instances.active().map(|_| "active"),
        active_instance: shared.instances.active(),
        standbys: shared
            .instances
            .active()
            .map(|_| shared.instances.standbys()),
    })
}

fn nodes(shared: &Shared) -> Vec<NodeStatus> {
    let chain = &shared.chain;
    let last = chain.journal.last_seq();
    chain
        .roles
        .members()
        .iter()
        .map(|member| {
            let role = chain.roles.role_of(&member.node.name);
            let status = &member.status;
            let (applied_seq, problem) = match role {
                Role::Master | Role::Sync => (Some(last), None),
                Role::Quarantined => (None, status.quarantine_reason()),
                _ => (Some(status.applied()), status.last_error()),
            };
            NodeStatus {
                name: member.node.name.clone(),
                address: member.node.address(),
                role: role.name(),
                applied_seq,
                problem,
            }
        })
        .collect()
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
