//! Which AUTO_INCREMENT value a statement generated on a node: the value
//! lockstep pins as `insert_id` on the nodes after it (A, the tail, every
//! replay), and LAST_INSERT_ID() as the client's session has it afterwards.
//!
//! The OK packet's insert id is that value for every statement but one:
//! `INSERT … ON DUPLICATE KEY UPDATE` that inserted no row reports the id
//! of the last row it updated, or the argument of `LAST_INSERT_ID(expr)`
//! (`sql::on_duplicate` says why pinning that updates the wrong row). For
//! such a statement the node is asked: ahead of it lockstep sets the
//! session's LAST_INSERT_ID to 0 (unless the statement reads it), after it
//! reads the value back; a non-zero value is one the statement generated.
//!
//! When it generated none, the nodes after it must not take a candidate
//! id from their own counter either. Every row of such a statement met a
//! duplicate on B; on A (and on the tail, which applies in parallel) the
//! first row still takes a candidate from the table's counter, which lags
//! B's (B wastes values A never sees), so the candidate can be a value B
//! gave another statement in flight there. The row then meets *that* row
//! on the primary key, and updates it: measured, the master silently
//! updated the wrong rows, or refused with 1062 what MariaDB directly
//! passes. MariaDB's statement-based binlog avoids this by logging the
//! candidate B used; no client can read it. So lockstep pins a value from
//! the top of the column's range instead, which no row has: each row then
//! meets its own duplicate, as on B. The value differs between statements
//! (by requestId), or all of them would wait on one another for the same
//! primary-key entry, which InnoDB writes before it finds the duplicate.
//! Only for INT and BIGINT columns whose counter is below half their
//! range, asked again every minute: there the top 65 536 values stay free
//! for longer than any table could fill a billion rows. Other tables keep
//! the old way (the node's own candidate), a limit the README lists.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::protocol::control;
use crate::sql::load_data;
use crate::sql::on_duplicate::{self, LastInsertIdUse};

/// What the answers say about a statement's generated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// It generated and inserted this value first.
    Value(u64),
    /// An `ON DUPLICATE KEY UPDATE` that inserted no row.
    NoRowInserted,
    /// Nothing to pin: it generated none, or lockstep cannot tell.
    Nothing,
}

/// What a statement did with AUTO_INCREMENT on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    /// The first value it generated and inserted: `SET insert_id` for the
    /// nodes that run it after this one.
    pub insert_id: Option<u64>,
    /// LAST_INSERT_ID() in the session after it.
    pub last_insert_id: LastInsertId,
}

/// LAST_INSERT_ID() of the client's session, as lockstep counts it: the
/// value journaled with each write for the tail and every replay.
///
/// The OK packet's insert id is not always that value: an insert of
/// explicit ids reports the id of its row yet leaves LAST_INSERT_ID() as
/// it was, and nothing in the packet tells the two apart. After such an
/// answer the count is unsure, and a write that may read the value asks
/// the master first (`may_read_session_value`); asking after every insert
/// would cost a round trip each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastInsertId {
    pub value: u64,
    /// The session has exactly `value` (read from a node, or never changed).
    pub sure: bool,
}

impl LastInsertId {
    /// A new session's, or one read from a node.
    pub fn known(value: u64) -> LastInsertId {
        LastInsertId { value, sure: true }
    }

    /// An OK packet's insert id: the session has it, or the value from before.
    fn reported(value: u64) -> LastInsertId {
        LastInsertId { value, sure: false }
    }
}

/// Whether the statement may read the session's LAST_INSERT_ID(): it names
/// it, or is an upsert (whose answer is judged against the value from
/// before), or runs statements lockstep does not see (CALL, EXECUTE). A
/// trigger or stored function that reads it is not seen (README, limits).
pub fn may_read_session_value(sql: &[u8]) -> bool {
    on_duplicate::last_insert_id_use(sql).reads
        || on_duplicate::updates_on_duplicate(sql)
        || crate::router::runs_hidden_statements(sql)
}

