//! `UPDATE … LIMIT n` and `DELETE … LIMIT n` given an order every node
//! follows: the table's key, or the key after their own ORDER BY to break
//! its ties.
//!
//! Without an order, which rows such a statement changes depends on the
//! order the node reads them in: a table without a primary key is read in
//! the order its rows were inserted, which on B, A and the tail is each
//! node's own order of concurrent inserts; and any table may be read
//! through another index where a node's statistics differ. MariaDB's
//! statement binlog flags it (Note 1592, "LIMIT clause"). lockstep adds
//! `ORDER BY` the table's primary key, or every column for a table without
//! one (rows equal in every column are interchangeable), before `LIMIT`:
//! the rows MariaDB may choose from are the same, and every node chooses
//! the same ones.
//!
//! An ORDER BY of its own leaves the same choice among rows that tie
//! (`ORDER BY created LIMIT 100` where many rows share a `created`): the key
//! is appended as its last term.
//!
//! A copy depends on the order it reads rows in without a LIMIT too, when
//! the order decides what is written (Note 1592 flags these): a table with
//! an AUTO_INCREMENT column numbers the rows in that order, and with
//! `INSERT IGNORE`, `REPLACE` or `ON DUPLICATE KEY UPDATE` the first (or
//! last) of the rows with one key wins. The caller says when
//! (`copy_order_matters`, and whether the target numbers its rows); such a
//! copy is ordered the same way, at the end of its SELECT.

use sqlparser::tokenizer::Token;

use super::lexer::{lex, Lexeme};
use super::quote::identifier;

/// A single-table UPDATE or DELETE with a LIMIT whose rows are not fully
/// ordered: no ORDER BY, or one whose ties the key must break (`ORDER BY
/// created LIMIT 100` with equal `created` values).
#[derive(Debug, PartialEq, Eq)]
pub struct UnorderedLimit {
    /// As written, without quotes; `None` for the session's schema.
    pub schema: Option<String>,
    pub table: String,
    /// Byte offset of the `LIMIT` keyword, or of the SELECT's end for a
    /// copy without one.
    limit_at: usize,
    /// It has an ORDER BY already: the key is appended to it.
    has_order: bool,
    /// How the statement names the table (its alias, or its name), for a
    /// SELECT's columns; `None` for an UPDATE's or DELETE's own table.
    qualifier: Option<String>,
}

impl UnorderedLimit {
    /// The text with `ORDER BY columns` before its LIMIT (`, columns` after
    /// an ORDER BY it has).
    pub fn ordered_by(&self, query: &[u8], columns: &[String]) -> Vec<u8> {
        let order: Vec<Vec<u8>> = columns
            .iter()
            .map(|c| match &self.qualifier {
                Some(q) => [
                    identifier(q.as_bytes()),
                    b".".to_vec(),
                    identifier(c.as_bytes()),
                ]
                .concat(),
                None => identifier(c.as_bytes()),
            })
            .collect();
        ordered_at(
            query,
            self.limit_at,
            self.has_order,
            &order.join(b", ".as_slice()),
        )
    }
}

/// The statement's table and where its LIMIT is, when `query` is one
/// single-table UPDATE or DELETE with a LIMIT and no ORDER BY, or a copy
/// of one table's rows by LIMIT; with `every_copy`, a copy of one table's
/// rows without a LIMIT too (ordered at the end of its SELECT).
pub fn unordered_limit(query: &[u8], every_copy: bool) -> Option<UnorderedLimit> {
    if !every_copy && !contains_limit(query) {
        return None;
    }
    let lexemes = lex(query)?;
    let statement = match lexemes.last() {
        Some(l) if l.token == Token::SemiColon => &lexemes[..lexemes.len() - 1],
        _ => &lexemes[..],
    };
    if statement.iter().any(|l| l.token == Token::SemiColon) {
        return None;
    }
    if matches!(upper(statement, 0).as_deref(), Some("INSERT" | "REPLACE")) {
        return unordered_insert_select(statement, query, every_copy);
    }
    if !contains_limit(query) {
        return None;
    }
    let table_at = table_position(statement)?;
    let (schema, table, after) = qualified_name(statement, table_at, query)?;
    // A multi-table UPDATE (`UPDATE a, b SET …`, `UPDATE a JOIN b …`)
    // takes no LIMIT; its text is left to the server.
    match statement.get(after).and_then(Lexeme::word_upper).as_deref() {
        Some("SET" | "WHERE" | "ORDER" | "LIMIT" | "RETURNING") => {}
        _ => return None,
    }
    let mut depth = 0i32;
    let mut limit_at = None;
    let mut has_order = false;
    for (i, l) in statement.iter().enumerate().skip(after) {
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 => match l.word_upper().as_deref() {
                Some("ORDER") if upper(statement, i + 1).as_deref() == Some("BY") => {
                    has_order = true
                }
                Some("LIMIT") => limit_at = Some(l.range.start),
                _ => {}
            },
            _ => {}
        }
    }
    Some(UnorderedLimit {
        schema,
        table,
        limit_at: limit_at?,
        has_order,
        qualifier: None,
    })
}

