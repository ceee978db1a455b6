//! The AUTO_INCREMENT values a cut serialized text made, read back from the
//! binary log of the node that ran it (`protocol::text_inserts`).
//!
//! lockstep pins a serialized text's INSERTs once the first node ran it,
//! from that node's results. Stopped before the pin reached the journal
//! (killed, or its lease ended and the journal refused it), the entry holds
//! the text unpinned, while a node holds rows with values its own counter
//! chose. Replayed unpinned, the other nodes would choose from theirs, and
//! nothing would say so until `lockstep check`. The statement binlog
//! logged those values (an `INSERT_ID` event ahead of each such INSERT),
//! from the place the entry's marks recorded before the text ran.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tracing::{info, warn};

use crate::backend::Node;
use crate::journal::{BinlogPlace, Entry, SqlText, Statement};
use crate::protocol::control;
use crate::protocol::text_inserts::{self, LoggedEvent};

/// Events read per round trip.
const PAGE: u32 = 1_000;

/// At most this many events are read: the text ran just before lockstep
/// stopped, and nothing has written to the node since but what ran then.
const AT_MOST: usize = 200_000;

/// Pins the entry's unpinned INSERTs with the values `node` logged for
/// them; true when the entry changed (the caller journals it). A text
/// whose values cannot be read (no place recorded, logged as rows, no
/// privilege) is left as it is, loudly: each node would take its own.
pub async fn pin_from(node: &Node, entry: &mut Entry) -> bool {
    let Statement::Text { sql } = &entry.statement else {
        return false;
    };
    let sql = sql.to_bytes();
    if !text_inserts::has_unpinned_insert(&sql) {
        return false;
    }
    let Some(marks) = entry.binlog_marks.as_ref() else {
        return unread(entry, node, "no binary log marks");
    };
    let Some(place) = marks
        .sessions
        .iter()
        .find(|s| s.node == node.name)
        .and_then(|s| s.binlog_from.clone())
    else {
        return unread(entry, node, "no binary log place recorded for this node");
    };
    let seq_no = marks.seq_no;
    let events = match read_events(node, place).await {
        Ok(events) => events,
        Err(e) => return unread(entry, node, &e.to_string()),
    };
    let Some(ids) = text_inserts::logged_insert_ids(&sql, seq_no, &events) else {
        return unread(
            entry,
            node,
            "its INSERTs are not in the binary log as statements with their values (binlog_format=ROW?)",
        );
    };
    let Some(pinned) = text_inserts::pinned(&sql, &ids) else {
        return unread(
            entry,
            node,
            "the logged values do not pair with the statements",
        );
    };
    info!(request_id = %entry.id, node = %node.name, ?ids, "a cut serialized text's inserts take the values this node logged");
    entry.statement = Statement::Text {
        sql: SqlText::from_bytes(&pinned),
    };
    true
}

fn unread(entry: &Entry, node: &Node, why: &str) -> bool {
    warn!(request_id = %entry.id, node = %node.name, reason = %why, "cannot read the values a cut serialized text's INSERTs made: the other nodes take their own counters' values; run `lockstep check`");
    false
}

/// The node's events from `place` to the end of its binary log (at most
/// `AT_MOST`), across the files that follow.
async fn read_events(
    node: &Node,
    mut place: BinlogPlace,
) -> Result<Vec<LoggedEvent>, mysql_async::Error> {
    let mut conn = node.connect_admin().await?;
    let mut events = Vec::new();
    while events.len() < AT_MOST {
        let Some(query) = control::read_binlog_events(&place.file, place.pos, PAGE) else {
            break;
        };
        let rows: Vec<Row> = conn.query(query).await?;
        let full = rows.len() == PAGE as usize;
        for row in rows {
            let end: Option<u64> = row.get_opt(4).and_then(Result::ok);
            events.push(LoggedEvent {
                kind: row.get_opt(2).and_then(Result::ok).unwrap_or_default(),
                info: row.get_opt(5).and_then(Result::ok).unwrap_or_default(),
            });
            if let Some(end) = end {
                place.pos = end;
            }
        }
        if full {
            continue;
        }
        match next_file(&mut conn, &place.file).await? {
            Some(file) => place = BinlogPlace { file, pos: 4 },
            None => break,
        }
    }
    let _ = conn.disconnect().await;
    Ok(events)
}

/// The binary log file after `file`, if there is one.
async fn next_file(conn: &mut Conn, file: &str) -> Result<Option<String>, mysql_async::Error> {
    let files: Vec<Row> = conn.query(control::READ_BINLOG_FILES).await?;
    let names: Vec<String> = files
        .into_iter()
        .filter_map(|row| row.get_opt::<String, usize>(0).and_then(Result::ok))
        .collect();
    Ok(names
        .iter()
        .position(|name| name == file)
        .and_then(|i| names.get(i + 1).cloned()))
}
