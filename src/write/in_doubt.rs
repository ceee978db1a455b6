//! The master's answer to a commit never came (its connection broke): did
//! it commit? While the master is up its `lockstep.commits` says; once it is
//! gone it is replaced, and the commit is completed on the other nodes
//! (the journal holds the work, B holds it open), so that what the old
//! master may have committed is never lost. The client gets 2013 either
//! way, as from MariaDB when the server dies during COMMIT.

use std::time::Duration;

use tracing::{info, warn};
use uuid::Uuid;

use super::Driver;
use crate::chain::commits;
use crate::failover;

/// How the commit of a request whose answer was lost ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The master has it (or is gone): commit it everywhere else.
    Commit,
    /// The master is up and does not have it: undo it everywhere.
    Abort,
}

/// How long asking the master may take.
const ASK: Duration = Duration::from_secs(2);

impl Driver {
    /// Decides the fate of commit `request_id`, whose answer from the
    /// session's master was lost. The session holds the gate meanwhile, so
    /// no failover completes before it knows.
    pub(super) async fn fate_of_lost_commit(&mut self, request_id: Uuid) -> Fate {
        let shared = self.shared.clone();
        self.master = None;
        loop {
            if let Some(has) = self.ask_master(request_id).await {
                info!(committed = has, "commit in doubt resolved by the master");
                return if has { Fate::Commit } else { Fate::Abort };
            }
            if failover::master_is_gone(&shared, &self.master_name).await {
                warn!("commit in doubt and the master is gone: completing it on the other nodes");
                return Fate::Commit;
            }
            // Up, but the question failed: ask again.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the session's master has `request_id` in `lockstep.commits`;
    /// None when it could not say.
    pub(super) async fn ask_master(&self, request_id: Uuid) -> Option<bool> {
        let member = self.shared.chain.roles.member(&self.master_name)?;
        let asked = tokio::time::timeout(ASK, async {
            let mut conn = member.node.connect_admin().await?;
            let has = commits::has(&mut conn, request_id).await;
            let _ = conn.disconnect().await;
            has
        })
        .await;
        match asked {
            Ok(Ok(has)) => Some(has),
            _ => None,
        }
    }
}
