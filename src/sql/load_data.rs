//! `LOAD DATA` and `LOAD XML`. With `LOCAL INFILE 'name'` the file is on
//! the client's machine: lockstep asks the client for it, as MariaDB does,
//! and gives its bytes to every node and every replay. Without LOCAL the
//! file is on the master's machine, where the other nodes and a later
//! replay cannot find it: lockstep reads it there once, as MariaDB's
//! statement binary log does, and the other nodes load its bytes as a
//! LOCAL file (`write::server_file`). Either way MariaDB's
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
    /// A text of several statements, one of which loads a client file or a
    /// server file.
    AmongSeveral,
}

/// Whether `query` is a `LOAD DATA` or `LOAD XML` (of any file).
pub fn loads_rows(query: &[u8]) -> bool {
    // Every write passes here: the lexer only for what may be one.
    if super::lexer::plainly_starts_with_none_of(query, &["LOAD"]) {
        return false;
    }
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

/// A load of a file on the server: `LOAD {DATA|XML} [LOW_PRIORITY|CONCURRENT]
/// INFILE 'name' …`, one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFile {
    /// The name as written.
    pub name: Vec<u8>,
    /// The schema named with the table (`INTO TABLE db.t`): MariaDB looks
    /// for a bare file name in that database's directory.
    pub table_schema: Option<Vec<u8>>,
    /// The statement with `LOCAL` before `INFILE`: what nodes that are
    /// given the file's bytes run.
    pub as_local: Vec<u8>,
}

/// The server file `query` loads, when it is one statement that loads one.
pub fn server_file(query: &[u8]) -> Option<ServerFile> {
    let lexemes = lex(query)?;
    let statements: Vec<&[Lexeme]> = lexemes
        .split(|l| l.token == Token::SemiColon)
        .filter(|s| !s.is_empty())
        .collect();
    let [statement] = statements.as_slice() else {
        return None;
    };
    let infile = load_keyword_at(statement)?;
    if is_word(statement, infile, "LOCAL") || !is_word(statement, infile, "INFILE") {
        return None;
    }
    let name = literal(query, statement.get(infile + 1)?)?;
    let at = statement[infile].range.start;
    let as_local = [&query[..at], b"LOCAL ", &query[at..]].concat();
    Some(ServerFile {
        name,
        table_schema: table_schema(query, &statement[infile + 2..]),
        as_local,
    })
}

/// The schema of `[REPLACE|IGNORE] INTO TABLE db.t …`, when named.
fn table_schema(query: &[u8], rest: &[Lexeme]) -> Option<Vec<u8>> {
    let skip = usize::from(is_word(rest, 0, "REPLACE") || is_word(rest, 0, "IGNORE"));
    if !is_word(rest, skip, "INTO") || !is_word(rest, skip + 1, "TABLE") {
        return None;
    }
    let schema = rest.get(skip + 2)?;
    if rest.get(skip + 3)?.token != Token::Period {
        return None;
    }
    let Token::Word(word) = &schema.token else {
        return None;
    };
    // The text's own bytes (a name in the client's character set), without
    // the quotes; the tokenizer's value where quotes were doubled inside.
    let raw = &query[schema.range.clone()];
    let inner = match word.quote_style {
        Some(_) => raw.get(1..raw.len().checked_sub(1)?)?,
        None => raw,
    };
    Some(if inner.len() == word.value.len() {
        inner.to_vec()
    } else {
        word.value.as_bytes().to_vec()
    })
}

/// The SQL expression of the path MariaDB opens for a server-side load
/// (measured on 10.11): an absolute name as it is, one with a directory
/// relative to the data directory, a bare one in the directory of the
/// table's database (the session's when the table is not qualified).
/// Hex-quoted, so that it reads the same under any `sql_mode` and
/// character set.
pub fn server_path_expression(file: &ServerFile) -> String {
    let hex = |bytes: &[u8]| -> String {
        let digits: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!("X'{digits}'")
    };
    let name = hex(&file.name);
    if file.name.first() == Some(&b'/') {
        name
    } else if file.name.contains(&b'/') {
        format!("CONCAT(@@datadir, {name})")
    } else {
        let schema = file
            .table_schema
            .as_deref()
            .map_or_else(|| "DATABASE()".to_string(), hex);
        format!("CONCAT(@@datadir, {schema}, '/', {name})")
    }
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
    // A server file among several is refused too: it is read on the
    // master for one statement of its own only (`server_file`).
    let server_file_among_several =
        statements.len() > 1 && statements.iter().any(|s| loads_a_server_file(s));
    match (named.next(), statements.len()) {
        (None, _) if server_file_among_several => ClientFile::AmongSeveral,
        (None, _) => ClientFile::None,
        (Some(name), 1) => ClientFile::Named(name),
        (Some(_), _) => ClientFile::AmongSeveral,
    }
}

