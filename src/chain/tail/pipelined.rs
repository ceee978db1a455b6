//! A group's statements written to the node back to back, their answers
//! read afterwards (vendored mysql_async's `Conn::write_pipeline`): one
//! round trip for up to `PIPELINE_STATEMENTS` statements instead of one
//! each, which is most of what a tail waits for while it replays.
//!
//! The node runs each statement whatever became of the ones before it, so
//! a group goes this way only when everything behind a failure can be
//! undone with the group: its statements touch no table that cannot be
//! rolled back, and none of them changes the session (a `SET` or `USE`
//! in a text). Autocommit is off while the group runs
//! (`control::BEGIN_PIPELINED`): after an error that rolls the whole
//! transaction back, the statements behind it open another one instead of
//! committing one by one. Only statements that answer with an OK packet go
//! (INSERT, UPDATE, DELETE, REPLACE without RETURNING): the answers wait in
//! the socket's buffers until every statement is written, and rows could
//! fill them.

use mysql_async::{Conn, PipelinedCommand, Statement as Prepared};

use super::{Tail, TailError};
use crate::chain::nontransactional::NonTransactional;
use crate::chain::outcome;
use crate::chain::replay_state::AppliedState;
use crate::journal::{CommitRecord, Entry, Statement};
use crate::protocol::control;
use crate::router;
use crate::sql::lexer::plain_first_word;

/// Most statements written before their answers are read.
const PIPELINE_STATEMENTS: usize = 32;

/// Whether every statement of the group may be written behind the one
/// before it without waiting for its answer.
pub(super) fn may_pipeline(
    group: &[(CommitRecord, Vec<Entry>)],
    nontransactional: &NonTransactional,
) -> bool {
    let mut entries = group.iter().flat_map(|(_, entries)| entries);
    let Some(first) = entries.next() else {
        return false;
    };
    std::iter::once(first)
        .chain(entries)
        .all(|e| e.session_state == first.session_state && pipelinable(e, nontransactional))
}

fn pipelinable(entry: &Entry, nontransactional: &NonTransactional) -> bool {
    let sql = match &entry.statement {
        Statement::Text { sql } => sql.to_bytes(),
        Statement::Prepared { sql, .. } => sql.to_bytes(),
        Statement::LocalInfile { .. } => return false,
    };
    answers_with_ok(&sql) && !router::text_changes_session(&sql) && !nontransactional.named_in(&sql)
}

/// A write whose answer carries no rows.
fn answers_with_ok(sql: &[u8]) -> bool {
    matches!(
        plain_first_word(sql).as_deref(),
        Some("INSERT" | "UPDATE" | "DELETE" | "REPLACE")
    ) && !contains_word_returning(sql)
}

fn contains_word_returning(sql: &[u8]) -> bool {
    sql.windows(9).any(|w| w.eq_ignore_ascii_case(b"RETURNING"))
}

impl Tail {
    /// Runs the group's statements in pipelines, opening its transaction
    /// with the first one. Returns `Ok(false)` without running anything
    /// when a statement cannot be prepared on the node (it then runs one
    /// by one, where its error is judged as any other).
    pub(super) async fn run_pipelined(
        &self,
        conn: &mut Conn,
        group: &mut [(CommitRecord, Vec<Entry>)],
        state: &mut AppliedState,
    ) -> Result<bool, TailError> {
        let mut entries: Vec<&mut Entry> = group
            .iter_mut()
            .flat_map(|(_, entries)| entries.iter_mut())
            .collect();
        let texts: Vec<Vec<u8>> = entries
            .iter()
            .filter_map(|entry| match &entry.statement {
                Statement::Prepared { sql, .. } => Some(sql.to_bytes()),
                _ => None,
            })
            .collect();
        if !state.make_room_for(conn, &texts).await {
            return Ok(false);
        }
        let mut prepared = Vec::with_capacity(entries.len());
        for entry in &entries {
            prepared.push(match &entry.statement {
                Statement::Prepared { sql, .. } => {
                    match state.prepared_on(conn, sql.to_bytes()).await {
                        Ok(statement) => Some(statement),
                        Err(_) => return Ok(false),
                    }
                }
                _ => None,
            });
        }
        let mut opening = Some(control::BEGIN_PIPELINED);
        for (chunk, prepared) in entries
            .chunks_mut(PIPELINE_STATEMENTS)
            .zip(prepared.chunks(PIPELINE_STATEMENTS))
        {
            self.run_chunk(conn, chunk, prepared, opening.take())
                .await?;
        }
        Ok(true)
    }