/// `INSERT … SELECT … FROM one_table … LIMIT n`: the rows copied depend on
/// the order they are read in, as an UPDATE's do; with `every_copy`, a
/// copy without LIMIT is ordered at the end of its SELECT. Only a plain
/// select of one table (no join, union, grouping, DISTINCT or aggregate,
/// whose order would change what it means) is given one.
fn unordered_insert_select(s: &[Lexeme], query: &[u8], every_copy: bool) -> Option<UnorderedLimit> {
    let select = s
        .iter()
        .position(|l| l.word_upper().as_deref() == Some("SELECT"))?;
    // The SELECT of the INSERT itself, not one inside a VALUES tuple.
    if s[..select]
        .iter()
        .any(|l| l.word_upper().as_deref() == Some("VALUES"))
    {
        return None;
    }
    let mut depth = 0i32;
    let mut from = None;
    let mut limit_at = None;
    let mut has_order = false;
    // Where the SELECT ends: before `ON DUPLICATE KEY UPDATE` or
    // `RETURNING`, or with the statement.
    let mut end = s.last()?.range.end;
    for (i, l) in s.iter().enumerate().skip(select + 1) {
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 && from.is_some() => return None,
            _ if depth == 0 => match l.word_upper().as_deref() {
                Some(
                    "DISTINCT" | "DISTINCTROW" | "GROUP" | "HAVING" | "UNION" | "EXCEPT"
                    | "INTERSECT" | "JOIN" | "STRAIGHT_JOIN" | "COUNT" | "SUM" | "MIN" | "MAX"
                    | "AVG" | "GROUP_CONCAT" | "WINDOW" | "OVER",
                ) => return None,
                Some("FROM") if from.is_none() => from = Some(i),
                Some("ORDER") if upper(s, i + 1).as_deref() == Some("BY") => has_order = true,
                Some("LIMIT") => limit_at = Some(l.range.start),
                // Only `ON DUPLICATE`: a join (with its `ON`) is refused above.
                Some("ON" | "RETURNING") => {
                    end = s[i - 1].range.end;
                    break;
                }
                _ => {}
            },
            _ => {}
        }
    }
    let limit_at = match limit_at {
        Some(at) => at,
        None if every_copy => end,
        None => return None,
    };
    let (schema, table, after) = qualified_name(s, from? + 1, query)?;
    if schema.is_none() && table.eq_ignore_ascii_case("DUAL") {
        // One row at most: no order to give.
        return None;
    }
    // What may follow the table: its clauses, or the SELECT's end.
    let ends_table = |i: usize| match upper(s, i).as_deref() {
        None => i >= s.len(),
        Some(w) => matches!(w, "WHERE" | "ORDER" | "LIMIT" | "ON" | "RETURNING"),
    };
    let (qualifier, after) = if ends_table(after) {
        (table.clone(), after)
    } else {
        match upper(s, after).as_deref() {
            Some("AS") => (word(s, after + 1, query)?, after + 2),
            Some(_) => (word(s, after, query)?, after + 1),
            None => return None,
        }
    };
    if !ends_table(after) {
        return None;
    }
    Some(UnorderedLimit {
        schema,
        table,
        limit_at,
        has_order,
        qualifier: Some(qualifier),
    })
}

