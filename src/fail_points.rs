//! Fault injection for tests: named points in the write protocol where a
//! test makes lockstep fail the way a crash or a fenced journal would, at
//! exactly the worst moment (the `fail` crate, as TiKV uses it).
//!
//! `LOCKSTEP_FAIL_POINTS="name=action;name=action"` turns points on when
//! the process starts; actions are the crate's (`return`, `pause`,
//! `panic`, `sleep(ms)`, `1*return->off`, …). Unset, every point is off
//! and costs one read of an empty map. The points:
//!
//! - `serialized-marked`: a serialized statement's binary log marks are
//!   taken and it is about to run on the first node (`sleep(ms)`: a
//!   window for a test to rotate the node's binary log).
//! - `serialized-numbered`: the journal write that numbers a serialized
//!   statement the master ran (`return`: the journal refuses it).
//! - `serialized-text-pin-journaled`: the journal write that pins the
//!   AUTO_INCREMENT values of a serialized text after the first node ran
//!   it (`return`: the journal refuses it, as a lost lease makes it).
//! - `prepared-on-master`: a client's COM_STMT_PREPARE ran on the master
//!   and is about to be prepared on the synchronous slave (`return(ms)`:
//!   the session waits that long without holding a thread, a window for a
//!   test to fail the master over in the middle of it; `sleep(ms)` would
//!   block a runtime thread, and with it the health checks).
//! - `write-roles-followed`: an autocommit write followed the roles and
//!   is about to be journaled and run on B (`return(ms)`: the session
//!   waits that long without holding a thread, a window for a test to
//!   take B out of its role under it).

use tracing::warn;

/// The environment variable tests set.
pub const VARIABLE: &str = "LOCKSTEP_FAIL_POINTS";

/// `serialized-marked`.
pub const SERIALIZED_MARKED: &str = "serialized-marked";

/// `serialized-numbered`.
pub const SERIALIZED_NUMBERED: &str = "serialized-numbered";

/// `serialized-text-pin-journaled`.
pub const SERIALIZED_TEXT_PIN_JOURNALED: &str = "serialized-text-pin-journaled";

/// `prepared-on-master`.
pub const PREPARED_ON_MASTER: &str = "prepared-on-master";

/// `write-roles-followed`.
pub const WRITE_ROLES_FOLLOWED: &str = "write-roles-followed";

/// At point `name` configured `return(ms)`: waits `ms` milliseconds
/// asynchronously (other tasks run meanwhile).
pub async fn pause_here(name: &str) {
    let pause = fail::eval(name, |arg| {
        arg.and_then(|ms| ms.parse::<u64>().ok()).unwrap_or(0)
    });
    if let Some(ms) = pause {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Turns on the points `LOCKSTEP_FAIL_POINTS` names.
pub fn install_from_env() {
    let Ok(points) = std::env::var(VARIABLE) else {
        return;
    };
    for point in points.split(';').filter(|p| !p.trim().is_empty()) {
        let Some((name, action)) = point.split_once('=') else {
            warn!(%point, "{VARIABLE}: expected name=action");
            continue;
        };
        match fail::cfg(name.trim(), action.trim()) {
            Ok(()) => warn!(name = name.trim(), action = action.trim(), "fail point on"),
            Err(e) => warn!(%point, error = %e, "{VARIABLE}: not a fail point action"),
        }
    }
}
