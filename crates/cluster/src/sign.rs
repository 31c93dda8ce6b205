//! What Switchboard nodes send each other beyond the Node adapters' protocol, under
//! the [`ClusterSecret`]; no IO.
//!
//! - [`Signer`]: HMAC-SHA256 tags (node questions, the marks of stream entries). A
//!   signed message is `tag (32) | body`, the tag covering a label first and then the
//!   body: readable by whoever reads Redis, made only with the secret.
//! - [`Sealer`]: ChaCha20-Poly1305 under a key derived from the secret (forwarded
//!   polling requests and relayed upgrades, which carry a session's id: a bearer
//!   credential that anyone reading Redis could otherwise take and use on a node's
//!   public listener). A sealed message is `salt (16) | nonce (12) | ciphertext |
//!   tag (16)`, the label authenticated beside it: neither readable nor made without
//!   the secret.
//!
//! Each kind of message has its own label, so what was made for one kind never passes
//! for another's under the same secret.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use bytes::{BufMut, Bytes, BytesMut};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

use crate::ClusterSecret;

/// Length of the HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// Bytes of the tag a [`Signer::short_tag`] keeps.
const SHORT_TAG_LEN: usize = 16;

/// Bytes of a [`Sealer`]'s salt: chosen at random by each process, it picks the key
/// (derived from the secret and the salt) its messages are sealed with.
const SALT_LEN: usize = 16;

/// What a [`Sealer`] adds to a message: its salt, its nonce and its tag.
pub(crate) const SEAL_OVERHEAD: usize = SALT_LEN + NONCE_LEN + 16;

/// The label of the keys a [`Sealer`] derives from the secret (HMAC-SHA256 under the
/// secret of this label and a salt): not the key of any [`Signer`] tag.
const SEAL_KEY_LABEL: &[u8] = b"switchboard sealing key v1\0";

/// Why a sealed message did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unsealed {
    /// Shorter than its tag.
    #[error("shorter than its tag")]
    Short,
    /// The tag is not the one the cluster secret makes: unsigned, signed with another
    /// secret or for another label, or altered.
    #[error("bad signature")]
    Signature,
}

/// Signs messages and checks their tags with the cluster secret.
#[derive(Debug)]
pub(crate) struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub(crate) fn new(secret: &ClusterSecret) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    /// `body` under its tag for `label`.
    pub(crate) fn seal(&self, label: &[u8], body: &[u8]) -> Bytes {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label);
        ctx.update(body);
        let tag = ctx.sign();
        let mut out = BytesMut::with_capacity(TAG_LEN + body.len());
        out.put_slice(tag.as_ref());
        out.put_slice(body);
        out.freeze()
    }

    /// A short tag (the first 16 bytes of the HMAC, in lowercase hex) for `label` and
    /// the `parts` of a body, for marks carried in a field of a message Node also
    /// reads, where the whole tag would double the field's size: 128 bits still cannot
    /// be guessed. Made on the stack: marks are signed and checked once per message.
    pub(crate) fn short_tag(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 2 * SHORT_TAG_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(label);
        for part in parts {
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 2 * SHORT_TAG_LEN];
        for (i, b) in tag.as_ref()[..SHORT_TAG_LEN].iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        out
    }

    /// Whether `tag` is the [`Signer::short_tag`] of `label` and `parts` (compared in
    /// constant time).
    pub(crate) fn checks_short_tag(&self, label: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        let expected = self.short_tag(label, parts);
        tag.len() == expected.len()
            && expected
                .iter()
                .zip(tag)
                .fold(0u8, |differ, (a, b)| differ | (a ^ b))
                == 0
    }

    /// The body after the tag, once the tag for `label` is checked (in constant time)
    /// and before anything of the body is read.
    pub(crate) fn open<'a>(&self, label: &[u8], sealed: &'a [u8]) -> Result<&'a [u8], Unsealed> {
        if sealed.len() < TAG_LEN {
            return Err(Unsealed::Short);
        }
        let (tag, body) = sealed.split_at(TAG_LEN);
        let mut signed = Vec::with_capacity(label.len() + body.len());
        signed.extend_from_slice(label);
        signed.extend_from_slice(body);
        hmac::verify(&self.key, &signed, tag).map_err(|_| Unsealed::Signature)?;
        Ok(body)
    }
}

/// Encrypts and authenticates messages with the cluster secret (ChaCha20-Poly1305).
///
/// Each process seals under a key of its own, derived from the secret and a random
/// salt it sends with every message, and numbers its nonces: a nonce never repeats
/// under a key, however many messages the cluster exchanges over its life (random
/// nonces under one key for the whole cluster would, past about 2^32 messages, risk
/// a repeat). A receiver derives the sender's key from the salt (one HMAC).
pub(crate) struct Sealer {
    /// The secret as an HMAC key, to derive keys from salts.
    secret: hmac::Key,
    salt: [u8; SALT_LEN],
    /// The key of `salt`.
    key: LessSafeKey,
    /// Messages sealed so far: the next nonce.
    sealed: AtomicU64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    pub(crate) fn new(secret: &ClusterSecret) -> Sealer {
        let secret = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let salt: [u8; SALT_LEN] = rand::random();
        Sealer {
            key: key_of(&secret, &salt),
            secret,
            salt,
            sealed: AtomicU64::new(0),
        }
    }

