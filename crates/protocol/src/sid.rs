//! Session and socket identifiers: 20 URL-safe characters, as Node's `base64id` makes,
//! optionally starting with the [`NodeTag`] of the node that owns the session.

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

    /// Builds an id that starts with `tag`, the rest from `bytes` as in
    /// [`Sid::from_random`]: still 20 base64url characters, so clients see nothing
    /// special, and any node can tell the owner with [`owner_tag`].
    pub fn from_random_tagged(tag: &NodeTag, bytes: [u8; SID_BYTES]) -> Self {
        let mut sid = Sid::from_random(bytes);
        let tag = tag.as_str().as_bytes();
        sid.0[..tag.len()].copy_from_slice(tag);
        sid
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

/// Whether `b` is a base64url character (the alphabet of every id).
fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl FromStr for Sid {
    type Err = InvalidSid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != SID_LEN || !bytes.iter().copied().all(is_id_char) {
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

/// Longest node tag: 8 characters leave 12 random ones (72 bits) in every id, far
/// beyond guessing, while a cluster of any size fits in 4 (16.7 million tags).
pub const MAX_TAG_LEN: usize = 8;

/// The short name of a node, written at the start of every Engine.IO session id it
/// creates, so another node can tell which node owns a session from its id alone (no
/// shared table to look up, nothing to keep in sync). 1 to [`MAX_TAG_LEN`] base64url
/// characters, unique in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeTag(String);

/// Error returned when a string is not a valid node tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node tag is 1 to {MAX_TAG_LEN} base64url characters (A-Z a-z 0-9 - _)")]
pub struct InvalidNodeTag;

impl NodeTag {
    /// Checks `tag`: 1 to [`MAX_TAG_LEN`] base64url characters.
    pub fn new(tag: &str) -> Result<Self, InvalidNodeTag> {
        let bytes = tag.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_TAG_LEN || !bytes.iter().copied().all(is_id_char) {
            return Err(InvalidNodeTag);
        }
        Ok(NodeTag(tag.to_owned()))
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its length in characters (every node of a cluster uses the same length).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a tag has at least one character.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `sid` was created by the node with this tag.
    pub fn owns(&self, sid: &str) -> bool {
        owner_tag(sid, self.len()) == Some(self.as_str())
    }
}

impl FromStr for NodeTag {
    type Err = InvalidNodeTag;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeTag::new(s)
    }
}

impl fmt::Display for NodeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tag of the node that owns session `sid`, when every tag is `tag_len`
/// characters long: its first `tag_len` characters. `None` when `sid` is not a
/// well-formed id or `tag_len` is not a valid tag length.
pub fn owner_tag(sid: &str, tag_len: usize) -> Option<&str> {
    if !(1..=MAX_TAG_LEN).contains(&tag_len) || sid.parse::<Sid>().is_err() {
        return None;
    }
    sid.get(..tag_len)
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

    #[test]
    fn tagged_ids_start_with_the_tag_and_stay_well_formed() -> Result<(), InvalidNodeTag> {
        let tag = NodeTag::new("n0-_")?;
        let sid = Sid::from_random_tagged(&tag, [0xfb; 15]);
        assert_eq!(sid.as_str().len(), SID_LEN);
        assert!(sid.as_str().starts_with("n0-_"), "{sid}");
        assert_eq!(sid.as_str().parse::<Sid>(), Ok(sid));
        // The rest is the untagged id's.
        let plain = Sid::from_random([0xfb; 15]);
        assert_eq!(sid.as_str()[4..], plain.as_str()[4..]);
        assert!(tag.owns(sid.as_str()));
        assert!(!NodeTag::new("n1")?.owns(sid.as_str()));
        Ok(())
    }

    #[test]
    fn node_tags_are_short_base64url() {
        assert!(NodeTag::new("a").is_ok());
        assert!(NodeTag::new("abcdefgh").is_ok());
        assert_eq!(NodeTag::new(""), Err(InvalidNodeTag));
        assert_eq!(NodeTag::new("abcdefghi"), Err(InvalidNodeTag));
        assert_eq!(NodeTag::new("ab/c"), Err(InvalidNodeTag));
        assert_eq!(NodeTag::new("é"), Err(InvalidNodeTag));
        assert_eq!(
            "xyz".parse::<NodeTag>().map(|t| t.to_string()),
            Ok("xyz".into())
        );
    }

    #[test]
    fn owner_tag_reads_the_prefix_of_well_formed_ids_only() {
        let sid = "abcdEFGHijklMNOPqrst";
        assert_eq!(owner_tag(sid, 4), Some("abcd"));
        assert_eq!(owner_tag(sid, 1), Some("a"));
        assert_eq!(owner_tag(sid, 0), None);
        assert_eq!(owner_tag(sid, MAX_TAG_LEN + 1), None);
        assert_eq!(owner_tag("abcd", 4), None, "too short");
        assert_eq!(owner_tag("abcdEFGHijklMNOPqrs/", 4), None, "bad character");
        assert_eq!(owner_tag("ééééEFGHijklMNOPqr", 4), None, "not ASCII");
    }
}
