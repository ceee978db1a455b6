//! `SHOW WARNINGS` right after a COMMIT. MariaDB keeps the diagnostics of
//! a transaction's last statement through COMMIT (COMMIT uses no table),
//! but lockstep's commit row, written in the client's COMMIT on A, clears
//! them. So when that statement left any, lockstep reads them on A just
//! before the COMMIT and answers the client's next `SHOW WARNINGS` or
//! `SHOW ERRORS` itself. A statement that uses no table (`SELECT 1`) keeps
//! them, as in MariaDB; any other forgets them (MariaDB's next statement
//! that uses a table replaces them).

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use opensrv_mysql::{Column, QueryResultWriter};
use tokio::io::AsyncWrite;
use tracing::warn;

use super::Driver;
use crate::sql::lexer::lex;
use crate::wire::encode;

/// A's answer to `SHOW WARNINGS`, as the client would have had it.
pub(crate) struct KeptWarnings {
    columns: Vec<Column>,
    /// Each row's text-protocol payload, and whether its level is `Error`.
    rows: Vec<(Vec<u8>, bool)>,
}

/// Which of the two statements `query` is: Some(false) for `SHOW
/// WARNINGS`, Some(true) for `SHOW ERRORS`, None for anything else (with
/// a LIMIT or `COUNT(*)` too: those go to A).
pub(crate) fn asked_for(query: &[u8]) -> Option<bool> {
    let lexemes = lex(query)?;
    let words: Vec<Option<String>> = lexemes
        .iter()
        .filter(|l| l.token != sqlparser::tokenizer::Token::SemiColon)
        .map(|l| l.word_upper())
        .collect();
    match words.as_slice() {
        [Some(show), Some(what)] if show == "SHOW" && what == "WARNINGS" => Some(false),
        [Some(show), Some(what)] if show == "SHOW" && what == "ERRORS" => Some(true),
        _ => None,
    }
}

/// Whether `query` uses no table, and so keeps MariaDB's diagnostics:
/// BEGIN, START TRANSACTION, and SELECT or SET without FROM (the caller
/// rules out stored functions, whose tables count). Any doubt counts as
/// using one.
pub(crate) fn uses_no_table(query: &[u8]) -> bool {
    use sqlparser::tokenizer::Token;
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let first = lexemes.first().and_then(|l| l.word_upper());
    let plain_start = matches!(first.as_deref(), Some("BEGIN" | "START" | "SELECT" | "SET"));
    plain_start
        && !lexemes.iter().any(|l| {
            l.token == Token::SemiColon
                || matches!(
                    l.word_upper().as_deref(),
                    Some("FROM" | "INTO" | "TABLE" | "UPDATE" | "WORK" | "CHAIN")
                )
        })
}

impl Driver {
    /// Reads A's diagnostics before lockstep's commit row clears them:
    /// only when a command since the last COMMIT answered with warnings
    /// (a later statement that uses no table keeps them; one that does
    /// clears them, and A then answers with what it has).
    pub(super) async fn warnings_before_commit(&mut self) -> Option<KeptWarnings> {
        if !std::mem::take(&mut self.warned_since_commit) {
            return None;
        }
        self.read_master_warnings().await
    }

    /// Reads A's diagnostics before lockstep's row for a statement that
    /// just ran there clears them: only when it answered with warnings.
    pub(super) async fn warnings_of_last_statement(&mut self) -> Option<KeptWarnings> {
        if self.master.as_ref()?.get_warnings() == 0 {
            return None;
        }
        self.read_master_warnings().await
    }

    /// A's `SHOW WARNINGS`, as the client would get it.
    async fn read_master_warnings(&mut self) -> Option<KeptWarnings> {
        let conn = self.master.as_mut()?;
        let read = async {
            let mut result = conn.query_iter("SHOW WARNINGS").await?;
            let extended = result.columns_extended_metadata().to_vec();
            let columns: Vec<Column> = result
                .columns_ref()
                .iter()
                .enumerate()
                .map(|(i, c)| encode::column(c, c.name_ref(), extended.get(i)))
                .collect();
            let rows: Vec<Row> = result.collect().await?;
            Ok::<_, mysql_async::Error>((columns, rows))
        };
        match read.await {
            Ok((columns, rows)) => Some(KeptWarnings {
                columns,
                rows: rows
                    .iter()
                    .map(|row| {
                        let mut payload = Vec::new();
                        encode::text_row(row, &mut payload);
                        let level: Option<String> = row.get(0);
                        (payload, level.as_deref() == Some("Error"))
                    })
                    .collect(),
            }),
            Err(e) => {
                // The COMMIT that follows finds the connection's state.
                warn!(error = %e, "could not read the master's warnings before COMMIT");
                None
            }
        }
    }

    /// Answers `SHOW WARNINGS` (or, `errors_only`, `SHOW ERRORS`) from what
    /// was kept.
    pub(crate) async fn answer_kept_warnings<W: AsyncWrite + Send + Unpin>(
        &mut self,
        kept: &KeptWarnings,
        errors_only: bool,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let mut writer = w.start_owned(kept.columns.clone()).await?;
        for (payload, is_error) in &kept.rows {
            if *is_error || !errors_only {
                writer.write_row_payload(payload).await?;
            }
        }
        let status = self.status;
        writer
            .finish_one_with(status, 0)
            .await?
            .no_more_results_with(status, 0)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::asked_for;

    #[test]
    fn only_the_plain_statements_are_answered_from_what_was_kept() {
        assert_eq!(asked_for(b"SHOW WARNINGS"), Some(false));
        assert_eq!(asked_for(b"show errors;"), Some(true));
        assert_eq!(asked_for(b"SHOW WARNINGS LIMIT 1"), None);
        assert_eq!(asked_for(b"SHOW COUNT(*) WARNINGS"), None);
        assert_eq!(asked_for(b"SELECT 1"), None);
    }

    #[test]
    fn statements_that_use_no_table() {
        use super::uses_no_table;
        for sql in [
            "BEGIN",
            "START TRANSACTION",
            "SELECT 1",
            "SET @a = 2",
            "SELECT @a",
            "SELECT LAST_INSERT_ID()",
            "SET @a = (SELECT 1)",
        ] {
            assert!(uses_no_table(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "SET @a = (SELECT MAX(id) FROM t)",
            "INSERT INTO t VALUES (1)",
            "SELECT 1; SELECT 2",
        ] {
            assert!(!uses_no_table(sql.as_bytes()), "{sql}");
        }
    }
}
