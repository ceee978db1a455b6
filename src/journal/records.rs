//! How an entry is stored, so that no change to it rewrites it whole.
//!
//! An entry changes after it is first written: B's and A's results arrive,
//! B's AUTO_INCREMENT value joins its context, its state moves to
//! committed, each tail adds its result. Stored whole, every change
//! rewrote the whole entry (its statement, parameters and the session
//! state, which carries the session's whole `SET SESSION …` prefix: most of
//! its bytes), and each tail's result made the journal's single writer
//! thread parse and re-encode it (issue 15's budget: no rewrite of whole
//! entries).
//!
//! So an entry is two parts: the **body**, what does not change (statement,
//! session state, who sent it), and the **outcome**, what the write path
//! changes (context, state, the results of the nodes it ran on). The first
//! write stores both in one value of the `entries` tree (`Framed`: one
//! insert, as before). A later write of the entry stores only a changed
//! outcome, as the record `id ++ 'D'` in the `outcomes` tree (some hundred
//! bytes); each tail's result is the record `id ++ 'R' ++ position` (u32,
//! big-endian, contiguous from 0). The number of sled inserts per statement
//! stays what it was: measured, sled's cost is per insert (each may copy
//! the leaf it lands in), so splitting an entry into more records than
//! changes made the writer thread slower, not faster.
//!
//! A write of the entry means "the entry is now this", results included:
//! the write path writes back entries it read with the tails' results in
//! them, so a changed outcome replaces the `R` records too. Journals
//! written before hold the whole entry as JSON in `entries`: read as before.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::entry::{
    BinlogMarks, Context, Entry, EntryKind, EntryState, NodeResult, SessionState, Statement,
};
use super::{decode, encode, JournalError};

/// The tag after the requestId of a later outcome.
const OUTCOME_TAG: u8 = b'D';
/// The tag after the requestId of a tail's result.
const RESULT_TAG: u8 = b'R';
/// The first byte of a framed value (an entry stored whole as JSON, by
/// earlier versions, starts with `{`).
const FRAMED: u8 = 1;

/// An entry as the writer stores it.
pub(super) struct EntryRecords {
    pub body: Vec<u8>,
    pub outcome: Vec<u8>,
}

impl EntryRecords {
    pub fn of(entry: &Entry) -> EntryRecords {
        EntryRecords {
            body: encode(&Body::of(entry)),
            outcome: encode(&OutcomeOf {
                context: &entry.context,
                state: &entry.state,
                results: &entry.results,
            }),
        }
    }

    /// Body and outcome in one value, for the first write.
    pub fn framed(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(5 + self.body.len() + self.outcome.len());
        value.push(FRAMED);
        value.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        value.extend_from_slice(&self.body);
        value.extend_from_slice(&self.outcome);
        value
    }
}

/// A stored value of the `entries` tree, read.
pub(super) enum Stored<'a> {
    Framed {
        body: &'a [u8],
        outcome: &'a [u8],
    },
    /// An entry stored whole by an earlier version.
    Whole(&'a [u8]),
}

impl<'a> Stored<'a> {
    pub fn of(value: &'a [u8]) -> Result<Stored<'a>, JournalError> {
        if value.first() != Some(&FRAMED) {
            return Ok(Stored::Whole(value));
        }
        let bad = || JournalError::Read("a journal entry is cut short".into());
        let len: [u8; 4] = value
            .get(1..5)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let end = 5 + u32::from_be_bytes(len) as usize;
        Ok(Stored::Framed {
            body: value.get(5..end).ok_or_else(bad)?,
            outcome: value.get(end..).ok_or_else(bad)?,
        })
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
        // not compile here until it is stored with the body or the outcome.
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

/// The part of an entry the write path changes, as written.
#[derive(Serialize)]
struct OutcomeOf<'a> {
    context: &'a Context,
    state: &'a EntryState,
    results: &'a [NodeResult],
}

/// The part of an entry the write path changes, as read.
#[derive(Deserialize)]
struct Outcome {
    context: Context,
    state: EntryState,
    results: Vec<NodeResult>,
}

/// Every record of the entry.
pub(super) fn prefix(id: &[u8]) -> Vec<u8> {
    id.to_vec()
}

pub(super) fn outcome_key(id: &[u8]) -> Vec<u8> {
    let mut key = id.to_vec();
    key.push(OUTCOME_TAG);
    key
}

pub(super) fn result_key(id: &[u8], position: u32) -> Vec<u8> {
    let mut key = id.to_vec();
    key.push(RESULT_TAG);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The entry from its stored value, its later outcome if any, and the
/// tails' results.
pub(super) fn assemble(
    value: &[u8],
    later_outcome: Option<&[u8]>,
    tail_results: &[sled::IVec],
) -> Result<Entry, JournalError> {
    let (mut entry, first_outcome): (Entry, _) = match Stored::of(value)? {
        Stored::Whole(whole) => (decode(whole)?, None),
        Stored::Framed { body, outcome } => (decode(body)?, Some(outcome)),
    };
    if let Some(outcome) = later_outcome.or(first_outcome) {
        apply(&mut entry, decode(outcome)?);
    }
    for result in tail_results {
        entry.results.push(decode(result)?);
    }
    Ok(entry)
}

fn apply(entry: &mut Entry, outcome: Outcome) {
    entry.context = outcome.context;
    entry.state = outcome.state;
    entry.results = outcome.results;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::entry::{now_us, NodeThread, Outcome as NodeOutcome, SqlText};

    fn every_field_set() -> Entry {
        Entry {
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
                outcome: NodeOutcome::Lost {
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
        }
    }

    /// Body and outcome together are the whole entry: nothing is lost on
    /// the way, whatever field it is in.
    #[test]
    fn a_framed_entry_reads_back_whole() {
        let entry = every_field_set();
        let records = EntryRecords::of(&entry);
        let back = assemble(&records.framed(), None, &[]).expect("reads back");
        assert_eq!(encode(&back), encode(&entry));
        let later = Entry {
            state: EntryState::RolledBack,
            results: Vec::new(),
            ..entry.clone()
        };
        let back = assemble(
            &records.framed(),
            Some(&EntryRecords::of(&later).outcome),
            &[],
        )
        .expect("reads back");
        assert_eq!(encode(&back), encode(&later));
    }

    #[test]
    fn a_value_cut_short_is_an_error_not_a_panic() {
        let framed = EntryRecords::of(&every_field_set()).framed();
        for len in [1, 3, 5, 40] {
            assert!(assemble(&framed[..len], None, &[]).is_err(), "{len}");
        }
    }

    #[test]
    fn result_keys_sort_by_position() {
        let id = Uuid::now_v7();
        let keys: Vec<_> = [0u32, 1, 255, 256, 70_000]
            .iter()
            .map(|&p| result_key(id.as_bytes(), p))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(outcome_key(id.as_bytes()) < keys[0]);
    }
}