    /// One pipeline: every statement of `chunk` written, then every
    /// answer read (also behind a failure, to keep the connection in
    /// step); the first statement the node disagrees on is the error.
    async fn run_chunk(
        &self,
        conn: &mut Conn,
        chunk: &mut [&mut Entry],
        prepared: &[Option<Prepared>],
        opening: Option<&str>,
    ) -> Result<(), TailError> {
        let mut pins: Vec<String> = chunk
            .iter()
            .map(|entry| control::replay_pin(&entry.context))
            .collect();
        if let (Some(opening), Some(first)) = (opening, pins.first_mut()) {
            *first = format!("{opening}; {first}");
        }
        let texts: Vec<Option<Vec<u8>>> = chunk
            .iter()
            .zip(&pins)
            .map(|(entry, pin)| match &entry.statement {
                Statement::Text { sql } => Some([pin.as_bytes(), b"; ", &sql.to_bytes()].concat()),
                _ => None,
            })
            .collect();
        let mut commands = Vec::with_capacity(chunk.len() * 2);
        for (i, entry) in chunk.iter().enumerate() {
            match (&texts[i], &prepared[i], &entry.statement) {
                (Some(text), _, _) => commands.push(PipelinedCommand::Query(text)),
                (None, Some(statement), Statement::Prepared { params, .. }) => {
                    commands.push(PipelinedCommand::Query(pins[i].as_bytes()));
                    commands.push(PipelinedCommand::Exec(
                        statement,
                        outcome::params_of(params),
                    ));
                }
                _ => {
                    return Err(TailError::Node(mysql_async::Error::Other(
                        "a pipelined statement is neither a text nor prepared".into(),
                    )))
                }
            }
        }
        let mut pipeline = conn.write_pipeline(commands).await?;
        let mut failure = None;
        for (i, entry) in chunk.iter_mut().enumerate() {
            let outcome = match &prepared[i] {
                Some(statement) => {
                    outcome::exec_answer_after_pin(conn, &mut pipeline, statement).await
                }
                None => outcome::text_answer(conn, &mut pipeline).await,
            };
            // Behind a failure: read to keep in step, undone with the group.
            if failure.is_some() {
                continue;
            }
            if let Err(e) = self.judge_result(entry, outcome) {
                self.report(entry);
                failure = Some(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::answers_with_ok;

    #[test]
    fn only_writes_that_answer_without_rows_are_pipelined() {
        assert!(answers_with_ok(b"INSERT INTO t VALUES (1)"));
        assert!(answers_with_ok(b"  update t SET v = v + 1 WHERE id = ?"));
        assert!(answers_with_ok(b"DELETE FROM t WHERE id = 3"));
        assert!(answers_with_ok(b"REPLACE INTO t VALUES (1)"));
        assert!(!answers_with_ok(b"INSERT INTO t VALUES (1) RETURNING id"));
        assert!(!answers_with_ok(b"DELETE FROM t returning *"));
        assert!(!answers_with_ok(b"SELECT f()"));
        assert!(!answers_with_ok(b"CALL p()"));
        assert!(!answers_with_ok(b"/* c */ INSERT INTO t VALUES (1)"));
        assert!(!answers_with_ok(b"LOAD DATA INFILE 'x' INTO TABLE t"));
    }
}
