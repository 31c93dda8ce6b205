//! API keys for the backend HTTP API: which key a caller presented, found without
//! leaking, through timing, which key was close or how long the keys are.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};

/// The accepted API keys. `Debug` shows how many there are, never the keys.
///
/// # Timing
///
/// A key is stored only as its SHA-256 digest. [`find`](Self::find) hashes the
/// presented key and compares that 32-byte digest with every stored digest using
/// `subtle`'s constant-time equality, selecting the matching position without branching
/// and without stopping at a match. So the time taken does not depend on which bytes
/// matched, on the stored keys' lengths (comparing the raw bytes would: `subtle`'s
/// slice equality returns early when the lengths differ), or on which key (if any)
/// matched. What remains unavoidable: the hashing time grows with the length of the
/// *presented* key (which the caller already knows), and with the number of configured
/// keys (which is not secret).
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// SHA-256 digests of the accepted keys; a [`KeyId`] is a position in this list.
    digests: Vec<[u8; 32]>,
}

/// Which accepted key was presented: its position among the [`ApiKeys`], so a caller
/// can keep per-key state (the HTTP API's rate-limit buckets) without holding the key.
/// Only [`ApiKeys::find`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(usize);

impl KeyId {
    /// The key's position, below [`ApiKeys::len`] of the set that found it.
    pub fn index(self) -> usize {
        self.0
    }
}

impl ApiKeys {
    /// Accepts `keys`. Empty keys are dropped: an empty key would let an empty bearer
    /// token through. A key listed twice is found at its last position.
    pub fn new<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Self {
        ApiKeys {
            digests: keys
                .into_iter()
                .filter(|key| !key.as_ref().is_empty())
                .map(|key| digest(key.as_ref()))
                .collect(),
        }
    }

    /// Which key `presented` is, in constant time (see the type's docs). Always `None`
    /// when there are no keys.
    pub fn find(&self, presented: &[u8]) -> Option<KeyId> {
        let presented = digest(presented);
        let mut found = 0u64;
        let mut any = Choice::from(0);
        for (i, stored) in self.digests.iter().enumerate() {
            let equal = equal(stored, &presented);
            found.conditional_assign(&(i as u64), equal);
            any |= equal;
        }
        bool::from(any).then_some(KeyId(found as usize))
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no key is accepted (every lookup fails).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.digests.len())
            .finish()
    }
}

/// SHA-256 of a key: a fixed 32 bytes whatever the key's length.
fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The constant-time comparison every lookup goes through. Both sides are digests, so
/// always the same length: `subtle`'s slice equality returns at once when the lengths
/// differ, and only equal lengths make it compare every byte.
fn equal(stored: &[u8], presented: &[u8]) -> Choice {
    #[cfg(test)]
    tests::COMPARED.with_borrow_mut(|seen| seen.push((stored.len(), presented.len())));
    stored.ct_eq(presented)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    thread_local! {
        /// The lengths of both sides of every comparison made by [`equal`] on this
        /// thread, for the timing test.
        pub(super) static COMPARED: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }

    fn keys() -> ApiKeys {
        ApiKeys::new(["first-key-0123456789", "second-key-0123456789"])
    }

    #[test]
    fn finds_each_configured_key_at_its_position() {
        let k = keys();
        assert_eq!(k.find(b"first-key-0123456789").map(KeyId::index), Some(0));
        assert_eq!(k.find(b"second-key-0123456789").map(KeyId::index), Some(1));
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn refuses_every_other_key() {
        let k = keys();
        for wrong in [
            "",
            "first",
            "first-key-0123456789 ",
            "first-key-012345678",
            "first-key-01234567890",
            "FIRST-KEY-0123456789",
            "third-key-0123456789",
        ] {
            assert_eq!(k.find(wrong.as_bytes()), None, "{wrong:?}");
        }
        assert_eq!(k.find(&[0xff, 0xfe]), None);
    }

    /// Refusing a key of any length runs the same comparisons, each of two 32-byte
    /// digests. A compare of the raw keys fails this: its comparisons' lengths follow
    /// the guess's, and `subtle` cuts short every comparison of unequal lengths.
    #[test]
    fn keys_of_different_lengths_are_refused_the_same_way() {
        let k = keys();
        let comparisons = |guess: &[u8]| {
            COMPARED.take();
            assert_eq!(k.find(guess), None, "{guess:?}");
            COMPARED.take()
        };
        // Same length as the first key, one byte off.
        let reference = comparisons(b"first-key-012345678X");
        assert_eq!(reference, [(32, 32); 2]);
        let long = [b'k'; 4096];
        for guess in [
            &b""[..],
            b"f",
            b"first-key",
            b"second-key-01234567890",
            &long,
        ] {
            assert_eq!(comparisons(guess), reference, "{guess:?}");
        }
    }

    #[test]
    fn empty_keys_never_match() {
        let k = ApiKeys::new([""]);
        assert!(k.is_empty());
        assert_eq!(k.find(b""), None);
        assert_eq!(ApiKeys::default().find(b"anything"), None);
    }

    #[test]
    fn debug_hides_the_keys() {
        let k = ApiKeys::new(["s3cr3t"]);
        let shown = format!("{k:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains('1'), "{shown}");
    }
}
