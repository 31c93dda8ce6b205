//! The whole JWT verification path (size, header, `alg` pinning, signature, claims)
//! with a fixed HMAC key, as a namespace's `auth` table configures it.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde_json::Value;
use switchboard_auth::{Algorithm, AuthError, Claims, JwtSettings, JwtVerifier, KeySource, Secret};

/// The fixed key: 64 bytes, long enough for every HMAC algorithm.
pub const SECRET: &[u8] = b"switchboard-fuzz-secret-0123456789abcdef-switchboard-fuzz-secret";
/// The accepted issuer, so the `iss` check is reached.
pub const ISSUER: &str = "https://issuer.example";
/// The accepted audience, so the `aud` check is reached.
pub const AUDIENCE: &str = "switchboard";

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let mut settings = JwtSettings::new(
            KeySource::Secret(Secret::new(SECRET)),
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        );
        settings.issuers = vec![ISSUER.to_owned()];
        settings.audiences = vec![AUDIENCE.to_owned()];
        JwtVerifier::new(settings).expect("the fuzz key settings are valid")
    })
}

/// The first byte picks the mode.
///
/// - Even: the rest is the token, as a client sends it. A token that verifies must
///   carry the signature the key makes (no forgery), and its claims are its payload.
/// - Odd: the rest is `<header JSON>\0<payload JSON>` (or only a payload), signed here
///   with the key and the HMAC algorithm the header declares, so the header and claim
///   checks behind the signature are fuzzed too. Such a token never fails on its
///   signature.
pub fn jwt(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        if let Ok(claims) = verify(&token) {
            let (message, signature) = token.rsplit_once('.').expect("a verified JWS has 3 parts");
            let alg = header_alg(token.split('.').next().unwrap_or_default());
            assert_eq!(
                sign(message.as_bytes(), alg),
                signature,
                "forged token {token}"
            );
            check_claims(&claims, message.split('.').nth(1).unwrap_or_default());
        }
        return;
    }
    let (header, payload) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let alg = header_alg(&URL_SAFE_NO_PAD.encode(header));
    let token = format!("{message}.{}", sign(message.as_bytes(), alg));
    match verify(&token) {
        Ok(claims) => check_claims(&claims, &URL_SAFE_NO_PAD.encode(payload)),
        Err(err) => assert_ne!(err, AuthError::BadSignature, "{token}"),
    }
}

/// Verifies with the fixed key. With a static key `verify` never waits, so one poll
/// finishes it.
fn verify(token: &str) -> Result<Claims, AuthError> {
    let mut future = pin!(verifier().verify(token));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!("verification with a static key waited"),
    }
}

/// The HMAC algorithm a base64url header declares (HS256 when it declares none).
fn header_alg(header: &str) -> jsonwebtoken::Algorithm {
    let declared = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|value| value.get("alg")?.as_str().map(str::to_owned));
    match declared.as_deref() {
        Some("HS384") => jsonwebtoken::Algorithm::HS384,
        Some("HS512") => jsonwebtoken::Algorithm::HS512,
        _ => jsonwebtoken::Algorithm::HS256,
    }
}

fn sign(message: &[u8], alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::crypto::sign(message, &EncodingKey::from_secret(SECRET), alg)
        .expect("HMAC signing cannot fail")
}

/// The claims of an accepted token are its payload, with `sub` and `exp` read from it,
/// and they passed the configured checks.
fn check_claims(claims: &Claims, payload: &str) {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("an accepted payload is base64url");
    let raw: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).expect("an accepted payload is a JSON object");
    assert_eq!(claims.raw, raw);
    assert_eq!(
        claims.sub.as_deref(),
        raw.get("sub").and_then(Value::as_str)
    );
    assert!(claims.exp.is_some(), "exp is required");
    assert_eq!(raw.get("iss").and_then(Value::as_str), Some(ISSUER));
    let aud_ok = match raw.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "accepted audience {:?}", raw.get("aud"));
}