/// A copy of rows chosen by LIMIT that the key of one table cannot order:
/// `INSERT`/`REPLACE … SELECT` or `CREATE TABLE … SELECT` from a join, a
/// union, a grouping, DISTINCT. Every column of its result is its order
/// (`ORDER BY 1, 2, …, n`): rows that still tie are equal in every column
/// copied, so whichever a node takes, it copies the same values. Two limits
/// stay: values equal under a collation but not in bytes ('a' and 'A' under
/// a case-insensitive one) tie, and BLOB/TEXT values sort by their first
/// `max_sort_length` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct UnorderedCopy {
    /// The SELECT (or `WITH … SELECT`) as written: the master prepares it to
    /// say how many columns it gives.
    select: std::ops::Range<usize>,
    /// Byte offset of the outermost `LIMIT`, or of the SELECT's end for a
    /// copy without one.
    limit_at: usize,
    /// It has an ORDER BY already: the columns break its ties.
    has_order: bool,
    /// It has an outermost LIMIT (else it is ordered for what its order
    /// writes: `unordered_copy`'s `every_copy`).
    has_limit: bool,
    /// The tables its SELECT reads (`schema`, `table` as written), or
    /// `None` when it reads a derived table or a name lockstep cannot read.
    sources: Option<Vec<(Option<String>, String)>>,
}

impl UnorderedCopy {
    /// Whether it has an outermost LIMIT.
    pub fn has_limit(&self) -> bool {
        self.has_limit
    }

    /// The tables its SELECT reads, when lockstep can name them all.
    pub fn sources(&self) -> Option<&[(Option<String>, String)]> {
        self.sources.as_deref()
    }

    /// The SELECT part of the statement, whose columns order it.
    pub fn select<'q>(&self, query: &'q [u8]) -> &'q [u8] {
        &query[self.select.clone()]
    }

    /// The text with `ORDER BY 1, …, columns` before its outermost LIMIT
    /// (`, 1, …` after an ORDER BY it has).
    pub fn ordered_by_positions(&self, query: &[u8], columns: usize) -> Vec<u8> {
        let positions: Vec<String> = (1..=columns).map(|c| c.to_string()).collect();
        ordered_at(
            query,
            self.limit_at,
            self.has_order,
            positions.join(", ").as_bytes(),
        )
    }
}

/// `query` with `ORDER BY terms` at byte `at` (before a LIMIT, or where the
/// SELECT ends), or `, terms` after the ORDER BY it has.
fn ordered_at(query: &[u8], at: usize, has_order: bool, terms: &[u8]) -> Vec<u8> {
    let (head, tail) = query.split_at(at);
    let mut out = Vec::with_capacity(query.len() + terms.len() + 12);
    if has_order {
        // `… ORDER BY a LIMIT`: right after the last term.
        out.extend_from_slice(head.trim_ascii_end());
        out.extend_from_slice(b", ");
    } else {
        out.extend_from_slice(head);
        if !head.last().is_some_and(u8::is_ascii_whitespace) {
            out.push(b' ');
        }
        out.extend_from_slice(b"ORDER BY ");
    }
    out.extend_from_slice(terms);
    let tail = tail.trim_ascii_start();
    if !tail.is_empty() && !tail.starts_with(b";") {
        out.push(b' ');
    }
    out.extend_from_slice(tail);
    out
}

/// Whether which rows a copy writes depends on the order it reads them in,
/// by the statement's own words: `INSERT IGNORE`, `REPLACE`, `ON DUPLICATE
/// KEY UPDATE` (the first or last row of a key wins), or a `CREATE TABLE …
/// SELECT` that defines an AUTO_INCREMENT column or says IGNORE or REPLACE.
/// (A target table's own AUTO_INCREMENT column is the catalog's to tell.)
pub fn copy_order_matters(query: &[u8]) -> bool {
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words: Vec<Option<String>> = lexemes.iter().map(Lexeme::word_upper).collect();
    let word = |i: usize| words.get(i).and_then(Option::as_deref);
    match word(0) {
        Some("REPLACE") => true,
        Some("INSERT") => {
            word(1) == Some("IGNORE")
                || (word(2) == Some("IGNORE") && word(1).is_some())
                || (0..words.len()).any(|i| word(i) == Some("DUPLICATE"))
        }
        Some("CREATE") => {
            let Some(select) = copy_select_position(&lexemes) else {
                return false;
            };
            (0..select).any(|i| {
                matches!(word(i), Some("AUTO_INCREMENT" | "IGNORE"))
                    || (word(i) == Some("REPLACE") && word(i.wrapping_sub(1)) != Some("OR"))
            })
        }
        _ => false,
    }
}

