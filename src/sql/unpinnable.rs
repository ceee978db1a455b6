//! Functions whose value no session variable can pin, rewritten into
//! literals before a write is journaled, so that every node and every replay
//! computes the same data.
//!
//! `NOW()`, `CURRENT_TIMESTAMP` and friends follow `SET timestamp`, and
//! `RAND()` follows the seeds: those are pinned, not rewritten. `SYSDATE()`
//! ignores `SET timestamp`, so it becomes `NOW()` with its arguments.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlparser::tokenizer::Token;

use super::intercept::Renames;
use super::lexer::{contains_ignore_case, lex, Lexeme};

/// A call whose value is fixed by lockstep before the statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Uuid,
    SysGuid,
    UuidShort,
}

impl Pin {
    /// A fresh value, as an SQL literal.
    pub fn literal(self) -> String {
        match self {
            Pin::Uuid => quoted(&uuid::Uuid::new_v4().to_string()),
            Pin::SysGuid => quoted(&uuid::Uuid::new_v4().simple().to_string()),
            Pin::UuidShort => uuid_short().to_string(),
        }
    }
}

/// A statement with its unpinnable calls replaced.
#[derive(Debug, PartialEq)]
pub struct Pinned {
    pub sql: Vec<u8>,
    /// Result column names the replacement changed, to restore for the client.
    pub renames: Renames,
    /// For a prepared statement: the calls now read from user variables
    /// `@lockstep_pin_1`, `@lockstep_pin_2`, … which each execution sets.
    pub variables: Vec<Pin>,
}

/// The user variable that carries the value of a prepared statement's
/// `index`th (from 0) unpinnable call.
pub fn variable_name(index: usize) -> String {
    format!("@lockstep_pin_{}", index + 1)
}

/// Fresh values for the pin variables of `pins`, in order.
pub fn fresh_values(pins: &[Pin]) -> Vec<(String, String)> {
    pins.iter()
        .enumerate()
        .map(|(i, pin)| (variable_name(i), pin.literal()))
        .collect()
}

/// A text statement with its unpinnable calls replaced by literals, or
/// `None` when it has none.
pub fn rewrite(query: &[u8]) -> Option<Pinned> {
    rewrite_calls(query, false)
}

/// A prepared statement's text with its unpinnable calls replaced by user
/// variables (its executions differ, so no literal can be fixed at prepare).
pub fn rewrite_for_prepare(query: &[u8]) -> Option<Pinned> {
    rewrite_calls(query, true)
}

/// `PREPARE name FROM '<statement>'` with the unpinnable calls inside its
/// string replaced by the pin variables each `EXECUTE name` sets (its
/// executions differ, as a prepared statement's do), or `None` when the
/// string has none. Only a string written without escapes (README, limits).
pub fn rewrite_sql_prepare(query: &[u8]) -> Option<Pinned> {
    if !may_call_unpinnable(query) {
        return None;
    }
    let lexemes = lex(query)?;
    let words: Vec<Option<String>> = lexemes.iter().take(3).map(Lexeme::word_upper).collect();
    if words.first()?.as_deref() != Some("PREPARE") || words.get(2)?.as_deref() != Some("FROM") {
        return None;
    }
    let calls = calls_in_string(query, lexemes.get(3)?, true);
    if calls.is_empty() {
        return None;
    }
    Some(replaced(query, calls))
}

/// The first call in `query` that no pin or literal can make repeat
/// (`UUID()`, `SYS_GUID()`, `UUID_SHORT()`), as the client wrote it. In a
/// stored definition (a column default, a trigger, a routine, an event, a
/// view) it runs later, on each node by itself, so no literal belongs there.
pub fn unrepeatable_call(query: &[u8]) -> Option<String> {
    let pinned = rewrite_calls(query, true)?;
    let (_, original) = pinned
        .renames
        .iter()
        .find(|(server_name, _)| server_name.starts_with(b"@lockstep_pin_"))?;
    Some(String::from_utf8_lossy(original).into_owned())
}

/// The cheap test before tokenizing: the text names one of the calls.
fn may_call_unpinnable(query: &[u8]) -> bool {
    [b"uuid".as_slice(), b"sysdate", b"sys_guid"]
        .iter()
        .any(|name| contains_ignore_case(query, name))
}

/// One call found in the text: its byte range and its replacement.
struct Call {
    start: usize,
    end: usize,
    replacement: String,
    pin: Option<Pin>,
}

