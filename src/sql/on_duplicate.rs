//! `INSERT … ON DUPLICATE KEY UPDATE`: the one statement whose OK packet
//! can carry an AUTO_INCREMENT value it did not generate.
//!
//! When such a statement inserts no row, MariaDB reports the id of the
//! last row it updated (or, after `LAST_INSERT_ID(expr)`, that argument).
//! Pinned as `insert_id` on the next node, that value becomes the
//! candidate id of the statement's first row: it meets an existing row on
//! the primary key, and `ON DUPLICATE KEY UPDATE` then updates *that* row,
//! silently the wrong one. So for these statements lockstep asks the node
//! itself whether a value was generated (`protocol::insert_id`).

use super::lexer::{lex, Lexeme};
use sqlparser::tokenizer::Token;

/// How a statement uses LAST_INSERT_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastInsertIdUse {
    /// `LAST_INSERT_ID()`: reads the session's value from before.
    pub reads: bool,
    /// `LAST_INSERT_ID(expr)`: sets the session's value to `expr`.
    pub sets: bool,
}

/// Whether `query` holds `ON DUPLICATE KEY UPDATE`. A text that does not
/// tokenize is judged by its bytes: a false "yes" only costs a question.
pub fn updates_on_duplicate(query: &[u8]) -> bool {
    // Every write passes here: without the word, no lexer.
    if !super::lexer::contains_ignore_case(query, b"duplicate") {
        return false;
    }
    match lex(query) {
        Some(lexemes) => lexemes
            .windows(4)
            .any(|w| words(w) == ["ON", "DUPLICATE", "KEY", "UPDATE"]),
        None => super::lexer::contains_ignore_case(query, b"duplicate"),
    }
}

/// How `query` calls LAST_INSERT_ID. A text that does not tokenize counts
/// as doing both, the cautious answer.
pub fn last_insert_id_use(query: &[u8]) -> LastInsertIdUse {
    // Every write passes here: without either name, no lexer (the names
    // cannot be spelled any other way, quoted or not).
    if !super::lexer::contains_ignore_case(query, b"last_insert_id")
        && !super::lexer::contains_ignore_case(query, b"identity")
    {
        return LastInsertIdUse::default();
    }
    let Some(lexemes) = lex(query) else {
        return LastInsertIdUse {
            reads: true,
            sets: true,
        };
    };
    let mut uses = LastInsertIdUse::default();
    for (i, lexeme) in lexemes.iter().enumerate() {
        let Some(word) = lexeme.word_upper() else {
            continue;
        };
        if word.starts_with('@') && (word.ends_with("LAST_INSERT_ID") || word.ends_with("IDENTITY"))
        {
            // `@@last_insert_id`, `@@session.last_insert_id`, `@@identity`
            uses.reads = true;
            continue;
        }
        if word != "LAST_INSERT_ID" {
            continue;
        }
        match (lexemes.get(i + 1), lexemes.get(i + 2)) {
            (Some(open), Some(close))
                if open.token == Token::LParen && close.token == Token::RParen =>
            {
                uses.reads = true
            }
            (Some(open), Some(_)) if open.token == Token::LParen => uses.sets = true,
            // `@@last_insert_id` or a column of that name: a read.
            _ => uses.reads = true,
        }
    }
    uses
}

/// The table an `INSERT` writes to: (schema as written, table), unquoted.
pub fn target_table(query: &[u8]) -> Option<(Option<String>, String)> {
    let lexemes = lex(query)?;
    let mut rest = lexemes
        .iter()
        .skip_while(|l| l.word_upper().as_deref() != Some("INSERT"));
    rest.next()?;
    let mut rest = rest.skip_while(|l| {
        matches!(
            l.word_upper().as_deref(),
            Some("LOW_PRIORITY" | "DELAYED" | "HIGH_PRIORITY" | "IGNORE" | "INTO")
        )
    });
    let first = name(rest.next()?)?;
    let mut rest = rest.peekable();
    if rest.peek().is_some_and(|l| l.token == Token::Period) {
        rest.next();
        let table = name(rest.next()?)?;
        return Some((Some(first), table));
    }
    Some((None, first))
}

/// A name, quoted or not.
fn name(lexeme: &Lexeme) -> Option<String> {
    match &lexeme.token {
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

fn words(lexemes: &[Lexeme]) -> Vec<String> {
    lexemes.iter().filter_map(Lexeme::word_upper).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte checks before the lexer rule out only what the lexer
    /// would.
    #[test]
    fn writes_without_the_words_skip_the_lexer_with_the_same_answer() {
        assert!(updates_on_duplicate(
            b"INSERT INTO t VALUES (1) on duplicate key update v = 1"
        ));
        assert!(!updates_on_duplicate(b"INSERT INTO t VALUES (1)"));
        assert!(!updates_on_duplicate(
            b"INSERT INTO t VALUES ('on duplicate key update')"
        ));
        let none = LastInsertIdUse::default();
        assert_eq!(last_insert_id_use(b"INSERT INTO t VALUES (1)"), none);
        assert!(last_insert_id_use(b"INSERT INTO t VALUES (last_insert_id())").reads);
        assert!(last_insert_id_use(b"UPDATE t SET id = LAST_INSERT_ID(id + 1)").sets);
        assert!(last_insert_id_use(b"INSERT INTO t VALUES (@@identity)").reads);
    }

    #[test]
    fn finds_the_clause_not_the_words_elsewhere() {
        assert!(updates_on_duplicate(
            b"insert into t (k) values (1),(2) on duplicate key update n=n+1"
        ));
        assert!(updates_on_duplicate(
            b"INSERT INTO t SELECT * FROM u ON  DUPLICATE\nKEY UPDATE n = 1"
        ));
        assert!(!updates_on_duplicate(
            b"insert into t values ('on duplicate key update')"
        ));
        assert!(!updates_on_duplicate(b"replace into t (k) values (1)"));
    }

    #[test]
    fn names_the_target_table() {
        assert_eq!(
            target_table(b"insert into od.t (uid) values (1) on duplicate key update n=1"),
            Some((Some("od".into()), "t".into()))
        );
        assert_eq!(
            target_table(b"INSERT LOW_PRIORITY IGNORE `my t` SET a = 1"),
            Some((None, "my t".into()))
        );
        assert_eq!(target_table(b"update t set a = 1"), None);
    }

    #[test]
    fn tells_reading_from_setting() {
        let none =
            last_insert_id_use(b"insert into t (k) values (1) on duplicate key update n=n+1");
        assert_eq!(none, LastInsertIdUse::default());
        let sets = last_insert_id_use(
            b"insert into t (k) values (1) on duplicate key update id = LAST_INSERT_ID(id)",
        );
        assert!(sets.sets && !sets.reads);
        let reads = last_insert_id_use(
            b"insert into t (k, p) values (1, last_insert_id()) on duplicate key update n=n+1",
        );
        assert!(reads.reads && !reads.sets);
        let variable = last_insert_id_use(b"insert into t (k) values (@@last_insert_id)");
        assert!(last_insert_id_use(b"insert into t (k) values (@@identity)").reads);
        assert!(variable.reads);
    }
}
