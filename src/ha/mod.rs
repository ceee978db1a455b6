//! lockstep with standbys (`[ha]`): several instances, one active at a
//! time, elected through etcd; the others copy its journal and pass
//! clients to it. The design is in docs/ha.md.
//!
//! An instance's life:
//! 1. **Standby**: it opens its own journal, copies the active's journal
//!    into it (`follow`), passes clients that connect to it to the active
//!    (`pass`), and whenever etcd names no active instance tries to become
//!    it (`coordinator`), which only an instance holding every acknowledged
//!    commit can.
//! 2. **Active**: it starts as a lockstep alone does after a restart, from
//!    its journal (`app::assemble`: commits in doubt are settled from the
//!    master's `lockstep.commits`), serves clients, and ships every batch of
//!    its journal to the standbys (`ship`): a commit is acknowledged once a
//!    standby in step has it on disk too.
//! 3. An active that cannot renew its lease stops at once, since another
//!    instance may take over once the lease runs out: the process starts
//!    itself again (the same program and arguments, `exec`), as a standby,
//!    with no supervisor needed.

pub mod coordinator;

pub mod follow;
pub mod local_etcd;
pub mod members;
pub mod pass;
pub mod ship;
pub mod wire;

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use crate::config::{Config, Ha};
use crate::frontend::Frontend;
use crate::journal::{Journal, JournalError};
use coordinator::{ActiveInstance, Coordinator, CoordinatorError, Lease, LeaseClock, TakeOver};

/// How often a standby asks etcd who is active.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// How often the active looks at its lease's clock.
const LEASE_WATCH: Duration = Duration::from_millis(20);

/// The process's exit code when the active lost its lease and could not
/// start itself again.
pub const EXIT_LEASE_LOST: i32 = 3;

/// How long a starting instance waits between tries to reach etcd.
const ETCD_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs this instance, as a standby and then as the active one, until
/// `shutdown` completes.
pub async fn run(
    config: &Config,
    ha: &Ha,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), HaError> {
    tokio::pin!(shutdown);
    let coordinator = tokio::select! {
        coordinator = connect_when_reachable(ha, config.listen) => coordinator,
        () = &mut shutdown => return Ok(()),
    };
    let listener = bind(config.listen).await?;
    info!(instance = %ha.name, addr = %config.listen, "lockstep instance listening as a standby");
    let standby = Standby::start(config, coordinator.clone(), listener)?;
    let admin = crate::admin::start_standby(config.admin_listen, standby.view())
        .await
        .map_err(|source| HaError::Bind {
            addr: config.admin_listen,
            source,
        })?;
    let lease = tokio::select! {
        lease = standby.wait_for_the_active_role() => lease,
        () = &mut shutdown => {
            standby.stop().await;
            return Ok(());
        }
    };
    // The active's own endpoint takes the port.
    let (stop_admin, admin_task) = admin;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    let listener = match standby.stop().await {
        Some(listener) => listener,
        None => bind(config.listen).await?,
    };
    serve_as_active(config, ha, coordinator, lease, listener, shutdown).await
}

