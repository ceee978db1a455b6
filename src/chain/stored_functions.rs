//! The names through which a read can write: the master's stored functions
//! and the views that call them.
//!
//! `SELECT f()` writes when the body of `f` does. Outside a transaction the
//! master runs a read read-only and refuses such a write before its first
//! row (`write/read.rs`). Inside a transaction it cannot (MariaDB
//! ignores a per-statement `tx_read_only` there), so a read that names one
//! of these takes the write path instead: B first, journaled, then A. The
//! text cannot say whether a function writes, and MariaDB does not enforce
//! `READS SQL DATA`, so every stored function counts.
//!
//! The list is read from the master at start and after every statement that
//! is serialized (DDL), as `nontransactional` is: a function created on the
//! master behind lockstep's back counts from the next DDL on.

use std::collections::HashSet;
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use sqlparser::tokenizer::Token;

use crate::sql::lexer::lex;

/// Views that call a sequence's writing functions write as well.
const SEQUENCE_WRITERS: [&str; 2] = ["nextval", "setval"];

#[derive(Default)]
pub struct StoredFunctions {
    /// Lower-cased names of stored functions, packages and the views that
    /// call them (any schema).
    names: Mutex<HashSet<String>>,
}

impl StoredFunctions {
    /// Re-reads the list from the master.
    pub async fn refresh(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        let functions: Vec<Row> = conn
            .query(
                "SELECT DISTINCT LOWER(ROUTINE_NAME) FROM information_schema.ROUTINES \
                 WHERE ROUTINE_TYPE IN ('FUNCTION', 'PACKAGE', 'PACKAGE BODY')",
            )
            .await?;
        let views: Vec<Row> = conn
            .query("SELECT LOWER(TABLE_NAME), VIEW_DEFINITION FROM information_schema.VIEWS")
            .await?;
        let functions = functions.iter().filter_map(|r| text_at(r, 0)).collect();
        let views: Vec<(String, HashSet<String>)> = views
            .iter()
            .filter_map(|r| Some((text_at(r, 0)?, words_of(text_at(r, 1)?.as_bytes()))))
            .collect();
        let names = with_calling_views(functions, &views);
        if let Ok(mut held) = self.names.lock() {
            *held = names;
        }
        Ok(())
    }

    /// Whether the text names one of them (over-approximated: a column of
    /// the same name counts too, which costs a trip to B, not data).
    pub fn named_in(&self, sql: &[u8]) -> bool {
        let Ok(names) = self.names.lock() else {
            return false;
        };
        if names.is_empty() || !may_name_one(sql, &names) {
            return false;
        }
        // A text the lexer cannot read may name one: the write path is
        // right for a read too.
        let Some(lexemes) = lex(sql) else {
            return true;
        };
        lexemes.iter().any(|l| match &l.token {
            Token::Word(w) => names.contains(&w.value.to_lowercase()),
            _ => false,
        })
    }
}

/// A pass over the bytes before the lexer, which every read would
/// otherwise run (a list that is rarely empty: the `sys` schema of MariaDB
/// makes it so; `bench/results/2026-12-02-profile.md`):
/// false only when no word of the text, split where the lexer splits a
/// plain word and spelled as it reads one (bytes >= 0x80 as `x`,
/// lower-cased), is a name. A backquoted name may hold any character: with
/// a backquote the lexer decides.
fn may_name_one(sql: &[u8], names: &HashSet<String>) -> bool {
    if sql.contains(&b'`') {
        return true;
    }
    sql.split(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$' || *b >= 0x80))
        .filter(|word| !word.is_empty())
        .any(|word| {
            let spelled: String = word
                .iter()
                .map(|&b| {
                    if b < 0x80 {
                        (b as char).to_ascii_lowercase()
                    } else {
                        'x'
                    }
                })
                .collect();
            names.contains(&spelled)
        })
}

/// The functions, and every view whose definition names one of them, a
/// sequence's writing function, or such a view (views of views).
fn with_calling_views(
    functions: HashSet<String>,
    views: &[(String, HashSet<String>)],
) -> HashSet<String> {
    let mut names = functions;
    let writes = |words: &HashSet<String>, names: &HashSet<String>| {
        words
            .iter()
            .any(|w| names.contains(w) || SEQUENCE_WRITERS.contains(&w.as_str()))
    };
    loop {
        let calling: Vec<String> = views
            .iter()
            .filter(|(view, words)| !names.contains(view) && writes(words, &names))
            .map(|(view, _)| view.clone())
            .collect();
        if calling.is_empty() {
            return names;
        }
        names.extend(calling);
    }
}

fn text_at(row: &Row, i: usize) -> Option<String> {
    row.get_opt::<String, usize>(i).and_then(Result::ok)
}

fn words_of(sql: &[u8]) -> HashSet<String> {
    lex(sql)
        .unwrap_or_default()
        .iter()
        .filter_map(|l| match &l.token {
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn views_that_call_functions_or_such_views_count() {
        let views = vec![
            (
                "v2".to_string(),
                words_of(b"select `w`.`x` from `g`.`v1` `w`"),
            ),
            ("v1".to_string(), words_of(b"select `g`.`f`(1) AS `x`")),
            ("plain".to_string(), words_of(b"select `a` from `t`")),
            (
                "seq".to_string(),
                words_of(b"select nextval(`g`.`s`) AS `n`"),
            ),
        ];
        let names = with_calling_views(set(&["f"]), &views);
        assert_eq!(names, set(&["f", "v1", "v2", "seq"]));
    }

    #[test]
    fn a_text_names_a_function_in_any_spelling() {
        let known = StoredFunctions::default();
        assert!(
            !known.named_in(b"SELECT f(1)"),
            "an empty list names nothing"
        );
        *known.names.lock().unwrap() = set(&["f"]);
        assert!(known.named_in(b"SELECT g.F(1)"));
        assert!(known.named_in(b"select `f`(1)"));
        assert!(!known.named_in(b"SELECT 'f(1)', ff(2)"));
    }

    /// The pass before the lexer never says "no" where the lexer says "yes".
    #[test]
    fn the_quick_pass_never_hides_a_name_the_lexer_finds() {
        let names = set(&["f", "format_bytes", "my$fn", "v1"]);
        let lexer_finds = |sql: &[u8]| {
            lex(sql).is_none_or(|lexemes| {
                lexemes.iter().any(|l| match &l.token {
                    Token::Word(w) => names.contains(&w.value.to_lowercase()),
                    _ => false,
                })
            })
        };
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=?",
            "SELECT F(1)",
            "select sys.format_bytes(10)",
            "SELECT x FROM v1",
            "SELECT my$fn()",
            "SELECT `f`(1)",
            "SELECT 'f'",
            "/*!50000 SELECT f() */",
            "SELECT @f, @@f",
            "SELECT \u{e9}f(1)",
            "SELECT ff(1), f2(3)",
            "SELECT a.f FROM t a",
        ] {
            if lexer_finds(sql.as_bytes()) {
                assert!(may_name_one(sql.as_bytes(), &names), "{sql}");
            }
        }
        assert!(!may_name_one(b"SELECT c FROM sbtest1 WHERE id=?", &names));
    }
}
