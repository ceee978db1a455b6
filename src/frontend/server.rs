//! Accepts clients and runs one session task per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opensrv_mysql::{
    plain_run_with_options, secure_run_with_options, AsyncMysqlIntermediary, IntermediaryOptions,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tracing::{debug, info, info_span, warn, Instrument};

use super::auth::Credential;
use super::registry::Registry;
use super::session::{Session, Shared};
use super::tls::{self, TlsError};
use crate::backend::{Node, ServerInfo};
use crate::chain::commits;
use crate::chain::nontransactional::NonTransactional;
use crate::chain::tail::{self, Backoff, Tail, TailStatus};
use crate::compare::notify::Notifier;
use crate::config::Config;
use crate::journal::{CommitState, Journal, JournalError};

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
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

pub struct Frontend {
    shared: Arc<Shared>,
    tls: Option<Arc<ServerConfig>>,
}

impl Frontend {
    /// Checks the master is reachable and learns what clients are shown of it.
    pub async fn start(config: &Config) -> Result<Frontend, StartError> {
        let master_config = config.master();
        let master = Node::from_config(master_config).map_err(|e| StartError::NodeUrl {
            node: master_config.name.clone(),
            reason: e.to_string(),
        })?;
        let unreachable = |e: mysql_async::Error| StartError::MasterUnreachable {
            node: master.name.clone(),
            address: master.address(),
            reason: e.to_string(),
        };
        let mut conn = master.connect_admin().await.map_err(unreachable)?;
        let server = ServerInfo::query(&mut conn).await.map_err(unreachable)?;
        let nontransactional = NonTransactional::default();
        nontransactional
            .refresh(&mut conn)
            .await
            .map_err(unreachable)?;
        let _ = conn.disconnect().await;
        info!(node = %master.name, version = %server.version, "master reachable");

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
        let sync_quarantine = prepare_nodes(&nodes, &journal).await?;
        resolve_unfinished_commits(&journal)?;
        let sync = nodes.get(1).cloned();
        let notifier = Notifier::new(config.compare.notify_url.clone());
        let quarantined = remembered_quarantines(&journal, &config.resynced).await?;
        let mut tails = Vec::new();
        for node in nodes.iter().skip(2) {
            let status = Arc::new(TailStatus::default());
            tails.push((node.clone(), status.clone()));
            if let Some(reason) = quarantined.get(&node.name) {
                warn!(node = %node.name, %reason, "tail node still quarantined (start with --resynced NODE once it is re-synced)");
                status.quarantine(reason.clone());
                continue;
            }
            Tail {
                node: node.clone(),
                master: master.clone(),
                server: server.clone(),
                journal: journal.clone(),
                status,
                notifier: notifier.clone(),
                retry: Backoff {
                    initial: Duration::from_millis(config.compare.retry_initial_ms),
                    max: Duration::from_millis(config.compare.retry_max_ms),
                },
            }
            .spawn();
        }
        tail::report_lag(
            journal.clone(),
            tails
                .iter()
                .map(|(n, s)| (n.name.clone(), s.clone()))
                .collect(),
        );

        let users: HashMap<Vec<u8>, Credential> = config
            .users
            .iter()
            .filter_map(|u| Some((u.name.as_bytes().to_vec(), Credential::from_user(u)?)))
            .collect();
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        let shared = Arc::new(Shared {
            users,
            master,
            sync,
            sync_quarantine: std::sync::Mutex::new(None),
            sync_catch_up: std::sync::Mutex::new(None),
            server,
            registry: Registry::default(),
            journal,
            gate: Arc::new(tokio::sync::RwLock::new(())),
            nontransactional,
            notifier,
            compare: config.compare.clone(),
            tails,
        });
        let remembered = shared.sync.as_ref().and_then(|n| quarantined.get(&n.name));
        match (remembered, sync_quarantine) {
            (Some(reason), _) => {
                warn!(%reason, "first slave still quarantined (start with --resynced NODE once it is re-synced)");
                shared.quarantine_sync(reason.clone(), false);
            }
            (None, Some(reason)) => shared.quarantine_sync(reason, true),
            (None, None) => {}
        }
        super::write::retry_master::resume(&shared);
        Ok(Frontend { shared, tls })
    }

