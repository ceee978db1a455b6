//! What lockstep needs of every node's configuration, checked before the
//! node takes part: at start for every node that answers (lockstep refuses
//! to start, naming the node and the setting), and by a tail's applier
//! each time it connects (the node stays out, the applier retries, so a
//! node restarted with a fixed setting comes back by itself).
//!
//! - `innodb_autoinc_lock_mode` 0 or 1. At 2 ("interleaved") an
//!   `INSERT … SELECT` or `LOAD DATA` takes its AUTO_INCREMENT values one
//!   at a time among other sessions' inserts, so one statement's rows get
//!   numbers with gaps. lockstep gives A and the journal B's first value
//!   only, as MariaDB's statement binary log does, and the others then
//!   number the rest their own way (measured on 10.11: 87 of 800 such
//!   copies under 4 concurrent clients had gaps). MariaDB's own
//!   replication needs the same of statement-based logging.
//! - Where the node writes a binary log: the SUPER or BINLOG REPLAY
//!   privilege for lockstep's node account, with which lockstep numbers a
//!   serialized statement in the node's binary log (`protocol::binlog_marks`)
//!   to find out after a stop whether it ran; and no binary log filter
//!   (`binlog_do_db`, `binlog_ignore_db`), which would leave some of those
//!   statements out of the log, so that a restart took a statement that
//!   ran for one that did not and ran it again.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::protocol::control;

/// A setting of a node that lockstep cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub setting: &'static str,
    pub found: String,
    pub needed: &'static str,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {}; lockstep needs {}",
            self.setting, self.found, self.needed
        )
    }
}

/// Every requirement the node behind `conn` does not meet (empty: fit).
pub async fn unmet(conn: &mut Conn) -> Result<Vec<Unmet>, mysql_async::Error> {
    let row: Option<Row> = conn.query_first(control::READ_NODE_REQUIREMENTS).await?;
    let number = |i: usize| -> Option<u64> { row.as_ref()?.get_opt::<u64, _>(i)?.ok() };
    let mut unmet = Vec::new();
    if let Some(mode) = number(0) {
        unmet.extend(autoinc_lock_mode(mode));
    }
    if number(1) == Some(1) {
        unmet.extend(binlog_filters(conn).await);
        // The probe sets what lockstep's marks set back: harmless when allowed.
        if let Err(mysql_async::Error::Server(e)) =
            conn.query_drop(control::LEAVE_GTID_DOMAIN).await
        {
            unmet.push(Unmet {
                setting: "the node account's privileges on a node that writes a binary log",
                found: format!("refused ({} {})", e.code, e.message),
                needed: "SUPER or BINLOG REPLAY (GRANT BINLOG REPLAY ON *.* TO <account>)",
            });
        }
    }
    Ok(unmet)
}

/// The node's binary log filters, when it has any; nothing when it will
/// not say (an account without BINLOG MONITOR).
async fn binlog_filters(conn: &mut Conn) -> Option<Unmet> {
    let row: Row = conn
        .query_first(control::READ_BINLOG_FILTERS)
        .await
        .ok()
        .flatten()?;
    let column = |name: &str| -> String {
        row.get_opt::<Option<String>, &str>(name)
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default()
    };
    let (only, ignored) = (column("Binlog_Do_DB"), column("Binlog_Ignore_DB"));
    filters_unmet(&only, &ignored)
}

fn filters_unmet(only: &str, ignored: &str) -> Option<Unmet> {
    (!only.is_empty() || !ignored.is_empty()).then(|| Unmet {
        setting: "the binary log's filters (binlog_do_db, binlog_ignore_db)",
        found: format!("binlog_do_db = '{only}', binlog_ignore_db = '{ignored}'"),
        needed: "none: lockstep reads the binary log to tell whether a statement that commits \
                 by itself ran there",
    })
}

/// One line naming every unmet requirement.
pub fn describe(unmet: &[Unmet]) -> String {
    unmet
        .iter()
        .map(Unmet::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn autoinc_lock_mode(mode: u64) -> Option<Unmet> {
    (mode >= 2).then(|| Unmet {
        setting: "innodb_autoinc_lock_mode",
        found: mode.to_string(),
        needed: "0 or 1 (at 2 a statement's AUTO_INCREMENT values can have gaps that other nodes do not repeat; set innodb_autoinc_lock_mode = 1 in the node's configuration)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_autoinc_lock_mode_is_unmet() {
        assert_eq!(autoinc_lock_mode(0), None);
        assert_eq!(autoinc_lock_mode(1), None);
        let unmet = autoinc_lock_mode(2).expect("unmet");
        assert!(
            describe(&[unmet]).starts_with("innodb_autoinc_lock_mode is 2; lockstep needs 0 or 1")
        );
    }

    #[test]
    fn any_binlog_filter_is_unmet() {
        assert_eq!(filters_unmet("", ""), None);
        assert!(filters_unmet("", "audit").is_some());
        assert!(filters_unmet("app", "").is_some());
    }
}
