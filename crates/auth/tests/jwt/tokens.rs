//! Static keys: a token per algorithm verifies; every kind of bad token is refused with
//! its own reason.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchboard_auth::jwt::{Algorithm, AuthError, JwtSettings, JwtVerifier, KeySource, Secret};
use switchboard_auth::{TokenSource, extract_token};
use switchboard_test_support::within;

use super::support::{
    AUDIENCE, ISSUER, SECRET, Signer, claims_with, fixture, good_claims, hs256_raw, now, testdata,
    unsigned, with_flipped_signature, with_payload,
};

/// A verifier for `key` and `algorithms` that checks the tests' issuer and audience.
fn verifier(key: KeySource, algorithms: &[Algorithm]) -> JwtVerifier {
    let mut settings = JwtSettings::new(key, algorithms.to_vec());
    settings.issuers = vec![ISSUER.to_owned()];
    settings.audiences = vec![AUDIENCE.to_owned()];
    JwtVerifier::new(settings).expect("valid settings")
}

fn hs256() -> JwtVerifier {
    verifier(KeySource::Secret(Secret::new(SECRET)), &[Algorithm::HS256])
}

fn rs256() -> JwtVerifier {
    verifier(
        KeySource::PublicKeyFile(testdata("rsa-public.pem")),
        &[Algorithm::RS256],
    )
}