/// How a statement's generated value is found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// The OK packet's insert id is the generated value (or 0).
    OkPacket,
    /// `ON DUPLICATE KEY UPDATE`, `LOAD DATA` (whose OK packet carries no
    /// value): the node is asked after the statement.
    AskNode {
        uses: LastInsertIdUse,
        /// Whether its session's LAST_INSERT_ID was set to 0 ahead of it
        /// (`control::ZERO_LAST_INSERT_ID`): only where the statement does
        /// not read the value.
        zeroed: bool,
    },
}

impl Question {
    /// For a statement's text, on a node where lockstep may set the
    /// session's LAST_INSERT_ID to 0 ahead of it (`may_zero`: B, a replay;
    /// not A, whose session is the client's own).
    pub fn for_statement(sql: &[u8], may_zero: bool) -> Question {
        if !on_duplicate::updates_on_duplicate(sql) && !load_data::loads_rows(sql) {
            return Question::OkPacket;
        }
        let uses = on_duplicate::last_insert_id_use(sql);
        Question::AskNode {
            uses,
            zeroed: may_zero && !uses.reads,
        }
    }

    /// What to add to the statement's `pin`, if anything.
    pub fn pin_addition(self) -> Option<&'static str> {
        match self {
            Question::AskNode { zeroed: true, .. } => Some(control::ZERO_LAST_INSERT_ID),
            _ => None,
        }
    }
}

/// What the node's answer to a statement was.
#[derive(Debug, Clone, Copy)]
pub struct Reported {
    /// The OK packet's insert id.
    pub insert_id: u64,
    pub affected_rows: u64,
    /// The OK packet had an info text (`Records: …`): the statement listed
    /// several rows or selected them.
    pub several_rows: bool,
    /// Whether the statement inserted a row, as far as the answer says.
    pub inserted_some: Option<bool>,
}

impl Reported {
    /// A node's answer: `info` is the OK packet's info text; `found_rows`,
    /// whether the session counts found rows instead of changed ones
    /// (CLIENT_FOUND_ROWS, under which an unchanged upsert also answers 1).
    pub fn of_answer(insert_id: u64, affected_rows: u64, info: &str, found_rows: bool) -> Reported {
        let several_rows = !info.is_empty();
        let inserted_some = match (several_rows, found_rows) {
            (true, _) => rows_inserted(info).map(|rows| rows > 0),
            // One listed row: 1 inserted, 2 updated, 0 unchanged.
            (false, false) => Some(affected_rows == 1),
            (false, true) => None,
        };
        Reported {
            insert_id,
            affected_rows,
            several_rows,
            inserted_some,
        }
    }
}

