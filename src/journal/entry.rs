//! What the journal holds: one entry per write-path statement, keyed by its
//! requestId, and one commit record per commit sequence number.
//!
//! Stored as JSON: the journal is read by people (`lockstep journal`) as
//! much as by lockstep, and its size is dominated by statement text anyway.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One write-path statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: Uuid,
    /// lockstep's connection id of the client session.
    pub session: u32,
    pub user: String,
    /// The master when the statement ran: every other node's result is
    /// judged against this node's.
    #[serde(default)]
    pub master: String,
    pub kind: EntryKind,
    /// What the tail must reproduce before running the statement.
    pub session_state: SessionState,
    pub statement: Statement,
    /// Stored as a record of its own (`records`): B's AUTO_INCREMENT value
    /// joins it after the entry is first written.
    #[serde(default)]
    pub context: Context,
    /// Microseconds since the Unix epoch when the entry was made.
    pub created_us: i64,
    /// Each node's result, in the order the nodes ran it. Stored as
    /// records of their own (`records`); journals written before that hold
    /// them in the entry.
    #[serde(default)]
    pub results: Vec<NodeResult>,
    /// Stored as a record of its own, like the results (absent: pending).
    #[serde(default)]
    pub state: EntryState,
    /// A transaction's COMMIT: the statements it commits, in order, so that
    /// its commit record can be rebuilt if lockstep dies before that record
    /// reaches the disk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies: Vec<Uuid>,
    /// A serialized statement: the GTID it is written under in each node's
    /// binary log, in lockstep's own domain. A restart after lockstep
    /// stopped in the middle reads there which nodes ran it
    /// (`protocol::binlog_marks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_marks: Option<BinlogMarks>,
}

/// The sequence number a serialized statement is logged under in
/// lockstep's GTID domain, and the node sessions that run it under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogMarks {
    pub seq_no: u64,
    pub sessions: Vec<NodeThread>,
}

/// A node session: a restart stops what it still runs before reading the
/// node's binary log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeThread {
    pub node: String,
    /// The node's thread id of the connection.
    pub thread: u32,
    /// Where the node's binary log stood before the statement ran, for a
    /// text whose inserts a restart may have to read there
    /// (`protocol::text_inserts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_from: Option<BinlogPlace>,
}

/// A place in a node's binary log: a file and an event's offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPlace {
    pub file: String,
    pub pos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A statement that may change data.
    Write,
    /// A read inside a transaction, run on B and A: found only in journals
    /// of versions that journaled such reads (today a read that writes is
    /// a `Write`, and a plain one is no entry). It changes nothing.
    Read,
    /// Session state (SET, USE, …) or transaction control; nothing to replay.
    Control,
    /// A statement that commits implicitly (DDL): serialized, outside any
    /// transaction, on every node. (Journals written before the rename
    /// call it `alone`.)
    #[serde(alias = "alone")]
    Serialized,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum EntryState {
    /// Journaled; running on the nodes.
    #[default]
    Pending,
    /// Done on A inside a client transaction that is still open.
    InTransaction,
    /// Committed on the master with this commit sequence number.
    Committed { seq: u64 },
    /// The master refused it (or B refused it with a transient conflict).
    Failed,
    /// The master refused it, B passed it, and policy `retry-master` re-runs
    /// it until the master passes it.
    RetryingOnMaster,
    /// Its transaction was rolled back.
    RolledBack,
    /// Nothing to commit (a read, session state).
    Done,
}

/// The session state a statement ran in, as the tail reproduces it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionState {
    pub schema: Option<String>,
    /// Collation id of the client's character set (0: the server's default).
    pub collation: u16,
    /// The client asked for CLIENT_FOUND_ROWS (affected rows count matched
    /// rows, not changed ones).
    #[serde(default)]
    pub found_rows: bool,
    /// Statements that set lasting session state (SET, PREPARE, temporary
    /// tables), in the order the client ran them.
    pub statements: Vec<SqlText>,
    /// Which of `statements` (by index) the origin session's nodes refused:
    /// kept because a refused statement can have done part of its work,
    /// and expected to fail again where they are replayed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<u32>,
}

impl SessionState {
    /// Each statement, and whether the origin's nodes refused it.
    pub fn statements_as_run(&self) -> impl Iterator<Item = (&SqlText, bool)> {
        self.statements
            .iter()
            .enumerate()
            .map(|(i, sql)| (sql, self.refused.iter().any(|&r| r as usize == i)))
    }

    /// Remembers a statement the origin session ran; `refused` when every
    /// node it reached refused it.
    pub fn remember(&mut self, sql: SqlText, refused: bool) {
        if refused {
            self.refused.push(self.statements.len() as u32);
        }
        self.statements.push(sql);
    }

