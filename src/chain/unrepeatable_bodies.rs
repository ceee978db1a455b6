//! The master's triggers and stored routines whose effects each node would
//! compute by itself, and the statements that would run them.
//!
//! lockstep makes a statement repeat on every node by pinning what it
//! computes: B chooses the statement's first AUTO_INCREMENT value and A and
//! the tail are given it (`insert_id`); `UUID()` and its kin in the
//! client's text become literals. That reaches the client's own statement
//! only. Inside a trigger, a stored function or a procedure:
//!
//! - rows inserted into a table with an AUTO_INCREMENT column get values
//!   each node chooses by itself: B and A run concurrent statements in
//!   different orders, and the tail replays only what committed (a
//!   rolled-back insert leaves a gap on A that the tail never sees), so the
//!   values differ, and the next pinned value collides on the tail (1062)
//!   or is duplicated on A;
//! - `UUID()`, `UUID_SHORT()`, `SYS_GUID()`, `SYSDATE()` and
//!   `CONNECTION_ID()` give each node its own value.
//!
//! MariaDB's statement binlog cannot replay these either (Note 1592); it
//! switches to row images, which lockstep does not have. So a statement
//! that would run such a body is refused (1235) before any node runs it,
//! naming the definition. (A definition made through lockstep that calls
//! `UUID()` is refused when it is made: `write/serialized.rs`;
//! this also catches those made before lockstep or behind its back.)
//!
//! A body is unrepeatable when it inserts into a table with an
//! AUTO_INCREMENT column (explicit values count too: the text cannot tell
//! NULL from a value), calls one of those functions, calls a procedure or
//! function that is unrepeatable, or writes a table whose trigger for that
//! kind of write is. The catalog is read from the master at start and
//! after every serialized statement (DDL), as `stored_functions` is.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use sqlparser::tokenizer::Token;

use crate::sql::lexer::{lex, Lexeme};

/// The kind of write a trigger fires on (`EVENT_MANIPULATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Insert,
    Update,
    Delete,
}

impl Event {
    fn parse(s: &str) -> Option<Event> {
        match s.to_ascii_uppercase().as_str() {
            "INSERT" => Some(Event::Insert),
            "UPDATE" => Some(Event::Update),
            "DELETE" => Some(Event::Delete),
            _ => None,
        }
    }
}

/// A trigger or stored routine as the master's catalog lists it.
#[derive(Debug, Clone)]
pub struct Definition {
    /// `schema.name`, for messages.
    pub name: String,
    pub kind: Kind,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Procedure,
    Function,
    /// A column's DEFAULT expression, run by every insert into the table
    /// (lower-cased, unqualified) that leaves the column out.
    ColumnDefault {
        table: String,
    },
    /// On the table (lower-cased, unqualified), for this kind of write.
    Trigger {
        table: String,
        event: Event,
    },
}

/// What a text does that can run a body: the tables it inserts into, the
/// tables it writes and how, the procedures it calls and the functions it
/// names. Names are lower-cased and unqualified (a schema is not told
/// apart: over-approximated).
#[derive(Debug, Default, PartialEq, Eq)]
struct Effects {
    inserts: HashSet<String>,
    /// The tables inserted into with every column that is given a value
    /// (the column list, or every column when there is none); a table
    /// inserted into twice in one text with other lists is not here.
    given_columns: HashMap<String, Given>,
    writes: HashSet<(String, Event)>,
    calls: HashSet<String>,
    functions: HashSet<String>,
}

/// The columns an insert gives values to.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Given {
    /// No column list: a value for every column.
    All,
    Listed(HashSet<String>),
}

/// The unrepeatable definitions, by how a statement reaches them (names
/// lower-cased, unqualified), each with its description (`trigger s.t,
/// which calls UUID()`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Makers {
    procedures: HashMap<String, String>,
    functions: HashMap<String, String>,
    triggers: HashMap<(String, Event), String>,
    /// table → (column, description): defaults that run when an insert
    /// leaves the column out.
    defaults: HashMap<String, Vec<(String, String)>>,
}

impl Makers {
    pub fn is_empty(&self) -> bool {
        self.procedures.is_empty()
            && self.functions.is_empty()
            && self.triggers.is_empty()
            && self.defaults.is_empty()
    }

