//! Which nodes ran a serialized statement lockstep stopped in the middle of.
//!
//! A statement that commits by itself (DDL) runs on the first node, then on
//! the master, and is numbered after; a tail node runs it, then records its
//! number. When lockstep stops in between, a node may hold a change its
//! `lockstep.commits` does not show: no row can share a DDL's commit. The
//! binary log does: MariaDB writes a DDL and its GTID together (atomic
//! DDL). So every serialized statement is logged, on every node that runs
//! it, under lockstep's own GTID domain (`control::GTID_DOMAIN`, where
//! nothing else is written) with a sequence number lockstep chose and
//! journaled before any node ran it: above every number the domain holds
//! on the nodes it runs on, so the numbers grow in the journal's order. A
//! node ran the statement exactly when its domain reached that number.
//! A node without the binary log (or without the privilege to choose the
//! domain) is not marked: then nothing can be told for it, and a restart
//! says so (`chain::cut_serialized`).

use crate::protocol::control::GTID_DOMAIN;

/// The sequence number of lockstep's domain in `@@gtid_binlog_pos`
/// (`0-1-5,4242-1-7`: domain-server-seq), 0 when it has none yet.
pub fn seq_in_lockstep_domain(gtid_binlog_pos: &str) -> u64 {
    gtid_binlog_pos
        .split(',')
        .filter_map(|gtid| {
            let mut parts = gtid.trim().splitn(3, '-');
            let domain: u32 = parts.next()?.parse().ok()?;
            let _server: u32 = parts.next()?.parse().ok()?;
            let seq: u64 = parts.next()?.parse().ok()?;
            (domain == GTID_DOMAIN).then_some(seq)
        })
        .max()
        .unwrap_or(0)
}

/// The number a new serialized statement is logged under: the clock's
/// microseconds, above every number the nodes it runs on hold (a
/// statement text with several transactions takes several numbers, and a
/// standby's clock may be behind).
pub fn next_seq_no(now_us: u64, positions: impl IntoIterator<Item = u64>) -> u64 {
    positions
        .into_iter()
        .map(|p| p.saturating_add(2))
        .fold(now_us, u64::max)
}

/// Whether a node ran the statement numbered `seq_no`, from its domain's
/// number now (None: unreachable, or not marked).
pub fn ran(seq_no: u64, now: Option<u64>) -> Option<bool> {
    Some(now? >= seq_no)
}

/// What a restart does with a serialized statement lockstep stopped in the
/// middle of, from whether the master and the node that ran it first did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The master ran it: it is numbered, and every node gets it from the
    /// journal (the first node too, if it did not run it).
    Number,
    /// Only the first node ran it; it cannot be undone there: it runs on the
    /// master too (the client never had an answer, so either end is one
    /// MariaDB could have given), then is numbered.
    RunOnMaster,
    /// No node ran it: it failed.
    Drop,
    /// No one can tell: named loudly, for `lockstep check`.
    Unknown,
}

/// `first`: None when the master ran it first (no synchronous slave).
pub fn finish(master: Option<bool>, first: Option<Option<bool>>) -> Finish {
    match (master, first) {
        (Some(true), _) => Finish::Number,
        (Some(false), None) | (Some(false), Some(Some(false))) => Finish::Drop,
        (Some(false), Some(Some(true))) => Finish::RunOnMaster,
        (Some(false), Some(None)) | (None, _) => Finish::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_picked_out_of_the_position() {
        assert_eq!(seq_in_lockstep_domain(""), 0);
        assert_eq!(seq_in_lockstep_domain("0-1-55"), 0);
        assert_eq!(seq_in_lockstep_domain("0-1-55,4242-1-7"), 7);
        assert_eq!(seq_in_lockstep_domain("4242-3-9, 0-1-2"), 9);
        assert_eq!(seq_in_lockstep_domain("42420-1-9"), 0);
        assert_eq!(seq_in_lockstep_domain("garbage"), 0);
    }

    #[test]
    fn numbers_grow_past_the_clock_and_the_nodes() {
        assert_eq!(next_seq_no(1_000, []), 1_000);
        assert_eq!(next_seq_no(1_000, [10, 20]), 1_000);
        assert_eq!(next_seq_no(1_000, [999, 5]), 1_001);
        assert_eq!(next_seq_no(1_000, [u64::MAX]), u64::MAX);
    }

    #[test]
    fn a_node_ran_it_when_its_domain_reached_the_number() {
        assert_eq!(ran(7, Some(7)), Some(true));
        assert_eq!(ran(7, Some(9)), Some(true));
        assert_eq!(ran(7, Some(6)), Some(false));
        assert_eq!(ran(7, None), None);
    }

    #[test]
    fn the_master_decides_and_the_first_node_is_caught_up() {
        assert_eq!(finish(Some(true), Some(Some(true))), Finish::Number);
        assert_eq!(finish(Some(true), Some(Some(false))), Finish::Number);
        assert_eq!(finish(Some(true), Some(None)), Finish::Number);
        assert_eq!(finish(Some(true), None), Finish::Number);
        assert_eq!(finish(Some(false), Some(Some(true))), Finish::RunOnMaster);
        assert_eq!(finish(Some(false), Some(Some(false))), Finish::Drop);
        assert_eq!(finish(Some(false), None), Finish::Drop);
        assert_eq!(finish(Some(false), Some(None)), Finish::Unknown);
        assert_eq!(finish(None, Some(Some(false))), Finish::Unknown);
    }
}
