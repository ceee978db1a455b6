//! The statements lockstep must answer or rewrite itself instead of relaying
//! them as they are, because they name things that exist per connection and
//! lockstep's connection ids are not the backends' thread ids.

use std::borrow::Cow;

use mysql_async::Column;

use sqlparser::tokenizer::Token;

use super::lexer::{contains_ignore_case, lex, Lexeme};

#[derive(Debug, PartialEq)]
pub enum Intercepted<'q> {
    /// `SELECT @@socket`: answered with NULL, so that drivers preferring a
    /// local socket (mysql_async's default) do not reconnect around lockstep.
    SelectSocket,
    /// `SELECT LOCKSTEP_REQUEST_ID()`: the session's last requestId.
    RequestId,
    /// `SHOW LOCKSTEP NODES`
    ShowNodes,
    /// `SHOW LOCKSTEP STATUS`
    ShowStatus,
    /// `SHOW LOCKSTEP REQUEST '<requestId>'`
    ShowRequest(String),
    /// `SHOW LOCKSTEP …` of something lockstep does not know.
    ShowUnknown,
    /// `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>` with a lockstep connection id.
    Kill { query_only: bool, id: u64 },
    /// A KILL form lockstep cannot map to its own ids (`KILL USER`, `KILL QUERY ID`).
    KillUnsupported,
    /// Anything else, relayed; possibly rewritten.
    Relay(Rewrite<'q>),
}

/// The statement to send, and the result column names to restore: rewriting
/// `CONNECTION_ID()` into a literal renames the column `CONNECTION_ID()` would
/// have had.
#[derive(Debug, PartialEq)]
pub struct Rewrite<'q> {
    pub sql: Cow<'q, [u8]>,
    pub renames: Renames,
}

/// Pairs of (name the server gives a result column, name the client expects).
pub type Renames = Vec<(Vec<u8>, Vec<u8>)>;

/// `query` with each range replaced by its text, and the renames that give
/// the result column the server names `column` back the name the client
/// wrote (the replaced text). Ranges in order, not overlapping.
pub fn replaced(
    query: &[u8],
    parts: impl IntoIterator<Item = (std::ops::Range<usize>, Vec<u8>, Vec<u8>)>,
) -> (Vec<u8>, Renames) {
    let mut sql = Vec::with_capacity(query.len());
    let mut renames = Vec::new();
    let mut copied_to = 0;
    for (range, text, column) in parts {
        sql.extend_from_slice(&query[copied_to..range.start]);
        sql.extend_from_slice(&text);
        renames.push((column, query[range.clone()].to_vec()));
        copied_to = range.end;
    }
    sql.extend_from_slice(&query[copied_to..]);
    (sql, renames)
}

/// The names the client expects for result columns the server named as in
/// `columns`: the k-th column named after a literal gets the k-th call the
/// client wrote that became that literal (`USER(), SESSION_USER()` become
/// the same one).
pub fn original_names(renames: &[(Vec<u8>, Vec<u8>)], columns: &[Column]) -> Vec<Vec<u8>> {
    let mut used = vec![false; renames.len()];
    columns
        .iter()
        .map(|c| {
            let name = c.name_ref();
            let found = renames
                .iter()
                .enumerate()
                .find(|(i, (literal, _))| !used[*i] && literal.as_slice() == name);
            match found {
                Some((i, (_, original))) => {
                    used[i] = true;
                    original.clone()
                }
                None => name.to_vec(),
            }
        })
        .collect()
}

/// The client a session serves, as the functions that name it see it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'c> {
    /// lockstep's connection id (`CONNECTION_ID()`).
    pub connection_id: u32,
    /// `user@host` (`USER()`, `SESSION_USER()`, `SYSTEM_USER()`).
    pub user: &'c str,
}

