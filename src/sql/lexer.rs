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