fn loads_a_server_file(statement: &[Lexeme]) -> bool {
    load_keyword_at(statement).is_some_and(|at| is_word(statement, at, "INFILE"))
}

/// The file name of `LOAD {DATA|XML} [LOW_PRIORITY|CONCURRENT] LOCAL INFILE 'name'`.
fn file_name(query: &[u8], statement: &[Lexeme]) -> Option<Vec<u8>> {
    let local = load_keyword_at(statement)?;
    if !is_word(statement, local, "LOCAL") || !is_word(statement, local + 1, "INFILE") {
        return None;
    }
    literal(query, statement.get(local + 2)?)
}

/// Where the word after `LOAD {DATA|XML} [LOW_PRIORITY|CONCURRENT]` is, in
/// a statement that starts so.
fn load_keyword_at(statement: &[Lexeme]) -> Option<usize> {
    if !is_word(statement, 0, "LOAD")
        || !(is_word(statement, 1, "DATA") || is_word(statement, 1, "XML"))
    {
        return None;
    }
    let priority = is_word(statement, 2, "LOW_PRIORITY") || is_word(statement, 2, "CONCURRENT");
    Some(if priority { 3 } else { 2 })
}

fn is_word(statement: &[Lexeme], i: usize, expected: &str) -> bool {
    statement.get(i).and_then(Lexeme::word_upper).as_deref() == Some(expected)
}

/// A string literal's value.
fn literal(query: &[u8], literal: &Lexeme) -> Option<Vec<u8>> {
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

    /// The byte check before the lexer rules out only what the lexer would.
    #[test]
    fn only_texts_that_may_start_with_load_are_lexed() {
        assert!(loads_rows(b"load data infile 'x' into table t"));
        assert!(loads_rows(b"/* c */ LOAD DATA INFILE 'x' INTO TABLE t"));
        assert!(loads_rows(b"LOAD XML INFILE 'x' INTO TABLE t"));
        assert!(!loads_rows(b"INSERT INTO t VALUES (1)"));
        assert!(!loads_rows(b"LOAD INDEX INTO CACHE t"));
    }

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
    fn a_server_file_is_loaded_as_a_local_one_elsewhere() {
        let file = server_file(b"load data concurrent infile '/tmp/a.csv' into table t")
            .expect("a server file");
        assert_eq!(file.name, b"/tmp/a.csv");
        assert_eq!(
            file.as_local,
            b"load data concurrent LOCAL infile '/tmp/a.csv' into table t"
        );
        let file = server_file(b"LOAD XML INFILE 'x.xml' INTO TABLE t;").expect("a server file");
        assert_eq!(
            file.as_local,
            b"LOAD XML LOCAL INFILE 'x.xml' INTO TABLE t;"
        );
        for sql in [
            "LOAD DATA LOCAL INFILE 'a' INTO TABLE t",
            "LOAD INDEX INTO CACHE t",
            "SELECT 'LOAD DATA INFILE'",
            "LOAD DATA INFILE 'a' INTO TABLE t; SELECT 1",
        ] {
            assert_eq!(server_file(sql.as_bytes()), None, "{sql}");
        }
    }

    #[test]
    fn a_server_path_is_resolved_as_mariadb_resolves_it() {
        let path = |sql: &str| server_path_expression(&server_file(sql.as_bytes()).expect("file"));
        assert_eq!(path("LOAD DATA INFILE '/t/a' INTO TABLE t"), "X'2F742F61'");
        assert_eq!(
            path("LOAD DATA INFILE 'd/a' INTO TABLE t"),
            "CONCAT(@@datadir, X'642F61')"
        );
        assert_eq!(
            path("LOAD DATA INFILE 'a' INTO TABLE t"),
            "CONCAT(@@datadir, DATABASE(), '/', X'61')"
        );
        assert_eq!(
            path("LOAD DATA INFILE 'a' IGNORE INTO TABLE `d`.t"),
            "CONCAT(@@datadir, X'64', '/', X'61')"
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
        assert_eq!(
            client_file(b"LOAD DATA INFILE 'f' INTO TABLE t; SELECT 1"),
            ClientFile::AmongSeveral
        );
    }
}
