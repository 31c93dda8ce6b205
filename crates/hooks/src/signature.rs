//! The webhook signature: `Switchboard-Signature: v1=<hex HMAC-SHA256(secret,
//! "<timestamp>.<body>")>` with `Switchboard-Timestamp: <unix seconds>`. Signing is
//! used by the sink; [`verify`] is what a Rust receiver (and this crate's tests) run.
//!
//! The timestamp is the time of the attempt, not of the event, and is part of the
//! signed text, so a receiver that rejects old timestamps also rejects replays of a
//! captured request. The body is signed byte for byte: receivers must verify the raw
//! body before parsing it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::{HEXLOWER, HEXLOWER_PERMISSIVE};
use ring::hmac;

/// Header carrying the attempt's unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "switchboard-timestamp";
/// Header carrying the signature, `v1=<64 lowercase hex digits>`.
pub const SIGNATURE_HEADER: &str = "switchboard-signature";
/// Header carrying the event's id, the same on every retry of one event.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The scheme prefix; a future scheme would get a new prefix, listed beside this one.
pub const SCHEME: &str = "v1";
/// How far a receiver should let the timestamp be from its own clock. Five minutes is
/// the common choice for signed webhooks: it absorbs clock skew and slow networks,
/// while keeping a captured request useless soon after.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a signature was not accepted. Callers match on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not an integer number of seconds.
    #[error("the timestamp is not unix seconds")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance.
    #[error("the timestamp is outside the tolerance")]
    Stale,
    /// The signature header has no `v1=<hex>` entry.
    #[error("the signature header is malformed")]
    Malformed,
    /// No `v1` entry matches the body.
    #[error("the signature does not match")]
    Mismatch,
}

/// The `Switchboard-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("{SCHEME}={}", hex(ctx.sign().as_ref()))
}

/// Checks a request's signature the way a receiver should: the timestamp is within
/// `tolerance` of `now`, and one of the comma-separated `v1=` entries of
/// `signature_header` is the HMAC of `"<timestamp>.<body>"` (compared in constant
/// time). Several entries let a sender sign with an old and a new secret while a
/// secret is rotated.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp: u64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now_secs.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    let tags: Vec<Vec<u8>> = signature_header
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("v1="))
        .filter_map(unhex)
        .collect();
    if tags.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(timestamp_header.len() + 1 + body.len());
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    if tags
        .iter()
        .any(|tag| hmac::verify(&key, &message, tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    HEXLOWER.encode(bytes)
}

/// Hex (either case) to bytes; `None` if malformed.
fn unhex(text: &str) -> Option<Vec<u8>> {
    HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"1700000000.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(b"key", 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let sig = sign(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        let ok = verify(
            b"s3cret",
            "1700000000",
            b"{\"a\":1}",
            &sig,
            now,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(ok, Ok(()));
        let tampered = verify(
            b"s3cret",
            "1700000000",
            b"{\"a\":2}",
            &sig,
            now,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(tampered, Err(VerifyError::Mismatch));
        let wrong_key = verify(
            b"other",
            "1700000000",
            b"{\"a\":1}",
            &sig,
            now,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(wrong_key, Err(VerifyError::Mismatch));
        let rotated = format!("v1=00, {sig}");
        let ok_rotated = verify(
            b"s3cret",
            "1700000000",
            b"{\"a\":1}",
            &rotated,
            now,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(ok_rotated, Ok(()));
    }

    #[test]
    fn rejects_stale_and_malformed_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_001_000);
        let sig = sign(b"k", 1_700_000_000, b"x");
        assert_eq!(
            verify(b"k", "1700000000", b"x", &sig, now, DEFAULT_TOLERANCE),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"k", "soon", b"x", &sig, now, DEFAULT_TOLERANCE),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(
                b"k",
                "1700001000",
                b"x",
                "sha256=zz",
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(unhex("0001ABff"), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("+f"), None);
    }
}
