//! Every statement lockstep itself sends to a node around a client's work:
//! opening and ending its transactions, savepoints, pinning and unpinning
//! the statement's context, and the rows of `lockstep.commits`. They are
//! built here and nowhere else, so that what a node receives from lockstep
//! can be read in one page (docs/write-protocol.md explains the order).
//!
//! Each one must parse under any `sql_mode` and character set a client may
//! have chosen: plain keywords, numbers and hex literals only.

use uuid::Uuid;

use crate::journal::Context;
use crate::router::TransactionAccess;
use crate::sql::ddl_tables::ExclusiveTables;

/// Opens the transaction an autocommit statement runs in on A and B (and a
/// replayed one on the tail). Not `BEGIN`: under `sql_mode = ORACLE`
/// `BEGIN` opens a block, not a transaction.
pub const BEGIN: &str = "START TRANSACTION";
pub const COMMIT: &str = "COMMIT";
pub const ROLLBACK: &str = "ROLLBACK";

/// Opens a tail group whose statements are written to the node back to
/// back (`chain::pipelined`): autocommit is off until the group ends, so
/// that an error that rolls the whole transaction back (a deadlock) leaves
/// the statements written behind it in a transaction of their own, which
/// the group's ROLLBACK undoes, instead of each committing by itself. The
/// session's own value is kept for `RESTORE_AUTOCOMMIT`.
pub const BEGIN_PIPELINED: &str =
    "SET @lockstep_autocommit = @@autocommit, autocommit = 0; START TRANSACTION";

/// Ends what `BEGIN_PIPELINED` changed, after the group's COMMIT or
/// ROLLBACK (with no transaction open, it commits nothing).
pub const RESTORE_AUTOCOMMIT: &str = "SET autocommit = @lockstep_autocommit";

/// B's savepoint before each statement of a client transaction: a statement
/// that fails on B is undone there alone.
pub const SAVEPOINT: &str = "SAVEPOINT lockstep_statement";
pub const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT lockstep_statement";

/// Lets the next statement generate its own AUTO_INCREMENT value again
/// after `pin` forced one (`insert_id = 0` means none forced): appended to
/// a `pin` whose context forces none.
pub const INSERT_ID_UNFORCED: &str = "insert_id = 0";

/// Undoes `pin` for the session's next statements: its time, and the
/// AUTO_INCREMENT value it forced, which a statement that generated none
/// (explicit values, an UPDATE) leaves set for the next INSERT.
pub const UNPIN: &str = "SET timestamp = DEFAULT, insert_id = 0";

/// Sets a session's time back to the value its client fixed (`value` as
/// A reports `@@timestamp`: digits and a point).
pub fn fix_timestamp(value: &str) -> String {
    format!("SET timestamp = {value}")
}

/// How lockstep gives an autocommit statement a transaction of its own on A
/// and B, so that its `lockstep.commits` row and its number go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// `BEGIN` … `COMMIT`: the usual way.
    Begin,
    /// The session holds `LOCK TABLES`, which `BEGIN` would release:
    /// `SET autocommit = 0` … `COMMIT; SET autocommit = 1` keeps them, as
    /// MariaDB's manual recommends for transactional tables under LOCK TABLES.
    AutocommitOff,
}

/// lockstep's own transaction around an autocommit write, at SERIALIZABLE
/// whatever the session's level: there InnoDB reads every row the
/// statement reads under shared locks, also the plain `SELECT … INTO var`
/// of a procedure, a trigger or a stored function it runs, so B and A read
/// the same rows (a write that changes them must pass B first, where the
/// locks make it wait until the statement committed; one that held them
/// committed on A before). Under READ COMMITTED InnoDB reads even an
/// `INSERT … SELECT`'s source without locks, and an update committed
/// between B's run and A's changed what A read (`tests/isolation.rs`: most
/// copies differed); under REPEATABLE READ a routine's plain SELECT reads
/// a snapshot, taken later on A than on B (a procedure counting rows under
/// concurrent inserts stored other counts on B and the tail, in 359 and
/// 393 of 600 calls). The level applies to this transaction only.
pub const BEGIN_SERIALIZABLE: &str =
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; START TRANSACTION";

