//! The first slave's way back to the synchronous role after it failed an
//! entry the master passed: it catches up from the journal like a tail node
//! (re-running the failed entry with backoff, applying nothing after it
//! until it passes), then, with writes drained (the gate held exclusively),
//! applies the last few commits and takes the role back. Sessions reconnect
//! to it at their next command (`Session::follow_sync_role`).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, info_span, warn, Instrument};

use super::session::Shared;
use crate::chain::tail::{Backoff, Tail, TailError, TailStatus};
use crate::compare::notify::Event;

/// Starts bringing the first slave back.
pub(super) fn spawn(shared: Arc<Shared>) {
    let Some(node) = shared.sync.clone() else {
        return;
    };
    let span = info_span!("sync_rejoin", node = %node.name);
    tokio::spawn(rejoin(shared).instrument(span));
}

async fn rejoin(shared: Arc<Shared>) {
    let Some(node) = shared.sync.clone() else {
        return;
    };
    let status = Arc::new(TailStatus::default());
    if let Ok(mut catching_up) = shared.sync_catch_up.lock() {
        *catching_up = Some(status.clone());
    }
    let retry = Backoff {
        initial: Duration::from_millis(shared.compare.retry_initial_ms),
        max: Duration::from_millis(shared.compare.retry_max_ms),
    };
    let mut tail = Tail {
        node: node.clone(),
        master: shared.master.clone(),
        server: shared.server.clone(),
        journal: shared.journal.clone(),
        status: status.clone(),
        notifier: shared.notifier.clone(),
        retry,
    };
    let mut delay = retry.initial;
    loop {
        tokio::time::sleep(delay).await;
        // While writes go on: most of the way.
        let caught_up = match tail.catch_up().await {
            Ok(()) => {
                // Writes drained: the rest, then the role.
                let _gate = shared.gate.clone().write_owned().await;
                match tail.catch_up().await {
                    Ok(()) => {
                        shared.end_sync_quarantine();
                        info!("the first slave caught up and is synchronous again");
                        shared.notifier.notify(Event::NodeRejoined {
                            node: node.name.clone(),
                        });
                        return;
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if let TailError::Diverged { .. } = caught_up {
            warn!(error = %caught_up, "the first slave diverged while catching up; it stays quarantined");
            shared.replace_sync_quarantine(caught_up.to_string()).await;
            return;
        }
        status.set_last_error(Some(caught_up.to_string()));
        warn!(error = %caught_up, retry_in_ms = delay.as_millis() as u64, "the first slave is still behind");
        delay = (delay * 2).min(retry.max);
    }
}