    /// Accepts clients until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => {
                    info!(sessions = self.shared.registry.len(), "shutting down");
                    // What is queued for the journal (results, commit
                    // records) reaches the disk before the process ends.
                    let journal = self.shared.journal.clone();
                    let _ = tokio::task::spawn_blocking(move || journal.close()).await;
                    info!("journal synced and closed");
                    return Ok(());
                }
            };
            let session = Session::new(self.shared.clone(), peer);
            let id = session.id();
            let tls = self.tls.clone();
            let task = tokio::spawn(
                run_session(session, stream, peer, tls)
                    .instrument(info_span!("session", conn_id = id, %peer)),
            );
            self.shared.registry.set_abort(id, task.abort_handle());
        }
    }
}

/// Every node gets its `lockstep.commits`; the journal's sequence numbers
/// continue after the highest any node has. The master and the synchronous
/// slave must be reachable; a tail node may come later (its applier retries).
///
/// Returns why the first slave cannot take the synchronous role, when its
/// commits are not the master's (it missed some, e.g. lockstep stopped
/// between the master's commit and its own).
async fn prepare_nodes(nodes: &[Node], journal: &Journal) -> Result<Option<String>, StartError> {
    let mut positions = Vec::new();
    let mut sync_down = None;
    for (i, node) in nodes.iter().enumerate() {
        let unreachable = |e: mysql_async::Error| StartError::NodeUnreachable {
            node: node.name.clone(),
            address: node.address(),
            reason: e.to_string(),
        };
        let prepared = async {
            let mut conn = node.connect_admin().await?;
            commits::ensure_table(&mut conn).await?;
            let position = commits::position(&mut conn).await?;
            let _ = conn.disconnect().await;
            Ok::<_, mysql_async::Error>(position)
        }
        .await;
        match prepared {
            Ok(position) => {
                journal.advance_seq_past(position.last_seq);
                info!(node = %node.name, last_seq = position.last_seq, commits = position.count, "node ready");
                positions.push((i, position));
            }
            Err(e) if i >= 2 => {
                warn!(node = %node.name, error = %e, "tail node unreachable; its applier will retry");
            }
            Err(e) if i == 1 => {
                warn!(node = %node.name, error = %e, "first slave unreachable; it will catch up and become synchronous once it is back");
                sync_down = Some(format!("unreachable at start: {e}"));
            }
            Err(e) => return Err(unreachable(e)),
        }
    }
    if sync_down.is_some() {
        return Ok(sync_down);
    }
    Ok(match positions.as_slice() {
        [(0, master), (1, sync), ..] if master != sync => Some(format!(
            "at start it has {} commits up to seq {}, the master {} up to seq {}",
            sync.count, sync.last_seq, master.count, master.last_seq
        )),
        _ => None,
    })
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

/// Commits that were under way when lockstep stopped: whether the master
/// committed them is in its `lockstep.commits`, which the tail consults.
fn resolve_unfinished_commits(journal: &Journal) -> Result<(), StartError> {
    let unfinished: Vec<_> = journal
        .commit_records()
        .filter(|r| !matches!(r, Ok(r) if r.state != CommitState::Reserved))
        .collect::<Result<_, _>>()?;
    for record in unfinished {
        warn!(seq = record.seq, request_id = %record.request_id, "commit in doubt after a restart");
        journal.resolve_commit(&record, CommitState::InDoubt);
    }
    Ok(())
}

async fn run_session(
    mut session: Session,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let opts = IntermediaryOptions::default();
    let result = async {
        let (wants_tls, init) =
            AsyncMysqlIntermediary::init_before_ssl(&mut session, reader, &mut writer, &tls)
                .await?;
        match (wants_tls, tls) {
            (true, Some(tls)) => secure_run_with_options(session, writer, opts, tls, init).await,
            _ => plain_run_with_options(session, writer, opts, init).await,
        }
    }
    .await;
    match result {
        Ok(()) => debug!(%peer, "client disconnected"),
        Err(e) => info!(%peer, error = %e, "client connection ended"),
    }
}