/// Opens B's side of a client transaction: the client's own `BEGIN` text
/// (or, for a transaction opened by autocommit off, `START TRANSACTION`)
/// at SERIALIZABLE, whatever level the client chose; A keeps the client's.
/// B runs the writes first and keeps its locks until after A's commit
/// and its number, so B's shared locks on every row (and gap) a write
/// reads make any change to them wait on B until the write committed
/// everywhere, or commit everywhere before it. A then reads the same rows
/// at READ COMMITTED (latest committed) as B did under its locks: under
/// READ COMMITTED on B too, an `INSERT … SELECT` read its source without
/// locks and a change committed between B's run and A's made the nodes
/// differ (`tests/isolation.rs`). `COMMIT` first: `SET TRANSACTION` fails
/// (1568) inside a transaction, and one a session statement may have
/// opened on B with autocommit off would be committed by the `BEGIN`
/// anyway.
pub fn begin_on_sync(client_begin: &[u8]) -> Vec<u8> {
    [
        b"COMMIT; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; ".as_slice(),
        client_begin,
    ]
    .concat()
}

/// B's side of a client transaction as it is opened once the transaction's
/// first statement reaches B, in that statement's round trip
/// (`write::OpenTransaction`): `begin_on_sync` of `START TRANSACTION` in
/// the client's access mode. `WITH CONSISTENT SNAPSHOT` does not matter
/// there (B reads under SERIALIZABLE's locks, not from a snapshot); `READ
/// ONLY` does: B must refuse the writes A refuses, or the AUTO_INCREMENT
/// value a refused INSERT took on B alone would shift B's next ones.
pub fn opening_on_sync(access: TransactionAccess) -> &'static str {
    match access {
        TransactionAccess::ReadWrite => {
            "COMMIT; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; START TRANSACTION"
        }
        TransactionAccess::ReadOnly => {
            "COMMIT; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; START TRANSACTION READ ONLY"
        }
    }
}

impl Wrap {
    pub fn open(self) -> &'static str {
        match self {
            Wrap::Begin => BEGIN_SERIALIZABLE,
            Wrap::AutocommitOff => "SET autocommit = 0",
        }
    }

    /// What follows the statement's COMMIT or ROLLBACK on the node.
    fn restore(self) -> &'static str {
        match self {
            Wrap::Begin => UNPIN,
            Wrap::AutocommitOff => "SET autocommit = 1, timestamp = DEFAULT, insert_id = 0",
        }
    }

    /// A's end of the statement (its row was marked before it).
    pub fn commit(self) -> String {
        format!("{COMMIT}; {}", self.restore())
    }

    /// B's end of a statement A committed under `seq`.
    pub fn commit_recorded(self, request_id: Uuid, seq: u64) -> String {
        format!("{}; {COMMIT}; {}", record(request_id, seq), self.restore())
    }

    /// The end of a statement a node must not keep.
    pub fn rollback(self) -> String {
        format!("{ROLLBACK}; {}", self.restore())
    }
}

/// MariaDB's error for a write in a read-only transaction.
pub const READ_ONLY_REFUSAL: u16 =
    opensrv_mysql::ErrorKind::ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION as u16;

/// A read as the master runs it outside a transaction: read-only for this
/// statement alone, so that a write hidden in it is refused with
/// `READ_ONLY_REFUSAL` instead of done on the master alone.
pub fn read_only(read: &[u8]) -> Vec<u8> {
    [b"SET STATEMENT tx_read_only = 1 FOR ".as_slice(), read].concat()
}

/// Ends a node's thread (a session connection lockstep no longer uses).
pub fn kill_connection(thread: u32) -> String {
    format!("KILL CONNECTION {thread}")
}

/// 1 while a node's thread of lockstep's own account is there (a thread id
/// from an earlier run, which a restarted server may have given another).
pub fn own_thread_exists(thread: u32) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM information_schema.PROCESSLIST \
         WHERE ID = {thread} AND USER = SUBSTRING_INDEX(USER(), '@', 1))"
    )
}

/// Interrupts the statement a node's thread runs (a lock cycle's victim
/// on the master: `write::deadlocks`).
pub fn kill_query(thread: u32) -> String {
    format!("KILL QUERY {thread}")
}

