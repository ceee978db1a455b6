//! The tables a DDL must hold exclusively before it can finish, read from
//! its text: the tables that wait for every open transaction that read or
//! wrote them (`ALTER TABLE`, `DROP TABLE`, `TRUNCATE`, `RENAME TABLE`,
//! `CREATE`/`DROP INDEX`, `CREATE OR REPLACE TABLE`).
//!
//! lockstep uses them to wait on the master, before the first node runs the
//! DDL, for the transactions that only *read* those tables there: reads go
//! to the master alone, so the first node never sees them
//! (`write::serialized`, docs/write-protocol.md "Waits").

use std::ops::Range;

use sqlparser::tokenizer::Token;

use super::lexer::{lex, Lexeme};

/// The tables of a DDL and its own lock-wait clause, as byte ranges of the
/// statement's text (names keep their quoting, schema and character set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExclusiveTables {
    /// Each table once, in the statement's order.
    pub names: Vec<Range<usize>>,
    /// `WAIT n` or `NOWAIT`, when the DDL has one.
    pub wait: Option<Range<usize>>,
}

/// The tables `query` must hold exclusively, or None for any other text
/// (other DDL, several statements, a temporary table).
pub fn exclusive_tables(query: &[u8]) -> Option<ExclusiveTables> {
    let lexemes = lex(query)?;
    let lexemes = match lexemes.split_last() {
        Some((last, rest)) if last.token == Token::SemiColon => rest,
        _ => &lexemes[..],
    };
    if lexemes.iter().any(|l| l.token == Token::SemiColon) {
        return None;
    }
    let mut reader = Reader {
        lexemes,
        at: 0,
        names: Vec::new(),
        wait: None,
    };
    match reader.next_word()?.as_str() {
        "ALTER" => reader.alter_table()?,
        "DROP" => reader.drop()?,
        "TRUNCATE" => reader.truncate()?,
        "RENAME" => reader.rename()?,
        "CREATE" => reader.create()?,
        _ => return None,
    }
    let mut names: Vec<Range<usize>> = Vec::new();
    for name in reader.names {
        if !names
            .iter()
            .any(|seen| query[seen.clone()] == query[name.clone()])
        {
            names.push(name);
        }
    }
    Some(ExclusiveTables {
        names,
        wait: reader.wait,
    })
}

struct Reader<'a> {
    lexemes: &'a [Lexeme],
    at: usize,
    names: Vec<Range<usize>>,
    wait: Option<Range<usize>>,
}