/// Looks at one COM_QUERY text sent by `client`.
pub fn intercept<'q>(query: &'q [u8], client: Client<'_>) -> Intercepted<'q> {
    let mentions_socket = contains_ignore_case(query, b"@@socket");
    let mentions_kill = contains_ignore_case(query, b"kill");
    let mentions_connection_id = contains_ignore_case(query, b"connection_id");
    let mentions_user = calls_user_function(query);
    let mentions_request_id = contains_ignore_case(query, b"lockstep_request_id");
    let mentions_lockstep = contains_ignore_case(query, b"lockstep");
    if !(mentions_socket
        || mentions_kill
        || mentions_connection_id
        || mentions_user
        || mentions_lockstep)
    {
        return relay_unchanged(query);
    }
    let Some(lexemes) = lex(query) else {
        return relay_unchanged(query);
    };
    if mentions_socket && is_select_socket(&lexemes) {
        return Intercepted::SelectSocket;
    }
    if mentions_request_id && is_select_request_id(&lexemes) {
        return Intercepted::RequestId;
    }
    if mentions_lockstep {
        if let Some(show) = parse_show_lockstep(&lexemes) {
            return show;
        }
    }
    let mut rewrite = if mentions_connection_id {
        rewrite_connection_id(query, &lexemes, client.connection_id)
    } else {
        Rewrite {
            sql: Cow::Borrowed(query),
            renames: Vec::new(),
        }
    };
    if mentions_user {
        rewrite = with_client_user(rewrite, client.user);
    }
    if mentions_kill {
        let relexed = if rewrite.renames.is_empty() {
            Some(lexemes)
        } else {
            lex(&rewrite.sql)
        };
        if let Some(kill) = relexed.as_deref().and_then(parse_kill) {
            return kill;
        }
    }
    Intercepted::Relay(rewrite)
}

fn relay_unchanged(query: &[u8]) -> Intercepted<'_> {
    Intercepted::Relay(Rewrite {
        sql: Cow::Borrowed(query),
        renames: Vec::new(),
    })
}

/// Drops a trailing `;`.
fn statement_tokens(lexemes: &[Lexeme]) -> &[Lexeme] {
    match lexemes.last() {
        Some(l) if l.token == Token::SemiColon => &lexemes[..lexemes.len() - 1],
        _ => lexemes,
    }
}

fn is_select_socket(lexemes: &[Lexeme]) -> bool {
    let words: Vec<Option<String>> = statement_tokens(lexemes)
        .iter()
        .map(Lexeme::word_upper)
        .collect();
    matches!(
        words.as_slice(),
        [Some(select), Some(var)] if select == "SELECT"
            && (var == "@@SOCKET" || var == "@@GLOBAL.SOCKET")
    )
}

fn is_select_request_id(lexemes: &[Lexeme]) -> bool {
    match statement_tokens(lexemes) {
        [select, function, open, close] => {
            select.word_upper().as_deref() == Some("SELECT")
                && function.word_upper().as_deref() == Some("LOCKSTEP_REQUEST_ID")
                && open.token == Token::LParen
                && close.token == Token::RParen
        }
        _ => false,
    }
}

fn parse_show_lockstep(lexemes: &[Lexeme]) -> Option<Intercepted<'static>> {
    let tokens = statement_tokens(lexemes);
    let word = |i: usize| tokens.get(i).and_then(Lexeme::word_upper);
    if word(0).as_deref() != Some("SHOW") || word(1).as_deref() != Some("LOCKSTEP") {
        return None;
    }
    Some(match (word(2).as_deref(), &tokens[2..]) {
        (Some("NODES"), [_]) => Intercepted::ShowNodes,
        (Some("STATUS"), [_]) => Intercepted::ShowStatus,
        (
            Some("REQUEST"),
            [_, Lexeme {
                token: Token::SingleQuotedString(id),
                ..
            }],
        ) => Intercepted::ShowRequest(id.clone()),
        _ => Intercepted::ShowUnknown,
    })
}

fn rewrite_connection_id<'q>(query: &'q [u8], lexemes: &[Lexeme], id: u32) -> Rewrite<'q> {
    rewrite_calls(query, lexemes, "CONNECTION_ID", &id.to_string())
}

