//! The AUTO_INCREMENT values of a serialized text, pinned as MariaDB's
//! statement binlog logs them.
//!
//! A serialized text of several statements (`BEGIN; INSERT …; COMMIT`)
//! runs on each node as it is, with no pin between its statements, so each
//! INSERT would take its value from that node's own counter, which a crash
//! or an insert one node alone refused may have moved. The node that runs
//! it first decides: each INSERT that made a value there runs everywhere
//! else as `SET STATEMENT insert_id = … FOR` it, the way the statement
//! binlog carries an `INSERT_ID` event ahead of each such statement.
//!
//! Live, the values come from the first node's results. When lockstep
//! stopped after the first node ran the text and before the values reached
//! the journal, the restart reads them where the statement binlog put them:
//! the `Intvar` events of the text's groups in that node's binary log
//! (`chain::cut_serialized`).

use crate::protocol::control::{self, GTID_DOMAIN};
use crate::router;

/// `sql` with each INSERT whose result made a value made to take it.
/// `ids`: each result's value on the first node, the pin's (sent ahead of
/// the text in its trip) first; None when the results and the statements
/// do not pair up (a CALL gives several results).
pub fn pinned(sql: &[u8], ids: &[u64]) -> Option<Vec<u8>> {
    let statements = router::statements_inserting(sql)?;
    let ahead = ids.len().checked_sub(statements.len())?;
    if ahead > 1 {
        return None;
    }
    let ids = &ids[ahead..];
    let mut pinned = Vec::with_capacity(sql.len() + 64);
    let mut at = 0;
    for ((range, inserts), &id) in statements.into_iter().zip(ids) {
        if inserts && id > 0 {
            pinned.extend_from_slice(&sql[at..range.start]);
            pinned.extend_from_slice(&control::with_insert_id(&sql[range.clone()], id));
            at = range.end;
        }
    }
    pinned.extend_from_slice(&sql[at..]);
    Some(pinned)
}

/// Whether `sql` is a text of several statements with an INSERT not yet
/// pinned: what a restart must find the values of.
pub fn has_unpinned_insert(sql: &[u8]) -> bool {
    router::statements_inserting(sql)
        .is_some_and(|statements| statements.iter().any(|(_, inserts)| *inserts))
}

/// One event of a node's binary log, as `SHOW BINLOG EVENTS` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// `Event_type`: `Gtid`, `Intvar`, `Query`, `Xid`, `Write_rows_v1`, …
    pub kind: String,
    /// `Info`: `BEGIN GTID 4242-1-7`, `INSERT_ID=51`, `use \`d\`; INSERT …`
    pub info: String,
}

/// What the node's binary log says each statement of `sql` made: one value
/// per statement (0 where it made none), for `pinned`. `events` run from
/// before the text's first group (the text's GTIDs are lockstep's domain,
/// numbered from `seq_no` on: one per transaction the text holds). None
/// when an INSERT of the text is not found in the groups: logged as rows
/// (`binlog_format=ROW`, or an unsafe statement under MIXED), which carry
/// no `INSERT_ID`, or not run there.
pub fn logged_insert_ids(sql: &[u8], seq_no: u64, events: &[LoggedEvent]) -> Option<Vec<u64>> {
    let statements = router::statements_inserting(sql)?;
    let queries = queries_of_text(seq_no, statements.len() as u64, events);
    let mut next = queries.iter();
    let mut ids = Vec::with_capacity(statements.len());
    for (range, inserts) in statements {
        if !inserts {
            ids.push(0);
            continue;
        }
        let text = String::from_utf8_lossy(&sql[range]);
        let text = text.trim();
        let (_, insert_id) = next.find(|(info, _)| info.contains(text))?;
        ids.push(insert_id.unwrap_or(0));
    }
    Some(ids)
}

/// The `Query` events of the groups numbered `seq_no .. seq_no + count` in
/// lockstep's domain, each with the `INSERT_ID` logged right before it.
fn queries_of_text(seq_no: u64, count: u64, events: &[LoggedEvent]) -> Vec<(&str, Option<u64>)> {
    let mut queries = Vec::new();
    let mut in_text = false;
    let mut insert_id = None;
    for event in events {
        match event.kind.as_str() {
            "Gtid" => {
                in_text = gtid_seq_in_lockstep_domain(&event.info)
                    .is_some_and(|seq| seq >= seq_no && seq < seq_no.saturating_add(count));
                insert_id = None;
            }
            "Intvar" if in_text => {
                if let Some(value) = event.info.strip_prefix("INSERT_ID=") {
                    insert_id = value.trim().parse().ok();
                }
            }
            "Query" if in_text => queries.push((event.info.as_str(), insert_id.take())),
            _ => {}
        }
    }
    queries
}

