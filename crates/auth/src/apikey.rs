//! API keys for the backend HTTP API, checked without leaking, through timing, which
//! key was close or how long the keys are.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The accepted API keys. `Debug` shows how many there are, never the keys.
///
/// # Timing
///
/// A key is stored only as its SHA-256 digest. [`check`](Self::check) hashes the
/// presented key and compares that 32-byte digest with every stored digest using
/// `subtle`'s constant-time equality, combining the results without branching and without
/// stopping at a match. So the time taken does not depend on which bytes matched, on the
/// stored keys' lengths, or on which key (if any) matched. What remains unavoidable: the
/// hashing time grows with the length of the *presented* key (which the caller already
/// knows), and with the number of configured keys (which is not secret).
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// SHA-256 digests of the accepted keys.
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Accepts `keys`. Empty strings are dropped: an empty key would let an empty bearer
    /// token through. Duplicates are harmless.
    pub fn new(keys: Vec<String>) -> Self {
        ApiKeys {
            digests: keys
                .iter()
                .filter(|key| !key.is_empty())
                .map(|key| digest(key))
                .collect(),
        }
    }

    /// Whether `presented` is one of the keys, in constant time (see the type's docs).
    /// Always false when there are no keys.
    pub fn check(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut found = Choice::from(0);
        for stored in &self.digests {
            found |= stored.ct_eq(&presented);
        }
        bool::from(found)
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no key is accepted (every check fails).
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

/// SHA-256 of a key.
fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_configured_keys() {
        let keys = ApiKeys::new(vec!["alpha-key".into(), "beta-key".into()]);
        assert!(keys.check("alpha-key"));
        assert!(keys.check("beta-key"));
        for wrong in [
            "",
            "alpha",
            "alpha-key ",
            "alpha-keyx",
            "ALPHA-KEY",
            "gamma",
        ] {
            assert!(!keys.check(wrong), "{wrong}");
        }
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn empty_keys_never_match() {
        let keys = ApiKeys::new(vec![String::new()]);
        assert!(keys.is_empty());
        assert!(!keys.check(""));
        assert!(!ApiKeys::default().check("anything"));
    }

    #[test]
    fn debug_hides_the_keys() {
        let keys = ApiKeys::new(vec!["s3cr3t".into()]);
        let shown = format!("{keys:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains('1'), "{shown}");
    }
}
