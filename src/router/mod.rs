//! Read or write? Which path a statement takes, decided from its tokens.
//!
//! The tokenizer (see `sql::lexer`) keeps string literals, comments and
//! identifiers from fooling the decision, and reads the inside of `/*! … */`.
//! When in doubt a statement takes the write path: a read sent down the write
//! path costs time, a write sent to the master alone loses data on the others.

use std::ops::Range;

use sqlparser::tokenizer::Token;

use crate::sql::lexer::{contains_ignore_case, lex, plainly_starts_with_none_of, Lexeme};

/// The path of one COM_QUERY text (or prepared statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A plain read: the master alone, unless a transaction is open.
    Read,
    /// Changes data or takes row locks: journaled, B first, then A.
    Write,
    /// Changes the session only (SET, USE, PREPARE, temporary tables):
    /// every node's session connection, so the sessions stay alike.
    Session(SessionChange),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT.
    Commit,
    /// ROLLBACK of the whole transaction.
    Rollback,
    /// Commits implicitly (DDL, account management): cannot sit in an open
    /// transaction, so it is serialized across the chain (one at a time,
    /// numbered after the master ran it: `protocol::serialized`).
    Serialized,
    /// Transaction forms lockstep cannot keep in step (XA).
    Unsupported(&'static str),
}

/// How a session-state statement is replayed for the tail nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// Part of the session's lasting state (SET, PREPARE, temporary tables):
    /// replayed before the session's writes on the tail.
    Lasting,
    /// `USE db`: the session's schema.
    Schema,
    /// Affects the next transaction or this connection's locks only (SET
    /// TRANSACTION, LOCK TABLES): not replayed.
    Passing,
}

impl Route {
    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Route::Read => "read",
            Route::Write => "write",
            Route::Session(_) => "session",
            Route::Begin => "begin",
            Route::Commit => "commit",
            Route::Rollback => "rollback",
            Route::Serialized => "serialized",
            Route::Unsupported(_) => "unsupported",
        }
    }

    /// How strongly a route binds a text with several statements: the
    /// strongest statement decides.
    fn weight(self) -> u8 {
        match self {
            Route::Read => 0,
            Route::Session(_) => 1,
            Route::Write => 2,
            Route::Begin | Route::Commit | Route::Rollback | Route::Serialized => 3,
            Route::Unsupported(_) => 4,
        }
    }

    /// Writes data (or may): needs its journal entry durable before it runs.
    pub fn changes_data(self) -> bool {
        matches!(self, Route::Write | Route::Serialized | Route::Commit)
    }
}

/// The route of a query text. Several statements in one text take the path
/// of the strongest; one that controls transactions or commits implicitly
/// makes the whole text serialized across the chain.
pub fn route(query: &[u8]) -> Route {
    let Some(lexemes) = lex(query) else {
        return Route::Write;
    };
    let statements = statements_of(&lexemes);
    match statements.as_slice() {
        [] => Route::Read,
        [one] => route_statement(one),
        many => {
            let strongest = many
                .iter()
                .map(|s| route_statement(s))
                .max_by_key(|r| r.weight())
                .unwrap_or(Route::Write);
            match strongest {
                Route::Begin | Route::Commit | Route::Rollback => Route::Serialized,
                other => other,
            }
        }
    }
}

/// How a text of several statements controls transactions itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextTransactions {
    /// It has BEGIN, COMMIT or ROLLBACK among its statements.
    pub controls: bool,
    /// Its last transaction statement is a BEGIN: it leaves a transaction
    /// open for the client's next texts.
    pub leaves_open: bool,
    /// Its last statement ends a transaction (COMMIT, ROLLBACK, or one that
    /// commits implicitly): with autocommit off nothing stays open after it.
    pub ends_with_end: bool,
}

/// How `query`'s statements open and end transactions (`None` for one
/// statement or a text that cannot be read).
pub fn text_transactions(query: &[u8]) -> Option<TextTransactions> {
    let lexemes = lex(query)?;
    let statements = statements_of(&lexemes);
    if statements.len() < 2 {
        return None;
    }
    let mut shape = TextTransactions {
        controls: false,
        leaves_open: false,
        ends_with_end: false,
    };
    for statement in statements {
        let route = route_statement(statement);
        shape.ends_with_end = matches!(route, Route::Commit | Route::Rollback | Route::Serialized);
        match route {
            Route::Begin => {
                shape.controls = true;
                shape.leaves_open = true;
            }
            Route::Commit | Route::Rollback => {
                shape.controls = true;
                shape.leaves_open = false;
            }
            // A statement that commits implicitly ends it too.
            Route::Serialized => shape.leaves_open = false,
            _ => {}
        }
    }
    Some(shape)
}

fn route_statement(tokens: &[Lexeme]) -> Route {
    let words = Words(tokens);
    let Some(first) = tokens.first() else {
        return Route::Read;
    };
    if first.token == Token::LParen {
        return route_select(tokens);
    }
    let Some(keyword) = first.word_upper() else {
        return Route::Write;
    };
    match keyword.as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => route_select(tokens),
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" | "HELP" | "CHECKSUM" | "CHECK" | "DO" => {
            Route::Read
        }
        // HANDLER OPEN / READ / CLOSE: reads through a handle of the session.
        "HANDLER" => Route::Read,
        // Server administration concerns the server it is sent to.
        // FLUSH PRIVILEGES reloads the grant tables into memory, which
        // decides what the next GRANT does to those tables (MariaDB's
        // public_basic left B with a row the master had not): every node.
        "FLUSH" if (1..tokens.len()).any(|i| words.upper(i).as_deref() == Some("PRIVILEGES")) => {
            Route::Serialized
        }
        "FLUSH" | "RESET" | "PURGE" | "SHUTDOWN" | "BINLOG" | "CHANGE" | "STOP" | "CACHE" => {
            Route::Read
        }
        "ANALYZE" => match words.upper(1).as_deref() {
            Some("TABLE") | Some("TABLES") => Route::Read,
            // ANALYZE [FORMAT = JSON] <statement> executes it.
            _ => route_statement(analyzed_statement(tokens)),
        },
        "SET" => route_set(&words),
        "USE" => Route::Session(SessionChange::Schema),
        "PREPARE" | "DEALLOCATE" => Route::Session(SessionChange::Lasting),
        "LOCK" | "UNLOCK" => match words.upper(1).as_deref() {
            Some("TABLE") | Some("TABLES") => Route::Session(SessionChange::Passing),
            _ => Route::Write,
        },
        "CREATE" | "DROP" => route_create_drop(&words),
        "BEGIN" => match words.upper(1).as_deref() {
            // `BEGIN NOT ATOMIC … END`: a compound statement, not a transaction.
            Some("NOT") => Route::Write,
            _ => Route::Begin,
        },
        "START" => match words.upper(1).as_deref() {
            Some("TRANSACTION") => Route::Begin,
            _ => Route::Read,
        },
        "COMMIT" => Route::Commit,
        "ROLLBACK" => match (words.upper(1).as_deref(), words.upper(2).as_deref()) {
            (Some("TO"), _) | (Some("WORK"), Some("TO")) => Route::Write,
            _ => Route::Rollback,
        },
        "SAVEPOINT" | "RELEASE" => Route::Write,
        "XA" => Route::Unsupported("XA transactions"),
        "ALTER" | "RENAME" | "TRUNCATE" | "GRANT" | "REVOKE" | "OPTIMIZE" | "REPAIR"
        | "INSTALL" | "UNINSTALL" => Route::Serialized,
        _ => Route::Write,
    }
}

/// The statement `ANALYZE [FORMAT = …] <statement>` runs (`tokens` start
/// at ANALYZE).
fn analyzed_statement(tokens: &[Lexeme]) -> &[Lexeme] {
    let words = Words(tokens);
    if words.upper(1).as_deref() == Some("FORMAT")
        && tokens.get(2).is_some_and(|t| t.token == Token::Eq)
    {
        &tokens[tokens.len().min(4)..]
    } else {
        &tokens[1..]
    }
}