fn rewrite_calls(query: &[u8], with_variables: bool) -> Option<Pinned> {
    if !may_call_unpinnable(query) {
        return None;
    }
    let lexemes = lex(query)?;
    let mut calls = find_calls(query, &lexemes, with_variables);
    if !with_variables {
        calls.extend(calls_in_immediate(query, &lexemes));
        calls.sort_by_key(|call| call.start);
    }
    if calls.is_empty() {
        return None;
    }
    Some(replaced(query, calls))
}

/// `query` with each call replaced.
fn replaced(query: &[u8], calls: Vec<Call>) -> Pinned {
    let mut sql = Vec::with_capacity(query.len() + 32);
    let mut renames = Vec::new();
    let mut variables = Vec::new();
    let mut copied_to = 0;
    for call in calls {
        sql.extend_from_slice(&query[copied_to..call.start]);
        sql.extend_from_slice(call.replacement.as_bytes());
        copied_to = call.end;
        let original = query[call.start..call.end].to_vec();
        // The server names an expression column after its text; a string
        // literal's column is named by its value.
        let server_name = call.replacement.trim_matches('\'').as_bytes().to_vec();
        renames.push((server_name, original));
        if let Some(pin) = call.pin {
            variables.push(pin);
        }
    }
    sql.extend_from_slice(&query[copied_to..]);
    Pinned {
        sql,
        renames,
        variables,
    }
}

/// `EXECUTE IMMEDIATE '<statement>'`: the calls inside the string. Only a
/// string written without escapes (its bytes are its value); another is
/// left as it is (README, limits).
fn calls_in_immediate(query: &[u8], lexemes: &[Lexeme]) -> Vec<Call> {
    let immediate = lexemes.first().and_then(Lexeme::word_upper).as_deref() == Some("EXECUTE")
        && lexemes.get(1).and_then(Lexeme::word_upper).as_deref() == Some("IMMEDIATE");
    match lexemes.get(2).filter(|_| immediate) {
        Some(string) => calls_in_string(query, string, false),
        None => Vec::new(),
    }
}

/// The calls inside a single-quoted string that holds a statement, as calls
/// of the whole text, their replacements written for inside the string.
fn calls_in_string(query: &[u8], string: &Lexeme, with_variables: bool) -> Vec<Call> {
    let Token::SingleQuotedString(value) = &string.token else {
        return Vec::new();
    };
    let inside = (string.range.start + 1)..string.range.end.saturating_sub(1);
    let Some(raw) = query.get(inside.clone()) else {
        return Vec::new();
    };
    if raw != value.as_bytes() {
        return Vec::new();
    }
    let Some(inner) = lex(raw) else {
        return Vec::new();
    };
    find_calls(raw, &inner, with_variables)
        .into_iter()
        .map(|call| Call {
            start: call.start + inside.start,
            end: call.end + inside.start,
            replacement: call.replacement.replace('\'', "''"),
            pin: call.pin,
        })
        .collect()
}

fn find_calls(query: &[u8], lexemes: &[Lexeme], with_variables: bool) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut next_variable = 0;
    for (i, lexeme) in lexemes.iter().enumerate() {
        let Some(name) = lexeme.word_upper() else {
            continue;
        };
        if lexemes.get(i + 1).map(|l| &l.token) != Some(&Token::LParen) {
            continue;
        }
        let Some(close) = matching_paren(lexemes, i + 1) else {
            continue;
        };
        let empty_call = close == i + 2;
        let pin = match name.as_str() {
            "UUID" if empty_call => Pin::Uuid,
            "SYS_GUID" if empty_call => Pin::SysGuid,
            "UUID_SHORT" if empty_call => Pin::UuidShort,
            "SYSDATE" => {
                // Only the name changes: the precision argument stays.
                let rest = &query[lexeme.range.end..lexemes[close].range.end];
                calls.push(Call {
                    start: lexeme.range.start,
                    end: lexemes[close].range.end,
                    replacement: format!("NOW{}", String::from_utf8_lossy(rest)),
                    pin: None,
                });
                continue;
            }
            _ => continue,
        };
        let replacement = if with_variables {
            next_variable += 1;
            variable_name(next_variable - 1)
        } else {
            pin.literal()
        };
        calls.push(Call {
            start: lexeme.range.start,
            end: lexemes[close].range.end,
            replacement,
            pin: with_variables.then_some(pin),
        });
    }
    calls
}

