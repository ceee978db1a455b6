//! The application's assembly: what a running lockstep is made of and the
//! order it is put together in at start (journal, roles, nodes, what the
//! last run left in flight, appliers, retention, health checks). The front
//! end (`frontend`) then only accepts clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::auth::Credential;
use crate::backend::{fence, Node, ServerInfo};
use crate::chain::cut_serialized::{self, Attempt};
use crate::chain::retention::{self, Retention};
use crate::chain::roles::{Role, Roles};
use crate::chain::stored_functions::StoredFunctions;
use crate::chain::tail::{self, Backoff, Tail};
use crate::chain::unrepeatable_bodies::{warn_of_makers, UnrepeatableBodies};
use crate::chain::Chain;
use crate::chain::{commits, recover, requirements};
use crate::compare::notify::Notifier;
use crate::config::Config;
use crate::failover::{health, Failover};
use crate::journal::{CommitState, Journal, JournalError};
use crate::shared::registry::Registry;
use crate::shared::Shared;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("node {node:?}: invalid url: {reason}")]
    NodeUrl { node: String, reason: String },
    #[error("master node {node:?} ({address}) is unreachable: {reason}")]
    MasterUnreachable {
        node: String,
        address: String,
        reason: String,
    },
    #[error("node {node:?} ({address}) is unreachable: {reason}")]
    NodeUnreachable {
        node: String,
        address: String,
        reason: String,
    },
    #[error("node {node:?} ({address}) cannot take part: {reason}")]
    NodeUnfit {
        node: String,
        address: String,
        reason: String,
    },
    #[error(transparent)]
    Tls(#[from] crate::frontend::TlsError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Opens the journal, checks the master is reachable and learns what
/// clients are shown of it, prepares every node, settles what the last run
/// left in flight, assigns the roles and starts the appliers, retention,
/// the retrier and the health monitor.
pub async fn assemble(config: &Config) -> Result<Arc<Shared>, StartError> {
    let nodes = config
        .nodes
        .iter()
        .map(|n| {
            Node::from_config(n).map_err(|e| StartError::NodeUrl {
                node: n.name.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let journal = Journal::open(&config.journal_dir)?;
    // The last run's sessions may still run what it left unsettled.
    fence::end_other_connections(&nodes).await;
    // After a failover the journal names the master: the configured one
    // may be behind.
    let roles = Roles::new(nodes, journal.master()?.as_deref());
    let mut prepared = prepare_nodes(&roles, &journal).await?;
    let settled_serialized = resolve_unfinished_commits(&roles, &journal).await?;
    // Before any client: a number it takes follows every commit.
    let finished =
        cut_serialized::finish_cut_serialized(&roles, &journal, Attempt::BeforeFailover).await?;
    if settled_serialized || finished.numbered {
        // Such a commit may be on some nodes only: which are behind now.
        prepared = prepare_nodes(&roles, &journal).await?;
    }
    recover::recover_commit_records(&roles, &journal).await?;
    let quarantined = remembered_quarantines(&journal, &config.resynced).await?;
    let server = learn_server(&roles).await?;
    let chain = Arc::new(Chain {
        roles,
        journal,
        server,
        notifier: Notifier::new(config.compare.notify_url.clone()),
        retry: Backoff {
            initial: Duration::from_millis(config.compare.retry_initial_ms),
            max: Duration::from_millis(config.compare.retry_max_ms),
        },
        gate: Default::default(),
        serialized: Default::default(),
        appliers: Default::default(),
        nontransactional: Default::default(),
    });
    if let Some(reason) = prepared.master_down.take() {
        fail_over_at_start(&chain, reason).await;
    }
    if finished.waits_for_failover {
        // The master of this start decides what the old one could not.
        let finished =
            cut_serialized::finish_cut_serialized(&chain.roles, &chain.journal, Attempt::Last)
                .await?;
        if finished.numbered {
            prepared = prepare_nodes(&chain.roles, &chain.journal).await?;
        }
    }
    let master = chain.roles.master();
    let unreachable = |e: mysql_async::Error| StartError::MasterUnreachable {
        node: master.name.clone(),
        address: master.address(),
        reason: e.to_string(),
    };
    let mut conn = master.connect_admin().await.map_err(unreachable)?;
    chain
        .nontransactional
        .refresh(&mut conn)
        .await
        .map_err(unreachable)?;
    let stored_functions = StoredFunctions::default();
    stored_functions
        .refresh(&mut conn)
        .await
        .map_err(unreachable)?;
    let unrepeatable_bodies = UnrepeatableBodies::default();
    if let Some(makers) = unrepeatable_bodies
        .refresh(&mut conn)
        .await
        .map_err(unreachable)?
    {
        warn_of_makers(&makers);
    }
    warn_if_events_run(&mut conn, &master.name).await;
    let _ = conn.disconnect().await;
    info!(node = %master.name, version = %chain.server.version, "master reachable");
    let sync_behind = prepared.sync_behind;
    assign_start_roles(&chain, &quarantined, sync_behind);
    retention::spawn(
        chain.clone(),
        Retention {
            keep: config.retention(),
            max_bytes: config.journal_max_bytes,
            every: Duration::from_millis(config.journal_purge_interval_ms),
        },
    );

    let users: HashMap<Vec<u8>, Credential> = config
        .users
        .iter()
        .filter_map(|u| {
            Some((
                u.name.as_bytes().to_vec(),
                Credential::from_config(u.password.as_deref(), u.password_hash.as_deref())?,
            ))
        })
        .collect();
    let shared = Arc::new(Shared {
        users,
        chain,
        registry: Registry::default(),
        stored_functions,
        unrepeatable_bodies,
        table_keys: Default::default(),
        column_tops: Default::default(),
        compare: config.compare.clone(),
        failover: Failover::new(
            Duration::from_millis(config.health_interval_ms),
            Duration::from_millis(config.health_timeout_ms),
        ),
        min_sync_slaves: config.min_sync_slaves,
        instances: Default::default(),
    });
    // The statements the `retry-master` policy was still retrying when
    // lockstep last stopped.
    crate::write::retry_master::resume(&shared);
    health::spawn(shared.clone());
    crate::write::deadlocks::spawn(shared.clone());
    Ok(shared)
}

/// What lockstep learns of its nodes at start.
struct Prepared {
    /// Why the master cannot be used: it is replaced before clients come.
    master_down: Option<String>,
    /// Why the synchronous slave cannot take its role at once: it is
    /// unreachable, or its commits are not the master's (it missed some,
    /// e.g. lockstep stopped between the master's commit and its own).
    sync_behind: Option<String>,
}

/// Every reachable node gets its `lockstep.commits`; the journal's sequence
/// numbers continue after the highest any node has. Nodes that are down
/// catch up later (their appliers retry).
async fn prepare_nodes(roles: &Roles, journal: &Journal) -> Result<Prepared, StartError> {
    let master = roles.master().name;
    let sync = roles.sync().map(|n| n.name);
    let mut prepared = Prepared {
        master_down: None,
        sync_behind: None,
    };
    let mut master_position = None;
    let mut sync_position = None;
    for member in roles.members() {
        let node = &member.node;
        let position = async {
            let mut conn = node.connect_admin().await?;
            let unmet = requirements::unmet(&mut conn).await?;
            commits::ensure_table(&mut conn).await?;
            let position = commits::position(&mut conn).await?;
            let _ = conn.disconnect().await;
            Ok::<_, mysql_async::Error>((position, unmet))
        }
        .await;
        match position {
            Ok((_, unmet)) if !unmet.is_empty() => {
                return Err(StartError::NodeUnfit {
                    node: node.name.clone(),
                    address: node.address(),
                    reason: requirements::describe(&unmet),
                });
            }
            Ok((position, _)) => {
                journal.advance_seq_past(position.last_seq);
                info!(node = %node.name, last_seq = position.last_seq, commits = position.count, "node ready");
                if node.name == master {
                    master_position = Some(position);
                } else if Some(&node.name) == sync.as_ref() {
                    sync_position = Some(position);
                }
            }
            Err(e) if node.name == master => {
                warn!(node = %node.name, error = %e, "master unreachable at start: it is replaced");
                prepared.master_down = Some(format!("unreachable at start: {e}"));
            }
            Err(e) if Some(&node.name) == sync.as_ref() => {
                warn!(node = %node.name, error = %e, "synchronous slave unreachable; it will catch up and take its role once it is back");
                prepared.sync_behind = Some(format!("unreachable at start: {e}"));
            }
            Err(e) => {
                warn!(node = %node.name, error = %e, "node unreachable; its applier will retry");
            }
        }
    }
    if let (Some(master), Some(sync)) = (master_position, sync_position) {
        // One row per commit on every node (the master's carry no number).
        if master.count != sync.count {
            prepared.sync_behind = Some(format!(
                "at start it has {} commits up to seq {}, the master {} up to seq {}",
                sync.count, sync.last_seq, master.count, master.last_seq
            ));
        }
    }
    Ok(prepared)
}

/// What clients are shown of the server (version, collation), from the
/// master or, when it is down, the first node that answers.
async fn learn_server(roles: &Roles) -> Result<ServerInfo, StartError> {
    let master = roles.master();
    let mut last_error = None;
    let nodes =
        std::iter::once(master.clone()).chain(roles.members().iter().map(|m| m.node.clone()));
    for node in nodes {
        let learned = async {
            let mut conn = node.connect_admin().await?;
            let server = ServerInfo::query(&mut conn).await;
            let _ = conn.disconnect().await;
            server
        }
        .await;
        match learned {
            Ok(server) => return Ok(server),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Err(StartError::MasterUnreachable {
        node: master.name.clone(),
        address: master.address(),
        reason: format!("no node answers: {}", last_error.unwrap_or_default()),
    })
}

/// The master is down at start: the synchronous slave (or the first node
/// that catches up) replaces it before any client is served.
async fn fail_over_at_start(chain: &Arc<Chain>, reason: String) {
    let dead = chain.roles.master().name;
    error!(master = %dead, %reason, "the master is down at start: failing over");
    let mut delay = Duration::from_millis(100);
    loop {
        if let Some(new) = crate::failover::promote_one(chain, &dead).await {
            info!(old = %dead, %new, "failover at start done");
            return;
        }
        error!(
            retry_in_ms = delay.as_millis() as u64,
            "no node can become the master yet"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Quarantined nodes stay out; a synchronous slave that is behind leaves
/// its role; every node without a role replays the journal.
fn assign_start_roles(
    chain: &Arc<Chain>,
    quarantined: &HashMap<String, String>,
    sync_behind: Option<String>,
) {
    let roles = &chain.roles;
    if let (Some(sync), Some(reason)) = (roles.sync(), sync_behind) {
        warn!(node = %sync.name, %reason, "the synchronous slave catches up before it takes its role");
        roles.leave_sync(&sync.name, reason);
    }
    for member in roles.members() {
        let name = &member.node.name;
        if let Some(reason) = quarantined.get(name) {
            warn!(node = %name, %reason, "node still quarantined (start with --resynced NODE once it is re-synced)");
            member.status.quarantine(reason.clone());
            roles.leave_sync(name, reason.clone());
        }
    }
    for member in roles.members() {
        let role = roles.role_of(&member.node.name);
        if !matches!(role, Role::Master | Role::Sync | Role::Quarantined) {
            if let Some(tail) = Tail::for_node(chain, &member.node.name) {
                tail.spawn();
            }
        }
    }
    tail::report_lag(chain.clone());
}

/// The nodes the journal says are quarantined (they diverged), less those
/// the operator says are re-synced (their marks are removed).
async fn remembered_quarantines(
    journal: &Journal,
    resynced: &[String],
) -> Result<HashMap<String, String>, StartError> {
    let mut quarantined: HashMap<String, String> = journal.quarantines()?.into_iter().collect();
    for node in resynced {
        if quarantined.remove(node).is_some() {
            info!(%node, "quarantine lifted: the operator says the node is re-synced");
            journal.set_quarantine(node, None).await?;
        }
    }
    Ok(quarantined)
}

/// Commits that were under way when lockstep stopped (or whose outcome
/// had not reached the disk): whether the master committed them is in its
/// `lockstep.commits`. Asked now and journaled, so that a replay of the
/// journal, which cannot ask, applies them too; with the master
/// unreachable they stay in doubt and the tail asks when it gets there.
async fn resolve_unfinished_commits(roles: &Roles, journal: &Journal) -> Result<bool, StartError> {
    let unfinished: Vec<_> = journal
        .commit_records()
        .filter(|r| !matches!(r, Ok(r) if r.state != CommitState::Reserved))
        .collect::<Result<_, _>>()?;
    if unfinished.is_empty() {
        return Ok(false);
    }
    let mut settled_serialized = false;
    let mut master = roles.master().connect_admin().await.ok();
    for record in unfinished {
        if record.serialized {
            // Numbered only once A ran it (it committed there by itself):
            // committed, whatever A's row says; its rows, written after
            // the number, may be missing.
            cut_serialized::record_numbered(roles, journal, &record, master.as_mut()).await;
            settled_serialized = true;
            warn!(seq = record.seq, request_id = %record.request_id, "serialized statement unfinished at the last stop: committed (the master ran it before its number)");
            journal.resolve_commit(&record, CommitState::Committed);
            continue;
        }
        let committed = match master.as_mut() {
            Some(conn) => commits::has(conn, record.request_id).await.ok(),
            None => None,
        };
        let state = match committed {
            Some(true) => CommitState::Committed,
            Some(false) => CommitState::Aborted,
            None => CommitState::InDoubt,
        };
        warn!(seq = record.seq, request_id = %record.request_id, ?state, "commit unfinished at the last stop, settled from the master's lockstep.commits");
        journal.resolve_commit(&record, state);
    }
    if let Some(conn) = master {
        let _ = conn.disconnect().await;
    }
    Ok(settled_serialized)
}

/// MariaDB's event scheduler running on the master: its events write there
/// behind lockstep's back (B and the tail never get those writes), and every
/// node with it on runs them by itself. lockstep refuses to turn it on;
/// one that is on already is worth a loud warning.
async fn warn_if_events_run(conn: &mut mysql_async::Conn, node: &str) {
    use mysql_async::prelude::Queryable;
    let state: Result<Option<String>, _> = conn.query_first("SELECT @@event_scheduler").await;
    if let Ok(Some(state)) = state {
        if state.eq_ignore_ascii_case("ON") {
            warn!(
                %node,
                "the event scheduler is on: its events write behind lockstep's back and the nodes will differ; set event_scheduler = OFF on every node"
            );
        }
    }
}
