//! The verifier's own rules with an HMAC key (fast to sign): sizes, required claims,
//! leeway, claim extraction, and algorithm checks on settings built in code.
//! Every algorithm and the JWKS paths are covered by the integration tests.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn verifier(configure: impl FnOnce(&mut JwtSettings)) -> JwtVerifier {
    let mut settings = JwtSettings::new(
        KeySource::Secret(Secret::new(SECRET)),
        vec![Algorithm::HS256],
    );
    configure(&mut settings);
    JwtVerifier::new(settings).expect("valid settings")
}

fn sign(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("signing")
}

fn now() -> u64 {
    get_current_timestamp()
}

#[tokio::test]
async fn claims_come_back_with_sub_and_exp() {
    let exp = now() + 600;
    let claims = verifier(|_| {})
        .verify(&sign(
            &json!({ "sub": "alice", "exp": exp, "role": "admin" }),
        ))
        .await
        .expect("valid");
    assert_eq!(claims.sub.as_deref(), Some("alice"));
    assert_eq!(claims.exp, Some(exp));
    assert_eq!(claims.get("role"), Some(&json!("admin")));
    assert_eq!(claims.to_value()["sub"], "alice");
}

#[tokio::test]
async fn empty_and_oversized_tokens_are_refused_before_parsing() {
    let v = verifier(|_| {});
    assert_eq!(v.verify("").await, Err(AuthError::Missing));
    let padding = "a".repeat(MAX_TOKEN_BYTES);
    let huge = sign(&json!({ "exp": now() + 600, "pad": padding }));
    assert_eq!(v.verify(&huge).await, Err(AuthError::Malformed));
}

#[tokio::test]
async fn exp_is_required_unless_configured_otherwise() {
    let token = sign(&json!({ "sub": "alice" }));
    assert_eq!(
        verifier(|_| {}).verify(&token).await,
        Err(AuthError::Malformed)
    );
    let lax = verifier(|s| s.require_exp = false);
    assert_eq!(lax.verify(&token).await.map(|c| c.exp), Ok(None));
}