/// The index of the `)` closing the `(` at `open`.
fn matching_paren(lexemes: &[Lexeme], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, l) in lexemes.iter().enumerate().skip(open) {
        match l.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

/// Like MariaDB's UUID_SHORT(): increasing 64-bit integers, unique per
/// lockstep process (its start time in the high bits, a counter below).
fn uuid_short() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let _ = NEXT.compare_exchange(
            0,
            (start & 0xFF_FFFF_FFFF) << 24,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn calls_inside_a_prepare_string_become_pin_variables() {
        let pinned = super::rewrite_sql_prepare(
            b"PREPARE s FROM 'INSERT INTO t VALUES (UUID(), SYSDATE(6), UUID_SHORT())'",
        )
        .expect("rewritten");
        assert_eq!(
            String::from_utf8_lossy(&pinned.sql),
            "PREPARE s FROM 'INSERT INTO t VALUES (@lockstep_pin_1, NOW(6), @lockstep_pin_2)'"
        );
        assert_eq!(
            pinned.variables,
            vec![super::Pin::Uuid, super::Pin::UuidShort]
        );
        assert!(super::rewrite_sql_prepare(b"PREPARE s FROM @q").is_none());
        assert!(super::rewrite_sql_prepare(b"PREPARE s FROM 'SELECT 1'").is_none());
        assert!(super::rewrite_sql_prepare(b"SELECT 'PREPARE s FROM UUID()'").is_none());
    }

    #[test]
    fn calls_inside_execute_immediate_become_literals() {
        let pinned =
            super::rewrite(b"EXECUTE IMMEDIATE 'INSERT INTO t VALUES (UUID(), UUID_SHORT())'")
                .expect("rewritten");
        let sql = String::from_utf8(pinned.sql).expect("utf8");
        assert!(
            sql.starts_with("EXECUTE IMMEDIATE 'INSERT INTO t VALUES (''"),
            "{sql}"
        );
        assert!(!sql.to_uppercase().contains("UUID"), "{sql}");
        // Written with escapes: left as it is.
        assert!(super::rewrite(b"EXECUTE IMMEDIATE 'SELECT ''a'', UUID()'").is_none());
    }

    #[test]
    fn unrepeatable_calls_are_named() {
        assert_eq!(
            super::unrepeatable_call(b"CREATE TABLE t (u CHAR(36) DEFAULT (uuid()))").as_deref(),
            Some("uuid()")
        );
        assert_eq!(
            super::unrepeatable_call(
                b"CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW SET NEW.d = SYSDATE()"
            ),
            None
        );
        assert_eq!(
            super::unrepeatable_call(b"CREATE VIEW v AS SELECT 'uuid()'"),
            None
        );
    }

    use super::*;

    fn rewritten(q: &str) -> String {
        String::from_utf8(rewrite(q.as_bytes()).expect("rewritten").sql).expect("utf8")
    }

    #[test]
    fn calls_become_literals_and_keep_their_column_names() {
        let pinned = rewrite(b"SELECT UUID(), 'UUID()', sysdate( 6 )").expect("rewritten");
        let sql = String::from_utf8(pinned.sql).expect("utf8");
        let literal = &sql["SELECT '".len().."SELECT '".len() + 36];
        assert!(uuid::Uuid::parse_str(literal).is_ok(), "{sql}");
        assert!(sql.ends_with(", 'UUID()', NOW( 6 )"), "{sql}");
        assert_eq!(
            pinned.renames,
            vec![
                (literal.as_bytes().to_vec(), b"UUID()".to_vec()),
                (b"NOW( 6 )".to_vec(), b"sysdate( 6 )".to_vec())
            ]
        );
        let q = rewritten("INSERT INTO t SELECT uuid_short()");
        assert!(
            q["INSERT INTO t SELECT ".len()..].parse::<u64>().is_ok(),
            "{q}"
        );
    }

    #[test]
    fn names_without_calls_stay() {
        assert_eq!(rewrite(b"UPDATE t SET uuid = 'UUID()' /* UUID() */"), None);
        assert_eq!(rewrite(b"INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn each_call_gets_its_own_value() {
        let q = rewritten("SELECT UUID(), UUID()");
        let parts: Vec<&str> = q.split('\'').collect();
        assert_ne!(parts[1], parts[3]);
    }

    #[test]
    fn prepared_statements_read_variables() {
        let pinned =
            rewrite_for_prepare(b"INSERT INTO t VALUES (UUID(), ?, UUID_SHORT(), SYSDATE())")
                .expect("rewritten");
        assert_eq!(
            String::from_utf8(pinned.sql).expect("utf8"),
            "INSERT INTO t VALUES (@lockstep_pin_1, ?, @lockstep_pin_2, NOW())"
        );
        assert_eq!(pinned.variables, vec![Pin::Uuid, Pin::UuidShort]);
    }
}
