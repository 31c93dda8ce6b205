//! Client-chosen strings (namespace, event and room names) made safe to log: cut to a
//! few dozen characters and escaped, so a client can neither flood the logs nor forge
//! log lines with newlines and terminal escapes.

use std::fmt;

/// Characters of a client-chosen string kept in a log line; the rest is summarized as
/// `…(+N bytes)`. Long enough for any real namespace or event name.
pub const MAX_LOGGED_CHARS: usize = 64;

/// A client-chosen string as it may appear in logs: `Display` writes at most
/// [`MAX_LOGGED_CHARS`] characters, with control characters, quotes and backslashes
/// escaped as Rust escapes them (`\n`, `\u{1b}`).
///
/// ```
/// use switchboard_engine::untrusted::Untrusted;
/// assert_eq!(Untrusted("/chat\n").to_string(), "/chat\\n");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        for (_, c) in chars.by_ref().take(MAX_LOGGED_CHARS) {
            if c.is_control() || c == '\\' || c == '"' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        if let Some((cut, _)) = chars.next() {
            write!(f, "…(+{} bytes)", self.0.len() - cut)?;
        }
        Ok(())
    }
}

/// The longest start of `text` of at most `max` bytes that ends at a character
/// boundary: a client-chosen string cut to what a bound keeps.
///
/// ```
/// use switchboard_engine::untrusted::cut;
/// assert_eq!(cut("héllo", 2), "h");
/// assert_eq!(cut("ab", 256), "ab");
/// ```
pub fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let forged = "/a\nINFO admin logged in\r\u{1b}[31m\"\\";
        assert_eq!(
            Untrusted(forged).to_string(),
            "/a\\nINFO admin logged in\\r\\u{1b}[31m\\\"\\\\"
        );
    }

    /// Never inside a character; a short string whole.
    #[test]
    fn cut_ends_at_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("ab", 256), "ab");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn long_strings_are_cut() {
        let long = "x".repeat(10_000);
        let shown = Untrusted(&long).to_string();
        assert_eq!(
            shown,
            format!(
                "{}…(+{} bytes)",
                "x".repeat(MAX_LOGGED_CHARS),
                10_000 - MAX_LOGGED_CHARS
            )
        );
        assert_eq!(
            Untrusted("é".repeat(64).as_str()).to_string(),
            "é".repeat(64)
        );
    }
}
