//! How an entry is stored: its body once, and its state and each node's
//! result as small records of their own.
//!
//! An entry changes after it is first written: B's and A's results arrive,
//! B's AUTO_INCREMENT value joins its context, its state moves to
//! committed, each tail adds its result. Stored whole,
//! every one of those changes rewrote the whole entry (its statement text,
//! session state and parameters), and each tail's result made the journal's
//! single writer thread parse and re-encode it (issue 15's budget: no
//! rewrite of whole entries). Now the `entries` tree holds the body, which
//! does not change, and the `outcomes` tree holds, under keys that start
//! with the entry's requestId:
//!
//! - `id ++ 'C'`: the context (what the statement's replays pin);
//! - `id ++ 'S'`: the state (absent: pending);
//! - `id ++ 'R' ++ position` (u32, big-endian): the result at that position
//!   in `Entry::results`, so that a prefix scan reads them in order.
//!
//! Writing an entry "as it is now" stores only what differs from what is
//! stored, with the old meaning kept: the results are exactly the entry's
//! (positions past them are removed). Appending a result takes the next
//! position. Journals written before hold context, results and state in the
//! body: they are read as before, and records add to them.

use serde::Serialize;
use uuid::Uuid;

use super::entry::{BinlogMarks, Entry, EntryKind, EntryState, SessionState, Statement};
use super::{decode, encode, JournalError};

/// The tag after the requestId of a context record.
const CONTEXT_TAG: u8 = b'C';
/// The tag after the requestId of a state record.
const STATE_TAG: u8 = b'S';
/// The tag after the requestId of a result record.
const RESULT_TAG: u8 = b'R';

/// An entry as the writer stores it.
pub(super) struct EntryRecords {
    pub body: Vec<u8>,
    pub context: Vec<u8>,
    /// None: pending (no record).
    pub state: Option<Vec<u8>>,
    pub results: Vec<Vec<u8>>,
}

impl EntryRecords {
    pub fn of(entry: &Entry) -> EntryRecords {
        EntryRecords {
            body: encode(&Body::of(entry)),
            context: encode(&entry.context),
            state: (entry.state != EntryState::Pending).then(|| encode(&entry.state)),
            results: entry.results.iter().map(encode).collect(),
        }
    }
}

/// The part of an entry that does not change once written.
#[derive(Serialize)]
struct Body<'a> {
    id: &'a Uuid,
    session: u32,
    user: &'a str,
    master: &'a str,
    kind: EntryKind,
    session_state: &'a SessionState,
    statement: &'a Statement,
    created_us: i64,
    #[serde(skip_serializing_if = "<[Uuid]>::is_empty")]
    applies: &'a [Uuid],
    #[serde(skip_serializing_if = "Option::is_none")]
    binlog_marks: &'a Option<BinlogMarks>,
}

