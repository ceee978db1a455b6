//! Tokens of a statement with their byte ranges in the original text.
//!
//! The text is in the client's character set, not necessarily UTF-8. The
//! tokenizer reads an ASCII projection of it (every byte >= 0x80 becomes `x`),
//! which keeps byte offsets equal to character offsets and cannot change the
//! token structure: multi-byte characters are only legal inside literals,
//! comments and identifiers, where `x` is legal too.

use std::ops::Range;

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

#[derive(Debug, Clone, PartialEq)]
pub struct Lexeme {
    pub token: Token,
    pub range: Range<usize>,
}

impl Lexeme {
    /// The unquoted word, upper-cased, if this is one.
    pub fn word_upper(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// The statement's first word, upper-cased, read without the tokenizer
/// (the per-statement checks of a prepared read ran it several times per
/// execution: 5 % of lockstep's CPU under oltp_point_select). `None`
/// unless the text plainly starts with one: leading whitespace only (no
/// comment, which may be an executable `/*! … */`), an ASCII letter, then
/// letters, digits, `_` or `$`, ended by whitespace, `(`, `;` or the end.
/// Where it answers, it is the word `lex` would give first; callers use it
/// only to rule a statement out early, and lex when it says nothing.
pub fn plain_first_word(query: &[u8]) -> Option<String> {
    let start = query.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &query[start..];
    if !rest.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
        .unwrap_or(rest.len());
    match rest.get(end) {
        None => {}
        Some(b) if b.is_ascii_whitespace() || *b == b'(' || *b == b';' => {}
        Some(_) => return None,
    }
    std::str::from_utf8(&rest[..end])
        .ok()
        .map(str::to_ascii_uppercase)
}

/// Whether the statement plainly starts with a word none of `words`
/// (upper-case): false when it cannot tell (`plain_first_word`).
pub fn plainly_starts_with_none_of(query: &[u8], words: &[&str]) -> bool {
    plain_first_word(query).is_some_and(|first| !words.contains(&first.as_str()))
}

/// The tokens of `query` without whitespace and comments, or `None` when the
/// text does not tokenize (it is then relayed as it is and the server judges).
///
/// MySQL executes the inside of `/*! … */` and `/*M! … */` comments (an
/// optional version number first): their tokens are part of the statement.
pub fn lex(query: &[u8]) -> Option<Vec<Lexeme>> {
    let ascii: String = query
        .iter()
        .map(|&b| if b < 0x80 { b as char } else { 'x' })
        .collect();
    let mut lexemes = Vec::new();
    lex_into(&ascii, 0, &mut lexemes)?;
    Some(lexemes)
}

/// Tokenizes `text`, which starts at byte `base` of the query.
fn lex_into(text: &str, base: usize, out: &mut Vec<Lexeme>) -> Option<()> {
    let line_starts = line_starts(text.as_bytes());
    let dialect = MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .ok()?;
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        Some(base + start + usize::try_from(column).ok()?.checked_sub(1)?)
    };
    for t in tokens {
        let start = offset(t.span.start.line, t.span.start.column)?;
        let end = offset(t.span.end.line, t.span.end.column)?;
        match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(body)) => {
                if let Some(skip) = executable_comment_prefix(body) {
                    // `/*` then the prefix; the body ends before `*/`.
                    lex_into(&body[skip..], start + 2 + skip, out)?;
                }
            }
            Token::Whitespace(_) => {}
            _ => out.push(Lexeme {
                token: t.token,
                range: start..end,
            }),
        }
    }
    Some(())
}

/// For the body of a `/* … */` comment MySQL executes, the length of its
/// `!` or `M!` marker and version number.
fn executable_comment_prefix(body: &str) -> Option<usize> {
    let marker = if body.starts_with('!') {
        1
    } else if body.starts_with("M!") {
        2
    } else {
        return None;
    };
    let digits = body[marker..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    Some(marker + digits)
}

fn line_starts(text: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect()
}

/// Case-insensitive ASCII substring test: the cheap check that decides
/// whether a statement is worth tokenizing at all.
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_first_word_is_the_lexers_or_nothing() {
        for text in [
            "SELECT c FROM t WHERE id = ?",
            "  select(1)",
            "SET autocommit = 1",
            "LOCK TABLES t WRITE",
            "COMMIT",
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
            "insert_x$1 (a)",
            "do;",
        ] {
            let lexed = lex(text.as_bytes()).and_then(|l| l.first().and_then(Lexeme::word_upper));
            assert_eq!(plain_first_word(text.as_bytes()), lexed, "{text}");
        }
        for unsure in [
            "/*!40101 SET NAMES utf8 */",
            "-- c\nSELECT 1",
            "# c\nSELECT 1",
            "(SELECT 1)",
            "`select` 1",
            "SELECT.1",
            "",
            "   ",
            "\u{e9}t\u{e9}",
        ] {
            assert_eq!(plain_first_word(unsure.as_bytes()), None, "{unsure}");
        }
        assert!(plainly_starts_with_none_of(b"SELECT 1", &["SET", "LOCK"]));
        assert!(!plainly_starts_with_none_of(b"set x = 1", &["SET", "LOCK"]));
        assert!(!plainly_starts_with_none_of(b"/* c */ SELECT 1", &["SET"]));
    }

    #[test]
    fn ranges_point_into_the_original_bytes() {
        let q = "SELECT 'é', CONNECTION_ID()\n FROM t".as_bytes();
        let lexemes = lex(q).expect("lexes");
        let cid = lexemes
            .iter()
            .find(|l| l.word_upper().as_deref() == Some("CONNECTION_ID"))
            .expect("found");
        assert_eq!(&q[cid.range.clone()], b"CONNECTION_ID");
        let from = lexemes
            .iter()
            .find(|l| l.word_upper().as_deref() == Some("FROM"))
            .expect("found");
        assert_eq!(&q[from.range.clone()], b"FROM");
    }

    #[test]
    fn latin1_bytes_do_not_break_lexing() {
        let q = b"SELECT '\xe9t\xe9' AS x";
        let lexemes = lex(q).expect("lexes");
        assert_eq!(lexemes.len(), 4);
    }

    #[test]
    fn executable_comments_are_read_as_statement_text() {
        let q = b"/*!40101 SET NAMES utf8 */ /*M!100100 INSERT */ /* DELETE */";
        let lexemes = lex(q).expect("lexes");
        let words: Vec<_> = lexemes.iter().filter_map(Lexeme::word_upper).collect();
        assert_eq!(words, ["SET", "NAMES", "UTF8", "INSERT"]);
        let insert = &lexemes[3];
        assert_eq!(&q[insert.range.clone()], b"INSERT");
    }

    #[test]
    fn comments_and_strings_are_not_words() {
        let q = b"SELECT 'CONNECTION_ID()' /* CONNECTION_ID() */ -- CONNECTION_ID()\n";
        let lexemes = lex(q).expect("lexes");
        assert!(lexemes
            .iter()
            .all(|l| l.word_upper().as_deref() != Some("CONNECTION_ID")));
    }
}