/// The functions that name the session's user: on the nodes they would
/// name lockstep's own account on the node.
const USER_FUNCTIONS: [&str; 3] = ["USER", "SESSION_USER", "SYSTEM_USER"];

/// Whether the text may call `USER()` or its kin: `user` followed by `(`
/// (cheap; most texts are relayed without lexing).
fn calls_user_function(query: &[u8]) -> bool {
    query.windows(4).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"user")
            && query[i + 4..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'(')
    })
}

/// `USER()`, `SESSION_USER()` and `SYSTEM_USER()` as the literal
/// `'user@host'` of the client lockstep serves, as MariaDB answers them
/// directly (a column or row written from them holds the client's user on
/// every node). Not in a definition (`CREATE TRIGGER … USER()`, a DEFAULT):
/// there they run later, in whichever session uses it. A name with a quote
/// or backslash is left to the server.
fn with_client_user<'q>(rewrite: Rewrite<'q>, user: &str) -> Rewrite<'q> {
    if user.contains(['\'', '\\']) {
        return rewrite;
    }
    let Some(lexemes) = lex(&rewrite.sql) else {
        return rewrite;
    };
    let first = lexemes.first().and_then(Lexeme::word_upper);
    if matches!(first.as_deref(), Some("CREATE" | "ALTER")) {
        return rewrite;
    }
    let literal = format!("'{user}'");
    let mut sql = rewrite.sql.into_owned();
    let mut renames = rewrite.renames;
    for function in USER_FUNCTIONS {
        let lexemes = if function == USER_FUNCTIONS[0] {
            lexemes.clone()
        } else {
            match lex(&sql) {
                Some(lexemes) => lexemes,
                None => break,
            }
        };
        let replaced = rewrite_calls_as(&sql, &lexemes, function, &literal, user.as_bytes());
        if replaced.renames.is_empty() {
            continue;
        }
        renames.extend(replaced.renames);
        sql = replaced.sql.into_owned();
    }
    Rewrite {
        sql: Cow::Owned(sql),
        renames,
    }
}

/// Whether `query` may call ROW_COUNT() (the name appears in it).
pub fn mentions_row_count(query: &[u8]) -> bool {
    contains_ignore_case(query, b"row_count")
}

/// `ROW_COUNT()` in `rewrite`'s text as the literal `row_count`: the value
/// MariaDB gives for the client's previous statement, which lockstep knows
/// and A's session no longer does (lockstep's own COMMIT and SET ran after
/// that statement there). As a literal it is also the same on every node.
pub fn with_row_count(rewrite: Rewrite<'_>, row_count: i64) -> Rewrite<'_> {
    with_call_value(rewrite, "ROW_COUNT", row_count)
}

/// Whether `query` may call FOUND_ROWS() (the name appears in it).
pub fn mentions_found_rows(query: &[u8]) -> bool {
    contains_ignore_case(query, b"found_rows")
}

/// `FOUND_ROWS()` in `rewrite`'s text as the literal `found_rows`: in a
/// write, the value of the client's last SELECT, which ran on A alone (B
/// and the tail would each give their own).
pub fn with_found_rows(rewrite: Rewrite<'_>, found_rows: i64) -> Rewrite<'_> {
    with_call_value(rewrite, "FOUND_ROWS", found_rows)
}

/// Every `function()` call in `rewrite`'s text as the literal `value`.
fn with_call_value<'q>(rewrite: Rewrite<'q>, function: &str, value: i64) -> Rewrite<'q> {
    if !contains_ignore_case(&rewrite.sql, function.as_bytes()) {
        return rewrite;
    }
    let Some(lexemes) = lex(&rewrite.sql) else {
        return rewrite;
    };
    let replaced = rewrite_calls(&rewrite.sql, &lexemes, function, &value.to_string());
    if replaced.renames.is_empty() {
        return rewrite;
    }
    let mut renames = rewrite.renames;
    renames.extend(replaced.renames);
    Rewrite {
        sql: Cow::Owned(replaced.sql.into_owned()),
        renames,
    }
}

