//! `NEXTVAL(s)` and `NEXT VALUE FOR s` in a write, pinned.
//!
//! A sequence hands out values in the order its node's sessions ask, and a
//! value taken by a statement that then failed or rolled back is gone (it
//! is not transactional): B, A and the tail, which replays only what
//! committed, would each give the rows their own values. So lockstep takes
//! the value once, on the first node (as B chooses an AUTO_INCREMENT value),
//! writes it into the statement as a literal, and brings every other
//! node's sequence to it with `SETVAL(s, v)` in the statement's pinned
//! context (a no-op where the sequence is already there: SETVAL only moves
//! a sequence forward). MariaDB's statement binlog replicates the sequence
//! the same way, by its state, not by calls.
//!
//! One value per call in the text: a call that runs once per row (`INSERT
//! … SELECT NEXTVAL(s) FROM t`, `UPDATE t SET c = NEXTVAL(s)`) cannot be
//! pinned so; such a statement is refused.

use std::ops::Range;

use sqlparser::tokenizer::Token;

use super::intercept::{replaced, Renames};
use super::lexer::{contains_ignore_case, lex, Lexeme};

/// A call in the text: where it is and the sequence as the client wrote it.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    range: Range<usize>,
    pub sequence: String,
}

/// What a text does with sequences.
#[derive(Debug, PartialEq, Eq)]
pub enum Calls {
    /// Calls that each run once, in text order.
    Once(Vec<Call>),
    /// A call that runs once per row.
    PerRow,
}

/// The text's calls of `NEXTVAL(s)` / `NEXT VALUE FOR s`, `None` when it
/// has none.
pub fn calls(query: &[u8]) -> Option<Calls> {
    if !contains_ignore_case(query, b"nextval") && !contains_ignore_case(query, b"next") {
        return None;
    }
    let lexemes = lex(query)?;
    let mut calls = Vec::new();
    let mut i = 0;
    while i < lexemes.len() {
        if let Some((call, next)) = call_at(query, &lexemes, i) {
            calls.push(call);
            i = next;
        } else {
            i += 1;
        }
    }
    if calls.is_empty() {
        return None;
    }
    if runs_per_row(&lexemes) {
        return Some(Calls::PerRow);
    }
    Some(Calls::Once(calls))
}

/// The text with each call replaced by its value, and the result columns
/// to rename back (`NEXTVAL(s)` keeps its name for the client).
pub fn with_values(query: &[u8], calls: &[Call], values: &[i64]) -> (Vec<u8>, Renames) {
    replaced(
        query,
        calls.iter().zip(values).map(|(call, value)| {
            let literal = value.to_string().into_bytes();
            (call.range.clone(), literal.clone(), literal)
        }),
    )
}

/// The variable a prepared statement reads the value of its `i`-th call
/// from: set at each execution, with the values taken then.
pub fn call_variable(i: usize) -> String {
    format!("@lockstep_seq_call_{i}")
}

/// A prepared statement's text with each call replaced by its variable
/// (`call_variable`), and the result columns to rename back.
pub fn with_variables(query: &[u8], calls: &[Call]) -> (Vec<u8>, Renames) {
    replaced(
        query,
        calls.iter().enumerate().map(|(i, call)| {
            let variable = call_variable(i).into_bytes();
            (call.range.clone(), variable.clone(), variable)
        }),
    )
}

/// `NEXTVAL ( name )` or `NEXT VALUE FOR name` at `i`: the call and the
/// index after it.
fn call_at(query: &[u8], s: &[Lexeme], i: usize) -> Option<(Call, usize)> {
    let upper = |j: usize| s.get(j).and_then(Lexeme::word_upper);
    let (name_at, close) = match upper(i).as_deref() {
        Some("NEXTVAL") if s.get(i + 1)?.token == Token::LParen => (i + 2, true),
        Some("NEXT")
            if upper(i + 1).as_deref() == Some("VALUE")
                && upper(i + 2).as_deref() == Some("FOR") =>
        {
            (i + 3, false)
        }
        _ => return None,
    };
    let mut end = name_at;
    matches!(s.get(end)?.token, Token::Word(_)).then_some(())?;
    while s.get(end + 1).map(|l| &l.token) == Some(&Token::Period)
        && matches!(s.get(end + 2).map(|l| &l.token), Some(Token::Word(_)))
    {
        end += 2;
    }
    let sequence = query.get(s[name_at].range.start..s[end].range.end)?;
    let sequence = String::from_utf8(sequence.to_vec()).ok()?;
    let last = if close {
        if s.get(end + 1)?.token != Token::RParen {
            return None;
        }
        end + 1
    } else {
        end
    };
    let range = s[i].range.start..s[last].range.end;
    Some((Call { range, sequence }, last + 1))
}

/// Whether the text's calls may run once per row: anything but an INSERT
/// or REPLACE with VALUES, a SET, a DO, or a SELECT / VALUES without FROM.
fn runs_per_row(s: &[Lexeme]) -> bool {
    let words: Vec<String> = s.iter().filter_map(Lexeme::word_upper).collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    match words.first().map(String::as_str) {
        Some("INSERT" | "REPLACE") => {
            has("SELECT") || !(has("VALUES") || has("VALUE") || has("SET"))
        }
        Some("SET" | "DO") => has("FROM"),
        Some("SELECT" | "VALUES") => has("FROM"),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(sql: &str) -> Vec<Call> {
        match calls(sql.as_bytes()) {
            Some(Calls::Once(calls)) => calls,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn calls_in_a_single_row_statement_become_literals() {
        let sql = "INSERT INTO t VALUES (NEXTVAL(s), next value for db.`s2`, nextval ( s ))";
        let calls = once(sql);
        let names: Vec<&str> = calls.iter().map(|c| c.sequence.as_str()).collect();
        assert_eq!(names, ["s", "db.`s2`", "s"]);
        let (text, renames) = with_values(sql.as_bytes(), &calls, &[7, 3, 8]);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "INSERT INTO t VALUES (7, 3, 8)"
        );
        assert_eq!(renames[0], (b"7".to_vec(), b"NEXTVAL(s)".to_vec()));
        assert_eq!(once("SELECT NEXTVAL(s)").len(), 1);
        assert_eq!(once("SET @x = NEXT VALUE FOR s").len(), 1);
    }

    #[test]
    fn calls_per_row_and_texts_without_calls_are_told_apart() {
        for sql in [
            "INSERT INTO t SELECT NEXTVAL(s), a FROM u",
            "UPDATE t SET c = NEXTVAL(s)",
            "SELECT NEXTVAL(s) FROM t",
        ] {
            assert_eq!(calls(sql.as_bytes()), Some(Calls::PerRow), "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT 'nextval(s)', next_value",
            "SELECT SETVAL(s, 5)",
        ] {
            assert_eq!(calls(sql.as_bytes()), None, "{sql}");
        }
    }
}