#[tokio::test]
async fn leeway_tolerates_small_skew_only() {
    let v = verifier(|s| s.leeway = Duration::from_secs(30));
    let just_expired = sign(&json!({ "exp": now() - 5 }));
    assert!(v.verify(&just_expired).await.is_ok());
    let long_expired = sign(&json!({ "exp": now() - 300 }));
    assert_eq!(v.verify(&long_expired).await, Err(AuthError::Expired));
    let almost_valid = sign(&json!({ "exp": now() + 600, "nbf": now() + 5 }));
    assert!(v.verify(&almost_valid).await.is_ok());
    let strict = verifier(|s| s.leeway = Duration::ZERO);
    assert_eq!(strict.verify(&long_expired).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_malformed() {
    let v = verifier(|_| {});
    assert_eq!(
        v.verify(&sign(&json!({ "exp": "tomorrow" }))).await,
        Err(AuthError::Malformed)
    );
    assert_eq!(
        v.verify(&sign(&json!(["not", "an", "object"]))).await,
        Err(AuthError::Malformed)
    );
}

#[test]
fn fractional_exp_is_rounded_and_non_string_sub_ignored() {
    let map = |value: Value| match value {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let claims = Claims::from(map(json!({ "sub": 42, "exp": 1700000000.6 })));
    assert_eq!((claims.sub, claims.exp), (None, Some(1_700_000_001)));
    let claims = Claims::from(map(json!({ "exp": -1 })));
    assert_eq!(claims.exp, None);
}

#[test]
fn settings_built_in_code_get_the_algorithm_checks() {
    let secret = || KeySource::Secret(Secret::new(SECRET));
    let pem = || KeySource::PublicKeyPem(include_str!("../../testdata/rsa-public.pem").to_owned());
    let refused = |key: KeySource, algorithms: Vec<Algorithm>| {
        JwtVerifier::new(JwtSettings::new(key, algorithms))
            .map(|_| ())
            .expect_err("refused")[0]
            .key
            .clone()
    };
    assert_eq!(refused(secret(), vec![]), "algorithms");
    assert_eq!(refused(secret(), vec![Algorithm::RS256]), "algorithms");
    assert_eq!(refused(pem(), vec![Algorithm::HS256]), "algorithms");
    assert_eq!(
        refused(pem(), vec![Algorithm::RS256, Algorithm::HS256]),
        "algorithms"
    );
    assert!(
        JwtVerifier::new(JwtSettings::new(
            pem(),
            vec![Algorithm::RS256, Algorithm::PS256]
        ))
        .is_ok()
    );
}

/// `claims` with a valid `exp` added.
fn live(mut claims: Value) -> Value {
    claims["exp"] = json!(now() + 600);
    claims
}

#[tokio::test]
async fn aud_that_is_not_a_string_or_list_of_strings_is_malformed() {
    let open = verifier(|_| {});
    let closed = verifier(|s| s.audiences = vec!["good".to_owned()]);
    for aud in [json!(5), json!(true), json!({}), json!(["other", 1])] {
        let token = sign(&live(json!({ "aud": aud })));
        assert_eq!(
            open.verify(&token).await,
            Err(AuthError::Malformed),
            "{aud}"
        );
        // With an audience configured `jsonwebtoken` already refuses it as missing.
        assert_eq!(
            closed.verify(&token).await,
            Err(AuthError::WrongAudience),
            "{aud}"
        );
    }
}

#[tokio::test]
async fn any_aud_is_refused_when_no_audience_is_configured() {
    let open = verifier(|_| {});
    for aud in [json!("good"), json!(["good"]), json!([])] {
        let token = sign(&live(json!({ "aud": aud })));
        assert_eq!(
            open.verify(&token).await,
            Err(AuthError::WrongAudience),
            "{aud}"
        );
    }
    assert!(open.verify(&sign(&live(json!({})))).await.is_ok());
    let closed = verifier(|s| s.audiences = vec!["good".to_owned()]);
    for aud in [json!("good"), json!(["other", "good"])] {
        let token = sign(&live(json!({ "aud": aud })));
        assert!(closed.verify(&token).await.is_ok(), "{aud}");
    }
}

#[tokio::test]
async fn iss_that_is_not_a_string_is_malformed() {
    let checked = verifier(|s| s.issuers = vec!["good".to_owned()]);
    for iss in [json!(["evil", "good"]), json!(["good"])] {
        let token = sign(&live(json!({ "iss": iss })));
        assert_eq!(
            checked.verify(&token).await,
            Err(AuthError::Malformed),
            "{iss}"
        );
    }
    assert!(
        checked
            .verify(&sign(&live(json!({ "iss": "good" }))))
            .await
            .is_ok()
    );
    // Refused by `jsonwebtoken` as a missing or wrong issuer before this check.
    for iss in [json!(5), json!(["evil"]), json!("evil")] {
        let token = sign(&live(json!({ "iss": iss })));
        assert_eq!(
            checked.verify(&token).await,
            Err(AuthError::WrongIssuer),
            "{iss}"
        );
    }
    // No issuer configured: `iss` is not checked, but must still be a string.
    let open = verifier(|_| {});
    for iss in [json!(5), json!(["good"]), json!({})] {
        let token = sign(&live(json!({ "iss": iss })));
        assert_eq!(
            open.verify(&token).await,
            Err(AuthError::Malformed),
            "{iss}"
        );
    }
    assert!(
        open.verify(&sign(&live(json!({ "iss": "anyone" }))))
            .await
            .is_ok()
    );
}

/// `null` is as good as absent, as `jsonwebtoken` reads it: such tokens passed before
/// the claim types were checked, and still do.
#[tokio::test]
async fn null_iss_and_aud_are_as_good_as_absent() {
    let open = verifier(|_| {});
    let token = sign(&live(json!({ "iss": null, "aud": null })));
    assert!(open.verify(&token).await.is_ok());
}