/// Where the SELECT and its outermost LIMIT are, when `query` is one
/// `INSERT`/`REPLACE … SELECT … LIMIT` or `CREATE TABLE … SELECT … LIMIT`
/// that `unordered_limit` leaves alone (it orders one table's copy by its
/// key, which is cheaper); with `every_copy`, such a copy without LIMIT
/// too, ordered where its SELECT ends.
pub fn unordered_copy(query: &[u8], every_copy: bool) -> Option<UnorderedCopy> {
    if !every_copy && !contains_limit(query) {
        return None;
    }
    let lexemes = lex(query)?;
    let s = match lexemes.last() {
        Some(l) if l.token == Token::SemiColon => &lexemes[..lexemes.len() - 1],
        _ => &lexemes[..],
    };
    if s.iter().any(|l| l.token == Token::SemiColon) {
        return None;
    }
    let select = copy_select_position(s)?;
    let sources = source_tables(s, select, query);
    let mut depth = 0i32;
    let mut limit_at = None;
    let mut has_order = false;
    // Whether it reads a table at all: `SELECT 1, 2 [FROM DUAL] WHERE NOT
    // EXISTS (…)` makes one row at most, in no order.
    let mut reads_rows = false;
    let mut end = query.len();
    for (i, l) in s.iter().enumerate().skip(select) {
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 => match l.word_upper().as_deref() {
                Some("ORDER") if upper(s, i + 1).as_deref() == Some("BY") => has_order = true,
                Some("LIMIT") => limit_at = Some(l.range.start),
                Some("FROM") => reads_rows |= upper(s, i + 1).as_deref() != Some("DUAL"),
                // A LIMIT before a UNION's next part, or a grouping whose
                // ORDER BY MariaDB refuses: left to the server.
                Some("UNION" | "EXCEPT" | "INTERSECT") => {
                    limit_at = None;
                    has_order = false;
                }
                Some("ROLLUP") => return None,
                Some("ON") if upper(s, i + 1).as_deref() == Some("DUPLICATE") => {
                    end = l.range.start;
                    break;
                }
                Some("RETURNING") => {
                    end = l.range.start;
                    break;
                }
                _ => {}
            },
            _ => {}
        }
    }
    let start = s[select].range.start;
    let select_end = query[..end.min(s.last()?.range.end)]
        .trim_ascii_end()
        .len()
        .max(start);
    let has_limit = limit_at.is_some();
    let limit_at = match limit_at {
        Some(at) => at,
        None if every_copy && reads_rows => select_end,
        None => return None,
    };
    Some(UnorderedCopy {
        select: start..select_end,
        limit_at,
        has_order,
        has_limit,
        sources,
    })
}

/// The tables a copy's SELECT (from `select` on) reads at its own level:
/// each name after `FROM`, `JOIN` or a comma between them, in every part
/// of a union. `None` when one is a derived table, a parenthesized join or
/// a name the lexer cannot read.
fn source_tables(
    s: &[Lexeme],
    select: usize,
    query: &[u8],
) -> Option<Vec<(Option<String>, String)>> {
    let mut tables = Vec::new();
    let mut depth = 0i32;
    let mut in_from = false;
    let mut i = select;
    while i < s.len() {
        let l = &s[i];
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth != 0 => {}
            Token::Comma if in_from => {
                let (schema, table, _) = source_name(s, i + 1, query)?;
                tables.push((schema, table));
            }
            _ => match l.word_upper().as_deref() {
                Some("FROM" | "JOIN" | "STRAIGHT_JOIN") => {
                    in_from = true;
                    let (schema, table, _) = source_name(s, i + 1, query)?;
                    if !(schema.is_none() && table.eq_ignore_ascii_case("DUAL")) {
                        tables.push((schema, table));
                    }
                }
                Some(
                    "WHERE" | "GROUP" | "HAVING" | "ORDER" | "LIMIT" | "UNION" | "EXCEPT"
                    | "INTERSECT" | "WINDOW" | "RETURNING" | "ON" | "USING",
                ) => in_from = false,
                _ => {}
            },
        }
        i += 1;
    }
    Some(tables)
}