    /// The definitions, described, for the log.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .procedures
            .values()
            .chain(self.functions.values())
            .chain(self.triggers.values())
            .chain(self.defaults.values().flatten().map(|(_, d)| d))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The first unrepeatable definition a text with these effects runs,
    /// described.
    fn reached_by(&self, effects: &Effects) -> Option<String> {
        let procedure = effects.calls.iter().find_map(|p| self.procedures.get(p));
        let function = || effects.functions.iter().find_map(|f| self.functions.get(f));
        let trigger = || effects.writes.iter().find_map(|w| self.triggers.get(w));
        let default = || {
            effects.inserts.iter().find_map(|table| {
                let given = effects.given_columns.get(table);
                self.defaults
                    .get(table)?
                    .iter()
                    .find_map(|(column, described)| {
                        let left_out = match given {
                            Some(Given::All) => false,
                            Some(Given::Listed(columns)) => !columns.contains(column),
                            None => true,
                        };
                        left_out.then_some(described)
                    })
            })
        };
        procedure
            .or_else(function)
            .or_else(trigger)
            .or_else(default)
            .cloned()
    }
}

/// Which definitions are unrepeatable: those inserting into a table of
/// `auto_tables` or calling a function no pin can fix, then, until nothing
/// changes, those reaching one.
pub fn makers(auto_tables: &HashSet<String>, definitions: &[Definition]) -> Makers {
    reaching(definitions, |definition, effects| {
        if effects.inserts.iter().any(|t| auto_tables.contains(t)) {
            Some("makes AUTO_INCREMENT values".to_string())
        } else if let Some(call) = unrepeatable_call(&definition.body) {
            Some(format!("calls {call}"))
        } else {
            transaction_control(&definition.body)
                .map(|control| format!("ends transactions itself ({control})"))
        }
    })
}

/// Which definitions read the session's LAST_INSERT_ID() (`@@identity`,
/// `@@last_insert_id`), or reach one that does: a statement that runs one
/// needs the master's value pinned (`protocol::insert_id`).
pub fn last_insert_id_readers(definitions: &[Definition]) -> Makers {
    reaching(definitions, |definition, _| {
        reads_last_insert_id(&definition.body).then(|| "reads LAST_INSERT_ID()".to_string())
    })
}

fn reads_last_insert_id(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    ["last_insert_id", "@@identity", "@@last_insert_id"]
        .iter()
        .any(|name| body.contains(name))
}

/// The definitions for which `own_reason` says why, then, until nothing
/// changes, those reaching one (through calls, triggers and defaults).
fn reaching(
    definitions: &[Definition],
    own_reason: impl Fn(&Definition, &Effects) -> Option<String>,
) -> Makers {
    let effects: Vec<Effects> = definitions
        .iter()
        .map(|d| effects_of(&lex(d.body.as_bytes()).unwrap_or_default()))
        .collect();
    let mut makers = Makers::default();
    let mut found = vec![false; definitions.len()];
    loop {
        let mut changed = false;
        for (i, definition) in definitions.iter().enumerate() {
            if found[i] {
                continue;
            }
            let why = match own_reason(definition, &effects[i]) {
                Some(why) => why,
                None => match makers.reached_by(&effects[i]) {
                    Some(inner) => format!("runs {inner}"),
                    None => continue,
                },
            };
            found[i] = true;
            changed = true;
            let bare = bare_name(&definition.name);
            let described = |kind: &str| format!("{kind} {}, which {why}", definition.name);
            match &definition.kind {
                Kind::Procedure => {
                    makers.procedures.insert(bare, described("procedure"));
                }
                Kind::Function => {
                    makers.functions.insert(bare, described("function"));
                }
                Kind::ColumnDefault { table } => {
                    makers
                        .defaults
                        .entry(table.clone())
                        .or_default()
                        .push((bare.clone(), described("the DEFAULT of")));
                }
                Kind::Trigger { table, event } => {
                    makers
                        .triggers
                        .insert((table.clone(), *event), described("trigger"));
                }
            }
        }
        if !changed {
            return makers;
        }
    }
}