/// Which thread waits for a row lock held by which, on one node: one row
/// (waiting thread, blocking thread) per wait.
pub const ROW_LOCK_WAITS: &str = "SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id \
     FROM information_schema.INNODB_LOCK_WAITS w \
     JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
     JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id";

/// 1 when a node's thread waits for a lock: a metadata lock of any kind
/// (a table's, a schema's, a stored routine's, a trigger's, an event's,
/// a sequence's: MariaDB names each state `Waiting for … metadata lock`),
/// the backup lock, a table-level lock (its processlist state), or an
/// InnoDB row lock (its transaction's state); `protocol::serialized` asks
/// it of the DDL in flight. A `DROP FUNCTION` waits for the transactions
/// that used the function: with only the table's state recognised, their
/// next writes waited for the DROP as it waited for them.
pub fn thread_waits_for_lock(thread: u32) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM information_schema.PROCESSLIST \
         WHERE ID = {thread} AND (STATE LIKE 'Waiting for %metadata lock' \
         OR STATE IN ('Waiting for backup lock', 'Waiting for table level lock'))) \
         OR EXISTS (SELECT 1 FROM information_schema.INNODB_TRX \
         WHERE trx_mysql_thread_id = {thread} AND trx_state = 'LOCK WAIT')"
    )
}

/// The session variables that shape what a statement writes and that a new
/// session takes from the server's global values: the ones the statement
/// binary log carries with every query. A session's values when it
/// connects are read on A and made its first state statement, so B and
/// every replay run its statements under them whatever the globals are by
/// then (a `SET GLOBAL time_zone` reaches every node, but a session that
/// connected before it keeps the old zone, as in MariaDB).
const SESSION_DEFAULTS: &[(&str, Value)] = &[
    ("sql_mode", Value::Text),
    ("time_zone", Value::Text),
    ("lc_time_names", Value::Text),
    ("default_storage_engine", Value::Text),
    ("character_set_server", Value::Text),
    ("collation_server", Value::Text),
    // The client's character set (its handshake's, or a `SET NAMES`): the
    // tail's connection must not keep another session's.
    ("character_set_client", Value::Text),
    ("character_set_connection", Value::Text),
    ("character_set_results", Value::Text),
    ("collation_connection", Value::Text),
    ("auto_increment_increment", Value::Number),
    ("auto_increment_offset", Value::Number),
    ("explicit_defaults_for_timestamp", Value::Number),
    ("div_precision_increment", Value::Number),
    ("foreign_key_checks", Value::Number),
    ("unique_checks", Value::Number),
];

#[derive(Clone, Copy)]
enum Value {
    Text,
    Number,
}

/// Reads a session's `SESSION_DEFAULTS`, as text, in their order.
pub fn read_session_defaults() -> String {
    let columns: Vec<String> = SESSION_DEFAULTS
        .iter()
        .map(|(name, _)| format!("CAST(@@session.{name} AS CHAR)"))
        .collect();
    format!("SELECT {}", columns.join(", "))
}

/// The SET that gives a session the `SESSION_DEFAULTS` values read by
/// `read_session_defaults`. A value that is not a plain name or number
/// (none that MariaDB gives is) is left out rather than quoted.
pub fn set_session_defaults(values: &[Option<String>]) -> Option<String> {
    let assignments: Vec<String> = SESSION_DEFAULTS
        .iter()
        .zip(values)
        .filter_map(|((name, kind), value)| {
            let value = value.as_deref()?;
            match kind {
                Value::Number if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(format!("{name} = {value}"))
                }
                Value::Text
                    if value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_+-:/,.".contains(&b)) =>
                {
                    Some(format!("{name} = '{value}'"))
                }
                _ => None,
            }
        })
        .collect();
    (!assignments.is_empty()).then(|| format!("SET SESSION {}", assignments.join(", ")))
}

/// A user variable's value as A holds it, to be set as it is elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub enum UserValue {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    /// A DECIMAL, as its digits.
    Decimal(String),
    /// A string in `charset`, with `collation`; `binary` for bytes.
    Text {
        bytes: Vec<u8>,
        charset: String,
        collation: String,
    },
}