/// Whether the rows a statement answers with are the node's report about
/// itself rather than data: `ANALYZE <statement>` (the plan it ran and what
/// each step cost), `REPAIR` and `OPTIMIZE TABLE` (one message per table,
/// which depends on the node's files and memory). Never compared.
pub fn answers_with_node_report(query: &[u8]) -> bool {
    // Every write passes here: the lexer only for what may be one.
    if plainly_starts_with_none_of(query, &["ANALYZE", "REPAIR", "OPTIMIZE"]) {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    match words.upper(0).as_deref() {
        Some("ANALYZE") => !matches!(words.upper(1).as_deref(), Some("TABLE") | Some("TABLES")),
        Some("REPAIR") | Some("OPTIMIZE") => true,
        _ => false,
    }
}

/// Whether a statement locks rows with `SKIP LOCKED`: which rows it skips
/// depends on what other sessions hold at that moment on each node, so
/// its rows differ between nodes by design.
pub fn skips_locked_rows(query: &[u8]) -> bool {
    if !contains_ignore_case(query, b"skip") {
        return false;
    }
    lex(query).is_some_and(|lexemes| claims_rows(&lexemes))
}

/// A `SELECT … FOR UPDATE SKIP LOCKED` (or `LOCK IN SHARE MODE`) that only
/// answers rows: its rows may differ between nodes, but it changes
/// nothing. A statement that writes what a `SKIP LOCKED` read chose
/// (`INSERT … SELECT … SKIP LOCKED`) would write other rows on each node.
pub fn writes_skipped_rows(query: &[u8]) -> bool {
    skips_locked_rows(query) && !is_guarded_read(query)
}

/// A session statement that commits the open transaction as it runs
/// (`LOCK TABLES`, `SET autocommit = 1`): lockstep commits it first, through
/// the write path, so the commit is recorded everywhere.
pub fn commits_open_transaction(query: &[u8]) -> bool {
    const FIRST: &[&str] = &[
        "LOCK", "ANALYZE", "CHECK", "FLUSH", "CACHE", "RESET", "LOAD", "SET",
    ];
    if plainly_starts_with_none_of(query, FIRST) {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    match words.upper(0).as_deref() {
        Some("LOCK") => true,
        // Statements MariaDB runs with an implicit commit first, which the
        // router sends to the master alone (server administration).
        Some("ANALYZE" | "CHECK" | "FLUSH" | "CACHE" | "RESET") => true,
        Some("LOAD") => words.upper(1).as_deref() == Some("INDEX"),
        Some("SET") => lexemes.windows(3).any(|w| {
            let name = w[0].word_upper();
            let enabling = match &w[2].token {
                Token::Number(n, _) => n == "1",
                Token::Word(v) => {
                    let v = v.value.to_ascii_uppercase();
                    v == "ON" || v == "TRUE"
                }
                _ => false,
            };
            name.as_deref()
                .is_some_and(|n| n == "AUTOCOMMIT" || n == "@@AUTOCOMMIT")
                && w[1].token == Token::Eq
                && enabling
        }),
        _ => false,
    }
}

/// A savepoint statement (`SAVEPOINT`, `RELEASE SAVEPOINT`, `ROLLBACK
/// [WORK] TO [SAVEPOINT]`): part of its transaction's replay, but no change
/// of data that needs a commit number of its own.
pub fn is_savepoint_statement(query: &[u8]) -> bool {
    if plainly_starts_with_none_of(query, &["SAVEPOINT", "RELEASE", "ROLLBACK"]) {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    statement_count(&lexemes) == 1
        && match words.upper(0).as_deref() {
            Some("SAVEPOINT" | "RELEASE") => true,
            Some("ROLLBACK") => matches!(
                (words.upper(1).as_deref(), words.upper(2).as_deref()),
                (Some("TO"), _) | (Some("WORK"), Some("TO"))
            ),
            _ => false,
        }
}

/// How a client's `BEGIN` / `START TRANSACTION` opens a transaction: its
/// access mode, or None when the text is anything but those words (a
/// comment, an unusual spelling: then it is sent to B as it is).
pub fn transaction_access(query: &[u8]) -> Option<TransactionAccess> {
    const WORDS: &[&str] = &[
        "BEGIN",
        "WORK",
        "START",
        "TRANSACTION",
        "READ",
        "ONLY",
        "WRITE",
        "WITH",
        "CONSISTENT",
        "SNAPSHOT",
    ];
    let lexemes = lex(query)?;
    let mut words = Vec::new();
    for lexeme in &lexemes {
        match (&lexeme.token, lexeme.word_upper()) {
            (_, Some(word)) if WORDS.contains(&word.as_str()) => words.push(word),
            (Token::Comma, _) => {}
            (Token::SemiColon, _) if std::ptr::eq(lexeme, lexemes.last()?) => {}
            _ => return None,
        }
    }
    if !matches!(words.first().map(String::as_str), Some("BEGIN" | "START")) {
        return None;
    }
    let read_only = words.windows(2).any(|w| w[0] == "READ" && w[1] == "ONLY");
    Some(match read_only {
        true => TransactionAccess::ReadOnly,
        false => TransactionAccess::ReadWrite,
    })
}

/// A transaction's access mode as its `START TRANSACTION` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionAccess {
    ReadWrite,
    ReadOnly,
}

/// How many statements a text holds.
fn statement_count(lexemes: &[Lexeme]) -> usize {
    statements_of(lexemes).len()
}

/// A read that may still write through what it calls (a stored function,
/// a sequence): one statement of the SELECT family or DO. The master runs it
/// read-only and refuses it if it writes (see `write::read`).
pub fn is_guarded_read(query: &[u8]) -> bool {
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let first = lexemes.first();
    statement_count(&lexemes) == 1
        && (first.is_some_and(|l| l.token == Token::LParen)
            || matches!(
                Words(&lexemes).upper(0).as_deref(),
                Some("SELECT" | "WITH" | "VALUES" | "TABLE" | "DO")
            ))
}

/// The statement name of `PREPARE name FROM …` (lower-cased: MariaDB's
/// statement names ignore case).
pub fn prepared_statement_name(query: &[u8]) -> Option<String> {
    statement_name_after(query, "PREPARE")
}

/// The user variable of `PREPARE name FROM @var`, as written.
pub fn prepared_from_variable(query: &[u8]) -> Option<String> {
    if !starts_with_one_of(query, &["PREPARE"]) {
        return None;
    }
    let lexemes = lex(query)?;
    if statement_count(&lexemes) != 1 || Words(&lexemes).upper(2).as_deref() != Some("FROM") {
        return None;
    }
    match lexemes.get(3).map(|l| &l.token) {
        Some(Token::Word(w))
            if w.quote_style.is_none()
                && w.value.starts_with('@')
                && !w.value.starts_with("@@") =>
        {
            (lexemes.len() == 4 || lexemes.get(4).map(|l| &l.token) == Some(&Token::SemiColon))
                .then(|| w.value.clone())
        }
        _ => None,
    }
}

/// The statement name of `EXECUTE name [USING …]` (not `EXECUTE IMMEDIATE`).
pub fn executed_statement_name(query: &[u8]) -> Option<String> {
    statement_name_after(query, "EXECUTE").filter(|name| name != "immediate")
}

fn statement_name_after(query: &[u8], verb: &str) -> Option<String> {
    if !starts_with_one_of(query, &[verb]) {
        return None;
    }
    let lexemes = lex(query)?;
    if statement_count(&lexemes) != 1 {
        return None;
    }
    match &lexemes.get(1)?.token {
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// Whether running the text may call a function it names: not a
/// statement that only describes (`SHOW CREATE FUNCTION f`, `EXPLAIN`).
pub fn may_call_functions(query: &[u8]) -> bool {
    !starts_with_one_of(query, &["SHOW", "DESC", "DESCRIBE", "EXPLAIN", "HELP"])
}

/// Whether the text names a user variable (`@u`, not `@@system`): a
/// session statement that does assigns it, and later writes may read it.
pub fn names_user_variable(query: &[u8]) -> bool {
    lex(query).is_some_and(|lexemes| {
        lexemes.iter().any(|l| match &l.token {
            Token::Word(w) if w.quote_style.is_none() => {
                w.value.starts_with('@') && !w.value.starts_with("@@")
            }
            _ => false,
        })
    })
}

/// The statements of a text, split at its top-level `;`.
fn statements_of(lexemes: &[Lexeme]) -> Vec<&[Lexeme]> {
    lexemes
        .split(|l| l.token == Token::SemiColon)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A name lockstep can spell back without quoting it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// Every user variable `lexemes` name (`@u`), each once, in order; `None`
/// when one has a name lockstep cannot spell back (`@'a b'`, @`a b`).
fn user_variable_names(query: &[u8], lexemes: &[Lexeme]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for lexeme in lexemes {
        match &lexeme.token {
            Token::Word(w) if w.quote_style.is_none() && w.value.starts_with('@') => {
                if w.value.starts_with("@@") {
                    continue;
                }
                let name = &w.value[1..];
                if !is_plain_name(name) {
                    return None;
                }
                if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    names.push(name.to_string());
                }
            }
            // `@'name'`, `@"name"`, @`name`: not spelled back.
            _ if query.get(lexeme.range.start) == Some(&b'@') => return None,
            _ => {}
        }
    }
    (!names.is_empty()).then_some(names)
}

/// The user variables a text names (`@u`, unquoted), each once, in the
/// order they first appear; `None` when it also names one lockstep cannot
/// spell back (a quoted name) or assigns anything but user variables (a
/// SET that also sets a system variable), so that the statement itself
/// must be kept.
pub fn assigned_user_variables(query: &[u8]) -> Option<Vec<String>> {
    let lexemes = lex(query)?;
    let words = Words(&lexemes);
    let first = words.upper(0)?;
    if !matches!(first.as_str(), "SET" | "SELECT" | "WITH" | "VALUES") {
        return None;
    }
    if first == "SET"
        && !set_targets(query)?
            .iter()
            .all(|target| matches!(target, SetTarget::User(_)))
    {
        return None;
    }
    user_variable_names(query, &lexemes)
}

/// What a single statement that assigns variables assigns: the targets of
/// a `SET`, the user variables of a `SELECT … INTO @v` or `SELECT @v :=
/// …`; `None` when lockstep cannot name them all.
pub fn assigned_targets(query: &[u8]) -> Option<Vec<SetTarget>> {
    if starts_with_one_of(query, &["SET"]) {
        return set_targets(query);
    }
    assigned_user_variables(query).map(|names| names.into_iter().map(SetTarget::User).collect())
}

/// Whether a text of several statements changes its session as it runs
/// (a `SET` or `USE` among them): a connection that replays it holds
/// another state afterwards than the one the text was journaled with.
pub fn text_changes_session(query: &[u8]) -> bool {
    query.contains(&b';')
        && any_of_several_statements(query, |s| {
            matches!(Words(s).upper(0).as_deref(), Some("SET" | "USE"))
        })
}

/// Whether a text of several statements has a `USE db` among them (the
/// text takes the route of its strongest statement, so the session's
/// schema must be read again after it).
pub fn text_changes_schema(query: &[u8]) -> bool {
    // Every statement asks: read the text only when it may hold one.
    if !query.contains(&b';') || !contains_ignore_case(query, b"use") {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let statements = statements_of(&lexemes);
    statements.len() > 1
        && statements
            .iter()
            .any(|s| Words(s).upper(0).as_deref() == Some("USE"))
}

/// The variables the SET statements of a text of several statements assign
/// (`SET @a = 1, sql_mode = ''; INSERT …`), each once; `None` when it has
/// no SET, or one whose variables `set_targets` cannot name.
pub fn text_set_targets(query: &[u8]) -> Option<Vec<SetTarget>> {
    // Every write asks: read the text only when it may hold several.
    if !query.contains(&b';') {
        return None;
    }
    let lexemes = lex(query)?;
    let statements = statements_of(&lexemes);
    if statements.len() < 2 {
        return None;
    }
    let mut targets: Vec<SetTarget> = Vec::new();
    for statement in statements {
        let words = Words(statement);
        if words.upper(0).as_deref() != Some("SET") {
            continue;
        }
        if matches!(
            words.upper(1).as_deref(),
            Some("NAMES" | "CHARACTER" | "CHARSET")
        ) {
            // `SET NAMES x` has a syntax of its own; what it sets is these.
            for name in CHARACTER_SET_VARIABLES {
                let target = SetTarget::Session(name.to_string());
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            continue;
        }
        let start = statement.first()?.range.start;
        let end = statement.last()?.range.end;
        for target in set_targets(query.get(start..end)?)? {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    (!targets.is_empty()).then_some(targets)
}

/// The user variables a `CALL p(@a, @b)` passes (OUT and INOUT parameters
/// set them), each once; `None` for any other text, or one lockstep cannot
/// spell back.
pub fn call_user_variables(query: &[u8]) -> Option<Vec<String>> {
    // Every write asks: read the text only when it may pass a variable.
    if !query.contains(&b'@') {
        return None;
    }
    let lexemes = lex(query)?;
    if Words(&lexemes).upper(0).as_deref() != Some("CALL") {
        return None;
    }
    user_variable_names(query, &lexemes)
}

/// A variable a `SET` assigns in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetTarget {
    /// `@name`
    User(String),
    /// `name`, `SESSION name`, `@@name`, `@@session.name`
    Session(String),
}

/// What `SET NAMES` and `SET CHARACTER SET` change in a session.
const CHARACTER_SET_VARIABLES: [&str; 4] = [
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

/// The variables a `SET` statement assigns, in order; `None` for another
/// statement, a global one, or a form with a syntax of its own (`SET NAMES`,
/// `SET CHARACTER SET`, `SET TRANSACTION`, `SET ROLE`, `SET PASSWORD`,
/// `SET STATEMENT`, `SET DEFAULT ROLE`), or a name lockstep cannot spell.
pub fn set_targets(query: &[u8]) -> Option<Vec<SetTarget>> {
    let lexemes = lex(query)?;
    if Words(&lexemes).upper(0).as_deref() != Some("SET") {
        return None;
    }
    let mut targets = Vec::new();
    let mut depth = 0i32;
    let mut expect_target = true;
    let mut scope_given = false;
    for lexeme in &lexemes[1..] {
        match &lexeme.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                expect_target = true;
                continue;
            }
            Token::SemiColon => break,
            _ => {}
        }
        if !expect_target {
            continue;
        }
        // `@@session.name` comes as `@@session`, `.`, `name`.
        if scope_given && lexeme.token == Token::Period {
            continue;
        }
        let Token::Word(w) = &lexeme.token else {
            return None;
        };
        if w.quote_style.is_some() {
            return None;
        }
        let upper = w.value.to_ascii_uppercase();
        if !scope_given
            && matches!(
                upper.as_str(),
                "SESSION" | "LOCAL" | "@@SESSION" | "@@LOCAL"
            )
        {
            scope_given = true;
            continue;
        }
        if upper == "@@GLOBAL" {
            return None;
        }
        scope_given = false;
        let target = if let Some(system) = upper.strip_prefix("@@") {
            let name = system
                .strip_prefix("SESSION.")
                .or_else(|| system.strip_prefix("LOCAL."))
                .unwrap_or(system);
            if name.starts_with("GLOBAL.") || !is_plain_name(name) {
                return None;
            }
            SetTarget::Session(name.to_ascii_lowercase())
        } else if let Some(user) = w.value.strip_prefix('@') {
            if !is_plain_name(user) {
                return None;
            }
            SetTarget::User(user.to_string())
        } else {
            let special = [
                "GLOBAL",
                "NAMES",
                "CHARACTER",
                "CHARSET",
                "TRANSACTION",
                "ROLE",
                "PASSWORD",
                "STATEMENT",
                "DEFAULT",
            ];
            if special.contains(&upper.as_str()) || !is_plain_name(&w.value) {
                return None;
            }
            SetTarget::Session(w.value.to_ascii_lowercase())
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
        expect_target = false;
    }
    (!targets.is_empty()).then_some(targets)
}

/// A client's `SET timestamp = …` (also `@@timestamp`, `@@session.timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampAssignment {
    /// A fixed time: statements take it as theirs until released.
    Fixes,
    /// `DEFAULT` or 0: the session's time is the clock again.
    Releases,
}

impl TimestampAssignment {
    pub fn releases(self) -> bool {
        self == TimestampAssignment::Releases
    }
}

/// Whether a SET text assigns the session's `timestamp`, and how.
pub fn assigned_timestamp(query: &[u8]) -> Option<TimestampAssignment> {
    let lexemes = lex(query)?;
    let words: Vec<&Token> = lexemes
        .iter()
        .map(|l| &l.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let first = match words.first()? {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        _ => return None,
    };
    if first != "SET" {
        return None;
    }
    let names_timestamp = |t: &Token| match t {
        Token::Word(w) if w.quote_style.is_none() => {
            let v = w.value.to_ascii_lowercase();
            v == "timestamp" || v == "@@timestamp"
        }
        _ => false,
    };
    let position = words.windows(2).position(|pair| {
        names_timestamp(pair[0]) && matches!(pair[1], Token::Eq | Token::Assignment)
    })?;
    let releases = match words.get(position + 2) {
        Some(Token::Word(w)) => w.value.eq_ignore_ascii_case("DEFAULT"),
        Some(Token::Number(n, _)) => n.trim_start_matches('0').is_empty(),
        _ => false,
    };
    Some(if releases {
        TimestampAssignment::Releases
    } else {
        TimestampAssignment::Fixes
    })
}

/// Whether the text starts with CREATE or ALTER: a definition the server
/// stores (a table and its defaults, a trigger, a routine, an event, a
/// view), as opposed to the data it writes. (A routine's body holds `;`, so
/// the text is not split into statements here.)
pub fn is_definition(query: &[u8]) -> bool {
    starts_with_one_of(query, &["CREATE", "ALTER"])
}

/// Whether the text's first word is one of `words` (upper case).
fn starts_with_one_of(query: &[u8], words: &[&str]) -> bool {
    if plainly_starts_with_none_of(query, words) {
        return false;
    }
    lex(query).is_some_and(|lexemes| {
        Words(&lexemes)
            .upper(0)
            .is_some_and(|first| words.contains(&first.as_str()))
    })
}

/// For `DROP TABLE [IF EXISTS] t1, t2 …` (without TEMPORARY), the
/// `DROP TEMPORARY TABLE IF EXISTS t1, t2 …` of the same names: MariaDB's
/// DROP TABLE drops the session's temporary table of a name first, and a
/// replay of the session's state must not create it again.
pub fn as_temporary_drop(query: &[u8]) -> Option<Vec<u8>> {
    if !starts_with_one_of(query, &["DROP"]) {
        return None;
    }
    let lexemes = lex(query)?;
    if statement_count(&lexemes) != 1 {
        return None;
    }
    let words = Words(&lexemes);
    if !matches!(words.upper(1).as_deref(), Some("TABLE" | "TABLES")) {
        return None;
    }
    let mut first_name = 2;
    if words.upper(2).as_deref() == Some("IF") && words.upper(3).as_deref() == Some("EXISTS") {
        first_name = 4;
    }
    let start = lexemes.get(first_name)?.range.start;
    // Up to a closing `;`, if any.
    let end = match lexemes.last() {
        Some(l) if l.token == Token::SemiColon => l.range.start,
        _ => query.len(),
    };
    let names = query.get(start..end)?.trim_ascii_end();
    Some([b"DROP TEMPORARY TABLE IF EXISTS ".as_slice(), names].concat())
}

/// Whether a text of several statements creates a temporary table among
/// them (`CREATE TEMPORARY TABLE x …; INSERT …`).
pub fn text_creates_temporary_table(query: &[u8]) -> bool {
    if !query.contains(&b';') || !contains_ignore_case(query, b"temporary") {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let statements = statements_of(&lexemes);
    statements.len() > 1
        && statements.iter().any(|s| {
            let words = Words(s);
            words.upper(0).as_deref() == Some("CREATE")
                && (1..4).any(|i| words.upper(i).as_deref() == Some("TEMPORARY"))
        })
}

/// Whether the text creates a temporary table (`CREATE [OR REPLACE]
/// TEMPORARY TABLE …`).
pub fn creates_temporary_table(query: &[u8]) -> bool {
    // Every write passes here: the lexer only for what may be one.
    if !contains_ignore_case(query, b"temporary") || plainly_starts_with_none_of(query, &["CREATE"])
    {
        return false;
    }
    lex(query).is_some_and(|lexemes| {
        let words = Words(&lexemes);
        words.upper(0).as_deref() == Some("CREATE")
            && (1..4).any(|i| words.upper(i).as_deref() == Some("TEMPORARY"))
    })
}

/// Whether the text is a `SET GLOBAL …` (or `SET @@global.…`).
pub fn sets_global(query: &[u8]) -> bool {
    lex(query).is_some_and(|lexemes| {
        let words = Words(&lexemes);
        words.upper(0).as_deref() == Some("SET")
            && words
                .upper(1)
                .is_some_and(|w| w == "GLOBAL" || w.starts_with("@@GLOBAL"))
    })
}

/// Whether the text changes the account it runs as: `SET PASSWORD = …`,
/// `SET PASSWORD FOR CURRENT_USER[()] = …`, `ALTER USER CURRENT_USER[()]
/// …`. Through lockstep that is lockstep's own account on the nodes (the
/// one in their URLs), not the client's lockstep user.
pub fn changes_own_account(query: &[u8]) -> bool {
    if plainly_starts_with_none_of(query, &["SET", "ALTER"]) {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    let current_user_at = |i: usize| words.upper(i).as_deref() == Some("CURRENT_USER");
    match (words.upper(0).as_deref(), words.upper(1).as_deref()) {
        (Some("SET"), Some("PASSWORD")) => {
            lexemes.get(2).is_some_and(|l| l.token == Token::Eq)
                || (words.upper(2).as_deref() == Some("FOR") && current_user_at(3))
        }
        (Some("ALTER"), Some("USER")) => {
            let at = if words.upper(2).as_deref() == Some("IF") {
                4
            } else {
                2
            };
            current_user_at(at)
        }
        _ => false,
    }
}

/// Whether the text turns MariaDB's event scheduler on (`SET GLOBAL
/// event_scheduler = ON`): every node would then run the events by itself,
/// writing behind lockstep's back.
pub fn enables_event_scheduler(query: &[u8]) -> bool {
    if !contains_ignore_case(query, b"event_scheduler") {
        return false;
    }
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    if words.upper(0).as_deref() != Some("SET") {
        return false;
    }
    lexemes.windows(3).any(|w| {
        w[0].word_upper().as_deref() == Some("EVENT_SCHEDULER")
            && matches!(w[1].token, Token::Eq | Token::Assignment)
            && !turns_off(&w[2].token)
    })
}

fn turns_off(value: &Token) -> bool {
    let text = match value {
        Token::Word(w) => w.value.to_ascii_uppercase(),
        Token::Number(n, _) => n.clone(),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.to_ascii_uppercase(),
        _ => return false,
    };
    matches!(text.as_str(), "OFF" | "0" | "DISABLED" | "FALSE")
}

/// Whether the text runs statements the router does not see, any of which
/// may commit implicitly: a CALL of a stored procedure, or EXECUTE (and
/// EXECUTE IMMEDIATE) of a prepared statement.
pub fn runs_hidden_statements(query: &[u8]) -> bool {
    starts_with_one_of(query, &["CALL", "EXECUTE"])
}

/// Each statement of a text of several statements, as a byte range, and
/// whether it is an `INSERT` or `REPLACE` (None: one statement, or a text
/// that cannot be read).
pub fn statements_inserting(query: &[u8]) -> Option<Vec<(Range<usize>, bool)>> {
    let lexemes = lex(query)?;
    let statements = statements_of(&lexemes);
    if statements.len() < 2 {
        return None;
    }
    statements
        .iter()
        .map(|s| {
            let range = s.first()?.range.start..s.last()?.range.end;
            let inserts = matches!(Words(s).upper(0).as_deref(), Some("INSERT" | "REPLACE"));
            Some((range, inserts))
        })
        .collect()
}

/// Whether a text of several statements that is serialized (it holds its
/// own `BEGIN … COMMIT`, or a DDL) also writes rows: nothing pins what
/// those writes make (an AUTO_INCREMENT value), so they must meet the same
/// rows and counters on every node, with no write of another session in
/// between (`write::serialized` drains the writes in flight first).
pub fn serialized_text_writes(query: &[u8]) -> bool {
    any_of_several_statements(query, |s| route_statement(s) == Route::Write)
}

/// Whether `query` holds several statements and one of them is a `CALL`,
/// whose results (one per row set of the routine, then its own) do not
/// pair up with the text's statements.
pub fn calls_a_routine_among_several(query: &[u8]) -> bool {
    any_of_several_statements(query, |s| Words(s).upper(0).as_deref() == Some("CALL"))
}

/// Whether `query` holds several statements and one of them is `wanted`.
fn any_of_several_statements(query: &[u8], wanted: impl Fn(&[Lexeme]) -> bool) -> bool {
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let statements = statements_of(&lexemes);
    statements.len() > 1 && statements.iter().any(|s| wanted(s))
}

/// Whether a serialized statement also reads rows under locks while it
/// runs (`CREATE TABLE … SELECT`, `CREATE TABLE … AS SELECT`): such a
/// statement waits for the row locks of the writes in flight, and they may
/// be waiting for it (`protocol::serialized`), so it runs with no write in
/// flight instead.
pub fn serialized_reads_rows(query: &[u8]) -> bool {
    let Some(lexemes) = lex(query) else {
        return false;
    };
    let words = Words(&lexemes);
    if words.upper(0).as_deref() != Some("CREATE") {
        return false;
    }
    let mut depth = 0i32;
    let mut names_table = false;
    for lexeme in lexemes.iter() {
        match lexeme.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => match lexeme.word_upper().as_deref() {
                Some("TABLE") if depth == 0 => names_table = true,
                // A body or a definition: stored, not run now.
                Some("VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "PACKAGE")
                    if depth == 0 && !names_table =>
                {
                    return false
                }
                Some("SELECT") if depth <= 1 => return names_table,
                _ => {}
            },
        }
    }
    false
}

/// What a `LOCK TABLES` / `UNLOCK TABLES` statement does to the session's
/// table locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLocks {
    /// `LOCK TABLES` with at least one WRITE lock: the session may write
    /// the tables it locked, and only those.
    Writing,
    /// `LOCK TABLES` with READ locks only: the session cannot write at all.
    Reading,
    /// `LOCK TABLES` with WRITE locks on system tables (`mysql.*`), which
    /// MariaDB refuses to combine with other tables (1428): lockstep cannot
    /// add `lockstep.commits`, so the session cannot write through it.
    WritingSystemTables,
    /// `UNLOCK TABLES`.
    Released,
}

/// The table locks a single `LOCK TABLE(S)` / `UNLOCK TABLE(S)` text sets;
/// None for any other text.
pub fn table_locks(query: &[u8]) -> Option<TableLocks> {
    let lexemes = lex(query)?;
    let words = Words(&lexemes);
    if statement_count(&lexemes) != 1
        || !matches!(words.upper(1).as_deref(), Some("TABLE" | "TABLES"))
    {
        return None;
    }
    match words.upper(0).as_deref() {
        Some("UNLOCK") => Some(TableLocks::Released),
        Some("LOCK")
            if lexemes
                .iter()
                .any(|l| l.word_upper().as_deref() == Some("WRITE")) =>
        {
            let system = lexemes.windows(2).any(|pair| {
                pair[0].word_upper().as_deref() == Some("MYSQL") && pair[1].token == Token::Period
            });
            Some(if system {
                TableLocks::WritingSystemTables
            } else {
                TableLocks::Writing
            })
        }
        Some("LOCK") => Some(TableLocks::Reading),
        _ => None,
    }
}

/// SELECT and its relatives: a read unless it locks rows, writes into
/// variables or files, assigns user variables or advances a sequence.
fn route_select(tokens: &[Lexeme]) -> Route {
    let words = Words(tokens);
    if claims_rows(tokens) {
        return Route::Read;
    }
    let mut assigns_variables = false;
    for (i, token) in tokens.iter().enumerate() {
        if token.token == Token::Assignment {
            assigns_variables = true;
        }
        let Some(word) = words.upper(i) else {
            continue;
        };
        match word.as_str() {
            "FOR" if words.upper(i + 1).as_deref() == Some("UPDATE") => return Route::Write,
            "LOCK" if words.upper(i + 1).as_deref() == Some("IN") => return Route::Write,
            "NEXTVAL" | "SETVAL" => return Route::Write,
            "INTO" => match words.upper(i + 1).as_deref() {
                Some("OUTFILE") | Some("DUMPFILE") => {}
                _ => assigns_variables = true,
            },
            _ => {}
        }
    }
    if assigns_variables {
        // User variables are session state: B must have the same values for
        // the writes that use them.
        Route::Session(SessionChange::Lasting)
    } else {
        Route::Read
    }
}

/// A `SELECT … FOR UPDATE SKIP LOCKED` (a job queue's claim) takes the
/// read path: on A alone, where its locks are the claim the client acts
/// on. Run on B first, each node skipped the rows its own sessions held at
/// that moment, so B and A locked different rows, and the claimers' next
/// writes waited for one another across the two nodes, where no deadlock
/// detector sees the cycle, until `innodb_lock_wait_timeout` (50 s). The
/// writes that follow the claim name the claimed rows and run on B first
/// as any write. Outside a transaction the read guard refuses it (1792:
/// it locks) and it takes the write path, where its locks end with it.
fn claims_rows(tokens: &[Lexeme]) -> bool {
    tokens.windows(2).any(|pair| {
        pair[0].word_upper().as_deref() == Some("SKIP")
            && pair[1].word_upper().as_deref() == Some("LOCKED")
    })
}

fn route_set(words: &Words<'_>) -> Route {
    if words.upper(1).as_deref() == Some("STATEMENT") {
        return route_set_statement(words.0);
    }
    match words.upper(1).as_deref() {
        Some("TRANSACTION") => Route::Session(SessionChange::Passing),
        // A server's settings decide what its statements do (a MyISAM
        // table's size limit, the default engine, the time zone): every node
        // takes them in commit order, the tail and a returning node too, so a
        // global setting is journaled like the writes it shapes.
        Some("GLOBAL") => Route::Write,
        Some(w) if w.starts_with("@@GLOBAL") => Route::Write,
        Some("PASSWORD") | Some("DEFAULT") => Route::Serialized,
        _ => Route::Session(SessionChange::Lasting),
    }
}

/// `SET STATEMENT var = value [, …] FOR <statement>`: the variables hold
/// for that statement only, so it takes the statement's route (a DDL is
/// serialized, a write takes the write path) and is no session state.
fn route_set_statement(tokens: &[Lexeme]) -> Route {
    let mut depth = 0i32;
    for (i, lexeme) in tokens.iter().enumerate() {
        match lexeme.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 && lexeme.word_upper().as_deref() == Some("FOR") => {
                return match &tokens[i + 1..] {
                    [] => Route::Write,
                    inner => route_statement(inner),
                };
            }
            _ => {}
        }
    }
    // No FOR: not valid SQL; the server says so.
    Route::Write
}

fn route_create_drop(words: &Words<'_>) -> Route {
    // CREATE [OR REPLACE] TEMPORARY TABLE, DROP TEMPORARY TABLE
    let temporary = (1..4).any(|i| words.upper(i).as_deref() == Some("TEMPORARY"));
    let prepare = words.upper(1).as_deref() == Some("PREPARE");
    if temporary || prepare {
        Route::Session(SessionChange::Lasting)
    } else {
        Route::Serialized
    }
}

/// Upper-cased unquoted words of a statement by position.
struct Words<'a>(&'a [Lexeme]);

impl Words<'_> {
    fn upper(&self, i: usize) -> Option<String> {
        self.0.get(i).and_then(Lexeme::word_upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte checks before the lexer rule out only what the lexer
    /// would: leading comments, lower case and versioned comments still
    /// reach it.
    #[test]
    fn checks_every_write_passes_skip_the_lexer_only_where_it_would_say_no() {
        assert!(answers_with_node_report(b"/* c */ OPTIMIZE TABLE t"));
        assert!(answers_with_node_report(b"optimize table t"));
        assert!(answers_with_node_report(b"REPAIR TABLE t"));
        assert!(!answers_with_node_report(b"ANALYZE TABLE t"));
        assert!(!answers_with_node_report(b"INSERT INTO t VALUES (1)"));
        assert!(creates_temporary_table(b"create temporary table t (a int)"));
        assert!(creates_temporary_table(
            b"CREATE /*!32302 TEMPORARY */ TABLE t (a INT)"
        ));
        assert!(creates_temporary_table(
            b"/* x */ CREATE TEMPORARY TABLE t (a INT)"
        ));
        assert!(creates_temporary_table(
            b"CREATE OR REPLACE TEMPORARY TABLE t (a INT)"
        ));
        assert!(!creates_temporary_table(
            b"INSERT INTO temporary_log VALUES (1)"
        ));
        assert!(!creates_temporary_table(b"CREATE TABLE t (a INT)"));
        assert!(!creates_temporary_table(b"UPDATE t SET v = 1"));
    }

    #[test]
    fn skip_locked_reads_and_writes() {
        let read = b"SELECT id FROM q.jobs WHERE state = 'new' LIMIT 1 FOR UPDATE SKIP LOCKED";
        assert!(skips_locked_rows(read) && !writes_skipped_rows(read));
        assert_eq!(route(read), Route::Read);
        let write = b"INSERT INTO t SELECT id FROM q.jobs FOR UPDATE SKIP LOCKED";
        assert!(writes_skipped_rows(write));
        for sql in ["SELECT 'skip locked'", "SELECT skip FROM t FOR UPDATE"] {
            assert!(!skips_locked_rows(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn statements_that_change_the_account_they_run_as() {
        for sql in [
            "SET PASSWORD = PASSWORD('x')",
            "set password = 'x'",
            "SET PASSWORD FOR CURRENT_USER() = PASSWORD('x')",
            "SET PASSWORD FOR current_user = 'x'",
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
            "ALTER USER IF EXISTS CURRENT_USER IDENTIFIED BY 'x'",
        ] {
            assert!(changes_own_account(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SET PASSWORD FOR app@'%' = PASSWORD('x')",
            "ALTER USER app IDENTIFIED BY 'x'",
            "SELECT PASSWORD('x')",
            "SET @password = 1",
        ] {
            assert!(!changes_own_account(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn a_statement_prepared_from_a_variable_names_it() {
        assert_eq!(
            prepared_from_variable(b"PREPARE s FROM @q").as_deref(),
            Some("@q")
        );
        assert_eq!(
            prepared_from_variable(b"prepare s from @Q;").as_deref(),
            Some("@Q")
        );
        for sql in [
            "PREPARE s FROM 'SELECT 1'",
            "PREPARE s FROM @@x",
            "SELECT @q",
        ] {
            assert_eq!(prepared_from_variable(sql.as_bytes()), None, "{sql}");
        }
    }

    #[test]
    fn turning_the_event_scheduler_on_is_told_apart() {
        for sql in [
            "SET GLOBAL event_scheduler = ON",
            "set @@global.event_scheduler=1",
            "SET GLOBAL event_scheduler := 'on'",
        ] {
            assert!(enables_event_scheduler(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SET GLOBAL event_scheduler = OFF",
            "SET GLOBAL event_scheduler = DISABLED",
            "SELECT @@event_scheduler",
            "SET @x = 'event_scheduler = ON'",
        ] {
            assert!(!enables_event_scheduler(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn set_statement_takes_its_statements_route() {
        assert_eq!(
            route(b"SET STATEMENT max_statement_time = 10 FOR CREATE TABLE t1 AS SELECT 1"),
            Route::Serialized
        );
        assert_eq!(
            route(b"SET STATEMENT sql_mode = (SELECT 'x' FOR UPDATE), foreign_key_checks = 0 FOR INSERT INTO t VALUES (1)"),
            Route::Write
        );
        assert_eq!(
            route(b"SET STATEMENT max_statement_time = 1 FOR SELECT * FROM t"),
            Route::Read
        );
    }

    #[test]
    fn administration_commits_the_open_transaction() {
        assert!(commits_open_transaction(b"ANALYZE TABLE t"));
        assert!(commits_open_transaction(b"check table t"));
        assert!(commits_open_transaction(b"FLUSH TABLES"));
        assert!(commits_open_transaction(b"LOAD INDEX INTO CACHE t"));
        assert!(!commits_open_transaction(
            b"LOAD DATA INFILE 'x' INTO TABLE t"
        ));
    }

    #[test]
    fn user_variables_named() {
        assert!(names_user_variable(b"SET @u = UUID()"));
        assert!(names_user_variable(b"SELECT MAX(id) INTO @m FROM t"));
        assert!(!names_user_variable(b"SET @@session.sql_mode = ''"));
        assert!(!names_user_variable(b"SET sql_mode = '@x'"));
    }

    #[test]
    fn guarded_reads() {
        assert!(is_guarded_read(b"SELECT f()"));
        assert!(is_guarded_read(b"do f(1);"));
        assert!(is_guarded_read(b"(SELECT 1) UNION (SELECT 2)"));
        assert!(!is_guarded_read(b"SHOW TABLES"));
        assert!(!is_guarded_read(b"SELECT 1; SELECT 2"));
    }

    #[test]
    fn drops_of_tables_as_temporary_drops() {
        let drop =
            |q: &[u8]| as_temporary_drop(q).map(|d| String::from_utf8_lossy(&d).into_owned());
        assert_eq!(
            drop(b"drop table if exists d.t1, `t 2` CASCADE;").as_deref(),
            Some("DROP TEMPORARY TABLE IF EXISTS d.t1, `t 2` CASCADE")
        );
        assert_eq!(
            drop(b"DROP TABLES t").as_deref(),
            Some("DROP TEMPORARY TABLE IF EXISTS t")
        );
        assert_eq!(drop(b"DROP TEMPORARY TABLE t"), None);
        assert_eq!(drop(b"DROP VIEW v"), None);
    }

    #[test]
    fn texts_that_create_temporary_tables() {
        assert!(text_creates_temporary_table(
            b"CREATE TEMPORARY TABLE x (a INT); INSERT INTO x VALUES (1)"
        ));
        assert!(!text_creates_temporary_table(
            b"CREATE TEMPORARY TABLE x (a INT)"
        ));
        assert!(!text_creates_temporary_table(
            b"INSERT INTO t VALUES ('temporary'); SELECT 1"
        ));
    }

    #[test]
    fn texts_that_change_their_session() {
        assert!(text_changes_session(
            b"SET NAMES latin1; INSERT INTO t VALUES (1)"
        ));
        assert!(text_changes_session(b"INSERT INTO t VALUES (1); use d2"));
        assert!(!text_changes_session(b"SET NAMES latin1"));
        assert!(!text_changes_session(
            b"INSERT INTO t VALUES (';'); SELECT 1"
        ));
    }

    #[test]
    fn names_of_sql_prepared_statements() {
        assert_eq!(
            prepared_statement_name(b"prepare S1 from 'x'").as_deref(),
            Some("s1")
        );
        assert_eq!(
            executed_statement_name(b"EXECUTE `s1` USING @a").as_deref(),
            Some("s1")
        );
        assert_eq!(executed_statement_name(b"EXECUTE IMMEDIATE 'x'"), None);
        assert_eq!(executed_statement_name(b"EXECUTE s; SELECT 1"), None);
    }

    #[test]
    fn statements_that_only_describe_call_no_function() {
        assert!(may_call_functions(b"SELECT f()"));
        assert!(may_call_functions(b"ANALYZE SELECT f()"));
        assert!(!may_call_functions(b"show create function f"));
        assert!(!may_call_functions(b"EXPLAIN SELECT f()"));
    }

    #[test]
    fn the_inserting_statements_of_a_text() {
        let text =
            b"BEGIN; INSERT INTO t VALUES (1);  update c set n = 1; replace t values (2) ;COMMIT";
        let found = statements_inserting(text).expect("several");
        let shown: Vec<(&str, bool)> = found
            .iter()
            .map(|(r, i)| (std::str::from_utf8(&text[r.clone()]).expect("utf-8"), *i))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("BEGIN", false),
                ("INSERT INTO t VALUES (1)", true),
                ("update c set n = 1", false),
                ("replace t values (2)", true),
                ("COMMIT", false),
            ]
        );
        assert_eq!(statements_inserting(b"INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn serialized_texts_that_write_rows() {
        assert!(serialized_text_writes(
            b"BEGIN; INSERT INTO t VALUES (1); UPDATE c SET n = n + 1; COMMIT"
        ));
        assert!(serialized_text_writes(
            b"INSERT INTO t VALUES (1); CREATE TABLE x (a INT)"
        ));
        assert!(!serialized_text_writes(b"BEGIN; SELECT 1; COMMIT"));
        assert!(!serialized_text_writes(b"INSERT INTO t VALUES (1)"));
        assert!(!serialized_text_writes(
            b"CREATE TABLE x (a INT); DROP TABLE y"
        ));
    }

    #[test]
    fn serialized_statements_that_read_rows() {
        assert!(serialized_reads_rows(
            b"CREATE TABLE s ENGINE=InnoDB AS SELECT * FROM t"
        ));
        assert!(serialized_reads_rows(
            b"create table s (a int) select a from t"
        ));
        assert!(serialized_reads_rows(b"CREATE TABLE s (SELECT 1)"));
        assert!(!serialized_reads_rows(b"CREATE TABLE s (a INT)"));
        assert!(!serialized_reads_rows(b"ALTER TABLE t ADD COLUMN c INT"));
        assert!(!serialized_reads_rows(b"CREATE VIEW v AS SELECT * FROM t"));
        assert!(!serialized_reads_rows(
            b"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @x = (SELECT 1)"
        ));
    }

    #[test]
    fn table_locks_of_system_tables() {
        assert_eq!(
            table_locks(b"LOCK TABLES mysql.time_zone WRITE, mysql.proc WRITE"),
            Some(TableLocks::WritingSystemTables)
        );
        assert_eq!(route(b"HANDLER t OPEN"), Route::Read);
    }

    #[test]
    fn table_locks_of_lock_statements() {
        assert_eq!(
            table_locks(b"LOCK TABLES t READ, u WRITE;"),
            Some(TableLocks::Writing)
        );
        assert_eq!(
            table_locks(b"lock table t read local"),
            Some(TableLocks::Reading)
        );
        assert_eq!(
            table_locks(b"LOCK TABLES `write` READ"),
            Some(TableLocks::Reading)
        );
        assert_eq!(table_locks(b"UNLOCK TABLES"), Some(TableLocks::Released));
        assert_eq!(table_locks(b"LOCK TABLES t WRITE; SELECT 1"), None);
        assert_eq!(table_locks(b"SELECT 'LOCK TABLES t WRITE'"), None);
    }

    #[test]
    fn plain_reads() {
        for q in [
            "SELECT * FROM t",
            "  select 1 -- UPDATE t\n",
            "SELECT 'DELETE FROM t', \"INSERT\" FROM `update`",
            "SELECT /* FOR UPDATE */ 1",
            "(SELECT 1) UNION (SELECT 2)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SHOW TABLES",
            "EXPLAIN UPDATE t SET a = 1",
            "DESC t",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "",
            ";",
        ] {
            assert_eq!(route(q.as_bytes()), Route::Read, "{q}");
        }
    }

    #[test]
    fn writes() {
        for q in [
            "INSERT INTO t VALUES (1)",
            "update t set a = 'SELECT'",
            "DELETE FROM t",
            "REPLACE t VALUES (1)",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE",
            "SELECT NEXTVAL(s)",
            "CALL p()",
            "/*!40000 INSERT INTO t VALUES (1) */",
            "ANALYZE UPDATE t SET a = 1",
            "SAVEPOINT a",
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK WORK TO a",
            "RELEASE SAVEPOINT a",
            "BEGIN NOT ATOMIC INSERT INTO t VALUES (1); END",
            "EXECUTE s",
            "LOAD DATA INFILE 'x' INTO TABLE t",
            "SELECT 1; INSERT INTO t VALUES (1)",
            "something new",
        ] {
            assert_eq!(route(q.as_bytes()), Route::Write, "{q}");
        }
    }

    #[test]
    fn session_state() {
        let lasting = Route::Session(SessionChange::Lasting);
        for q in [
            "SET NAMES utf8mb4",
            "SET @a = 1",
            "set sql_mode = ''",
            "/*!40101 SET character_set_client = utf8 */",
            "SELECT @a := MAX(id) FROM t",
            "SELECT MAX(id) INTO @a FROM t",
            "PREPARE s FROM 'SELECT 1'",
            "DEALLOCATE PREPARE s",
            "DROP PREPARE s",
            "CREATE TEMPORARY TABLE t (a INT)",
            "CREATE OR REPLACE TEMPORARY TABLE t (a INT)",
            "DROP TEMPORARY TABLE t",
        ] {
            assert_eq!(route(q.as_bytes()), lasting, "{q}");
        }
        assert_eq!(route(b"USE `db`"), Route::Session(SessionChange::Schema));
        for q in [
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "LOCK TABLES t WRITE",
        ] {
            assert_eq!(
                route(q.as_bytes()),
                Route::Session(SessionChange::Passing),
                "{q}"
            );
        }
        for q in [
            "SET GLOBAL myisam_data_pointer_size = 2",
            "SET @@global.time_zone = '+02:00'",
        ] {
            assert_eq!(route(q.as_bytes()), Route::Write, "{q}");
            assert!(sets_global(q.as_bytes()), "{q}");
        }
        assert!(!sets_global(b"SET @global = 1"));
        assert!(!sets_global(b"INSERT INTO t VALUES (1)"));
    }

    #[test]
    fn analyze_takes_the_route_of_what_it_runs() {
        assert_eq!(route(b"analyze format=json select * from t1"), Route::Read);
        assert_eq!(route(b"ANALYZE SELECT 1"), Route::Read);
        assert_eq!(
            route(b"ANALYZE FORMAT = JSON UPDATE t SET a = 1"),
            Route::Write
        );
        assert_eq!(route(b"ANALYZE DELETE FROM t"), Route::Write);
        assert_eq!(route(b"ANALYZE TABLE t"), Route::Read);
        assert!(answers_with_node_report(
            b"analyze format=json delete from t"
        ));
        assert!(answers_with_node_report(b"REPAIR LOCAL TABLE t1"));
        assert!(answers_with_node_report(b"optimize table t1"));
        assert!(!answers_with_node_report(b"ANALYZE TABLE t"));
        assert!(!answers_with_node_report(b"SELECT 'ANALYZE'"));
    }

    #[test]
    fn assigned_user_variables_are_named() {
        let names = |q: &str| assigned_user_variables(q.as_bytes());
        assert_eq!(
            names("SELECT MAX(id), COUNT(*) INTO @m, @c FROM t"),
            Some(vec!["m".to_string(), "c".to_string()])
        );
        assert_eq!(
            names("SET @x = (SELECT a FROM t), @X = @x + 1"),
            Some(vec!["x".into()])
        );
        assert_eq!(names("SELECT @r := RAND()"), Some(vec!["r".into()]));
        assert_eq!(names("SET @a = 1, sql_mode = ''"), None);
        assert_eq!(names("SET sql_mode = '', @a = 1"), None);
        assert_eq!(names("SET @`a b` = 1"), None);
        assert_eq!(names("SELECT @'a b' := 1"), None);
        assert_eq!(names("SELECT @`a b` := 1, @c := 2"), None);
        assert_eq!(names("SET @@session.sql_mode = ''"), None);
    }

    #[test]
    fn texts_that_change_the_schema() {
        assert!(text_changes_schema(b"USE db2; INSERT INTO t VALUES (1)"));
        assert!(text_changes_schema(b"INSERT INTO t VALUES (1); use `db2`"));
        assert!(!text_changes_schema(b"USE db2"));
        assert!(!text_changes_schema(
            b"INSERT INTO t VALUES ('USE x'); SELECT 1"
        ));
    }

    #[test]
    fn set_targets_in_texts_are_named() {
        use SetTarget::{Session, User};
        assert_eq!(
            text_set_targets(b"SET @a = 1, @b = (SELECT 2); INSERT INTO t VALUES (@a)"),
            Some(vec![User("a".into()), User("b".into())])
        );
        assert_eq!(text_set_targets(b"SET @a = 1"), None);
        assert_eq!(
            text_set_targets(b"SET sql_mode = ''; INSERT INTO t VALUES (1)"),
            Some(vec![Session("sql_mode".into())])
        );
        assert_eq!(
            text_set_targets(b"SET NAMES latin1; INSERT INTO t VALUES (1)"),
            Some(
                CHARACTER_SET_VARIABLES
                    .iter()
                    .map(|name| Session(name.to_string()))
                    .collect()
            )
        );
        assert_eq!(
            text_set_targets(b"INSERT INTO t VALUES (@a); SELECT 1"),
            None
        );
    }

    #[test]
    fn call_user_variables_are_named() {
        assert_eq!(
            call_user_variables(b"CALL p(@out, 1, @IN_out, @out)"),
            Some(vec!["out".to_string(), "IN_out".to_string()])
        );
        assert_eq!(call_user_variables(b"CALL p(1)"), None);
        assert_eq!(call_user_variables(b"SELECT @a := 1"), None);
    }

    #[test]
    fn texts_that_control_transactions() {
        let shape = |q: &str| {
            text_transactions(q.as_bytes()).map(|t| (t.controls, t.leaves_open, t.ends_with_end))
        };
        assert_eq!(shape("BEGIN"), None);
        assert_eq!(
            shape("BEGIN; INSERT INTO t VALUES (1)"),
            Some((true, true, false))
        );
        assert_eq!(
            shape("START TRANSACTION; INSERT INTO t VALUES (1); COMMIT"),
            Some((true, false, true))
        );
        assert_eq!(
            shape("INSERT INTO t VALUES (1); ROLLBACK"),
            Some((true, false, true))
        );
        assert_eq!(
            shape("BEGIN; CREATE TABLE t (a INT)"),
            Some((true, false, true))
        );
        assert_eq!(
            shape("CREATE TABLE t (a INT); INSERT INTO t VALUES (1)"),
            Some((false, false, false))
        );
    }

    #[test]
    fn transactions() {
        assert_eq!(route(b"BEGIN"), Route::Begin);
        assert_eq!(route(b"begin work"), Route::Begin);
        assert_eq!(route(b"START TRANSACTION READ ONLY"), Route::Begin);
        assert_eq!(route(b"COMMIT"), Route::Commit);
        assert_eq!(route(b"commit work;"), Route::Commit);
        assert_eq!(route(b"ROLLBACK"), Route::Rollback);
        for savepoint in [
            "SAVEPOINT a",
            "release savepoint a",
            "ROLLBACK TO a",
            "ROLLBACK WORK TO SAVEPOINT a",
        ] {
            assert!(is_savepoint_statement(savepoint.as_bytes()), "{savepoint}");
        }
        for other in [
            "ROLLBACK",
            "ROLLBACK WORK",
            "SELECT 1",
            "SAVEPOINT a; DELETE FROM t",
        ] {
            assert!(!is_savepoint_statement(other.as_bytes()), "{other}");
        }
        use TransactionAccess::{ReadOnly, ReadWrite};
        for (begin, access) in [
            ("BEGIN", Some(ReadWrite)),
            ("begin work;", Some(ReadWrite)),
            ("START TRANSACTION", Some(ReadWrite)),
            ("START TRANSACTION READ ONLY", Some(ReadOnly)),
            (
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                Some(ReadOnly),
            ),
            ("START TRANSACTION READ WRITE", Some(ReadWrite)),
            ("START TRANSACTION /*! READ ONLY */", Some(ReadOnly)),
            ("START TRANSACTION /* a comment */", Some(ReadWrite)),
            ("BEGIN; DELETE FROM t", None),
            ("START TRANSACTION READ ONLY, READ WRITE x", None),
        ] {
            assert_eq!(transaction_access(begin.as_bytes()), access, "{begin}");
        }
        assert_eq!(route(b"ROLLBACK WORK"), Route::Rollback);
        assert_eq!(
            route(b"BEGIN; INSERT INTO t VALUES (1); COMMIT"),
            Route::Serialized
        );
        assert!(matches!(route(b"XA START 'x'"), Route::Unsupported(_)));
    }

    #[test]
    fn session_statements_that_commit() {
        assert!(commits_open_transaction(b"SET autocommit = 1"));
        assert!(commits_open_transaction(b"set @@session.autocommit=ON"));
        assert!(commits_open_transaction(b"LOCK TABLES t WRITE"));
        assert!(!commits_open_transaction(b"SET autocommit = 0"));
        assert!(!commits_open_transaction(b"SET @autocommit = 1"));
        assert!(!commits_open_transaction(b"SET sql_mode = ''"));
    }

    #[test]
    fn implicit_commits() {
        for q in [
            "CREATE TABLE t (a INT)",
            "ALTER TABLE t ADD b INT",
            "DROP TABLE t",
            "TRUNCATE t",
            "RENAME TABLE a TO b",
            "GRANT ALL ON *.* TO x",
            "CREATE USER x",
            "SET PASSWORD = PASSWORD('x')",
            "CREATE PROCEDURE p() BEGIN INSERT INTO t VALUES (1); END",
            "flush privileges",
            "FLUSH LOCAL TABLES, PRIVILEGES",
        ] {
            assert_eq!(route(q.as_bytes()), Route::Serialized, "{q}");
        }
        assert_eq!(route(b"FLUSH TABLES"), Route::Read);
    }

    #[test]
    fn timestamp_assignments_are_found() {
        use super::{assigned_timestamp, TimestampAssignment::*};
        assert_eq!(
            assigned_timestamp(b"SET timestamp = 1293840061"),
            Some(Fixes)
        );
        assert_eq!(
            assigned_timestamp(b"set @@session.timestamp=unix_timestamp('2011-01-01')"),
            Some(Fixes)
        );
        assert_eq!(
            assigned_timestamp(b"SET sql_mode='', timestamp=DEFAULT"),
            Some(Releases)
        );
        assert_eq!(assigned_timestamp(b"SET TIMESTAMP=0"), Some(Releases));
        assert_eq!(assigned_timestamp(b"SET @t = 5"), None);
        assert_eq!(assigned_timestamp(b"SELECT timestamp = 1 FROM t"), None);
    }
}