/// The first statement of a procedure's body that ends or starts a
/// transaction (`COMMIT`, `ROLLBACK`, `START TRANSACTION`, `SET
/// autocommit`, `XA`). lockstep runs a client's statement inside a
/// transaction of its own on B and A, and the tail applies several commits
/// in one node transaction: a procedure that commits or rolls back in the
/// middle ends those (its ROLLBACK took lockstep's own row on A with it,
/// and the tail stored rows the master does not have, silently).
fn transaction_control(body: &str) -> Option<String> {
    let lexemes = lex(body.as_bytes())?;
    let upper: Vec<Option<String>> = lexemes.iter().map(Lexeme::word_upper).collect();
    let at = |i: usize| upper.get(i).cloned().flatten();
    (0..upper.len()).find_map(|i| {
        let word = at(i)?;
        let found = match word.as_str() {
            "COMMIT" | "XA" => true,
            // `ROLLBACK TO [SAVEPOINT] s` stays inside the transaction.
            "ROLLBACK" => {
                let next = at(i + 1);
                let to = next.as_deref() == Some("TO")
                    || (next.as_deref() == Some("WORK") && at(i + 2).as_deref() == Some("TO"));
                !to
            }
            "START" => at(i + 1).as_deref() == Some("TRANSACTION"),
            "AUTOCOMMIT" | "@@AUTOCOMMIT" => {
                (1..=2).any(|back| i.checked_sub(back).and_then(at).as_deref() == Some("SET"))
            }
            _ => false,
        };
        found.then(|| match word.as_str() {
            "START" => "START TRANSACTION".to_string(),
            "AUTOCOMMIT" | "@@AUTOCOMMIT" => "SET autocommit".to_string(),
            other => other.to_string(),
        })
    })
}

/// The first call in a body that gives each node its own value.
fn unrepeatable_call(body: &str) -> Option<String> {
    let body = body.as_bytes();
    if let Some(call) = crate::sql::unpinnable::unrepeatable_call(body) {
        return Some(call);
    }
    if crate::sql::sequences::calls(body).is_some() {
        return Some("NEXTVAL".to_string());
    }
    let lexemes = lex(body)?;
    lexemes.windows(2).find_map(|pair| {
        (pair[0].word_upper().as_deref() == Some("CONNECTION_ID") && pair[1].token == Token::LParen)
            .then(|| "CONNECTION_ID()".to_string())
    })
}

fn bare_name(qualified: &str) -> String {
    qualified
        .rsplit('.')
        .next()
        .unwrap_or(qualified)
        .to_lowercase()
}

/// The effects of a text (a client's statements or a body).
fn effects_of(lexemes: &[Lexeme]) -> Effects {
    let mut effects = Effects::default();
    for statement in lexemes.split(|l| l.token == Token::SemiColon) {
        if !is_stored_definition(statement) {
            statement_effects(statement, &mut effects);
        }
    }
    effects
}

/// `CREATE [OR REPLACE] [DEFINER = …] TRIGGER | PROCEDURE | FUNCTION |
/// EVENT …`: a text whose statements after the first are the body's.
fn defines_a_body(lexemes: &[Lexeme]) -> bool {
    let first = lexemes.split(|l| l.token == Token::SemiColon).next();
    first.is_some_and(|s| {
        s.first().and_then(Lexeme::word_upper).as_deref() == Some("CREATE")
            && s.iter().any(|l| {
                matches!(
                    l.word_upper().as_deref(),
                    Some("TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT")
                )
            })
    })
}