impl UserValue {
    /// As an SQL literal of the same type, or `None` when it cannot be
    /// spelled in plain keywords, numbers and hex (a non-finite DOUBLE).
    fn literal(&self) -> Option<String> {
        let plain_name =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match self {
            UserValue::Null => Some("NULL".into()),
            UserValue::Int(i) => Some(i.to_string()),
            UserValue::UInt(u) => Some(u.to_string()),
            // `{:e}` is the shortest text that reads back as the same bits,
            // and an exponent makes MariaDB read a DOUBLE, not a DECIMAL.
            UserValue::Double(d) if d.is_finite() => Some(format!("{d:e}")),
            UserValue::Double(_) => None,
            UserValue::Decimal(digits)
                if !digits.is_empty()
                    && digits
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') =>
            {
                Some(digits.clone())
            }
            UserValue::Decimal(_) => None,
            UserValue::Text { bytes, charset, .. } if charset == "binary" => {
                Some(format!("x'{}'", hex::encode(bytes)))
            }
            UserValue::Text {
                bytes,
                charset,
                collation,
            } if plain_name(charset) && plain_name(collation) => Some(format!(
                "CONVERT(x'{}' USING {charset}) COLLATE {collation}",
                hex::encode(bytes)
            )),
            UserValue::Text { .. } => None,
        }
    }
}

/// A variable a session statement set, to be read on A and set elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// `@name`
    User(String),
    /// `@@session.name`: a plain name only (letters, digits, `_`).
    Session(String),
}

impl Variable {
    fn sql(&self) -> Option<String> {
        match self {
            Variable::User(name) => Some(format!("@`{}`", name.replace('`', "``"))),
            Variable::Session(name)
                if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Some(format!("@@session.{name}"))
            }
            Variable::Session(_) => None,
        }
    }
}

/// Reads variables with their character set and collation (three columns
/// each), for `set_variables`.
pub fn read_variables(variables: &[Variable]) -> Option<String> {
    let columns: Option<Vec<String>> = variables
        .iter()
        .map(|variable| {
            let v = variable.sql()?;
            Some(format!("{v}, CHARSET({v}), COLLATION({v})"))
        })
        .collect();
    Some(format!("SELECT {}", columns?.join(", ")))
}

/// Sets variables to values read on A, so that another session (B's, the
/// tail's) holds exactly A's: what the statement binlog does with the
/// variables a statement uses. `None` when a value cannot be spelled.
pub fn set_variables(values: &[(Variable, UserValue)]) -> Option<String> {
    let assignments: Option<Vec<String>> = values
        .iter()
        .map(|(variable, value)| Some(format!("{} = {}", variable.sql()?, value.literal()?)))
        .collect();
    let assignments = assignments?;
    (!assignments.is_empty()).then(|| format!("SET {}", assignments.join(", ")))
}

/// Pins a statement's context (time, RAND seeds, AUTO_INCREMENT value,
/// prepared-statement pin variables) on a node's session.
pub fn pin(context: &Context) -> String {
    let secs = context.timestamp_us.div_euclid(1_000_000);
    let micros = context.timestamp_us.rem_euclid(1_000_000);
    let mut sql = format!(
        "SET timestamp = {secs}.{micros:06}, rand_seed1 = {}, rand_seed2 = {}",
        context.rand_seed1, context.rand_seed2
    );
    if let Some(id) = context.insert_id {
        sql.push_str(&format!(", insert_id = {id}"));
    }
    for (name, value) in &context.variables {
        sql.push_str(&format!(", {name} = {value}"));
    }
    sql
}

/// `pin` for a replay on another session: also what LAST_INSERT_ID()
/// returned in the origin session.
pub fn replay_pin(context: &Context) -> String {
    let mut sql = pin(context);
    if let Some(id) = context.last_insert_id {
        sql.push_str(&format!(", last_insert_id = {id}"));
    }
    sql
}

/// Appended to `pin` ahead of an `ON DUPLICATE KEY UPDATE` statement that
/// does not read LAST_INSERT_ID(): afterwards the session's value is then
/// non-zero exactly when the statement generated (and inserted) a value
/// (`protocol::insert_id`). The value from before is kept in a variable
/// (`SET` evaluates every value before it assigns any).
pub const ZERO_LAST_INSERT_ID: &str =
    "@lockstep_last_insert_id = LAST_INSERT_ID(), last_insert_id = 0";