    /// `body` encrypted, with `label` authenticated beside it. A message too large to
    /// seal (over 256 GiB) comes out empty, which never opens.
    pub(crate) fn seal(&self, label: &[u8], body: &[u8]) -> Bytes {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[NONCE_LEN - 8..].copy_from_slice(&self.sealed.fetch_add(1, Relaxed).to_be_bytes());
        let mut out = BytesMut::with_capacity(SEAL_OVERHEAD + body.len());
        out.put_slice(&self.salt);
        out.put_slice(&nonce);
        out.put_slice(body);
        let sealed = self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(label),
            &mut out[SALT_LEN + NONCE_LEN..],
        );
        match sealed {
            Ok(tag) => {
                out.put_slice(tag.as_ref());
                out.freeze()
            }
            Err(_) => Bytes::new(),
        }
    }

    /// The body, once its tag for `label` is checked; nothing of it is read before.
    pub(crate) fn open(&self, label: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealed> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Unsealed::Short);
        }
        let (salt, rest) = sealed.split_at(SALT_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealed::Short)?;
        let theirs;
        let key = if salt == self.salt {
            &self.key
        } else {
            theirs = key_of(&self.secret, salt);
            &theirs
        };
        let mut body = rest.to_vec();
        let len = key
            .open_in_place(nonce, Aad::from(label), &mut body)
            .map_err(|_| Unsealed::Signature)?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

/// The sealing key of `salt` under `secret`.
fn key_of(secret: &hmac::Key, salt: &[u8]) -> LessSafeKey {
    let mut ctx = hmac::Context::with_key(secret);
    ctx.update(SEAL_KEY_LABEL);
    ctx.update(salt);
    let derived = ctx.sign();
    // 32 bytes, ChaCha20-Poly1305's key length: this cannot fail.
    let key = UnboundKey::new(&CHACHA20_POLY1305, derived.as_ref())
        .expect("an HMAC-SHA256 output is a ChaCha20-Poly1305 key");
    LessSafeKey::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each one-bit change of `sealed` is refused as a bad signature by `open`.
    fn every_flip_is_refused(sealed: &[u8], open: impl Fn(&[u8]) -> Option<Unsealed>) {
        for at in 0..sealed.len() {
            let mut altered = sealed.to_vec();
            altered[at] ^= 1;
            assert_eq!(open(&altered), Some(Unsealed::Signature), "{at}");
        }
    }

    fn signer(fill: char) -> Signer {
        Signer::new(&ClusterSecret::new(&fill.to_string().repeat(32)).expect("long enough"))
    }

    #[test]
    fn a_seal_opens_only_with_the_same_secret_and_label() {
        let (a, b) = (signer('a'), signer('b'));
        let sealed = a.seal(b"one\0", b"body");
        assert_eq!(a.open(b"one\0", &sealed), Ok(&b"body"[..]));
        assert_eq!(b.open(b"one\0", &sealed), Err(Unsealed::Signature));
        assert_eq!(a.open(b"two\0", &sealed), Err(Unsealed::Signature));
        every_flip_is_refused(&sealed, |altered| a.open(b"one\0", altered).err());
        assert_eq!(a.open(b"one\0", b"body"), Err(Unsealed::Short));
    }

    fn sealer(fill: char) -> Sealer {
        Sealer::new(&ClusterSecret::new(&fill.to_string().repeat(32)).expect("long enough"))
    }

    #[test]
    fn a_sealed_message_hides_its_body_and_opens_only_with_the_same_secret_and_label() {
        let (a, b) = (sealer('a'), sealer('b'));
        let body = b"EIO=4&transport=polling&sid=AbCdEfGhIjKlMnOpQrSt";
        let sealed = a.seal(b"one\0", body);
        assert_eq!(sealed.len(), body.len() + SEAL_OVERHEAD);
        assert!(
            !sealed.windows(8).any(|w| body.windows(8).any(|b| b == w)),
            "no part of the body is readable"
        );
        assert_ne!(a.seal(b"one\0", body), sealed, "a fresh nonce each time");
        // Another process with the same secret (another salt) opens it too.
        assert_eq!(
            sealer('a').open(b"one\0", &sealed).as_deref(),
            Ok(&body[..])
        );
        assert_eq!(a.open(b"one\0", &sealed).as_deref(), Ok(&body[..]));
        assert_eq!(b.open(b"one\0", &sealed), Err(Unsealed::Signature));
        assert_eq!(a.open(b"two\0", &sealed), Err(Unsealed::Signature));
        every_flip_is_refused(&sealed, |altered| a.open(b"one\0", altered).err());
        assert_eq!(
            a.open(b"one\0", &sealed[..SEAL_OVERHEAD - 1]),
            Err(Unsealed::Short)
        );
        // A signer's tag over the same body is no seal.
        let signed = signer('a').seal(b"one\0", body);
        assert!(a.open(b"one\0", &signed).is_err());
    }
}
