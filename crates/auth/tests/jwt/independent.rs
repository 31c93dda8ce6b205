//! Tokens signed by an independent implementation verify, and its bad ones are refused.
//!
//! The other tests sign with `jsonwebtoken`, the library that also verifies, so a bug
//! both sides share (ECDSA signatures as DER rather than JWS's fixed-length r||s, the
//! wrong PSS salt length, the wrong RSA padding) would pass them. The tokens here were
//! signed by Node's built-in `crypto` (OpenSSL) with the same fixture keys, by
//! `testdata/independent/generate.mjs`, and checked in as `tokens.json`:
//!
//! - every algorithm the crate supports has a token, and each verifies through the
//!   public [`JwtVerifier`] with exactly the claims signed, as do ECDSA signatures at
//!   the edges of the r||s encoding (high s, a leading zero byte in r or in s);
//! - DER-encoded and unpadded ECDSA signatures, signatures by other keys, and tokens
//!   whose `alg` was rewritten after signing are refused, each with its own reason.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use switchboard_auth::jwt::{Algorithm, AuthError, JwtSettings, JwtVerifier, KeySource, Secret};
use switchboard_test_support::within;

use super::support::{AUDIENCE, ISSUER, testdata};

/// The generator's output, checked in.
const TOKENS: &str = include_str!("../../testdata/independent/tokens.json");

/// The `exp` the generator signs: 2100-01-01T00:00:00Z.
const FAR_FUTURE_EXP: u64 = 4_102_444_800;

/// ⌊n/2⌋ of P-256 in hex: an ECDSA `s` above it is "high".
const P256_HALF_ORDER: &str = "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8";
/// ⌊n/2⌋ of P-384 in hex.
const P384_HALF_ORDER: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b9";

/// The refusals expected of the generator's bad tokens: name, reason. The verifier is
/// the one for the algorithm the name starts with (the key that really signed).
const REFUSALS: [(&str, AuthError); 14] = [
    // A correct ECDSA signature in the wrong encoding, same header and payload.
    ("ES256/der-signature", AuthError::BadSignature),
    ("ES384/der-signature", AuthError::BadSignature),
    // r||s with r's leading zero byte dropped: RFC 7518 §3.4 wants exactly 2 × size.
    ("ES256/unpadded-r", AuthError::BadSignature),
    ("ES384/unpadded-r", AuthError::BadSignature),
    // Valid signatures by keys that are not the configured one.
    ("RS256/foreign-key", AuthError::BadSignature),
    ("PS256/foreign-key", AuthError::BadSignature),
    ("ES256/foreign-key", AuthError::BadSignature),
    ("EdDSA/foreign-key", AuthError::BadSignature),
    // `alg` rewritten after signing: still pinned, so the signature check refuses it...
    ("HS256/relabelled-HS512", AuthError::BadSignature),
    ("RS256/relabelled-RS384", AuthError::BadSignature),
    ("RS256/relabelled-PS256", AuthError::BadSignature),
    ("PS256/relabelled-RS256", AuthError::BadSignature),
    // ...or not one the key may verify, refused before any signature is checked.
    ("ES256/relabelled-ES384", AuthError::AlgorithmNotAllowed),
    ("EdDSA/relabelled-ES256", AuthError::AlgorithmNotAllowed),
];

/// The parsed `tokens.json`.
struct Fixture {
    /// The claims every token carries.
    claims: Map<String, Value>,
    /// The HS* secret.
    secret: String,
    /// Name → token that must verify.
    valid: Map<String, Value>,
    /// Name → token that must be refused.
    invalid: Map<String, Value>,
}