/// After a statement: the session's LAST_INSERT_ID().
pub const READ_LAST_INSERT_ID: &str = "SELECT LAST_INSERT_ID()";

/// After a statement pinned with `ZERO_LAST_INSERT_ID`: the session's
/// LAST_INSERT_ID() and the value from before, which is put back when the
/// statement set none, as MariaDB leaves it.
pub const READ_ZEROED_LAST_INSERT_ID: &str = "SELECT LAST_INSERT_ID(), @lockstep_last_insert_id; \
     SET last_insert_id = IF(LAST_INSERT_ID() = 0, @lockstep_last_insert_id, LAST_INSERT_ID())";

/// The type of a table's AUTO_INCREMENT column and the table's counter
/// (schema or NULL for the session's, then table, as parameters).
pub const AUTO_INCREMENT_COLUMN: &str = "SELECT c.COLUMN_TYPE, t.AUTO_INCREMENT \
     FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
     ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
     WHERE c.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND c.TABLE_NAME = ? \
     AND c.EXTRA LIKE '%auto_increment%'";

/// The master's row for a commit: its requestId only. It is written
/// *before* the client's statement, in the same transaction, because any
/// statement that uses a table clears the client's warnings (SHOW WARNINGS
/// must still see the statement's), and the commit number does not exist
/// yet: it is taken once the master holds the statement's locks. The
/// journal maps the requestId to its number; a node that replays the
/// journal records both (`record`).
pub fn mark(request_id: Uuid) -> String {
    format!(
        "INSERT INTO lockstep.commits (request_id, seq) VALUES (x'{}', NULL)",
        request_id.simple()
    )
}

/// The row recording commit `seq` under `request_id`, inside the
/// committing transaction (B, the tail, the master for statements that
/// commit implicitly).
pub fn record(request_id: Uuid, seq: u64) -> String {
    records(&[(request_id, seq)])
}

/// The rows of several commits applied in one node transaction.
pub fn records(commits: &[(Uuid, u64)]) -> String {
    let values: Vec<String> = commits
        .iter()
        .map(|(request_id, seq)| format!("(x'{}', {seq})", request_id.simple()))
        .collect();
    format!(
        "INSERT INTO lockstep.commits (request_id, seq) VALUES {}",
        values.join(", ")
    )
}

/// B's end of a commit the master made under `seq` (a client transaction,
/// or a serialized statement).
pub fn commit_recorded(request_id: Uuid, seq: u64) -> String {
    Wrap::Begin.commit_recorded(request_id, seq)
}

/// The end of a client transaction A or B must not keep.
pub fn rollback_unpinned() -> String {
    Wrap::Begin.rollback()
}

/// The table lockstep adds to a client's `LOCK TABLES … WRITE`: under
/// LOCK TABLES a session can write only the tables it locked, and its
/// commits write their `lockstep.commits` rows.
pub const COMMITS_LOCK: &str = "lockstep.commits WRITE";

/// The client's `LOCK TABLES` text with `COMMITS_LOCK` added.
pub fn lock_tables_with_commits(text: &[u8]) -> Vec<u8> {
    let end = text
        .iter()
        .rposition(|&b| b != b';' && !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    [&text[..end], b", ", COMMITS_LOCK.as_bytes()].concat()
}

/// Before a DDL runs on its first node: on the master, in the client's
/// session, the write locks the DDL needs on its tables, so that it waits
/// there (at most the session's `lock_wait_timeout`, or the DDL's own
/// `WAIT n` / `NOWAIT`) for the transactions that only read them on the
/// master, which the first node never saw. Released at once
/// (`UNLOCK_TABLES`). The names are the client's bytes, in its character
/// set, as in the DDL.
pub fn lock_tables_of_ddl(ddl: &[u8], tables: &ExclusiveTables) -> Vec<u8> {
    let mut text = lock_tables_for_write(ddl, tables);
    if let Some(wait) = &tables.wait {
        text.push(b' ');
        text.extend_from_slice(&ddl[wait.clone()]);
    }
    text
}

/// `lock_tables_of_ddl` without waiting (`NOWAIT`, whatever the DDL's
/// own clause): inside the DDL's turn, whether the readers it waited for
/// outside it are still gone (1205 when one came back).
pub fn lock_tables_of_ddl_now(ddl: &[u8], tables: &ExclusiveTables) -> Vec<u8> {
    let mut text = lock_tables_for_write(ddl, tables);
    text.extend_from_slice(b" NOWAIT");
    text
}

fn lock_tables_for_write(ddl: &[u8], tables: &ExclusiveTables) -> Vec<u8> {
    let mut text = b"LOCK TABLES ".to_vec();
    for (i, name) in tables.names.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(b", ");
        }
        text.extend_from_slice(&ddl[name.clone()]);
        text.extend_from_slice(b" WRITE");
    }
    text
}