/// etcd, once it answers: an instance started while etcd is down (or that
/// started itself again after losing its lease to an etcd outage) waits
/// for it, logging each failure once.
async fn connect_when_reachable(ha: &Ha, listen: std::net::SocketAddr) -> Coordinator {
    let mut last_error = None;
    loop {
        match Coordinator::connect(ha, listen).await {
            Ok(coordinator) => return coordinator,
            Err(e) => {
                let error = e.to_string();
                if last_error.as_ref() != Some(&error) {
                    warn!(error = %error, "etcd unreachable: this instance waits for it");
                    last_error = Some(error);
                }
                tokio::time::sleep(ETCD_RETRY).await;
            }
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, HaError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HaError::Bind { addr, source })
}

/// Why this instance may not take over, logged once per change.
#[derive(Default)]
struct Refusals {
    last: Option<(coordinator::JournalHolders, bool, Option<String>)>,
}

impl Refusals {
    fn log(
        &mut self,
        me: &str,
        holders: coordinator::JournalHolders,
        whole: bool,
        lineage: Option<String>,
    ) {
        let refusal = Some((holders.clone(), whole, lineage.clone()));
        if self.last == refusal {
            return;
        }
        let listed = holders.active == me || holders.in_step.iter().any(|n| n == me);
        if listed && whole {
            error!(
                instance = %me,
                holders_journal = ?holders.journal,
                this_journal = ?lineage,
                "etcd names this instance as a holder of every commit, but of another journal: its journal directory was lost or replaced, and it does not take over with it (start the instance whose journal it is; to accept losing what only that journal held, delete the etcd key lockstep/journal)"
            );
        } else {
            error!(
                instance = %me,
                last_active = %holders.active,
                in_step = ?holders.in_step,
                copy_whole = whole,
                "no instance is active, and this one may lack acknowledged commits: it does not take over (start the last active instance, or an instance in step)"
            );
        }
        self.last = refusal;
    }
}

/// The standby's tasks: the copy of the journal and the passing of clients.
struct Standby {
    journal: Journal,
    coordinator: Coordinator,
    active: watch::Sender<Option<ActiveInstance>>,
    following: tokio::task::JoinHandle<()>,
    passing: tokio::task::JoinHandle<TcpListener>,
    stop_passing: oneshot::Sender<()>,
}

impl Standby {
    fn start(
        config: &Config,
        coordinator: Coordinator,
        listener: TcpListener,
    ) -> Result<Standby, HaError> {
        let journal = Journal::open(&config.journal_dir)?;
        let (active, active_rx) = watch::channel(None);
        let (stop_passing, stop_rx) = oneshot::channel();
        let passing = tokio::spawn(pass::pass_clients(listener, active_rx.clone(), stop_rx));
        let following = tokio::spawn(keep_following(
            journal.clone(),
            coordinator.name().to_string(),
            active_rx,
        ));
        Ok(Standby {
            journal,
            coordinator,
            active,
            following,
            passing,
            stop_passing,
        })
    }

    /// Watches etcd until this instance wins the active role: when no
    /// instance is active, or the active's heartbeat has not moved for
    /// `beat.silence` (`coordinator`).
    async fn wait_for_the_active_role(&self) -> Lease {
        let mut coordinator = self.coordinator.clone();
        let me = coordinator.name().to_string();
        let mut refusals = Refusals::default();
        // The heartbeat revision last seen, and since when.
        let mut beat: Option<(i64, Instant)> = None;
        loop {
            let seen = match coordinator.look().await {
                Ok(seen) => seen,
                Err(e) => {
                    warn!(error = %e, "cannot ask etcd who is active");
                    tokio::time::sleep(LOOK_EVERY).await;
                    continue;
                }
            };
            let silent_beat = match &seen.active {
                Some(active) => {
                    self.pass_clients_to(active, &me);
                    match beat {
                        Some((revision, since)) if revision == seen.beat => {
                            (since.elapsed() >= coordinator.beat.silence).then_some(revision)
                        }
                        _ => {
                            beat = Some((seen.beat, Instant::now()));
                            None
                        }
                    }
                }
                None => {
                    self.active.send_if_modified(|known| known.take().is_some());
                    beat = None;
                    None
                }
            };
            if seen.active.is_none() || silent_beat.is_some() {
                let whole = follow::copy_is_whole(self.journal.dir());
                let lineage = self.journal.lineage().ok().flatten();
                match coordinator
                    .try_take_over(whole, lineage.clone(), silent_beat)
                    .await
                {
                    Ok(TakeOver::Won(lease)) => {
                        info!(instance = %me, silent_beat, "this instance is now the active one");
                        return lease;
                    }
                    Ok(TakeOver::Taken) => beat = None,
                    Ok(TakeOver::NotAHolder(holders)) => refusals.log(&me, holders, whole, lineage),
                    Err(e) => warn!(error = %e, "taking over failed"),
                }
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Clients go to `active`; not to this instance's own key left by its
    /// previous run (they would come back here).
    fn pass_clients_to(&self, active: &ActiveInstance, me: &str) {
        if active.name == me {
            self.active.send_if_modified(|known| known.take().is_some());
            return;
        }
        self.active.send_if_modified(|known| {
            let changed = known.as_ref() != Some(active);
            if changed {
                info!(active = %active.name, "active instance");
            }
            *known = Some(active.clone());
            changed
        });
    }

    /// What the standby's `/status` shows: this instance, the active one,
    /// and whether its journal copy is whole.
    fn view(&self) -> crate::admin::StandbyView {
        let name = self.coordinator.name().to_string();
        let active = self.active.subscribe();
        let dir = self.journal.dir().to_path_buf();
        let batches = self.journal.batches();
        std::sync::Arc::new(move || {
            serde_json::json!({
                "instance": name,
                "role": "standby",
                "active_instance": active.borrow().as_ref().map(|a| a.name.clone()),
                "journal_copy_whole": follow::copy_is_whole(&dir),
                "journal_batches_applied": *batches.borrow(),
            })
        })
    }

    /// Stops copying and passing; closes the journal (the active role
    /// opens it anew) and gives back the MySQL listener.
    async fn stop(self) -> Option<TcpListener> {
        self.following.abort();
        let _ = self.following.await;
        let _ = self.stop_passing.send(());
        let listener = self.passing.await;
        let journal = self.journal;
        let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        // The passing task cannot panic short of a bug; its listener is
        // gone with it then, and is bound again.
        listener.ok()
    }
}

/// Follows whichever instance is active (not this one), reconnecting
/// after a break.
async fn keep_following(
    journal: Journal,
    me: String,
    mut active: watch::Receiver<Option<ActiveInstance>>,
) {
    loop {
        let target = active.borrow_and_update().clone();
        let Some(target) = target.filter(|t| t.name != me) else {
            if active.changed().await.is_err() {
                return;
            }
            continue;
        };
        info!(active = %target.name, from = %target.journal_listen, "copying the active's journal");
        tokio::select! {
            followed = follow::follow(&journal, &me, target.journal_listen) => {
                if let Err(e) = followed {
                    warn!(active = %target.name, error = %e, "journal copy interrupted");
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
            changed = active.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn serve_as_active(
    config: &Config,
    ha: &Ha,
    mut coordinator: Coordinator,
    lease: Lease,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), HaError> {
    exit_when_lease_lost(lease.alive.clone(), lease.holds.clone());
    // `assemble` fences first: the old active's sessions end everywhere.
    let shared = crate::app::assemble(config).await?;
    let holds = lease.holds.clone();
    shared
        .chain
        .journal
        .act_only_while(std::sync::Arc::new(move || holds.holds()));
    let journal_listener = bind(ha.journal_listen).await?;
    let shipping = ship::JournalShipping::start(
        shared.chain.journal.clone(),
        journal_listener,
        coordinator.clone(),
        lease.holds.clone(),
        Duration::from_millis(ha.lease_ms),
    );
    shared
        .instances
        .set(ha.name.clone(), Box::new(move || shipping.standbys()));
    let frontend = Frontend::new(shared.clone(), config).map_err(crate::app::StartError::from)?;
    crate::admin::start(config.admin_listen, frontend.shared())
        .await
        .map_err(|source| HaError::Bind {
            addr: config.admin_listen,
            source,
        })?;
    info!(instance = %ha.name, addr = %config.listen, "lockstep listening as the active instance");
    frontend.serve(listener, shutdown).await?;
    coordinator.step_down(lease.id).await;
    Ok(())
}

/// Another instance may take over once the lease ran out: this one must
/// not write one more thing. It ends the process's image at once (the
/// sessions' connections to the nodes close with it, rolling back what
/// they had open) and starts the program again, a standby from its first
/// step: when the renewal task says the lease is gone, or when the lease's
/// time has passed by this process's clock (after a pause, that is seen
/// before any renewal is tried).
fn exit_when_lease_lost(mut alive: watch::Receiver<bool>, holds: LeaseClock) {
    tokio::spawn(async move {
        loop {
            if !*alive.borrow_and_update() || !holds.holds() {
                break;
            }
            tokio::select! {
                changed = alive.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep(LEASE_WATCH) => {}
            }
        }
        error!("the lease in etcd is lost: this instance stops serving now and starts again as a standby");
        start_again();
    });
}

/// Replaces the process with a fresh run of the same program and
/// arguments (`exec`: the same PID, every socket and file closed, as
/// Rust opens them close-on-exec), so that it comes back as a standby.
/// Exits with `EXIT_LEASE_LOST` when that cannot be done (the program
/// file replaced meanwhile, say), leaving it to a supervisor.
fn start_again() -> ! {
    use std::os::unix::process::CommandExt;
    let failed = match std::env::current_exe() {
        Ok(program) => std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    };
    error!(error = %failed, "cannot start again: the process exits");
    std::process::exit(EXIT_LEASE_LOST);
}