impl Reader<'_> {
    fn peek_word(&self) -> Option<String> {
        self.lexemes.get(self.at).and_then(Lexeme::word_upper)
    }

    fn next_word(&mut self) -> Option<String> {
        let word = self.peek_word()?;
        self.at += 1;
        Some(word)
    }

    /// Consumes `word` if it is next.
    fn skip(&mut self, word: &str) -> bool {
        let found = self.peek_word().as_deref() == Some(word);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, word: &str) -> Option<()> {
        self.skip(word).then_some(())
    }

    /// `IF EXISTS` / `IF NOT EXISTS`.
    fn skip_if_exists(&mut self) {
        if self.skip("IF") {
            self.skip("NOT");
            self.skip("EXISTS");
        }
    }

    /// `name` or `schema.name`: its byte range.
    fn name(&mut self) -> Option<Range<usize>> {
        let first = self.lexemes.get(self.at)?;
        if !matches!(first.token, Token::Word(_)) {
            return None;
        }
        let mut range = first.range.clone();
        self.at += 1;
        if self.lexemes.get(self.at).map(|l| &l.token) == Some(&Token::Period) {
            let second = self.lexemes.get(self.at + 1)?;
            if !matches!(second.token, Token::Word(_)) {
                return None;
            }
            range.end = second.range.end;
            self.at += 2;
        }
        Some(range)
    }

    fn table(&mut self) -> Option<()> {
        let name = self.name()?;
        self.names.push(name);
        Some(())
    }

    /// `WAIT n` or `NOWAIT`, if it is next.
    fn wait_clause(&mut self) {
        let Some(first) = self.lexemes.get(self.at) else {
            return;
        };
        match first.word_upper().as_deref() {
            Some("NOWAIT") => {
                self.wait = Some(first.range.clone());
                self.at += 1;
            }
            Some("WAIT") => {
                if let Some(n) = self.lexemes.get(self.at + 1) {
                    if matches!(n.token, Token::Number(..)) {
                        self.wait = Some(first.range.start..n.range.end);
                        self.at += 2;
                    }
                }
            }
            _ => {}
        }
    }

    fn comma(&mut self) -> bool {
        let found = self.lexemes.get(self.at).map(|l| &l.token) == Some(&Token::Comma);
        if found {
            self.at += 1;
        }
        found
    }

    /// `ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] t [WAIT n | NOWAIT] …`
    fn alter_table(&mut self) -> Option<()> {
        self.skip("ONLINE");
        self.skip("IGNORE");
        self.expect("TABLE")?;
        self.skip_if_exists();
        self.table()?;
        self.wait_clause();
        Some(())
    }

    /// `DROP TABLE[S] [IF EXISTS] t [, t …] [WAIT n | NOWAIT]` and
    /// `DROP INDEX [IF EXISTS] i ON t [WAIT n | NOWAIT]`.
    fn drop(&mut self) -> Option<()> {
        match self.next_word()?.as_str() {
            "TABLE" | "TABLES" => {
                self.skip_if_exists();
                self.table()?;
                while self.comma() {
                    self.table()?;
                }
                self.wait_clause();
            }
            "INDEX" => {
                self.skip_if_exists();
                self.name()?;
                self.expect("ON")?;
                self.table()?;
                self.wait_clause();
            }
            _ => return None,
        }
        Some(())
    }

    /// `TRUNCATE [TABLE] t [WAIT n | NOWAIT]`
    fn truncate(&mut self) -> Option<()> {
        self.skip("TABLE");
        self.table()?;
        self.wait_clause();
        Some(())
    }

    /// `RENAME TABLE[S] [IF EXISTS] t [WAIT n | NOWAIT] TO u [, t2 TO u2 …]`:
    /// the tables renamed, not their new names.
    fn rename(&mut self) -> Option<()> {
        if !(self.skip("TABLE") || self.skip("TABLES")) {
            return None;
        }
        self.skip_if_exists();
        loop {
            self.table()?;
            self.wait_clause();
            self.expect("TO")?;
            self.name()?;
            if !self.comma() {
                return Some(());
            }
        }
    }

    /// `CREATE [OR REPLACE] [ONLINE|OFFLINE] [UNIQUE|FULLTEXT|SPATIAL] INDEX
    /// [IF NOT EXISTS] i [USING type] ON t (…) [WAIT n | NOWAIT]` and
    /// `CREATE OR REPLACE TABLE t …` (which drops `t`).
    fn create(&mut self) -> Option<()> {
        let replaces = self.skip("OR") && self.skip("REPLACE");
        if replaces && self.skip("TABLE") {
            self.skip_if_exists();
            return self.table();
        }
        self.skip("ONLINE");
        self.skip("OFFLINE");
        for kind in ["UNIQUE", "FULLTEXT", "SPATIAL"] {
            self.skip(kind);
        }
        self.expect("INDEX")?;
        self.skip_if_exists();
        self.name()?;
        if self.skip("USING") {
            self.next_word()?;
        }
        self.expect("ON")?;
        self.table()?;
        self.skip_parentheses()?;
        self.wait_clause();
        Some(())
    }

    fn skip_parentheses(&mut self) -> Option<()> {
        if self.lexemes.get(self.at)?.token != Token::LParen {
            return None;
        }
        let mut depth = 0usize;
        while let Some(lexeme) = self.lexemes.get(self.at) {
            self.at += 1;
            match lexeme.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(sql: &str) -> Option<(Vec<&str>, Option<&str>)> {
        let found = exclusive_tables(sql.as_bytes())?;
        Some((
            found.names.iter().map(|r| &sql[r.clone()]).collect(),
            found.wait.map(|r| &sql[r]),
        ))
    }

    #[test]
    fn the_tables_of_each_form_are_found_with_their_quoting() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("ALTER TABLE t ADD COLUMN c INT", &["t"], None),
            (
                "alter online ignore table if exists `d`.`t 1` wait 5 add c int",
                &["`d`.`t 1`"],
                Some("wait 5"),
            ),
            (
                "ALTER TABLE d.t NOWAIT ADD COLUMN wait INT",
                &["d.t"],
                Some("NOWAIT"),
            ),
            (
                "DROP TABLE IF EXISTS a, d.b, a NOWAIT;",
                &["a", "d.b"],
                Some("NOWAIT"),
            ),
            ("DROP INDEX i ON t WAIT 0", &["t"], Some("WAIT 0")),
            ("TRUNCATE t", &["t"], None),
            ("TRUNCATE TABLE d.t WAIT 2", &["d.t"], Some("WAIT 2")),
            (
                "RENAME TABLE a TO b, c WAIT 1 TO d",
                &["a", "c"],
                Some("WAIT 1"),
            ),
            (
                "CREATE UNIQUE INDEX IF NOT EXISTS i USING BTREE ON d.t (a, (b + 1)) NOWAIT",
                &["d.t"],
                Some("NOWAIT"),
            ),
            ("CREATE OR REPLACE TABLE t (id INT)", &["t"], None),
            ("/*!40101 ALTER TABLE t ENGINE=InnoDB */", &["t"], None),
        ];
        for (sql, names, wait) in cases {
            assert_eq!(tables(sql), Some((names.to_vec(), *wait)), "{sql}");
        }
    }

    #[test]
    fn other_statements_have_none() {
        for sql in [
            "CREATE TABLE t (id INT)",
            "CREATE TEMPORARY TABLE t (id INT)",
            "DROP TEMPORARY TABLE t",
            "CREATE DATABASE d",
            "DROP DATABASE d",
            "ALTER DATABASE d CHARACTER SET utf8mb4",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            "ALTER TABLE t ADD c INT; DROP TABLE u",
            "DROP VIEW v",
            "RENAME USER a TO b",
        ] {
            assert_eq!(tables(sql), None, "{sql}");
        }
    }
}