/// Every call `function()` (no arguments) in `query` as `literal`, with the
/// result column renamed back to the call the client wrote.
fn rewrite_calls<'q>(
    query: &'q [u8],
    lexemes: &[Lexeme],
    function: &str,
    literal: &str,
) -> Rewrite<'q> {
    rewrite_calls_as(query, lexemes, function, literal, literal.as_bytes())
}

/// `rewrite_calls` where the server names the literal's column `column`
/// (a string literal's column is its content).
fn rewrite_calls_as<'q>(
    query: &'q [u8],
    lexemes: &[Lexeme],
    function: &str,
    literal: &str,
    column: &[u8],
) -> Rewrite<'q> {
    let calls: Vec<_> = lexemes
        .windows(3)
        .filter(|w| {
            w[0].word_upper().as_deref() == Some(function)
                && w[1].token == Token::LParen
                && w[2].token == Token::RParen
        })
        .map(|w| {
            let range = w[0].range.start..w[2].range.end;
            (range, literal.as_bytes().to_vec(), column.to_vec())
        })
        .collect();
    if calls.is_empty() {
        return Rewrite {
            sql: Cow::Borrowed(query),
            renames: Vec::new(),
        };
    }
    let (sql, renames) = replaced(query, calls);
    Rewrite {
        sql: Cow::Owned(sql),
        renames,
    }
}