fn fixture() -> Fixture {
    let mut value: Value = serde_json::from_str(TOKENS).expect("tokens.json is JSON");
    let mut take = |name: &str| match value.get_mut(name).map(Value::take) {
        Some(Value::Object(map)) => map,
        other => panic!("tokens.json: {name} is not an object: {other:?}"),
    };
    let (claims, valid, invalid) = (take("claims"), take("valid"), take("invalid"));
    let secret = value["hmac_secret"]
        .as_str()
        .expect("tokens.json: hmac_secret")
        .to_owned();
    Fixture {
        claims,
        secret,
        valid,
        invalid,
    }
}

/// A token entry as a string.
fn token<'a>(name: &str, value: &'a Value) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("tokens.json: {name} is not a string"))
}

/// The algorithm a token name starts with (`ES256/high-s` → ES256).
fn named_alg(name: &str) -> Algorithm {
    let prefix = name.split('/').next().unwrap_or(name);
    Algorithm::parse(prefix).unwrap_or_else(|| panic!("{name}: no algorithm {prefix}"))
}

/// A token's three segments.
fn segments(token: &str) -> [&str; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    parts
        .try_into()
        .unwrap_or_else(|_| panic!("not three segments: {token}"))
}

/// The `alg` a token's header declares.
fn declared_alg(token: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .decode(segments(token)[0])
        .expect("header is base64url");
    let header: Value = serde_json::from_slice(&header).expect("header is JSON");
    header["alg"].as_str().expect("header alg").to_owned()
}

/// A token's signature bytes.
fn signature(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(segments(token)[2])
        .expect("signature is base64url")
}

/// The verifier for tokens signed under `alg` with the fixture keys (the public PEMs the
/// generator checked its tokens against), checking the tests' issuer and audience. An
/// RSA or HMAC key is pinned to its whole family, so a rewritten `alg` reaches the
/// signature check; EC and Ed25519 keys verify their own algorithm only.
fn verifier_for(alg: Algorithm, secret: &str) -> JwtVerifier {
    use Algorithm::*;
    let pem = |file: &str| KeySource::PublicKeyFile(testdata(file));
    let (key, algorithms) = match alg {
        HS256 | HS384 | HS512 => (
            KeySource::Secret(Secret::new(secret.as_bytes())),
            vec![HS256, HS384, HS512],
        ),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
            pem("rsa-public.pem"),
            vec![RS256, RS384, RS512, PS256, PS384, PS512],
        ),
        ES256 => (pem("ec-p256-public.pem"), vec![ES256]),
        ES384 => (pem("ec-p384-public.pem"), vec![ES384]),
        EdDSA => (pem("ed25519-public.pem"), vec![EdDSA]),
    };
    let mut settings = JwtSettings::new(key, algorithms);
    settings.issuers = vec![ISSUER.to_owned()];
    settings.audiences = vec![AUDIENCE.to_owned()];
    JwtVerifier::new(settings).expect("valid settings")
}

#[tokio::test]
async fn every_algorithm_verifies_a_token_signed_by_node_crypto() {
    within("the test", async {
        let fixture = fixture();
        let covered: BTreeSet<&str> = fixture
            .valid
            .keys()
            .map(|name| named_alg(name).name())
            .collect();
        let all: BTreeSet<&str> = Algorithm::ALL.iter().map(|alg| alg.name()).collect();
        assert_eq!(
            covered, all,
            "tokens.json must cover every supported algorithm"
        );
        for alg in Algorithm::ALL {
            assert!(
                fixture.valid.contains_key(alg.name()),
                "no plain {alg} token"
            );
        }
        // The generator signs what the verifiers expect, with nothing left to chance.
        let expected = json!({
            "sub": "alice", "iss": ISSUER, "aud": AUDIENCE,
            "iat": 1_700_000_000, "exp": FAR_FUTURE_EXP, "room": "lobby",
        });
        assert_eq!(Value::Object(fixture.claims.clone()), expected);

        for (name, value) in &fixture.valid {
            let token = token(name, value);
            let alg = named_alg(name);
            assert_eq!(declared_alg(token), alg.name(), "{name}: header alg");
            let claims = verifier_for(alg, &fixture.secret)
                .verify(token)
                .await
                .unwrap_or_else(|err| panic!("{name}: refused ({err:?})"));
            assert_eq!(claims.raw, fixture.claims, "{name}: claims");
            assert_eq!(claims.sub.as_deref(), Some("alice"), "{name}: sub");
            assert_eq!(claims.exp, Some(FAR_FUTURE_EXP), "{name}: exp");
        }
    })
    .await;
}