impl<'a> Body<'a> {
    fn of(entry: &'a Entry) -> Body<'a> {
        // Every field named, none with `..`: a field added to `Entry` does
        // not compile here until it is stored with the body or a record.
        let Entry {
            id,
            session,
            user,
            master,
            kind,
            session_state,
            statement,
            context: _,
            created_us,
            results: _,
            state: _,
            applies,
            binlog_marks,
        } = entry;
        Body {
            id,
            session: *session,
            user,
            master,
            kind: *kind,
            session_state,
            statement,
            created_us: *created_us,
            applies,
            binlog_marks,
        }
    }
}

/// Every record of the entry: its state and results.
pub(super) fn prefix(id: &[u8]) -> Vec<u8> {
    id.to_vec()
}

pub(super) fn context_key(id: &[u8]) -> Vec<u8> {
    let mut key = id.to_vec();
    key.push(CONTEXT_TAG);
    key
}

pub(super) fn state_key(id: &[u8]) -> Vec<u8> {
    let mut key = id.to_vec();
    key.push(STATE_TAG);
    key
}

pub(super) fn results_prefix(id: &[u8]) -> Vec<u8> {
    let mut key = id.to_vec();
    key.push(RESULT_TAG);
    key
}

pub(super) fn result_key(id: &[u8], position: u32) -> Vec<u8> {
    let mut key = results_prefix(id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The position a result record's key names.
pub(super) fn position_of(key: &[u8]) -> Option<u32> {
    let tail = key.get(key.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes(tail.try_into().ok()?))
}

/// The entry from its body and its records (key, value), in key order.
pub(super) fn assemble(
    body: &[u8],
    records: impl Iterator<Item = Result<(sled::IVec, sled::IVec), sled::Error>>,
) -> Result<Entry, JournalError> {
    let mut entry: Entry = decode(body)?;
    let id_len = entry.id.as_bytes().len();
    // The context is in the body only in journals written before it had a
    // record of its own; a body found with neither is unreadable rather
    // than replayed at timestamp 0.
    let mut has_context = entry.context.timestamp_us != 0;
    for record in records {
        let (key, value) = record.map_err(|e| JournalError::Read(e.to_string()))?;
        match key.get(id_len) {
            Some(&CONTEXT_TAG) => {
                entry.context = decode(&value)?;
                has_context = true;
            }
            Some(&STATE_TAG) => entry.state = decode(&value)?,
            Some(&RESULT_TAG) => entry.results.push(decode(&value)?),
            _ => {
                return Err(JournalError::Read(format!(
                    "bad record key for {}",
                    entry.id
                )))
            }
        }
    }
    if !has_context {
        let why = format!("entry {} has no context", entry.id);
        return Err(JournalError::Read(why));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::entry::{now_us, Context, NodeResult, NodeThread, Outcome, SqlText};

    /// The body read back is the entry without its results and state:
    /// nothing else is lost on the way.
    #[test]
    fn a_body_keeps_every_field_but_results_and_state() {
        let entry = Entry {
            id: Uuid::now_v7(),
            session: 7,
            user: "app".into(),
            master: "n1".into(),
            kind: EntryKind::Serialized,
            session_state: SessionState {
                schema: Some("s".into()),
                collation: 45,
                found_rows: true,
                statements: vec![SqlText::from_bytes(b"SET @a = 1")],
                refused: vec![0],
            },
            statement: Statement::Text {
                sql: SqlText::from_bytes(b"ALTER TABLE t ADD c INT"),
            },
            context: Context::now(),
            created_us: now_us(),
            results: vec![NodeResult {
                node: "n2".into(),
                outcome: Outcome::Lost {
                    reason: "gone".into(),
                },
                verdict: None,
            }],
            state: EntryState::Committed { seq: 9 },
            applies: vec![Uuid::now_v7()],
            binlog_marks: Some(BinlogMarks {
                seq_no: 3,
                sessions: vec![NodeThread {
                    node: "n1".into(),
                    thread: 12,
                    binlog_from: None,
                }],
            }),
        };
        let records = EntryRecords::of(&entry);
        let context = Ok((
            sled::IVec::from(context_key(entry.id.as_bytes())),
            sled::IVec::from(records.context.clone()),
        ));
        let back = assemble(&records.body, std::iter::once(context)).expect("body reads back");
        let expected = Entry {
            results: Vec::new(),
            state: EntryState::Pending,
            ..entry.clone()
        };
        assert_eq!(encode(&back), encode(&expected));
        assert!(records.state.is_some());
        assert_eq!(records.results.len(), 1);
        let lost = assemble(&records.body, std::iter::empty());
        assert!(lost.is_err(), "a body without its context is unreadable");
    }

    #[test]
    fn result_keys_sort_by_position_and_name_it() {
        let id = Uuid::now_v7();
        let keys: Vec<_> = [0u32, 1, 255, 256, 70_000]
            .iter()
            .map(|&p| result_key(id.as_bytes(), p))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(position_of(&keys[3]), Some(256));
        assert!(keys
            .iter()
            .all(|k| k.starts_with(&results_prefix(id.as_bytes()))));
        assert!(state_key(id.as_bytes()) > results_prefix(id.as_bytes()));
        assert!(context_key(id.as_bytes()) < results_prefix(id.as_bytes()));
    }
}
