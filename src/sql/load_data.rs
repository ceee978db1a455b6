//! `LOAD DATA` and `LOAD XML`. With `LOCAL INFILE 'name'` the file is on
//! the client's machine: lockstep asks the client for it, as MariaDB does,
//! and gives its bytes to every node and every replay. Either way MariaDB's
//! OK packet carries no AUTO_INCREMENT value for a load, so the node is
//! asked which one it made (`protocol::insert_id`).

use super::lexer::{lex, Lexeme};
use sqlparser::tokenizer::Token;

/// What a text is, as far as client files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFile {
    /// It loads no client file.
    None,
    /// One statement that loads the client's file of this name.
    Named(Vec<u8>),
    /// A text of several statements, one of which loads a client file.
    AmongSeveral,
}

/// Whether `query` is a `LOAD DATA` or `LOAD XML` (of any file).
pub fn loads_rows(query: &[u8]) -> bool {
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words: Vec<Option<String>> = lexemes.iter().take(2).map(Lexeme::word_upper).collect();
    words.first().cloned().flatten().as_deref() == Some("LOAD")
        && matches!(
            words.get(1).cloned().flatten().as_deref(),
            Some("DATA" | "XML")
        )
}

/// Whether `query` loads a file from the client.
pub fn client_file(query: &[u8]) -> ClientFile {
    let Some(lexemes) = lex(query) else {
        return ClientFile::None;
    };
    let statements: Vec<&[Lexeme]> = lexemes
        .split(|l| l.token == Token::SemiColon)
        .filter(|s| !s.is_empty())
        .collect();
    let mut named = statements
        .iter()
        .filter_map(|statement| file_name(query, statement));
    match (named.next(), statements.len()) {
        (None, _) => ClientFile::None,
        (Some(name), 1) => ClientFile::Named(name),
        (Some(_), _) => ClientFile::AmongSeveral,
    }
}

/// The file name of `LOAD {DATA|XML} [LOW_PRIORITY|CONCURRENT] LOCAL INFILE 'name'`.
fn file_name(query: &[u8], statement: &[Lexeme]) -> Option<Vec<u8>> {
    let words: Vec<Option<String>> = statement.iter().take(4).map(Lexeme::word_upper).collect();
    let word = |i: usize| words.get(i).cloned().flatten();
    if word(0).as_deref() != Some("LOAD") || !matches!(word(1).as_deref(), Some("DATA" | "XML")) {
        return None;
    }
    let priority = matches!(word(2).as_deref(), Some("LOW_PRIORITY" | "CONCURRENT"));
    let local = if priority { 3 } else { 2 };
    let is = |i: usize, expected: &str| {
        statement.get(i).and_then(Lexeme::word_upper).as_deref() == Some(expected)
    };
    if !is(local, "LOCAL") || !is(local + 1, "INFILE") {
        return None;
    }
    let literal = statement.get(local + 2)?;
    let value = match &literal.token {
        Token::SingleQuotedString(value) | Token::DoubleQuotedString(value) => value,
        _ => return None,
    };
    // The text's own bytes where the literal has no escapes (a name in the
    // client's character set survives); the tokenizer's value otherwise.
    let inner = query.get(literal.range.start + 1..literal.range.end.checked_sub(1)?)?;
    if inner.len() == value.len() {
        Some(inner.to_vec())
    } else {
        Some(value.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_of_a_client_file() {
        let named = |sql: &str| client_file(sql.as_bytes());
        assert_eq!(
            named("LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t"),
            ClientFile::Named(b"/tmp/a.csv".to_vec())
        );
        assert_eq!(
            named(
                "load data low_priority local infile \"b c\" into table t fields terminated by ','"
            ),
            ClientFile::Named(b"b c".to_vec())
        );
        assert_eq!(
            named("LOAD XML CONCURRENT LOCAL INFILE 'x.xml' INTO TABLE t"),
            ClientFile::Named(b"x.xml".to_vec())
        );
        assert_eq!(
            named("LOAD DATA LOCAL INFILE 'it''s' INTO TABLE t"),
            ClientFile::Named(b"it's".to_vec())
        );
        assert_eq!(
            client_file("LOAD DATA LOCAL INFILE 'caf\u{e9}' INTO TABLE t".as_bytes()),
            ClientFile::Named("caf\u{e9}".as_bytes().to_vec())
        );
    }

    #[test]
    fn loads_of_any_file_are_loads() {
        assert!(loads_rows(b"LOAD DATA INFILE '/tmp/a' INTO TABLE t"));
        assert!(loads_rows(b"load xml local infile 'a' into table t"));
        assert!(!loads_rows(b"LOAD INDEX INTO CACHE t"));
        assert!(!loads_rows(b"SELECT 'LOAD DATA'"));
    }

    #[test]
    fn server_files_and_other_statements_are_not_client_files() {
        for sql in [
            "LOAD DATA INFILE '/tmp/a.csv' INTO TABLE t",
            "LOAD INDEX INTO CACHE t",
            "SELECT 'LOAD DATA LOCAL INFILE'",
            "INSERT INTO t VALUES ('local')",
        ] {
            assert_eq!(client_file(sql.as_bytes()), ClientFile::None, "{sql}");
        }
        assert_eq!(
            client_file(b"SET @a = 1; LOAD DATA LOCAL INFILE 'f' INTO TABLE t"),
            ClientFile::AmongSeveral
        );
    }
}