#[tokio::test]
async fn a_valid_token_verifies_with_every_key_kind() {
    within("the test", async {
        let cases = [
            (hs256(), Signer::hs256()),
            (rs256(), Signer::rs256(false)),
            (
                verifier(
                    KeySource::PublicKeyPem(fixture("ec-p256-public.pem")),
                    &[Algorithm::ES256],
                ),
                Signer::es256(),
            ),
            (
                verifier(
                    KeySource::PublicKeyFile(testdata("ed25519-public.pem")),
                    &[Algorithm::EdDSA],
                ),
                Signer::eddsa(),
            ),
        ];
        for (verifier, signer) in cases {
            let claims = verifier
                .verify(&signer.sign(&good_claims()))
                .await
                .expect("valid token");
            assert_eq!(claims.sub.as_deref(), Some("alice"));
            assert_eq!(claims.get("room"), Some(&json!("lobby")));
        }
    })
    .await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    within("the test", async {
        let signer = Signer::rs256(false);
        let v = rs256();
        let expired = signer.sign(&claims_with(json!({ "exp": now() - 3600 })));
        assert_eq!(v.verify(&expired).await, Err(AuthError::Expired));
        let early = signer.sign(&claims_with(json!({ "nbf": now() + 3600 })));
        assert_eq!(v.verify(&early).await, Err(AuthError::NotYetValid));
        // Within the default leeway both are fine.
        let skewed = signer.sign(&claims_with(json!({ "exp": now() - 5, "nbf": now() + 5 })));
        assert!(v.verify(&skewed).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn wrong_or_missing_issuer_and_audience_are_refused() {
    within("the test", async {
        let signer = Signer::hs256();
        let v = hs256();
        let cases = [
            (
                json!({ "iss": "https://evil.test/" }),
                AuthError::WrongIssuer,
            ),
            (json!({ "iss": null }), AuthError::WrongIssuer),
            (json!({ "aud": "someone-else" }), AuthError::WrongAudience),
            (json!({ "aud": ["a", "b"] }), AuthError::WrongAudience),
            (json!({ "aud": null }), AuthError::WrongAudience),
        ];
        for (changes, expected) in cases {
            let token = signer.sign(&claims_with(changes.clone()));
            assert_eq!(v.verify(&token).await, Err(expected), "{changes}");
        }
        let listed = signer.sign(&claims_with(json!({ "aud": ["other", AUDIENCE] })));
        assert!(v.verify(&listed).await.is_ok());
        // No audience configured: a token addressed to someone is not for us.
        let open = JwtVerifier::new(JwtSettings::new(
            KeySource::Secret(Secret::new(SECRET)),
            vec![Algorithm::HS256],
        ))
        .expect("valid");
        assert_eq!(
            open.verify(&signer.sign(&good_claims())).await,
            Err(AuthError::WrongAudience)
        );
        assert!(
            open.verify(&signer.sign(&claims_with(json!({ "aud": null }))))
                .await
                .is_ok()
        );
    })
    .await;
}

#[tokio::test]
async fn algorithm_confusion_and_unsigned_tokens_are_refused() {
    within("the test", async {
        let v = rs256();
        // The classic attack: HMAC-sign with the RSA *public* key as the secret.
        let public_pem = fixture("rsa-public.pem");
        let confused = Signer::hmac(public_pem.as_bytes(), jsonwebtoken::Algorithm::HS256);
        assert_eq!(
            v.verify(&confused.sign(&good_claims())).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        assert_eq!(
            v.verify(&unsigned(&good_claims())).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        // A real signature by an algorithm that is not pinned.
        let ps = rs256_signed_as(jsonwebtoken::Algorithm::PS256);
        assert_eq!(v.verify(&ps).await, Err(AuthError::AlgorithmNotAllowed));
        // HS verifiers refuse public-key algorithms and `none` too.
        assert_eq!(
            hs256()
                .verify(&Signer::rs256(false).sign(&good_claims()))
                .await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        assert_eq!(
            hs256().verify(&unsigned(&good_claims())).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        // An EC key verifies the algorithm of its own curve only.
        let ec = verifier(
            KeySource::PublicKeyPem(fixture("ec-p256-public.pem")),
            &[Algorithm::ES256],
        );
        let es384 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384),
            &good_claims(),
            &jsonwebtoken::EncodingKey::from_ec_pem(fixture("ec-p384-private.pem").as_bytes())
                .expect("P-384"),
        )
        .expect("signing");
        assert_eq!(ec.verify(&es384).await, Err(AuthError::AlgorithmNotAllowed));
    })
    .await;
}

/// A token signed with the RSA fixture under another RSA algorithm.
fn rs256_signed_as(alg: jsonwebtoken::Algorithm) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(fixture("rsa-private.pem").as_bytes())
        .expect("RSA");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &good_claims(), &key).expect("signing")
}

#[tokio::test]
async fn tampered_and_foreign_signatures_are_refused() {
    within("the test", async {
        for (v, signer) in [(hs256(), Signer::hs256()), (rs256(), Signer::rs256(false))] {
            let token = signer.sign(&good_claims());
            let promoted = with_payload(&token, &claims_with(json!({ "sub": "admin" })));
            assert_eq!(v.verify(&promoted).await, Err(AuthError::BadSignature));
            assert_eq!(
                v.verify(&with_flipped_signature(&token)).await,
                Err(AuthError::BadSignature)
            );
        }
        let other_key = Signer::rs256(true).sign(&good_claims());
        assert_eq!(
            rs256().verify(&other_key).await,
            Err(AuthError::BadSignature)
        );
        let other_secret = Signer::hmac(
            b"another-secret-that-is-32-bytes!",
            jsonwebtoken::Algorithm::HS256,
        );
        assert_eq!(
            hs256().verify(&other_secret.sign(&good_claims())).await,
            Err(AuthError::BadSignature)
        );
        // An expired token with a bad signature is refused for its signature.
        let expired = Signer::hs256().sign(&claims_with(json!({ "exp": now() - 3600 })));
        assert_eq!(
            hs256().verify(&with_flipped_signature(&expired)).await,
            Err(AuthError::BadSignature)
        );
    })
    .await;
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    within("the test", async {
        let v = hs256();
        let good = Signer::hs256().sign(&good_claims());
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let malformed = [
            "not-a-jwt".to_owned(),
            "a.b".to_owned(),
            "a.b.c".to_owned(),
            format!("{good}.extra.parts"),
            // Correctly signed, but the payload is not base64url / not JSON / not an object.
            hs256_raw(header, "!!!"),
            hs256_raw(header, &URL_SAFE_NO_PAD.encode("not json")),
            hs256_raw(header, &URL_SAFE_NO_PAD.encode("[1,2]")),
            // The header is JSON without an `alg`, or not JSON.
            hs256_raw(r#"{"typ":"JWT"}"#, &URL_SAFE_NO_PAD.encode("{}")),
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode("nope"),
                good.split_once('.').expect("parts").1
            ),
            // The signature is not base64url.
            format!("{}.@@@", good.rsplit_once('.').expect("parts").0),
            // Far too long to be a token.
            format!("{good}{}", "x".repeat(20_000)),
            Signer::hs256().sign(&claims_with(json!({ "exp": null }))),
            Signer::hs256().sign(&claims_with(json!({ "exp": "soon" }))),
        ];
        for token in malformed {
            let shown: String = token.chars().take(60).collect();
            assert_eq!(v.verify(&token).await, Err(AuthError::Malformed), "{shown}");
        }
        assert_eq!(v.verify("").await, Err(AuthError::Missing));
    })
    .await;
}

#[tokio::test]
async fn settings_from_toml_make_a_working_verifier() {
    within("the test", async {
        let text = format!(
            r#"
            public_key_file = "{}"
            algorithms = ["RS256"]
            issuer = "{ISSUER}"
            audience = "{AUDIENCE}"
            leeway = "0s"
            token_sources = ["cookie:jwt", "auth"]
            "#,
            testdata("rsa-public.pem").display()
        );
        let value: toml::Value = toml::Value::Table(text.parse().expect("TOML"));
        let settings = JwtSettings::from_toml(&value, "namespaces[0].auth").expect("valid");
        let v = JwtVerifier::new(settings).expect("keys load");
        assert_eq!(v.sources()[0], TokenSource::Cookie { name: "jwt".into() });
        let token = Signer::rs256(false).sign(&good_claims());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("theme=dark; jwt={token}").parse().expect("header"),
        );
        let claims = v
            .verify_request(&Value::Null, &headers)
            .await
            .expect("from the cookie");
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        let auth = json!({ "token": token });
        assert!(
            v.verify_request(&auth, &http::HeaderMap::new())
                .await
                .is_ok()
        );
        assert_eq!(
            v.verify_request(&json!({}), &http::HeaderMap::new()).await,
            Err(AuthError::Missing)
        );
        assert!(extract_token(v.sources(), &auth, &headers).is_some());
    })
    .await;
}

#[tokio::test]
async fn key_problems_are_reported_at_their_config_key() {
    within("the test", async {
        let text = format!(
            r#"
            public_key_file = "{}"
            algorithms = ["ES256"]
            "#,
            testdata("rsa-private.pem").display()
        );
        let value = toml::Value::Table(text.parse().expect("TOML"));
        let settings = JwtSettings::from_toml(&value, "namespaces[2].auth").expect("valid syntax");
        let errors = JwtVerifier::new(settings).expect_err("a private key");
        assert_eq!(errors[0].key, "namespaces[2].auth.public_key_file");
        let mut settings = JwtSettings::new(
            KeySource::PublicKeyFile(testdata("ec-p256-public.pem")),
            vec![Algorithm::ES384],
        );
        settings.path = "namespaces[2].auth".into();
        let errors = JwtVerifier::new(settings).expect_err("wrong curve");
        assert_eq!(errors[0].key, "namespaces[2].auth.algorithms");
    })
    .await;
}