/// A table named at `i` in a FROM clause; `None` for a derived table.
fn source_name(s: &[Lexeme], i: usize, query: &[u8]) -> Option<(Option<String>, String, usize)> {
    if s.get(i).map(|l| &l.token) == Some(&Token::LParen) {
        return None;
    }
    qualified_name(s, i, query)
}

/// The index of the SELECT (or WITH) whose rows an `INSERT`/`REPLACE` or a
/// `CREATE TABLE` copies, at the statement's own level.
fn copy_select_position(s: &[Lexeme]) -> Option<usize> {
    let creates_table = match upper(s, 0).as_deref() {
        Some("INSERT" | "REPLACE") => false,
        Some("CREATE") => {
            // `CREATE [OR REPLACE] [TEMPORARY] TABLE`: not a view, whose
            // definition must stay as written.
            let table = s
                .iter()
                .position(|l| l.word_upper().as_deref() == Some("TABLE"))?;
            let leading = s[1..table].iter().map(Lexeme::word_upper);
            if !leading
                .into_iter()
                .all(|w| matches!(w.as_deref(), Some("OR" | "REPLACE" | "TEMPORARY")))
            {
                return None;
            }
            true
        }
        _ => return None,
    };
    let mut depth = 0i32;
    for (i, l) in s.iter().enumerate().skip(1) {
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 => match l.word_upper().as_deref() {
                Some("SELECT" | "WITH") => return Some(i),
                Some("VALUES" | "VALUE" | "SET") if !creates_table => return None,
                Some("LIKE") if creates_table => return None,
                _ => {}
            },
            _ => {}
        }
    }
    None
}

/// Cheap test before lexing: most writes have no LIMIT.
fn contains_limit(query: &[u8]) -> bool {
    query.windows(5).any(|w| w.eq_ignore_ascii_case(b"limit"))
}

fn upper(s: &[Lexeme], i: usize) -> Option<String> {
    s.get(i).and_then(Lexeme::word_upper)
}

/// Where the table name starts: after `UPDATE [LOW_PRIORITY] [IGNORE]` or
/// `DELETE [LOW_PRIORITY] [QUICK] [IGNORE] FROM`.
fn table_position(s: &[Lexeme]) -> Option<usize> {
    let modifiers = ["LOW_PRIORITY", "QUICK", "IGNORE"];
    let mut i = 1;
    while upper(s, i).is_some_and(|w| modifiers.contains(&w.as_str())) {
        i += 1;
    }
    match upper(s, 0).as_deref() {
        Some("UPDATE") => Some(i),
        Some("DELETE") if upper(s, i).as_deref() == Some("FROM") => Some(i + 1),
        _ => None,
    }
}

/// `name` or `schema.name` at `i`: (schema, name, the index after it).
fn qualified_name(s: &[Lexeme], i: usize, query: &[u8]) -> Option<(Option<String>, String, usize)> {
    let first = word(s, i, query)?;
    if s.get(i + 1).map(|l| &l.token) == Some(&Token::Period) {
        return Some((Some(first), word(s, i + 2, query)?, i + 3));
    }
    Some((None, first, i + 1))
}

