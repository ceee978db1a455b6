//! A tail node's side of `protocol::binlog_marks`: a serialized commit runs
//! there under the GTID its entry journaled, so that after lockstep stopped
//! between the statement and its `lockstep.commits` row, the applier finds
//! it in the node's binary log instead of running it a second time (which
//! would fail, "Duplicate column", and stop the applier for good).

use std::sync::atomic::{AtomicBool, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::warn;

use crate::protocol::binlog_marks::seq_in_lockstep_domain;
use crate::protocol::control;

/// Where a serialized commit stands on the node before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The node's binary log has it already: only its row is missing.
    RanAlready,
    /// The session is in lockstep's domain under the entry's number: the
    /// statement runs now, and the session leaves the domain after it.
    InDomain,
    /// The node does not log (or refuses the domain): applied as it is.
    NotMarked,
}

pub async fn enter(conn: &mut Conn, seq_no: u64) -> Result<Marked, mysql_async::Error> {
    let row: Option<(Option<i64>, Option<String>)> =
        conn.query_first(control::READ_BINLOG_POSITION).await?;
    let Some((Some(1), position)) = row else {
        return Ok(Marked::NotMarked);
    };
    if seq_in_lockstep_domain(position.as_deref().unwrap_or_default()) >= seq_no {
        return Ok(Marked::RanAlready);
    }
    match conn.query_drop(control::enter_gtid_domain(seq_no)).await {
        Ok(()) => Ok(Marked::InDomain),
        Err(mysql_async::Error::Server(e)) => {
            warn_once(&e.message);
            Ok(Marked::NotMarked)
        }
        Err(e) => Err(e),
    }
}

fn warn_once(why: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn!(reason = %why, "an applier cannot log serialized statements under lockstep's GTID domain: a stop between one and its row would make it run again");
    }
}