fn parse_kill(lexemes: &[Lexeme]) -> Option<Intercepted<'static>> {
    let tokens = statement_tokens(lexemes);
    let (first, mut rest) = tokens.split_first()?;
    if first.word_upper()? != "KILL" {
        return None;
    }
    if let Some(w) = rest.first().and_then(Lexeme::word_upper) {
        if w == "HARD" || w == "SOFT" {
            rest = &rest[1..];
        }
    }
    let mut query_only = false;
    if let Some(w) = rest.first().and_then(Lexeme::word_upper) {
        match w.as_str() {
            "CONNECTION" => rest = &rest[1..],
            "QUERY" => {
                query_only = true;
                rest = &rest[1..];
            }
            "USER" => return Some(Intercepted::KillUnsupported),
            _ => {}
        }
    }
    if rest.first().and_then(Lexeme::word_upper).as_deref() == Some("ID") {
        return Some(Intercepted::KillUnsupported);
    }
    match rest {
        [Lexeme {
            token: Token::Number(n, _),
            ..
        }] => Some(Intercepted::Kill {
            query_only,
            id: n.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(connection_id: u32) -> Client<'static> {
        Client {
            connection_id,
            user: "app@10.0.0.7",
        }
    }

    #[test]
    fn user_functions_become_the_clients_user_outside_definitions() {
        let (sql, renames) = relayed(intercept(
            b"SELECT USER(), session_user (), 'USER()', SYSTEM_USER()",
            client(1),
        ));
        assert_eq!(
            sql,
            b"SELECT 'app@10.0.0.7', 'app@10.0.0.7', 'USER()', 'app@10.0.0.7'"
        );
        let originals: Vec<&[u8]> = renames.iter().map(|(_, o)| o.as_slice()).collect();
        assert_eq!(
            originals,
            [b"USER()".as_slice(), b"session_user ()", b"SYSTEM_USER()"]
        );
        let (sql, _) = relayed(intercept(
            b"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.u = USER()",
            client(1),
        ));
        assert!(sql.ends_with(b"USER()"));
        assert_eq!(
            intercept(b"SELECT * FROM users", client(1)),
            relay_unchanged(b"SELECT * FROM users")
        );
    }

    fn relayed(i: Intercepted<'_>) -> (Vec<u8>, Renames) {
        match i {
            Intercepted::Relay(r) => (r.sql.into_owned(), r.renames),
            other => panic!("expected a relay, got {other:?}"),
        }
    }

    #[test]
    fn plain_statements_are_untouched_and_not_copied() {
        match intercept(b"SELECT * FROM t WHERE id = 1", client(7)) {
            Intercepted::Relay(r) => assert!(matches!(r.sql, Cow::Borrowed(_))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn row_count_becomes_the_known_value() {
        let Intercepted::Relay(rewrite) = intercept(
            b"SELECT ROW_COUNT(), 'ROW_COUNT()', row_count ( )",
            client(3),
        ) else {
            panic!("a relay");
        };
        let (sql, renames) = relayed(Intercepted::Relay(super::with_row_count(rewrite, -1)));
        assert_eq!(sql, b"SELECT -1, 'ROW_COUNT()', -1");
        assert_eq!(renames.len(), 2);
        assert_eq!(renames[0], (b"-1".to_vec(), b"ROW_COUNT()".to_vec()));
    }

    #[test]
    fn connection_id_becomes_lockstep_id_and_keeps_its_column_name() {
        let (sql, renames) = relayed(intercept(
            b"SELECT connection_id( ), 'CONNECTION_ID()'",
            client(42),
        ));
        assert_eq!(sql, b"SELECT 42, 'CONNECTION_ID()'");
        assert_eq!(
            renames,
            vec![(b"42".to_vec(), b"connection_id( )".to_vec())]
        );
    }

    #[test]
    fn request_id_is_answered_by_lockstep() {
        assert_eq!(
            intercept(b"select lockstep_request_id();", client(1)),
            Intercepted::RequestId
        );
        assert!(matches!(
            intercept(b"SELECT 'LOCKSTEP_REQUEST_ID()'", client(1)),
            Intercepted::Relay(_)
        ));
    }

    #[test]
    fn show_lockstep_commands() {
        assert_eq!(
            intercept(b"show lockstep nodes;", client(1)),
            Intercepted::ShowNodes
        );
        assert_eq!(
            intercept(b"SHOW LOCKSTEP REQUEST 'abc'", client(1)),
            Intercepted::ShowRequest("abc".into())
        );
        assert_eq!(
            intercept(b"SHOW LOCKSTEP FOO", client(1)),
            Intercepted::ShowUnknown
        );
        assert_eq!(
            intercept(b"SHOW LOCKSTEP STATUS", client(1)),
            Intercepted::ShowStatus
        );
        assert!(matches!(
            intercept(b"SELECT * FROM lockstep.commits", client(1)),
            Intercepted::Relay(_)
        ));
    }

    #[test]
    fn kill_forms() {
        assert_eq!(
            intercept(b"KILL QUERY 12", client(1)),
            Intercepted::Kill {
                query_only: true,
                id: 12
            }
        );
        assert_eq!(
            intercept(b"kill hard connection 12;", client(1)),
            Intercepted::Kill {
                query_only: false,
                id: 12
            }
        );
        assert_eq!(
            intercept(b"KILL 5", client(1)),
            Intercepted::Kill {
                query_only: false,
                id: 5
            }
        );
        assert_eq!(
            intercept(b"KILL CONNECTION_ID()", client(9)),
            Intercepted::Kill {
                query_only: false,
                id: 9
            }
        );
        assert_eq!(
            intercept(b"KILL USER app", client(1)),
            Intercepted::KillUnsupported
        );
        assert_eq!(
            intercept(b"KILL QUERY ID 3", client(1)),
            Intercepted::KillUnsupported
        );
        // Not a KILL statement: a column named kill.
        assert!(matches!(
            intercept(b"SELECT `kill` FROM t", client(1)),
            Intercepted::Relay(_)
        ));
    }

    #[test]
    fn select_socket_is_answered() {
        assert_eq!(
            intercept(b"SELECT @@socket", client(1)),
            Intercepted::SelectSocket
        );
        assert_eq!(
            intercept(b"select @@SOCKET;", client(1)),
            Intercepted::SelectSocket
        );
        assert!(matches!(
            intercept(b"SELECT @@socket, 1", client(1)),
            Intercepted::Relay(_)
        ));
    }
}