#[test]
fn ecdsa_edge_tokens_are_the_edges_they_claim() {
    let fixture = fixture();
    let edges = ["high-s", "short-r", "short-s"];
    for (alg, size, half_order) in [
        (Algorithm::ES256, 32, P256_HALF_ORDER),
        (Algorithm::ES384, 48, P384_HALF_ORDER),
    ] {
        for edge in edges {
            let name = format!("{alg}/{edge}");
            let value = fixture
                .valid
                .get(&name)
                .unwrap_or_else(|| panic!("no {name}"));
            let sig = signature(token(&name, value));
            assert_eq!(sig.len(), 2 * size, "{name}: r||s length");
            let (r, s) = sig.split_at(size);
            let s_hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
            match edge {
                // Equal-length lowercase hex orders like the numbers it spells.
                "high-s" => assert!(s_hex.as_str() > half_order, "{name}: s is low"),
                "short-r" => assert_eq!(r[0], 0, "{name}: r has no leading zero"),
                _ => assert_eq!(s[0], 0, "{name}: s has no leading zero"),
            }
        }
        let plain = signature(token(alg.name(), &fixture.valid[alg.name()]));
        assert_eq!(plain.len(), 2 * size, "{alg}: r||s length");
    }
}

#[tokio::test]
async fn bad_tokens_from_node_crypto_are_refused_for_their_reason() {
    within("the test", async {
        let fixture = fixture();
        let listed: BTreeSet<&str> = REFUSALS.iter().map(|(name, _)| *name).collect();
        let present: BTreeSet<&str> = fixture.invalid.keys().map(String::as_str).collect();
        assert_eq!(
            listed, present,
            "REFUSALS and tokens.json name the same tokens"
        );

        for (name, expected) in REFUSALS {
            let token = token(name, &fixture.invalid[name]);
            let alg = named_alg(name);
            assert_bad_only_where_named(name, token, &fixture);
            let outcome = verifier_for(alg, &fixture.secret).verify(token).await;
            assert_eq!(outcome, Err(expected), "{name}");
        }
    })
    .await;
}

/// Checks that a bad token differs from its good twin only where its name says, so the
/// refusal is for that and nothing else: a re-encoded signature keeps the header and
/// payload; a relabelled token keeps the payload and signature.
fn assert_bad_only_where_named(name: &str, bad: &str, fixture: &Fixture) {
    let alg = named_alg(name);
    let good = token(alg.name(), &fixture.valid[alg.name()]);
    let [good_header, good_payload, good_sig] = segments(good);
    let [bad_header, bad_payload, bad_sig] = segments(bad);
    assert_eq!(bad_payload, good_payload, "{name}: payload");
    if name.contains("/relabelled-") {
        assert_eq!(bad_sig, good_sig, "{name}: signature");
        let to = name.rsplit('-').next().expect("a target alg");
        assert_eq!(declared_alg(bad), to, "{name}: header alg");
    } else {
        assert_eq!(bad_header, good_header, "{name}: header");
        assert_ne!(bad_sig, good_sig, "{name}: signature");
    }
    if name.ends_with("/der-signature") {
        // DER: SEQUENCE { INTEGER r, INTEGER s }, never the fixed r||s length.
        let sig = signature(bad);
        assert_eq!(sig[0], 0x30, "{name}: not a DER SEQUENCE");
        assert_ne!(sig.len(), signature(good).len(), "{name}: length");
    }
}
