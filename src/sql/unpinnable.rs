//! Functions whose value no session variable can pin, rewritten into
//! literals before a write is journaled, so that every node and every replay
//! computes the same data.
//!
//! `NOW()`, `CURRENT_TIMESTAMP` and friends follow `SET timestamp`, and
//! `RAND()` follows the seeds: those are pinned, not rewritten. `SYSDATE()`
//! ignores `SET timestamp`, so it becomes `NOW()` with its arguments.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlparser::tokenizer::Token;

use super::lexer::{contains_ignore_case, lex};

/// `query` with its unpinnable calls replaced, or `None` when it has none.
pub fn rewrite(query: &[u8]) -> Option<Vec<u8>> {
    let suspicious = [b"uuid".as_slice(), b"sysdate", b"sys_guid"]
        .iter()
        .any(|name| contains_ignore_case(query, name));
    if !suspicious {
        return None;
    }
    let lexemes = lex(query)?;
    let mut out = Vec::with_capacity(query.len() + 32);
    let mut copied_to = 0;
    for (i, lexeme) in lexemes.iter().enumerate() {
        let Some(name) = lexeme.word_upper() else {
            continue;
        };
        if lexemes.get(i + 1).map(|l| &l.token) != Some(&Token::LParen) {
            continue;
        }
        let close = lexemes.get(i + 2);
        let empty_call = close.map(|l| &l.token) == Some(&Token::RParen);
        let (replace_to, literal) = match name.as_str() {
            "UUID" if empty_call => (close, quoted(&uuid::Uuid::new_v4().to_string())),
            "SYS_GUID" if empty_call => (close, quoted(&uuid::Uuid::new_v4().simple().to_string())),
            "UUID_SHORT" if empty_call => (close, uuid_short().to_string()),
            // Only the name changes: the arguments (precision) stay.
            "SYSDATE" => (Some(lexeme), "NOW".to_string()),
            _ => continue,
        };
        let Some(end) = replace_to else {
            continue;
        };
        out.extend_from_slice(&query[copied_to..lexeme.range.start]);
        out.extend_from_slice(literal.as_bytes());
        copied_to = end.range.end;
    }
    if copied_to == 0 {
        return None;
    }
    out.extend_from_slice(&query[copied_to..]);
    Some(out)
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
    use super::*;

    fn rewritten(q: &str) -> String {
        String::from_utf8(rewrite(q.as_bytes()).expect("rewritten")).expect("utf8")
    }

    #[test]
    fn calls_become_literals() {
        let uuid = regex_like_uuid(&rewritten("INSERT INTO t VALUES (UUID(), 'UUID()')"));
        assert!(uuid, "uuid literal");
        let q = rewritten("INSERT INTO t SELECT SYSDATE(6), uuid_short()");
        assert!(q.starts_with("INSERT INTO t SELECT NOW(6), "), "{q}");
        assert!(
            q["INSERT INTO t SELECT NOW(6), ".len()..]
                .parse::<u64>()
                .is_ok(),
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

    fn regex_like_uuid(q: &str) -> bool {
        let start = "INSERT INTO t VALUES ('".len();
        let literal = &q[start..start + 36];
        uuid::Uuid::parse_str(literal).is_ok() && q.ends_with(", 'UUID()')")
    }
}