/// A definition runs nothing now (`CREATE TRIGGER … INSERT …`, `DROP
/// PROCEDURE p`); `CREATE TABLE … SELECT f()` runs its query.
fn is_stored_definition(s: &[Lexeme]) -> bool {
    let first = s.first().and_then(Lexeme::word_upper);
    match first.as_deref() {
        Some("ALTER" | "DROP") => true,
        Some("CREATE") => {
            !s.iter()
                .any(|l| l.word_upper().as_deref() == Some("SELECT"))
                || s.iter().any(|l| {
                    matches!(
                        l.word_upper().as_deref(),
                        Some("TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "VIEW")
                    )
                })
        }
        _ => false,
    }
}

fn statement_effects(s: &[Lexeme], effects: &mut Effects) {
    let upper = |i: usize| s.get(i).and_then(Lexeme::word_upper);
    let duplicate_key = (0..s.len()).any(|i| upper(i).as_deref() == Some("DUPLICATE"));
    for i in 0..s.len() {
        if next_is_paren(s, i) {
            if let Some(name) = word(s, i) {
                effects.functions.insert(name);
            }
            continue;
        }
        let Some(w) = upper(i) else { continue };
        // `AFTER INSERT ON t`, `ON UPDATE CASCADE`, `FOR UPDATE`, `KEY
        // UPDATE`, `GRANT INSERT`: not a write of its own.
        let before = i.checked_sub(1).and_then(upper);
        if matches!(
            before.as_deref(),
            Some("BEFORE" | "AFTER" | "ON" | "FOR" | "KEY" | "GRANT" | "REVOKE")
        ) {
            continue;
        }
        match w.as_str() {
            "INSERT" | "REPLACE" => {
                if let Some((table, after)) = insert_target(s, i + 1) {
                    let given = given_columns(s, after);
                    let first = effects.inserts.insert(table.clone());
                    if first {
                        effects.given_columns.insert(table.clone(), given);
                    } else if effects.given_columns.get(&table) != Some(&given) {
                        effects.given_columns.remove(&table);
                    }
                    effects.writes.insert((table.clone(), Event::Insert));
                    if w == "REPLACE" {
                        effects.writes.insert((table, Event::Delete));
                    } else if duplicate_key {
                        effects.writes.insert((table, Event::Update));
                    }
                }
            }
            "UPDATE" => {
                for table in words_until(s, i + 1, &["SET"]) {
                    effects.writes.insert((table, Event::Update));
                }
            }
            "DELETE" => {
                for table in words_until(s, i + 1, &["WHERE", "ORDER", "LIMIT", "RETURNING"]) {
                    effects.writes.insert((table, Event::Delete));
                }
            }
            "LOAD" => {
                let replace = (i..s.len()).any(|j| upper(j).as_deref() == Some("REPLACE"));
                if let Some(at) = (i..s.len()).find(|&j| upper(j).as_deref() == Some("TABLE")) {
                    if let Some(table) = qualified_name_at(s, at + 1) {
                        effects.inserts.insert(table.clone());
                        effects.writes.insert((table.clone(), Event::Insert));
                        if replace {
                            effects.writes.insert((table, Event::Delete));
                        }
                    }
                }
            }
            "CALL" => {
                if let Some(name) = qualified_name_at(s, i + 1) {
                    effects.calls.insert(name);
                }
            }
            _ => {}
        }
    }
}

fn next_is_paren(s: &[Lexeme], i: usize) -> bool {
    matches!(s.get(i).map(|l| &l.token), Some(Token::Word(_)))
        && s.get(i + 1).map(|l| &l.token) == Some(&Token::LParen)
}

/// A word's value, lower-cased, quoted or not.
fn word(s: &[Lexeme], i: usize) -> Option<String> {
    match &s.get(i)?.token {
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// The unqualified name of `a`, `a.b` or `a.b.c` starting at `i`.
fn qualified_name_at(s: &[Lexeme], mut i: usize) -> Option<String> {
    let mut name = word(s, i)?;
    while s.get(i + 1).map(|l| &l.token) == Some(&Token::Period) {
        name = word(s, i + 2)?;
        i += 2;
    }
    Some(name)
}

/// The table of `INSERT [modifiers] [INTO] name`, from the word after
/// INSERT.
fn insert_target(s: &[Lexeme], mut i: usize) -> Option<(String, usize)> {
    while let Some(w) = s.get(i).and_then(Lexeme::word_upper) {
        if matches!(
            w.as_str(),
            "LOW_PRIORITY" | "DELAYED" | "HIGH_PRIORITY" | "IGNORE" | "INTO"
        ) {
            i += 1;
        } else {
            break;
        }
    }
    let name = qualified_name_at(s, i)?;
    let mut after = i + 1;
    while s.get(after).map(|l| &l.token) == Some(&Token::Period) {
        after += 2;
    }
    Some((name, after))
}

/// The columns an insert whose table name ends before `i` gives values
/// to: its column list `(a, b)`, the columns of its `SET a = …, b = …`,
/// or every column.
fn given_columns(s: &[Lexeme], i: usize) -> Given {
    let upper = |j: usize| s.get(j).and_then(Lexeme::word_upper);
    if s.get(i).map(|l| &l.token) == Some(&Token::LParen)
        && upper(i + 1).as_deref() != Some("SELECT")
    {
        let mut columns = HashSet::new();
        for l in &s[i + 1..] {
            match &l.token {
                Token::RParen => break,
                Token::Word(w) => {
                    columns.insert(w.value.to_lowercase());
                }
                _ => {}
            }
        }
        return Given::Listed(columns);
    }
    if upper(i).as_deref() == Some("SET") {
        let mut columns = HashSet::new();
        let mut depth = 0i32;
        for (j, l) in s.iter().enumerate().skip(i + 1) {
            match &l.token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Eq if depth == 0 => {
                    if let Some(column) = word(s, j - 1) {
                        columns.insert(column);
                    }
                }
                _ => {}
            }
        }
        return Given::Listed(columns);
    }
    Given::All
}

/// Every word from `i` up to one of `ends` (or the end), lower-cased: the
/// table references of an UPDATE or a DELETE, over-approximated (join
/// conditions' column names count too).
fn words_until(s: &[Lexeme], i: usize, ends: &[&str]) -> Vec<String> {
    let mut words = Vec::new();
    for j in i..s.len() {
        if s[j]
            .word_upper()
            .is_some_and(|w| ends.contains(&w.as_str()))
        {
            break;
        }
        if let Some(w) = word(s, j) {
            words.push(w);
        }
    }
    words
}

/// Shared by every session: the unrepeatable definitions, as of the last
/// refresh.
#[derive(Default)]
pub struct UnrepeatableBodies {
    makers: Mutex<Makers>,
    /// The definitions that read LAST_INSERT_ID(), or reach one that does.
    last_insert_id_readers: Mutex<Makers>,
    /// The tables with an AUTO_INCREMENT column (names lower-cased).
    auto_tables: Mutex<HashSet<String>>,
}

impl UnrepeatableBodies {
    /// Re-reads the catalog from the master; returns the makers' names
    /// when they changed.
    pub async fn refresh(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<Vec<String>>, mysql_async::Error> {
        let tables: Vec<Row> = conn
            .query(
                "SELECT DISTINCT LOWER(TABLE_NAME) FROM information_schema.COLUMNS \
                 WHERE EXTRA LIKE '%auto_increment%' \
                 AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            )
            .await?;
        let triggers: Vec<Row> = conn
            .query(
                "SELECT CONCAT(TRIGGER_SCHEMA, '.', TRIGGER_NAME), LOWER(EVENT_OBJECT_TABLE), \
                 EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS",
            )
            .await?;
        let routines: Vec<Row> = conn
            .query(
                "SELECT CONCAT(ROUTINE_SCHEMA, '.', ROUTINE_NAME), ROUTINE_TYPE, ROUTINE_DEFINITION \
                 FROM information_schema.ROUTINES WHERE ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') \
                 AND ROUTINE_SCHEMA NOT IN ('mysql', 'sys')",
            )
            .await?;
        let defaults: Vec<Row> = conn
            .query(
                "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME), \
                 LOWER(TABLE_NAME), COLUMN_DEFAULT FROM information_schema.COLUMNS \
                 WHERE (COLUMN_DEFAULT LIKE '%nextval%' OR COLUMN_DEFAULT LIKE '%next value%' \
                   OR COLUMN_DEFAULT LIKE '%uuid%' OR COLUMN_DEFAULT LIKE '%sys_guid%' \
                   OR COLUMN_DEFAULT LIKE '%sysdate%' OR COLUMN_DEFAULT LIKE '%connection_id%') \
                 AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            )
            .await?;
        let auto_tables = tables.iter().filter_map(|r| text_at(r, 0)).collect();
        let mut definitions: Vec<Definition> = triggers
            .iter()
            .filter_map(|r| {
                Some(Definition {
                    name: text_at(r, 0)?,
                    kind: Kind::Trigger {
                        table: text_at(r, 1)?,
                        event: Event::parse(&text_at(r, 2)?)?,
                    },
                    body: text_at(r, 3)?,
                })
            })
            .collect();
        definitions.extend(defaults.iter().filter_map(|r| {
            Some(Definition {
                name: text_at(r, 0)?,
                kind: Kind::ColumnDefault {
                    table: text_at(r, 1)?,
                },
                body: text_at(r, 2)?,
            })
        }));
        definitions.extend(routines.iter().filter_map(|r| {
            Some(Definition {
                name: text_at(r, 0)?,
                kind: match text_at(r, 1)?.as_str() {
                    "PROCEDURE" => Kind::Procedure,
                    _ => Kind::Function,
                },
                body: text_at(r, 2)?,
            })
        }));
        let makers = makers(&auto_tables, &definitions);
        if let Ok(mut held) = self.auto_tables.lock() {
            *held = auto_tables;
        }
        if let Ok(mut held) = self.last_insert_id_readers.lock() {
            *held = last_insert_id_readers(&definitions);
        }
        let Ok(mut held) = self.makers.lock() else {
            return Ok(None);
        };
        let changed = *held != makers;
        *held = makers;
        Ok(changed.then(|| held.names()))
    }

    /// How many statements of the text insert into a table with an
    /// AUTO_INCREMENT column: lockstep pins the first value a text makes
    /// (B's, on A and the tail), so a text of several statements can make
    /// values in one of them only.
    pub fn auto_increment_inserts(&self, sql: &[u8]) -> usize {
        let Ok(tables) = self.auto_tables.lock() else {
            return 0;
        };
        if tables.is_empty() || !sql.contains(&b';') {
            return 0;
        }
        let Some(lexemes) = lex(sql) else {
            return 0;
        };
        // A routine's or trigger's body holds `;`: its statements run later.
        if defines_a_body(&lexemes) {
            return 0;
        }
        lexemes
            .split(|l| l.token == Token::SemiColon)
            .filter(|statement| !is_stored_definition(statement))
            .filter(|statement| {
                let mut effects = Effects::default();
                statement_effects(statement, &mut effects);
                effects.inserts.iter().any(|t| tables.contains(t))
            })
            .count()
    }

    /// Whether the statement inserts into a table with an AUTO_INCREMENT
    /// column: a copy into one numbers the rows in the order it reads them
    /// (`sql::limit_order`).
    pub fn inserts_into_auto_increment_table(&self, sql: &[u8]) -> bool {
        let Ok(tables) = self.auto_tables.lock() else {
            return false;
        };
        if tables.is_empty() {
            return false;
        }
        let Some(lexemes) = lex(sql) else {
            return false;
        };
        let mut effects = Effects::default();
        statement_effects(&lexemes, &mut effects);
        effects.inserts.iter().any(|t| tables.contains(t))
    }

    /// Whether the text would run a trigger, routine or default that
    /// reads LAST_INSERT_ID() (`last_insert_id_readers`).
    pub fn runs_a_last_insert_id_reader(&self, sql: &[u8]) -> bool {
        let Ok(readers) = self.last_insert_id_readers.lock() else {
            return false;
        };
        if readers.is_empty() {
            return false;
        }
        lex(sql).is_some_and(|lexemes| readers.reached_by(&effects_of(&lexemes)).is_some())
    }

    /// The unrepeatable definition the text would run, described
    /// (`trigger s.t, which calls UUID()`), if any.
    pub fn run_by(&self, sql: &[u8]) -> Option<String> {
        let makers = self.makers.lock().ok()?;
        if makers.is_empty() {
            return None;
        }
        let lexemes = lex(sql)?;
        makers.reached_by(&effects_of(&lexemes))
    }
}

/// Logs the definitions whose statements are refused from now on.
pub fn warn_of_makers(makers: &[String]) {
    if makers.is_empty() {
        return;
    }
    tracing::warn!(
        definitions = %makers.join("; "),
        "these definitions compute values each node would compute by itself: \
         statements that run them are refused (1235)"
    );
}

fn text_at(row: &Row, i: usize) -> Option<String> {
    row.get_opt::<String, usize>(i).and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(name: &str, table: &str, event: Event, body: &str) -> Definition {
        Definition {
            name: name.into(),
            kind: Kind::Trigger {
                table: table.into(),
                event,
            },
            body: body.into(),
        }
    }

    fn routine(name: &str, kind: Kind, body: &str) -> Definition {
        Definition {
            name: name.into(),
            kind,
            body: body.into(),
        }
    }

    fn catalog() -> Makers {
        let auto: HashSet<String> = ["log".to_string()].into();
        makers(
            &auto,
            &[
                trigger(
                    "g.ai",
                    "t",
                    Event::Insert,
                    "INSERT INTO g.log (k) VALUES (NEW.k)",
                ),
                trigger("g.plain", "t", Event::Delete, "SET @d = OLD.k"),
                // Reaches a maker through another table's trigger.
                trigger(
                    "g.chain",
                    "u",
                    Event::Update,
                    "INSERT INTO t VALUES (NEW.k, 0)",
                ),
                routine(
                    "g.p",
                    Kind::Procedure,
                    "BEGIN INSERT INTO `log` (k) VALUES (1); END",
                ),
                routine("g.q", Kind::Procedure, "BEGIN CALL g.p(); END"),
                routine(
                    "g.f",
                    Kind::Function,
                    "BEGIN REPLACE INTO log VALUES (NULL, 1); RETURN 1; END",
                ),
                trigger("g.uu", "v", Event::Insert, "SET NEW.u = UUID()"),
                routine(
                    "g.tx",
                    Kind::Procedure,
                    "BEGIN INSERT INTO w VALUES (1); IF 1 THEN COMMIT; END IF; END",
                ),
                routine(
                    "g.savepoint",
                    Kind::Procedure,
                    "BEGIN SAVEPOINT a; INSERT INTO w VALUES (1); ROLLBACK TO a; END",
                ),
                Definition {
                    name: "g.n.id".into(),
                    kind: Kind::ColumnDefault { table: "n".into() },
                    body: "nextval(`g`.`s`)".into(),
                },
                routine(
                    "g.who",
                    Kind::Procedure,
                    "BEGIN INSERT INTO w VALUES (CONNECTION_ID()); END",
                ),
                routine(
                    "g.pure",
                    Kind::Function,
                    "RETURN REPLACE(INSERT('abc', 1, 1, 'x'), 'a', 'b')",
                ),
            ],
        )
    }

    /// `kind name` of the definition the text reaches.
    fn reached(sql: &str) -> Option<String> {
        let described = catalog().reached_by(&effects_of(&lex(sql.as_bytes()).unwrap()))?;
        Some(described.split(',').next()?.to_string())
    }

    #[test]
    fn statements_that_run_a_reader_of_last_insert_id_are_found_through_the_catalog() {
        let readers = last_insert_id_readers(&[
            trigger(
                "g.note",
                "t",
                Event::Insert,
                "INSERT INTO g.seen VALUES (LAST_INSERT_ID())",
            ),
            routine("g.f", Kind::Function, "RETURN @@identity + 1"),
            routine("g.p", Kind::Procedure, "INSERT INTO g.u VALUES (g.f())"),
            trigger("g.other", "v", Event::Insert, "SET @x = NEW.k"),
        ]);
        let reaches = |sql: &str| {
            readers
                .reached_by(&effects_of(&lex(sql.as_bytes()).unwrap()))
                .is_some()
        };
        assert!(reaches("INSERT INTO t VALUES (1)"));
        assert!(reaches("CALL p()"));
        assert!(reaches("SELECT f()"));
        assert!(!reaches("INSERT INTO v VALUES (1)"));
        assert!(!reaches("UPDATE t SET k = 1"));
    }

    #[test]
    fn statements_inserting_into_auto_increment_tables_are_counted_outside_bodies() {
        let bodies = UnrepeatableBodies::default();
        if let Ok(mut tables) = bodies.auto_tables.lock() {
            tables.insert("t".to_string());
        }
        let count = |sql: &str| bodies.auto_increment_inserts(sql.as_bytes());
        assert_eq!(count("INSERT INTO t VALUES (1)"), 0, "one statement");
        assert_eq!(
            count("INSERT INTO t (v) VALUES (1); SELECT LAST_INSERT_ID()"),
            1
        );
        assert_eq!(
            count("INSERT INTO u VALUES (1); INSERT INTO d.t (v) VALUES (2)"),
            1
        );
        assert_eq!(
            count("INSERT INTO t (v) VALUES (1); REPLACE INTO t (v) VALUES (2)"),
            2
        );
        assert_eq!(
            count(
                "BEGIN NOT ATOMIC INSERT INTO t (v) VALUES (1); INSERT INTO t (v) VALUES (2); END"
            ),
            2
        );
        assert_eq!(
            count("CREATE PROCEDURE p() BEGIN INSERT INTO t (v) VALUES (1); INSERT INTO t (v) VALUES (2); END"),
            0
        );
    }

    #[test]
    fn bodies_that_insert_into_auto_increment_tables_and_their_callers_are_makers() {
        let names: Vec<String> = catalog()
            .names()
            .iter()
            .map(|n| n.split(',').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "function g.f",
                "procedure g.p",
                "procedure g.q",
                "procedure g.tx",
                "procedure g.who",
                "the DEFAULT of g.n.id",
                "trigger g.ai",
                "trigger g.chain",
                "trigger g.uu"
            ]
        );
    }

    #[test]
    fn statements_that_run_a_maker_are_found() {
        assert_eq!(
            reached("INSERT INTO t VALUES (1, 0)").unwrap(),
            "trigger g.ai"
        );
        assert_eq!(
            reached("insert ignore g.t set k = 1").unwrap(),
            "trigger g.ai"
        );
        assert_eq!(
            reached("UPDATE u JOIN w ON u.k = w.k SET u.v = 1").unwrap(),
            "trigger g.chain"
        );
        assert_eq!(reached("CALL g.q()").unwrap(), "procedure g.q");
        assert_eq!(reached("call p").unwrap(), "procedure g.p");
        assert_eq!(reached("SELECT G.F()").unwrap(), "function g.f");
        assert_eq!(
            reached("UPDATE x SET v = 1; INSERT INTO t VALUES (2, 0)").unwrap(),
            "trigger g.ai"
        );
        assert_eq!(
            reached("LOAD DATA INFILE 'f' INTO TABLE t").unwrap(),
            "trigger g.ai"
        );
    }

    #[test]
    fn bodies_calling_functions_each_node_answers_alone_are_unrepeatable() {
        let described = catalog()
            .reached_by(&effects_of(
                &lex(b"INSERT INTO v (u) VALUES (NULL)").unwrap(),
            ))
            .unwrap();
        assert_eq!(described, "trigger g.uu, which calls UUID()");
        let described = catalog()
            .reached_by(&effects_of(&lex(b"CALL g.who()").unwrap()))
            .unwrap();
        assert_eq!(described, "procedure g.who, which calls CONNECTION_ID()");
        let described = catalog()
            .reached_by(&effects_of(&lex(b"CALL g.tx()").unwrap()))
            .unwrap();
        assert_eq!(
            described,
            "procedure g.tx, which ends transactions itself (COMMIT)"
        );
        assert_eq!(
            catalog().reached_by(&effects_of(&lex(b"CALL g.savepoint()").unwrap())),
            None
        );
        let described = catalog()
            .reached_by(&effects_of(&lex(b"INSERT INTO n (v) VALUES (1)").unwrap()))
            .unwrap();
        assert_eq!(described, "the DEFAULT of g.n.id, which calls NEXTVAL");
        // Given explicitly, the DEFAULT does not run.
        for sql in [
            "INSERT INTO n (id, v) VALUES (5, 1)",
            "INSERT INTO n SET v = 1, id = 5",
            "INSERT INTO n VALUES (5, 1)",
        ] {
            assert_eq!(
                catalog().reached_by(&effects_of(&lex(sql.as_bytes()).unwrap())),
                None,
                "{sql}"
            );
        }
        let described = catalog()
            .reached_by(&effects_of(&lex(b"CALL q(1)").unwrap()))
            .unwrap();
        assert_eq!(
            described,
            "procedure g.q, which runs procedure g.p, which makes AUTO_INCREMENT values"
        );
    }

    #[test]
    fn statements_that_run_no_maker_pass() {
        // The client's own insert into an AUTO_INCREMENT table is pinned.
        assert_eq!(reached("INSERT INTO log (k) VALUES (1)"), None);
        // t's DELETE trigger makes nothing; UPDATE t has none.
        assert_eq!(reached("DELETE FROM t WHERE k = 1"), None);
        assert_eq!(reached("UPDATE t SET v = 2"), None);
        assert_eq!(reached("SELECT * FROM t FOR UPDATE"), None);
        assert_eq!(reached("SELECT pure(1), 'call p', `f`"), None);
        assert_eq!(reached("INSERT INTO w SELECT k FROM t"), None);
        // Definitions run nothing when they are made.
        assert_eq!(
            reached("CREATE TRIGGER x AFTER INSERT ON w FOR EACH ROW CALL p()"),
            None
        );
        assert_eq!(reached("DROP PROCEDURE p; DROP FUNCTION f"), None);
        assert_eq!(
            reached("CREATE TABLE c SELECT f() AS n").unwrap(),
            "function g.f"
        );
    }

    #[test]
    fn an_update_through_on_duplicate_key_counts_for_update_triggers() {
        let auto: HashSet<String> = ["log".to_string()].into();
        let makers = makers(
            &auto,
            &[trigger(
                "g.au",
                "t",
                Event::Update,
                "INSERT INTO log VALUES (NULL)",
            )],
        );
        let reached = |sql: &str| makers.reached_by(&effects_of(&lex(sql.as_bytes()).unwrap()));
        assert_eq!(reached("INSERT INTO t VALUES (1, 0)"), None);
        assert_eq!(
            reached("INSERT INTO t VALUES (1, 0) ON DUPLICATE KEY UPDATE v = v + 1").unwrap(),
            "trigger g.au, which makes AUTO_INCREMENT values"
        );
    }
}
