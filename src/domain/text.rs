//! Text cut to a byte limit (WebSocket close reasons, stored payloads, log excerpts) without
//! splitting a character.

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character boundary.
pub(crate) fn prefix_within(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_never_splits_a_character() {
        let text = "é".repeat(100);
        let cut = prefix_within(&text, 123);
        assert_eq!(cut.len(), 122);
        assert!(text.starts_with(cut));
        assert_eq!(prefix_within("short", 123), "short");
        assert_eq!(prefix_within("é", 1), "");
    }
}