/// Lets go of `lock_tables_of_ddl`'s locks.
pub const UNLOCK_TABLES: &str = "UNLOCK TABLES";

/// Several statements as one multi-statement text.
pub fn then(first: &str, second: &str) -> String {
    format!("{first}; {second}")
}

/// One statement of a serialized text, made to take `insert_id` as its
/// first AUTO_INCREMENT value, for that statement only.
pub fn with_insert_id(statement: &[u8], insert_id: u64) -> Vec<u8> {
    [
        format!("SET STATEMENT insert_id = {insert_id} FOR ").as_bytes(),
        statement,
    ]
    .concat()
}

/// lockstep's own GTID domain: its serialized statements are written to
/// each node's binary log under it, with sequence numbers lockstep chose
/// (`protocol::binlog_marks`).
pub const GTID_DOMAIN: u32 = 4242;

/// A server file's content, for a server-side load (`write::server_file`);
/// `path` is an SQL expression (`sql::load_data::server_path_expression`).
pub fn read_server_file(path: &str) -> String {
    format!("SELECT LOAD_FILE({path})")
}

/// What lockstep needs of a node's configuration (`chain::requirements`).
pub const READ_NODE_REQUIREMENTS: &str = "SELECT @@innodb_autoinc_lock_mode, @@log_bin";

/// A logging node's binary log filters (`Binlog_Do_DB`, `Binlog_Ignore_DB`).
pub const READ_BINLOG_FILTERS: &str = "SHOW MASTER STATUS";

/// The file and offset where the node's binary log writes its next event.
pub const READ_BINLOG_PLACE: &str = "SHOW MASTER STATUS";

/// The files of the node's binary log, oldest first.
pub const READ_BINLOG_FILES: &str = "SHOW BINARY LOGS";