/// The sequence number of a `Gtid` event's GTID when it is in lockstep's
/// domain (`BEGIN GTID 4242-1-7`, `GTID 4242-1-7 cid=12`).
fn gtid_seq_in_lockstep_domain(info: &str) -> Option<u64> {
    let gtid = info
        .split_whitespace()
        .skip_while(|w| *w != "GTID")
        .nth(1)?;
    let mut parts = gtid.splitn(3, '-');
    let domain: u32 = parts.next()?.parse().ok()?;
    let _server: u32 = parts.next()?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    (domain == GTID_DOMAIN).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_insert_that_made_a_value_takes_it() {
        let text = b"BEGIN; INSERT INTO t (v) VALUES (1); INSERT INTO c VALUES (7); INSERT INTO u (v) VALUES (3); COMMIT";
        let pinned = pinned(text, &[0, 0, 12, 0, 40, 0]).expect("paired");
        assert_eq!(
            String::from_utf8(pinned).expect("utf-8"),
            "BEGIN; SET STATEMENT insert_id = 12 FOR INSERT INTO t (v) VALUES (1); \
             INSERT INTO c VALUES (7); SET STATEMENT insert_id = 40 FOR INSERT INTO u (v) \
             VALUES (3); COMMIT"
        );
        // Without the pin's result ahead.
        assert!(super::pinned(text, &[0, 12, 0, 40, 0]).is_some());
        // A CALL's results do not pair up.
        assert_eq!(super::pinned(text, &[0, 0, 0, 12, 0, 40, 0, 0]), None);
        assert_eq!(super::pinned(text, &[12, 0]), None);
    }

    fn event(kind: &str, info: &str) -> LoggedEvent {
        LoggedEvent {
            kind: kind.into(),
            info: info.into(),
        }
    }

    /// As MariaDB 10.11 logged `BEGIN; INSERT …(1); INSERT … (7, 1); UPDATE
    /// …; INSERT … (3),(4); COMMIT; INSERT … (5)` under 4242-1-1000, with
    /// another session's transaction in between.
    fn logged() -> Vec<LoggedEvent> {
        vec![
            event("Gtid", "GTID 0-1-3"),
            event("Query", "ALTER TABLE d.t AUTO_INCREMENT=50"),
            event("Gtid", "BEGIN GTID 4242-1-1000"),
            event("Intvar", "INSERT_ID=50"),
            event("Query", "use `d`; INSERT INTO t (v) VALUES (1)"),
            event("Query", "use `d`; INSERT INTO t (id, v) VALUES (7, 1)"),
            event("Query", "use `d`; UPDATE t SET v=2"),
            event("Intvar", "INSERT_ID=51"),
            event("Query", "use `d`; INSERT INTO t (v) VALUES (3),(4)"),
            event("Xid", "COMMIT /* xid=7 */"),
            event("Gtid", "BEGIN GTID 0-1-4"),
            event("Intvar", "INSERT_ID=900"),
            event("Query", "use `d`; INSERT INTO t (v) VALUES (5)"),
            event("Xid", "COMMIT /* xid=9 */"),
            event("Gtid", "BEGIN GTID 4242-1-1001"),
            event("Intvar", "INSERT_ID=53"),
            event("Query", "use `d`; INSERT INTO t (v) VALUES (5)"),
            event("Xid", "COMMIT /* xid=12 */"),
        ]
    }

    #[test]
    fn the_values_are_read_from_the_texts_groups_alone() {
        let text = b"BEGIN; INSERT INTO t (v) VALUES (1); INSERT INTO t (id, v) VALUES (7, 1); \
                     UPDATE t SET v=2; INSERT INTO t (v) VALUES (3),(4); COMMIT; \
                     INSERT INTO t (v) VALUES (5)";
        let ids = logged_insert_ids(text, 1000, &logged()).expect("found");
        assert_eq!(ids, vec![0, 50, 0, 0, 51, 0, 53]);
        let pinned = pinned(text, &ids).expect("paired");
        assert_eq!(
            String::from_utf8(pinned).expect("utf-8"),
            "BEGIN; SET STATEMENT insert_id = 50 FOR INSERT INTO t (v) VALUES (1); \
             INSERT INTO t (id, v) VALUES (7, 1); \
                     UPDATE t SET v=2; SET STATEMENT insert_id = 51 FOR INSERT INTO t (v) VALUES (3),(4); COMMIT; \
                     SET STATEMENT insert_id = 53 FOR INSERT INTO t (v) VALUES (5)"
        );
        // Pinned, nothing is left to find.
        assert!(has_unpinned_insert(text));
        assert!(!has_unpinned_insert(
            b"BEGIN; SET STATEMENT insert_id = 5 FOR INSERT INTO t (v) VALUES (1); COMMIT"
        ));
    }

    #[test]
    fn an_insert_logged_as_rows_or_not_at_all_is_not_guessed() {
        let text = b"BEGIN; INSERT INTO t (v) VALUES (1); COMMIT";
        let rows = vec![
            event("Gtid", "BEGIN GTID 4242-1-1000"),
            event("Annotate_rows", "INSERT INTO t (v) VALUES (1)"),
            event("Table_map", "table_id: 33 (d.t)"),
            event("Write_rows_v1", "table_id: 33 flags: STMT_END_F"),
            event("Xid", "COMMIT /* xid=7 */"),
        ];
        assert_eq!(logged_insert_ids(text, 1000, &rows), None);
        // Another number's group is not the text's.
        assert_eq!(logged_insert_ids(text, 999, &logged()[..2]), None);
        assert_eq!(logged_insert_ids(text, 2000, &logged()), None);
    }

    #[test]
    fn gtids_are_read_in_every_form() {
        assert_eq!(gtid_seq_in_lockstep_domain("BEGIN GTID 4242-1-7"), Some(7));
        assert_eq!(gtid_seq_in_lockstep_domain("GTID 4242-3-9"), Some(9));
        assert_eq!(
            gtid_seq_in_lockstep_domain("BEGIN GTID 4242-1-7 cid=12"),
            Some(7)
        );
        assert_eq!(gtid_seq_in_lockstep_domain("BEGIN GTID 0-1-7"), None);
        assert_eq!(gtid_seq_in_lockstep_domain("garbage"), None);
    }
}
