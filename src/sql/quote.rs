//! Building SQL text from names a client sent.

/// `name` as a backtick-quoted identifier (backticks inside doubled), bytes
/// kept as they are: the name is in the client's character set.
pub fn identifier(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    out.push(b'`');
    for &b in name {
        if b == b'`' {
            out.push(b'`');
        }
        out.push(b);
    }
    out.push(b'`');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn backticks_are_doubled() {
        assert_eq!(super::identifier(b"a`b"), b"`a``b`");
        assert_eq!(super::identifier(b"caf\xe9"), b"`caf\xe9`");
    }
}
