//! Which lockstep instance is active and which standbys copy its journal
//! (`[ha]`), as the status answers show them. Empty when lockstep runs
//! alone.

use std::sync::OnceLock;

use serde::Serialize;

/// A standby as the active instance sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyStatus {
    pub name: String,
    /// Commits wait for it (see `ha::ship`).
    pub in_step: bool,
    /// Journal batches the active wrote that it has not acknowledged.
    pub batches_behind: u64,
}

type StandbysFn = Box<dyn Fn() -> Vec<StandbyStatus> + Send + Sync>;

#[derive(Default)]
pub struct Instances {
    known: OnceLock<Known>,
}

struct Known {
    active: String,
    standbys: StandbysFn,
}

impl Instances {
    /// Set once, when this instance becomes the active one.
    pub fn set(&self, active: String, standbys: StandbysFn) {
        let _ = self.known.set(Known { active, standbys });
    }

    /// This instance's name, when it runs with standbys.
    pub fn active(&self) -> Option<String> {
        self.known.get().map(|k| k.active.clone())
    }

    pub fn standbys(&self) -> Vec<StandbyStatus> {
        self.known.get().map(|k| (k.standbys)()).unwrap_or_default()
    }
}