/// Up to `count` events of the node's binary log from offset `pos` of
/// `file` on (needs the BINLOG MONITOR privilege); None for a file name
/// that is not plain (MariaDB names them `<basename>.000042`).
pub fn read_binlog_events(file: &str, pos: u64, count: u32) -> Option<String> {
    let plain = !file.is_empty()
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    plain.then(|| format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT {count}"))
}

/// Whether the node logs, and where its binary log stands per domain.
pub const READ_BINLOG_POSITION: &str = "SELECT @@log_bin, @@gtid_binlog_pos";

/// The session's next transaction is logged as `4242-<server>-<seq_no>`
/// (needs the SUPER or BINLOG REPLAY privilege).
pub fn enter_gtid_domain(seq_no: u64) -> String {
    format!("SET SESSION gtid_domain_id = {GTID_DOMAIN}, gtid_seq_no = {seq_no}")
}

/// Gives the session the server's GTID domain and numbering back (an
/// unused `gtid_seq_no` would number the session's next transaction).
pub const LEAVE_GTID_DOMAIN: &str = "SET SESSION gtid_domain_id = DEFAULT, gtid_seq_no = 0";

#[cfg(test)]
mod tests {
    #[test]
    fn a_ddls_tables_are_locked_for_write_with_its_wait_clause() {
        let ddl = b"DROP TABLE IF EXISTS `d`.`t`, u NOWAIT";
        let tables = crate::sql::ddl_tables::exclusive_tables(ddl).expect("tables");
        assert_eq!(
            super::lock_tables_of_ddl(ddl, &tables),
            b"LOCK TABLES `d`.`t` WRITE, u WRITE NOWAIT"
        );
        let ddl = b"ALTER TABLE t WAIT 5 ADD COLUMN c INT";
        let tables = crate::sql::ddl_tables::exclusive_tables(ddl).expect("tables");
        assert_eq!(
            super::lock_tables_of_ddl(ddl, &tables),
            b"LOCK TABLES t WRITE WAIT 5"
        );
        assert_eq!(
            super::lock_tables_of_ddl_now(ddl, &tables),
            b"LOCK TABLES t WRITE NOWAIT"
        );
    }

    #[test]
    fn user_variables_are_set_with_their_types() {
        use super::{UserValue, Variable};
        let user = |name: &str| Variable::User(name.into());
        let set = super::set_variables(&[
            (user("a"), UserValue::Int(-3)),
            (user("b"), UserValue::Double(0.1)),
            (user("c"), UserValue::Decimal("12.340".into())),
            (
                user("d"),
                UserValue::Text {
                    bytes: b"h'i".to_vec(),
                    charset: "utf8mb4".into(),
                    collation: "utf8mb4_general_ci".into(),
                },
            ),
            (user("e"), UserValue::Null),
            (Variable::Session("time_zone".into()), UserValue::Int(1)),
        ])
        .expect("a SET");
        assert_eq!(
            set,
            "SET @`a` = -3, @`b` = 1e-1, @`c` = 12.340, \
             @`d` = CONVERT(x'682769' USING utf8mb4) COLLATE utf8mb4_general_ci, @`e` = NULL, \
             @@session.time_zone = 1"
        );
        assert_eq!(
            super::set_variables(&[(user("x"), UserValue::Double(f64::NAN))]),
            None
        );
        assert_eq!(
            super::set_variables(&[(Variable::Session("a; DROP".into()), UserValue::Null)]),
            None
        );
    }

    #[test]
    fn session_defaults_are_set_as_read() {
        let mut values: Vec<Option<String>> = super::SESSION_DEFAULTS
            .iter()
            .map(|_| Some("1".to_string()))
            .collect();
        values[0] = Some("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION".into());
        values[1] = Some("+05:00".into());
        values[2] = Some("x'; DROP TABLE t; --".into());
        values[3] = None;
        let set = super::set_session_defaults(&values).expect("a SET");
        assert!(set.starts_with(
            "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+05:00', character_set_server = '1'"
        ), "{set}");
        assert!(!set.contains("lc_time_names") && !set.contains("default_storage_engine"));
        assert!(set.ends_with("unique_checks = 1"), "{set}");
    }

    use super::*;

    #[test]
    fn pin_has_microseconds_and_the_insert_id() {
        let context = Context {
            timestamp_us: 1_700_000_000_000_042,
            rand_seed1: 1,
            rand_seed2: 2,
            insert_id: Some(7),
            last_insert_id: Some(3),
            variables: vec![("@lockstep_pin_0".into(), "'x'".into())],
        };
        assert_eq!(
            pin(&context),
            "SET timestamp = 1700000000.000042, rand_seed1 = 1, rand_seed2 = 2, \
             insert_id = 7, @lockstep_pin_0 = 'x'"
        );
        assert!(replay_pin(&context).ends_with(", last_insert_id = 3"));
    }

    #[test]
    fn rows_use_hex_literals() {
        let id = Uuid::from_u128(0xff);
        assert_eq!(
            mark(id),
            "INSERT INTO lockstep.commits (request_id, seq) VALUES \
             (x'000000000000000000000000000000ff', NULL)"
        );
        assert_eq!(
            lock_tables_with_commits(b"LOCK TABLES t WRITE ;\n"),
            b"LOCK TABLES t WRITE, lockstep.commits WRITE".to_vec()
        );
        assert_eq!(
            Wrap::AutocommitOff.rollback(),
            "ROLLBACK; SET autocommit = 1, timestamp = DEFAULT, insert_id = 0"
        );
        assert_eq!(
            commit_recorded(id, 9),
            "INSERT INTO lockstep.commits (request_id, seq) VALUES \
             (x'000000000000000000000000000000ff', 9); COMMIT; SET timestamp = DEFAULT, insert_id = 0"
        );
    }
}