    /// Forgets every statement (COM_RESET_CONNECTION).
    pub fn forget_statements(&mut self) {
        self.statements.clear();
        self.refused.clear();
    }
}

/// The statement as it was sent to the nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "protocol")]
pub enum Statement {
    Text {
        sql: SqlText,
    },
    Prepared {
        sql: SqlText,
        params: Vec<Param>,
    },
    /// `LOAD DATA LOCAL INFILE`, with the content the client sent: every
    /// node, and every replay, is given these bytes as the file.
    LocalInfile {
        sql: SqlText,
        content: FileContent,
    },
}

impl Statement {
    pub fn sql(&self) -> &SqlText {
        match self {
            Statement::Text { sql }
            | Statement::Prepared { sql, .. }
            | Statement::LocalInfile { sql, .. } => sql,
        }
    }
}

/// A file's bytes, journaled as base64 (the journal is JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent(pub bytes::Bytes);

impl Serialize for FileContent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for FileContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(|bytes| FileContent(bytes.into()))
            .map_err(serde::de::Error::custom)
    }
}

/// SQL text in the client's character set: UTF-8 text when it is valid
/// UTF-8 (nearly always), hex otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SqlText {
    Utf8(String),
    Hex { hex: String },
}

impl SqlText {
    pub fn from_bytes(bytes: &[u8]) -> SqlText {
        match std::str::from_utf8(bytes) {
            Ok(s) => SqlText::Utf8(s.to_string()),
            Err(_) => SqlText::Hex {
                hex: hex::encode(bytes),
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SqlText::Utf8(s) => s.as_bytes().to_vec(),
            SqlText::Hex { hex } => hex::decode(hex).unwrap_or_default(),
        }
    }
}

/// A prepared statement's parameter, as mysql_async sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    Null,
    Bytes(String),
    Int(i64),
    UInt(u64),
    Float(#[serde(with = "any_float")] f32),
    Double(#[serde(with = "any_float")] f64),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

/// A float parameter as JSON: a number when finite, else `"NaN"`, `"inf"` or
/// `"-inf"` (JSON has no such numbers, and a journal entry that cannot be
/// read back would stop every replay of it).
mod any_float {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Number(f64),
        Named(String),
    }

    pub trait Float: Copy {
        fn to_f64(self) -> f64;
        fn from_f64(v: f64) -> Self;
    }

    impl Float for f64 {
        fn to_f64(self) -> f64 {
            self
        }
        fn from_f64(v: f64) -> Self {
            v
        }
    }

    impl Float for f32 {
        fn to_f64(self) -> f64 {
            f64::from(self)
        }
        fn from_f64(v: f64) -> Self {
            v as f32
        }
    }

    pub fn serialize<F: Float, S: Serializer>(value: &F, s: S) -> Result<S::Ok, S::Error> {
        let v = value.to_f64();
        let stored = if v.is_finite() {
            Stored::Number(v)
        } else if v.is_nan() {
            Stored::Named("NaN".into())
        } else if v > 0.0 {
            Stored::Named("inf".into())
        } else {
            Stored::Named("-inf".into())
        };
        stored.serialize(s)
    }

    pub fn deserialize<'de, F: Float, D: Deserializer<'de>>(d: D) -> Result<F, D::Error> {
        Ok(F::from_f64(match Stored::deserialize(d)? {
            Stored::Number(v) => v,
            Stored::Named(name) => match name.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => f64::NAN,
            },
        }))
    }
}

impl From<&mysql_async::Value> for Param {
    fn from(v: &mysql_async::Value) -> Param {
        use mysql_async::Value as V;
        match v {
            V::NULL => Param::Null,
            V::Bytes(b) => Param::Bytes(hex::encode(b)),
            V::Int(i) => Param::Int(*i),
            V::UInt(u) => Param::UInt(*u),
            V::Float(f) => Param::Float(*f),
            V::Double(d) => Param::Double(*d),
            V::Date(y, m, d, h, i, s, us) => Param::Date(*y, *m, *d, *h, *i, *s, *us),
            V::Time(neg, d, h, i, s, us) => Param::Time(*neg, *d, *h, *i, *s, *us),
        }
    }
}

impl From<&Param> for mysql_async::Value {
    fn from(p: &Param) -> mysql_async::Value {
        use mysql_async::Value as V;
        match p {
            Param::Null => V::NULL,
            Param::Bytes(b) => V::Bytes(hex::decode(b).unwrap_or_default()),
            Param::Int(i) => V::Int(*i),
            Param::UInt(u) => V::UInt(*u),
            Param::Float(f) => V::Float(*f),
            Param::Double(d) => V::Double(*d),
            Param::Date(y, m, d, h, i, s, us) => V::Date(*y, *m, *d, *h, *i, *s, *us),
            Param::Time(neg, d, h, i, s, us) => V::Time(*neg, *d, *h, *i, *s, *us),
        }
    }
}

/// What MySQL's statement binlog pins for a statement, so that every node
/// computes the same values: NOW() and friends, RAND(), AUTO_INCREMENT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// `SET timestamp`, in microseconds since the Unix epoch.
    pub timestamp_us: i64,
    pub rand_seed1: u32,
    pub rand_seed2: u32,
    /// The first AUTO_INCREMENT value B generated: `SET insert_id` on the
    /// master and on replays.
    pub insert_id: Option<u64>,
    /// What LAST_INSERT_ID() returned in the origin session before the
    /// statement: a replay runs on another session, so it sets it.
    #[serde(default)]
    pub last_insert_id: Option<u64>,
    /// User variables standing for unpinnable calls in a prepared
    /// statement (`@lockstep_pin_1` → `'…uuid…'`), set with the context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<(String, String)>,
}

