//! Session and socket identifiers: 20 URL-safe characters, as Node's `base64id` makes.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

/// Number of random bytes behind an id; 15 bytes encode to exactly 20 base64 characters.
const SID_BYTES: usize = 15;
/// Length of an encoded id.
pub const SID_LEN: usize = 20;

/// An Engine.IO session id or a Socket.IO socket id.
///
/// Stored inline (no heap), so copying an id into a room set or a map costs nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; SID_LEN]);

impl Sid {
    /// Builds an id from 15 random bytes supplied by the caller (this crate does no IO,
    /// so it does not read the system RNG itself).
    pub fn from_random(bytes: [u8; SID_BYTES]) -> Self {
        let mut out = [0u8; SID_LEN];
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(written, SID_LEN);
        Sid(out)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Only base64url characters are ever stored, which are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Error returned when a string is not a well-formed id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed session id")]
pub struct InvalidSid;

impl FromStr for Sid {
    type Err = InvalidSid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != SID_LEN
            || !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return Err(InvalidSid);
        }
        let mut out = [0u8; SID_LEN];
        out.copy_from_slice(bytes);
        Ok(Sid(out))
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_to_twenty_url_safe_chars_and_parses_back() {
        let sid = Sid::from_random([0xfb; 15]);
        assert_eq!(sid.as_str().len(), SID_LEN);
        assert!(!sid.as_str().contains('+') && !sid.as_str().contains('/'));
        assert_eq!(sid.as_str().parse::<Sid>(), Ok(sid));
    }

    #[test]
    fn rejects_wrong_length_and_characters() {
        assert_eq!("short".parse::<Sid>(), Err(InvalidSid));
        assert_eq!("aaaaaaaaaaaaaaaaaaa/".parse::<Sid>(), Err(InvalidSid));
    }
}
