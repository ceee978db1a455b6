//! Journal retention: commits every node has are removed once older than
//! `journal_retention`; past `journal_max_bytes`, the oldest settled
//! commits go whatever the nodes have, and a node that lacked them is
//! reported as needing a rebuild (its applier stops there).

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, info_span, warn, Instrument};

use super::roles::Role;
use super::Chain;
use crate::journal::entry::now_us;

/// How retention is configured.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub keep: Duration,
    pub max_bytes: Option<u64>,
    pub every: Duration,
}

pub fn spawn(chain: Arc<Chain>, retention: Retention) {
    tokio::spawn(
        async move {
            loop {
                tokio::time::sleep(retention.every).await;
                purge_once(&chain, retention).await;
            }
        }
        .instrument(info_span!("retention")),
    );
}

async fn purge_once(chain: &Chain, retention: Retention) {
    let journal = &chain.journal;
    let keep_us = i64::try_from(retention.keep.as_micros()).unwrap_or(i64::MAX);
    let mut through = everyone_has(chain);
    let mut older_than = now_us().saturating_sub(keep_us);
    let size = journal.size_on_disk();
    if let Some(max) = retention.max_bytes.filter(|max| size > *max) {
        warn!(
            size,
            max,
            "journal over journal_max_bytes: removing the oldest commits whatever the nodes have"
        );
        through = journal.last_seq();
        older_than = i64::MAX;
    }
    match journal.purge(through, older_than).await {
        Ok(purged) if purged.commits > 0 || purged.entries > 0 => {
            info!(
                commits = purged.commits,
                entries = purged.entries,
                through = purged.through,
                "journal retention removed old work"
            );
            report_rebuilds(chain, purged.through);
        }
        Ok(_) => {}
        Err(e) => error!(error = %e, "journal retention failed"),
    }
}

/// The last commit every node that is not quarantined has.
fn everyone_has(chain: &Chain) -> u64 {
    let last = chain.journal.last_seq();
    chain
        .roles
        .members()
        .iter()
        .filter_map(|m| match chain.roles.role_of(&m.node.name) {
            Role::Master | Role::Sync => Some(last),
            Role::Quarantined => None,
            Role::Tail | Role::CatchingUp | Role::Down => Some(m.status.applied()),
        })
        .min()
        .unwrap_or(last)
}

fn report_rebuilds(chain: &Chain, through: u64) {
    for member in chain.roles.members() {
        let role = chain.roles.role_of(&member.node.name);
        let behind = !matches!(role, Role::Master | Role::Sync | Role::Quarantined)
            && member.status.applied() < through;
        if behind {
            error!(node = %member.node.name, applied = member.status.applied(), through,
                "node needs a rebuild: the journal no longer holds commits it lacks");
        }
    }
}