impl Context {
    /// A fresh context for a statement starting now.
    pub fn now() -> Context {
        // The seeds feed MariaDB's my_rnd, which reduces them modulo
        // 0x3FFFFFFF: stay below that so the stored value is the used one.
        Context {
            timestamp_us: now_us(),
            rand_seed1: rand::random::<u32>() % 0x3FFF_FFFF,
            rand_seed2: rand::random::<u32>() % 0x3FFF_FFFF,
            insert_id: None,
            last_insert_id: None,
            variables: Vec::new(),
        }
    }
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One node's result for a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResult {
    pub node: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How it compares with the master's result (not for the master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
        warnings: u16,
        /// The rows it returned, when it returned a result set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<Rows>,
        /// A text of several statements: each result's AUTO_INCREMENT value
        /// (0: none), when one made a value (`write::serialized` pins a
        /// serialized text's inserts to the first node's values with it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        insert_ids: Vec<u64>,
    },
    Error {
        code: u16,
        /// SQLSTATE
        state: String,
        message: String,
    },
    /// The connection broke: whether it ran is unknown.
    Lost { reason: String },
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    pub fn error_code(&self) -> Option<u16> {
        match self {
            Outcome::Error { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A commit sequence number's record: which statements it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub seq: u64,
    /// The requestId written to `lockstep.commits` with this commit.
    pub request_id: Uuid,
    /// The statements it commits, in execution order.
    pub statements: Vec<Uuid>,
    /// A serialized statement (DDL) committed by itself (no BEGIN around
    /// it). Journals written before the rename call it `alone`.
    #[serde(alias = "alone")]
    pub serialized: bool,
    pub state: CommitState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    /// The number is taken; the master's commit is under way.
    Reserved,
    Committed,
    /// The master did not commit: the number is skipped.
    Aborted,
    /// The session went away during the master's commit: the master's
    /// `lockstep.commits` says whether it happened.
    InDoubt,
}

// The compare module's judgement and row summary are stored with each
// node's result; their logic lives in `compare`, their shape here, so that
// the journal (a lower floor) does not import it.

/// How a node's result compares with the master's: the reconciliation
/// table, one row per verdict (judged by `compare::verdict`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Both passed with the same result: done.
    Agree,
    /// Both failed: nothing changed anywhere.
    BothFailed,
    /// The master passed, the node failed: the node must re-run it.
    NodeFailed,
    /// The master failed, the node passed: undone on the node (or the
    /// master retries, by policy).
    MasterFailed,
    /// Both passed with different results: the node diverged.
    Diverged { what: String },
}

/// The rows a statement returned, as compared between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rows {
    /// Rows over all result sets.
    pub count: u64,
    /// SHA-1 (hex) over every set's column definitions and rows.
    pub checksum: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journals_written_before_the_rename_still_read() {
        let kind: EntryKind = serde_json::from_str("\"alone\"").expect("old kind");
        assert_eq!(kind, EntryKind::Serialized);
        let record: CommitRecord = serde_json::from_str(
            r#"{"seq":3,"request_id":"01a231e7-4f6d-7511-a31e-a205ccb6dda3","statements":[],"alone":true,"state":"committed"}"#,
        )
        .expect("old record");
        assert!(record.serialized);
    }

    #[test]
    fn sql_text_round_trips_non_utf8() {
        let bytes = b"INSERT INTO t VALUES ('\xe9')";
        let text = SqlText::from_bytes(bytes);
        assert!(matches!(text, SqlText::Hex { .. }));
        let json = serde_json::to_string(&text).expect("json");
        let back: SqlText = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.to_bytes(), bytes);
    }
}