/// A name's value. The lexer sees bytes >= 0x80 as `x`: a name with such
/// bytes (in the client's character set) is not looked up at all.
fn word(s: &[Lexeme], i: usize, query: &[u8]) -> Option<String> {
    let lexeme = s.get(i)?;
    match &lexeme.token {
        Token::Word(w) if query.get(lexeme.range.clone())?.is_ascii() => Some(w.value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(sql: &str, columns: &[&str]) -> Option<String> {
        let found = unordered_limit(sql.as_bytes(), false)?;
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        Some(String::from_utf8(found.ordered_by(sql.as_bytes(), &columns)).unwrap())
    }

    #[test]
    fn an_unordered_limit_gets_the_tables_order() {
        assert_eq!(
            ordered(
                "UPDATE q SET owner = 1 WHERE owner IS NULL LIMIT 1",
                &["job"]
            )
            .unwrap(),
            "UPDATE q SET owner = 1 WHERE owner IS NULL ORDER BY `job` LIMIT 1"
        );
        assert_eq!(
            ordered("delete low_priority from `s`.`q` limit 2;", &["a", "b`c"]).unwrap(),
            "delete low_priority from `s`.`q` ORDER BY `a`, `b``c` limit 2;"
        );
        let found = unordered_limit(
            b"DELETE FROM s.q WHERE x IN (SELECT y FROM z LIMIT 3) LIMIT 4",
            false,
        )
        .unwrap();
        assert_eq!(
            (found.schema.as_deref(), found.table.as_str()),
            (Some("s"), "q")
        );
    }

    #[test]
    fn an_order_gets_the_key_to_break_its_ties() {
        assert_eq!(
            ordered(
                "DELETE FROM q WHERE x < 5 ORDER BY created DESC LIMIT 100",
                &["id"]
            )
            .unwrap(),
            "DELETE FROM q WHERE x < 5 ORDER BY created DESC, `id` LIMIT 100"
        );
        assert_eq!(
            ordered("DELETE FROM e ORDER BY grp LIMIT 1", &["grp", "tag"]).unwrap(),
            "DELETE FROM e ORDER BY grp, `grp`, `tag` LIMIT 1"
        );
        assert_eq!(
            ordered("UPDATE q SET v = 1 ORDER BY id LIMIT 1", &["id"]).unwrap(),
            "UPDATE q SET v = 1 ORDER BY id, `id` LIMIT 1"
        );
    }

    #[test]
    fn a_copy_of_one_tables_rows_gets_its_order() {
        assert_eq!(
            ordered("INSERT INTO q SELECT * FROM r WHERE a > 1 LIMIT 2", &["id"]).unwrap(),
            "INSERT INTO q SELECT * FROM r WHERE a > 1 ORDER BY `r`.`id` LIMIT 2"
        );
        assert_eq!(
            ordered(
                "INSERT IGNORE INTO q (a) SELECT x.a FROM s.r AS x ORDER BY a LIMIT 2 \
                 ON DUPLICATE KEY UPDATE a = 1",
                &["id"]
            )
            .unwrap(),
            "INSERT IGNORE INTO q (a) SELECT x.a FROM s.r AS x ORDER BY a, `x`.`id` LIMIT 2 \
             ON DUPLICATE KEY UPDATE a = 1"
        );
        for sql in [
            "INSERT INTO q SELECT a FROM r, u LIMIT 1",
            "INSERT INTO q SELECT a FROM r JOIN u ON r.a = u.a LIMIT 1",
            "INSERT INTO q SELECT DISTINCT a FROM r LIMIT 1",
            "INSERT INTO q SELECT COUNT(*) FROM r LIMIT 1",
            "INSERT INTO q SELECT a FROM r GROUP BY a LIMIT 1",
            "INSERT INTO q VALUES ((SELECT a FROM r LIMIT 1))",
            "INSERT INTO q SELECT a FROM r",
        ] {
            assert_eq!(unordered_limit(sql.as_bytes(), false), None, "{sql}");
        }
    }

    fn by_positions(sql: &str, columns: usize) -> Option<(String, String)> {
        let found = unordered_copy(sql.as_bytes(), false)?;
        let select = String::from_utf8(found.select(sql.as_bytes()).to_vec()).unwrap();
        let ordered = found.ordered_by_positions(sql.as_bytes(), columns);
        Some((select, String::from_utf8(ordered).unwrap()))
    }

    #[test]
    fn a_copy_of_a_join_is_ordered_by_every_column_it_copies() {
        assert_eq!(
            by_positions(
                "INSERT INTO q SELECT a, b FROM r JOIN u ON r.a = u.a LIMIT 1",
                2
            ),
            Some((
                "SELECT a, b FROM r JOIN u ON r.a = u.a LIMIT 1".to_string(),
                "INSERT INTO q SELECT a, b FROM r JOIN u ON r.a = u.a ORDER BY 1, 2 LIMIT 1"
                    .to_string()
            ))
        );
        assert_eq!(
            by_positions(
                "INSERT INTO q (a) SELECT DISTINCT a FROM r ORDER BY a DESC LIMIT 3 \
                 ON DUPLICATE KEY UPDATE a = VALUES(a);",
                1
            ),
            Some((
                "SELECT DISTINCT a FROM r ORDER BY a DESC LIMIT 3".to_string(),
                "INSERT INTO q (a) SELECT DISTINCT a FROM r ORDER BY a DESC, 1 LIMIT 3 \
                 ON DUPLICATE KEY UPDATE a = VALUES(a);"
                    .to_string()
            ))
        );
        assert_eq!(
            by_positions(
                "CREATE OR REPLACE TABLE s (KEY (a)) AS SELECT a FROM r UNION ALL SELECT b FROM u LIMIT 2",
                1
            )
            .map(|(_, ordered)| ordered),
            Some(
                "CREATE OR REPLACE TABLE s (KEY (a)) AS SELECT a FROM r UNION ALL SELECT b FROM u ORDER BY 1 LIMIT 2"
                    .to_string()
            )
        );
        assert_eq!(
            by_positions("REPLACE q WITH c AS (SELECT a FROM r) SELECT a, COUNT(*) FROM c GROUP BY a LIMIT 5", 2)
                .map(|(select, _)| select),
            Some("WITH c AS (SELECT a FROM r) SELECT a, COUNT(*) FROM c GROUP BY a LIMIT 5".to_string())
        );
    }

    #[test]
    fn copies_without_an_outer_limit_and_views_are_left_alone() {
        for sql in [
            "INSERT INTO q SELECT a FROM r JOIN u ON r.a = u.a",
            "INSERT INTO q VALUES ((SELECT a FROM r LIMIT 1))",
            "INSERT INTO q SET a = (SELECT a FROM r LIMIT 1)",
            "INSERT INTO q SELECT a FROM r WHERE a IN (SELECT a FROM u LIMIT 1)",
            "INSERT INTO q (SELECT a FROM r LIMIT 1)",
            "INSERT INTO q SELECT a FROM r LIMIT 1 UNION SELECT a FROM u",
            "INSERT INTO q SELECT a, COUNT(*) FROM r GROUP BY a WITH ROLLUP LIMIT 1",
            "CREATE VIEW v AS SELECT a FROM r JOIN u ON r.a = u.a LIMIT 1",
            "CREATE OR REPLACE ALGORITHM=MERGE VIEW v AS SELECT a FROM r LIMIT 1",
            "CREATE TABLE s LIKE r",
            "UPDATE q SET v = 1 LIMIT 1",
            "INSERT INTO q SELECT a FROM r LIMIT 1; DELETE FROM q",
        ] {
            assert_eq!(unordered_copy(sql.as_bytes(), false), None, "{sql}");
        }
    }

    #[test]
    fn a_copy_whose_order_decides_what_it_writes_is_ordered_without_a_limit() {
        let key = |sql: &str| {
            let found = unordered_limit(sql.as_bytes(), true).expect(sql);
            String::from_utf8(found.ordered_by(sql.as_bytes(), &["id".to_string()])).unwrap()
        };
        assert_eq!(
            key("INSERT IGNORE INTO q SELECT a FROM r WHERE b = 1;"),
            "INSERT IGNORE INTO q SELECT a FROM r WHERE b = 1 ORDER BY `r`.`id`;"
        );
        assert_eq!(
            key("INSERT INTO q SELECT a FROM r AS x ON DUPLICATE KEY UPDATE a = 2"),
            "INSERT INTO q SELECT a FROM r AS x ORDER BY `x`.`id` ON DUPLICATE KEY UPDATE a = 2"
        );
        assert_eq!(
            key("REPLACE q SELECT a FROM r ORDER BY a"),
            "REPLACE q SELECT a FROM r ORDER BY a, `r`.`id`"
        );
        assert_eq!(
            unordered_limit(b"INSERT INTO q SELECT a FROM r", false),
            None
        );
        // One row at most: no order to give.
        for sql in [
            "INSERT INTO q (a) SELECT 1",
            "INSERT INTO q (a) SELECT 1 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM q WHERE a = 1)",
        ] {
            assert_eq!(unordered_limit(sql.as_bytes(), true), None, "{sql}");
            assert_eq!(unordered_copy(sql.as_bytes(), true), None, "{sql}");
        }
        let copy = unordered_copy(b"INSERT INTO q SELECT a, b FROM r, u;", true).unwrap();
        assert_eq!(
            copy.select(b"INSERT INTO q SELECT a, b FROM r, u;"),
            b"SELECT a, b FROM r, u"
        );
        assert_eq!(
            copy.ordered_by_positions(b"INSERT INTO q SELECT a, b FROM r, u;", 2),
            b"INSERT INTO q SELECT a, b FROM r, u ORDER BY 1, 2;".to_vec()
        );
    }

    #[test]
    fn a_copys_sources_are_named_when_they_can_be() {
        let sources = |sql: &str| {
            unordered_copy(sql.as_bytes(), true)
                .expect(sql)
                .sources()
                .map(|s| {
                    s.iter()
                        .map(|(d, t)| format!("{d:?}.{t}"))
                        .collect::<Vec<_>>()
                })
        };
        assert_eq!(
            sources("INSERT INTO q SELECT a FROM r AS x, s.u JOIN v ON v.a = x.a WHERE a IN (SELECT a FROM w)"),
            Some(vec!["None.r".into(), "Some(\"s\").u".into(), "None.v".into()])
        );
        assert_eq!(
            sources("INSERT INTO q SELECT a FROM r UNION ALL SELECT b FROM u"),
            Some(vec!["None.r".into(), "None.u".into()])
        );
        assert_eq!(
            sources("INSERT INTO q SELECT a FROM (SELECT a FROM r) AS d"),
            None
        );
        let copy = unordered_copy(
            b"INSERT INTO q SELECT a FROM r JOIN u ON r.a = u.a LIMIT 1",
            false,
        )
        .unwrap();
        assert!(copy.has_limit());
    }

    #[test]
    fn the_words_that_make_a_copys_order_matter() {
        for sql in [
            "INSERT IGNORE INTO q SELECT a FROM r",
            "INSERT LOW_PRIORITY IGNORE INTO q SELECT a FROM r",
            "REPLACE INTO q SELECT a FROM r",
            "INSERT INTO q SELECT a FROM r ON DUPLICATE KEY UPDATE a = 1",
            "CREATE TABLE s (n INT AUTO_INCREMENT PRIMARY KEY) SELECT a FROM r",
            "CREATE TABLE s (UNIQUE (a)) IGNORE SELECT a FROM r",
            "CREATE OR REPLACE TABLE s (UNIQUE (a)) REPLACE SELECT a FROM r",
        ] {
            assert!(copy_order_matters(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "INSERT INTO q SELECT a FROM r",
            "CREATE OR REPLACE TABLE s SELECT a FROM r",
            "CREATE TABLE s SELECT a AS auto_increment FROM r",
            "UPDATE q SET a = 1",
        ] {
            assert!(!copy_order_matters(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn ordered_multi_table_and_other_statements_are_left_alone() {
        for sql in [
            "UPDATE q SET v = 1 WHERE id = 1",
            "UPDATE a, b SET a.v = b.v",
            "UPDATE a JOIN b ON a.id = b.id SET a.v = 1",
            "DELETE a FROM a JOIN b ON a.id = b.id",
            "SELECT * FROM q LIMIT 1",
            "UPDATE q SET v = 1 LIMIT 1; DELETE FROM q LIMIT 1",
            "UPDATE q SET note = 'limit' WHERE id = 1",
            "UPDATE caf\u{e9} SET v = 1 LIMIT 1",
        ] {
            assert_eq!(unordered_limit(sql.as_bytes(), false), None, "{sql}");
        }
    }
}