/// Rows inserted, from an info text: `Records: 3  Duplicates: 1  Warnings:
/// 0` (INSERT, upserts) or `Records: 3  Deleted: 0  Skipped: 1  Warnings: 0`
/// (LOAD DATA).
fn rows_inserted(info: &str) -> Option<u64> {
    let count = |name: &str| -> Option<u64> {
        info.split(name)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let records = count("Records:")?;
    let duplicates = count("Duplicates:").unwrap_or(0);
    let skipped = count("Skipped:").unwrap_or(0);
    Some(records.saturating_sub(duplicates).saturating_sub(skipped))
}

/// How long what `ColumnTops` knows of a table holds.
const KNOWN_FOR: Duration = Duration::from_secs(60);

/// The free top of the range: this many values below the column's largest.
const TOP_VALUES: u64 = 1 << 16;

/// The top of each table's AUTO_INCREMENT column where a statement may
/// take a candidate from it (None where it may not), asked once a minute
/// per table and forgotten at each serialized statement (DDL) through
/// lockstep, which may have changed the column.
#[derive(Default)]
pub struct ColumnTops {
    known: Mutex<Known>,
}

/// (schema, table) → (the top, or None; when it was asked).
type Known = HashMap<(String, String), (Option<u64>, Instant)>;

impl ColumnTops {
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn get(&self, key: &(String, String)) -> Option<Option<u64>> {
        match self.lock().get(key) {
            Some((top, asked)) if asked.elapsed() < KNOWN_FOR => Some(*top),
            _ => None,
        }
    }

    fn remember(&self, key: (String, String), top: Option<u64>) {
        self.lock().insert(key, (top, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        // Every update is one insert or clear: a poisoned map is usable.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a statement ran: the node's connection, the session's schema,
/// what is known of the tables, and the statement's requestId (which
/// spreads the values taken from the top of a range).
pub struct Node<'a> {
    pub conn: &'a mut Conn,
    pub schema: Option<&'a str>,
    pub tops: &'a ColumnTops,
    pub request_id: uuid::Uuid,
}

/// Asks the node, if `question` says so, and decides. `sql` is the
/// statement's text; `counted` the session's LAST_INSERT_ID() before it.
pub async fn generated(
    node: Node<'_>,
    sql: &[u8],
    question: Question,
    reported: Reported,
    counted: LastInsertId,
) -> Result<Generated, mysql_async::Error> {
    let Node {
        conn,
        schema,
        tops,
        request_id,
    } = node;
    let (after, previous) = match question {
        Question::OkPacket => return Ok(from_ok_packet(reported, counted)),
        Question::AskNode { zeroed: true, .. } => {
            // The node's own value from before: lockstep's count of the
            // client's may be off (an insert of explicit ids reports them).
            let read: Option<(u64, Option<u64>)> = conn
                .query_first(control::READ_ZEROED_LAST_INSERT_ID)
                .await?;
            let (after, before) = read.unwrap_or((0, None));
            (after, before.unwrap_or(counted.value))
        }
        Question::AskNode { zeroed: false, .. } => {
            let after: Option<u64> = conn.query_first(control::READ_LAST_INSERT_ID).await?;
            (after.unwrap_or(0), counted.value)
        }
    };
    let (decided, last_insert_id) = decide(question, reported, previous, after);
    let insert_id = match decided {
        Decided::Value(value) => Some(value),
        Decided::Nothing => None,
        Decided::NoRowInserted => column_top(conn, sql, schema, tops)
            .await?
            .map(|top| top - spread(request_id)),
    };
    Ok(Generated {
        insert_id,
        // Read from the node just now.
        last_insert_id: LastInsertId::known(last_insert_id),
    })
}

/// The largest value of the target table's AUTO_INCREMENT column, where a
/// candidate may be taken from the top of its range (`ColumnTops`); None
/// for a table the node does not list (a temporary table: no other
/// session writes it, its counter cannot lag) or has no such column.
async fn column_top(
    conn: &mut Conn,
    sql: &[u8],
    session_schema: Option<&str>,
    tops: &ColumnTops,
) -> Result<Option<u64>, mysql_async::Error> {
    let Some((schema, table)) = on_duplicate::target_table(sql) else {
        return Ok(None);
    };
    let schema = schema.or_else(|| session_schema.map(str::to_string));
    let key = (schema.clone().unwrap_or_default(), table.clone());
    if let Some(top) = tops.get(&key) {
        return Ok(top);
    }
    let column: Option<(String, Option<u64>)> = match conn
        .exec_first(control::AUTO_INCREMENT_COLUMN, (schema, table))
        .await
    {
        Ok(column) => column,
        // The server's refusal (rights on information_schema) leaves the
        // counter's candidate: the statement still runs as before.
        Err(mysql_async::Error::Server(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let top = column.and_then(|(column_type, counter)| free_top(&column_type, counter?));
    tops.remember(key, top);
    Ok(top)
}

/// The largest value of an INT or BIGINT column whose `counter` (the next
/// value) is below half its range.
pub fn free_top(column_type: &str, counter: u64) -> Option<u64> {
    let top = column_max(column_type)?;
    (top >= u64::from(u32::MAX >> 1) && counter <= top / 2).then_some(top)
}

/// Where below the top a statement's candidate is: from its requestId's
/// random bits.
fn spread(request_id: uuid::Uuid) -> u64 {
    let bytes = request_id.as_bytes();
    u64::from(u16::from_be_bytes([bytes[14], bytes[15]])) % TOP_VALUES
}

/// The largest value of an integer column type as information_schema
/// writes it (`int(11)`, `bigint(20) unsigned`).
pub fn column_max(column_type: &str) -> Option<u64> {
    let column_type = column_type.to_ascii_lowercase();
    let unsigned = column_type.contains("unsigned");
    let base = column_type.split(['(', ' ']).next()?;
    let bits = match base {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    Some(if unsigned {
        u64::MAX >> (64 - bits)
    } else {
        u64::MAX >> (65 - bits)
    })
}

/// A statement the OK packet tells the truth about. Its non-zero insert
/// id is pinned as `insert_id` even when the statement named it (then no
/// value is generated on the next node either, and the pin is unused).
pub fn from_ok_packet(reported: Reported, counted: LastInsertId) -> Generated {
    if reported.insert_id == 0 {
        return Generated {
            insert_id: None,
            last_insert_id: counted,
        };
    }
    Generated {
        insert_id: Some(reported.insert_id),
        last_insert_id: LastInsertId::reported(reported.insert_id),
    }
}

/// The decision, given LAST_INSERT_ID() read after the statement
/// (`after`), and the session's LAST_INSERT_ID() after it.
pub fn decide(question: Question, reported: Reported, previous: u64, after: u64) -> (Decided, u64) {
    let Question::AskNode { uses, zeroed } = question else {
        let generated = from_ok_packet(reported, LastInsertId::known(previous));
        let decided = generated.insert_id.map_or(Decided::Nothing, Decided::Value);
        return (decided, generated.last_insert_id.value);
    };
    let last_insert_id = if zeroed && after == 0 {
        previous
    } else {
        after
    };
    let decided = if uses.sets {
        // `after` is a generated value or the argument of LAST_INSERT_ID(expr),
        // which no read tells apart. One listed row inserted answers 1
        // affected row, an update 2 (0 unchanged); with several rows
        // lockstep cannot tell, and pins nothing.
        match (reported.several_rows, reported.affected_rows) {
            (false, 1) if reported.insert_id > 0 => Decided::Value(reported.insert_id),
            (false, 0 | 2) => Decided::NoRowInserted,
            _ => Decided::Nothing,
        }
    } else if zeroed {
        if after > 0 {
            Decided::Value(after)
        } else {
            Decided::NoRowInserted
        }
    } else if after > 0 && (after != previous || reported.inserted_some == Some(true)) {
        // A row was inserted, or the value moved: `after` is the value made
        // (one equal to the value from before, too: another table's id).
        // Rows inserted with ids of their own pin a value nothing uses.
        Decided::Value(after)
    } else {
        // The session's value from before stayed and no row is known to
        // be inserted: nothing generated (several rows without an info
        // text, or under CLIENT_FOUND_ROWS, cannot tell a value equal to
        // the one from before: README, limits).
        Decided::NoRowInserted
    };
    (decided, last_insert_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn odku(sql: &str, may_zero: bool) -> Question {
        Question::for_statement(sql.as_bytes(), may_zero)
    }

    fn reported(insert_id: u64, affected_rows: u64, several_rows: bool) -> Reported {
        let info = if several_rows {
            "Records: 2  Duplicates: 2  Warnings: 0"
        } else {
            ""
        };
        Reported::of_answer(insert_id, affected_rows, info, false)
    }

    #[test]
    fn an_inserted_row_is_pinned_even_with_the_value_from_before() {
        // The session's LAST_INSERT_ID() was 1 from another table; the
        // upsert inserted its table's first row, id 1 (found by a seeded
        // test: the replay took the top of the range instead).
        let q = odku(
            "insert into t (k) values (1) on duplicate key update k = k",
            false,
        );
        assert_eq!(
            decide(q, Reported::of_answer(1, 1, "", false), 1, 1),
            (Decided::Value(1), 1)
        );
        // Under CLIENT_FOUND_ROWS 1 affected row may be an unchanged one.
        assert_eq!(
            decide(q, Reported::of_answer(1, 1, "", true), 1, 1),
            (Decided::NoRowInserted, 1)
        );
        let several = "Records: 2  Duplicates: 1  Warnings: 0";
        assert_eq!(
            decide(q, Reported::of_answer(1, 3, several, false), 1, 1),
            (Decided::Value(1), 1)
        );
        let loaded = "Records: 3  Deleted: 0  Skipped: 3  Warnings: 3";
        assert_eq!(rows_inserted(loaded), Some(0));
    }

    #[test]
    fn an_update_only_reports_the_updated_rows_id_which_is_not_pinned() {
        let q = odku(
            "insert into t (k) values (1),(3) on duplicate key update n=n+1",
            true,
        );
        assert_eq!(q.pin_addition(), Some(control::ZERO_LAST_INSERT_ID));
        // MariaDB answered insert id 3 (the updated row); the session's
        // value, zeroed ahead, stayed 0.
        assert_eq!(
            decide(q, reported(3, 4, true), 17, 0),
            (Decided::NoRowInserted, 17)
        );
    }

    #[test]
    fn an_insert_among_updates_is_pinned() {
        let q = odku(
            "insert into t (k) values (1),(4) on duplicate key update n=n+1",
            true,
        );
        assert_eq!(
            decide(q, reported(6, 3, true), 17, 6),
            (Decided::Value(6), 6)
        );
    }

    #[test]
    fn on_the_master_the_value_from_before_means_none() {
        let q = odku(
            "insert into t (k) values (1) on duplicate key update n=n+1",
            false,
        );
        assert_eq!(q.pin_addition(), None);
        assert_eq!(
            decide(q, reported(5, 2, false), 5, 5).0,
            Decided::NoRowInserted
        );
        assert_eq!(decide(q, reported(9, 1, false), 5, 9).0, Decided::Value(9));
    }

    #[test]
    fn last_insert_id_of_an_expression_is_pinned_only_for_one_inserted_row() {
        let q = odku(
            "insert into t (k) values (1) on duplicate key update v = last_insert_id(v+1)",
            true,
        );
        // Updated: the argument, 42, is the session's value, not a pin.
        assert_eq!(
            decide(q, reported(42, 2, false), 0, 42),
            (Decided::NoRowInserted, 42)
        );
        assert_eq!(decide(q, reported(8, 1, false), 0, 8).0, Decided::Value(8));
        assert_eq!(decide(q, reported(8, 3, true), 0, 8).0, Decided::Nothing);
    }

    #[test]
    fn other_statements_trust_the_ok_packet() {
        let q = odku("insert into t (k) values (1)", true);
        assert_eq!(q, Question::OkPacket);
        assert_eq!(
            decide(q, reported(0, 1, false), 4, 0),
            (Decided::Nothing, 4)
        );
        assert_eq!(
            decide(q, reported(5, 1, false), 4, 0),
            (Decided::Value(5), 5)
        );
    }

    #[test]
    fn an_ok_packets_id_leaves_the_sessions_value_unsure() {
        let before = LastInsertId::known(4);
        let none = from_ok_packet(reported(0, 1, false), before);
        assert_eq!(none.last_insert_id, before);
        // `INSERT INTO t (id) VALUES (1000)` reports 1000 and leaves 4.
        let named_or_made = from_ok_packet(reported(1000, 1, false), before);
        assert_eq!(named_or_made.last_insert_id.value, 1000);
        assert!(!named_or_made.last_insert_id.sure);
        assert!(may_read_session_value(
            b"insert into log values (last_insert_id())"
        ));
        assert!(may_read_session_value(b"call p()"));
        assert!(may_read_session_value(
            b"insert into t (k) values (1) on duplicate key update n=n+1"
        ));
        assert!(!may_read_session_value(b"insert into t (k) values (1)"));
    }

    #[test]
    fn only_int_and_bigint_far_from_their_top_give_candidates() {
        assert_eq!(free_top("int(11)", 1_000), Some(2_147_483_647));
        assert_eq!(free_top("int(11)", 2_000_000_000), None);
        assert_eq!(free_top("bigint(20) unsigned", 5), Some(u64::MAX));
        assert_eq!(free_top("smallint(6)", 5), None);
        let spread = spread(uuid::Uuid::now_v7());
        assert!(spread < TOP_VALUES);
    }

    #[test]
    fn the_top_of_each_integer_type() {
        assert_eq!(column_max("int(11)"), Some(2_147_483_647));
        assert_eq!(column_max("int(10) unsigned"), Some(4_294_967_295));
        assert_eq!(column_max("tinyint(4)"), Some(127));
        assert_eq!(
            column_max("mediumint(8) unsigned zerofill"),
            Some(16_777_215)
        );
        assert_eq!(column_max("bigint(20)"), Some(i64::MAX as u64));
        assert_eq!(column_max("bigint(20) unsigned"), Some(u64::MAX));
        assert_eq!(column_max("double"), None);
    }
}
