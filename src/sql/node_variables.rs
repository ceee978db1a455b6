//! System variables whose value is each server's own (`@@hostname`,
//! `@@server_id`, `@@port`, …) in a write, made the master's.
//!
//! Read by a client connected to the master they are the master's; in a
//! write that B, A and the tail each run they would be each node's own, and
//! a row written from them would differ on every node (MariaDB's statement
//! binlog flags such a statement, Note 1592). lockstep reads their values
//! from the master and writes them into the statement as literals, so the
//! journal carries the master's values.

use std::ops::Range;

use sqlparser::tokenizer::Token;

use super::intercept::{replaced, Renames};
use super::lexer::{contains_ignore_case, lex, Lexeme};

/// The variables whose value differs from server to server.
const PER_NODE: [&str; 12] = [
    "HOSTNAME",
    "SERVER_ID",
    "PORT",
    "DATADIR",
    "BASEDIR",
    "TMPDIR",
    "PID_FILE",
    "LOG_ERROR",
    "GENERAL_LOG_FILE",
    "SLOW_QUERY_LOG_FILE",
    "LOG_BIN_BASENAME",
    "REPORT_HOST",
];

/// One use in the text: where, and the variable's name (lower case).
#[derive(Debug, PartialEq, Eq)]
pub struct Use {
    range: Range<usize>,
    pub name: String,
}

/// The uses of per-node variables in the text, in order; empty when none.
pub fn uses(query: &[u8]) -> Vec<Use> {
    if !contains_ignore_case(query, b"@@") {
        return Vec::new();
    }
    let Some(lexemes) = lex(query) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < lexemes.len() {
        match use_at(&lexemes, i) {
            Some((name, last)) => {
                found.push(Use {
                    range: lexemes[i].range.start..lexemes[last].range.end,
                    name,
                });
                i = last + 1;
            }
            None => i += 1,
        }
    }
    found
}

/// `@@name` or `@@global.name` at `i`: the name and the index of its last
/// lexeme.
fn use_at(s: &[Lexeme], i: usize) -> Option<(String, usize)> {
    let first = s.get(i).and_then(Lexeme::word_upper)?;
    let (name, last) = if first == "@@GLOBAL" {
        if s.get(i + 1)?.token != Token::Period {
            return None;
        }
        (s.get(i + 2).and_then(Lexeme::word_upper)?, i + 2)
    } else {
        (first.strip_prefix("@@")?.to_string(), i)
    };
    PER_NODE
        .contains(&name.as_str())
        .then(|| (name.to_ascii_lowercase(), last))
}

/// The text with each use replaced by the master's value (`values[i]` for
/// `uses[i]`, already a SQL literal), and the result columns to rename back.
pub fn with_values(query: &[u8], uses: &[Use], values: &[String]) -> (Vec<u8>, Renames) {
    replaced(
        query,
        uses.iter().zip(values).map(|(u, literal)| {
            // A string literal's column is named after its content.
            let column = literal.trim_matches('\'').replace("''", "'");
            (
                u.range.clone(),
                literal.clone().into_bytes(),
                column.into_bytes(),
            )
        }),
    )
}

/// A value as a SQL literal that reads the same under any `sql_mode`: a
/// number as it is, text in single quotes (quotes doubled); `None` for
/// text with a backslash, which `NO_BACKSLASH_ESCAPES` would read
/// otherwise.
pub fn literal(value: &str, numeric: bool) -> Option<String> {
    if numeric {
        return Some(value.to_string());
    }
    if value.contains('\\') {
        return None;
    }
    Some(format!("'{}'", value.replace('\'', "''")))
}

/// Whether the variable holds a number.
pub fn is_numeric(name: &str) -> bool {
    matches!(name, "server_id" | "port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_node_variables_become_the_masters_values() {
        let sql = b"INSERT INTO audit VALUES (@@hostname, @@GLOBAL.server_id, @@session.sql_mode)";
        let found = uses(sql);
        let names: Vec<&str> = found.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["hostname", "server_id"]);
        let values = vec![literal("db-a", false).unwrap(), literal("7", true).unwrap()];
        let (text, renames) = with_values(sql, &found, &values);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "INSERT INTO audit VALUES ('db-a', 7, @@session.sql_mode)"
        );
        assert_eq!(renames[0], (b"db-a".to_vec(), b"@@hostname".to_vec()));
        assert!(uses(b"INSERT INTO t VALUES ('@@hostname')").is_empty());
        assert_eq!(literal("it's", false).unwrap(), "'it''s'");
        assert_eq!(literal("c:\\x", false), None);
    }
}
