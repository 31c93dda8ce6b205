//! A real JWKS endpoint on `127.0.0.1:0`: keys fetched and cached, rotation through an
//! unknown `kid`, storms of made-up `kid`s, and an endpoint that is down, slow or
//! answering garbage. Timing is only ever "wait at least the interval", never "at most".

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use switchboard_auth::jwt::{
    Algorithm, AuthError, JwksSettings, JwtSettings, JwtVerifier, KeySource,
};
use switchboard_test_support::within;
use tokio::task::JoinSet;

use super::support::{
    AUDIENCE, ISSUER, JwksServer, Mode, Signer, good_claims, jwks, unsigned, with_header,
};

/// A verifier on `server`'s JWKS, pinned to the RS256, ES256 and EdDSA algorithms.
fn verifier(server: &JwksServer, configure: impl FnOnce(&mut JwksSettings)) -> JwtVerifier {
    let mut jwks = JwksSettings::new(server.url().parse().expect("URL"));
    configure(&mut jwks);
    let mut settings = JwtSettings::new(
        KeySource::Jwks(jwks),
        vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
    );
    settings.issuers = vec![ISSUER.to_owned()];
    settings.audiences = vec![AUDIENCE.to_owned()];
    JwtVerifier::new(settings).expect("valid settings")
}

/// Waits at least `interval` (so the next refresh is allowed), with margin.
async fn past(interval: Duration) {
    tokio::time::sleep(interval + Duration::from_millis(20)).await;
}

#[tokio::test]
async fn tokens_signed_by_published_keys_verify_with_one_fetch() {
    within("the test", async {
        let (rsa, ec, ed) = (
            Signer::rs256(false).kid("rsa-1"),
            Signer::es256().kid("ec-1"),
            Signer::eddsa().kid("ed-1"),
        );
        let server = JwksServer::start(Mode::Serve(jwks(&[&rsa, &ec, &ed]))).await;
        let v = verifier(&server, |_| {});
        for signer in [&rsa, &ec, &ed] {
            let claims = v.verify(&signer.sign(&good_claims())).await.expect("valid");
            assert_eq!(claims.sub.as_deref(), Some("alice"));
        }
        // A token without a `kid` uses the one key that fits its algorithm.
        assert!(
            v.verify(&Signer::es256().sign(&good_claims()))
                .await
                .is_ok()
        );
        assert_eq!(server.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_set_and_then_verifies() {
    within("the test", async {
        let old = Signer::rs256(false).kid("2024");
        let new = Signer::rs256(true).kid("2025");
        let server = JwksServer::start(Mode::Serve(jwks(&[&old]))).await;
        let interval = Duration::from_millis(100);
        let v = verifier(&server, |j| j.refresh_interval = interval);
        assert!(v.verify(&old.sign(&good_claims())).await.is_ok());
        // The provider rotates: the new key is published, then used.
        server.set(Mode::Serve(jwks(&[&old, &new])));
        past(interval).await;
        assert!(v.verify(&new.sign(&good_claims())).await.is_ok());
        assert!(v.verify(&old.sign(&good_claims())).await.is_ok());
        assert_eq!(server.hits(), 2);
    })
    .await;
}

#[tokio::test]
async fn an_unknown_kid_storm_fetches_once_per_interval() {
    within("the test", async {
        let real = Signer::rs256(false).kid("real");
        let server = JwksServer::start(Mode::Serve(jwks(&[&real]))).await;
        let v = verifier(&server, |j| {
            j.refresh_interval = Duration::from_secs(3600);
            j.cache_ttl = Duration::from_secs(7200);
        });
        // Hundreds of tokens naming made-up keys, at once and one after another. (Their
        // signatures are never looked at: an unknown key is refused before that.)
        let template = real.sign(&good_claims());
        let mut storm = JoinSet::new();
        for n in 0..300 {
            let (v, token) = (
                v.clone(),
                with_header(&template, "RS256", &format!("made-up-{n}")),
            );
            storm.spawn(async move { v.verify(&token).await });
        }
        for outcome in storm.join_all().await {
            assert_eq!(outcome, Err(AuthError::UnknownKey));
        }
        for n in 0..100 {
            let token = with_header(&template, "RS256", &format!("later-{n}"));
            assert_eq!(v.verify(&token).await, Err(AuthError::UnknownKey));
        }
        // The first miss fetched; every other miss shared that fetch or fell within
        // the interval after it.
        assert_eq!(server.hits(), 1, "one fetch for the whole storm");
        assert!(v.verify(&real.sign(&good_claims())).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn a_down_endpoint_yields_keys_unavailable_while_cached_keys_work() {
    within("the test", async {
        let cached = Signer::rs256(false).kid("cached");
        let unknown = Signer::rs256(true).kid("unknown");
        let server = JwksServer::start(Mode::Serve(jwks(&[&cached]))).await;
        let interval = Duration::from_millis(50);
        let v = verifier(&server, |j| {
            j.refresh_interval = interval;
            j.cache_ttl = interval;
        });
        assert!(v.verify(&cached.sign(&good_claims())).await.is_ok());

        // Up but failing.
        server.set(Mode::Status(StatusCode::SERVICE_UNAVAILABLE));
        past(interval).await;
        assert_eq!(
            v.verify(&unknown.sign(&good_claims())).await,
            Err(AuthError::KeysUnavailable)
        );
        assert_eq!(server.hits(), 2);
        past(interval).await;
        // The cache is stale and the refresh fails: the cached key is used anyway.
        assert!(v.verify(&cached.sign(&good_claims())).await.is_ok());
        assert_eq!(server.hits(), 3);

        // Gone: connections refused.
        server.stop().await;
        past(interval).await;
        assert_eq!(
            v.verify(&unknown.sign(&good_claims())).await,
            Err(AuthError::KeysUnavailable)
        );
        past(interval).await;
        assert!(v.verify(&cached.sign(&good_claims())).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn a_slow_endpoint_times_out_as_keys_unavailable() {
    within("the test", async {
        let signer = Signer::rs256(false).kid("k1");
        let server = JwksServer::start(Mode::Hang).await;
        let timeout = Duration::from_millis(200);
        let v = verifier(&server, |j| j.fetch_timeout = timeout);
        assert_eq!(
            v.verify(&signer.sign(&good_claims())).await,
            Err(AuthError::KeysUnavailable)
        );
        assert_eq!(v.warm_up().await, Err(AuthError::KeysUnavailable));

        // Keys fetched before the endpoint slowed down keep working through timeouts.
        server.set(Mode::Serve(jwks(&[&signer])));
        let interval = Duration::from_millis(50);
        let v = verifier(&server, |j| {
            j.fetch_timeout = timeout;
            j.refresh_interval = interval;
            j.cache_ttl = interval;
        });
        v.warm_up().await.expect("reachable");
        server.set(Mode::Hang);
        past(interval).await;
        let unknown = Signer::rs256(true).kid("k2").sign(&good_claims());
        assert_eq!(v.verify(&unknown).await, Err(AuthError::KeysUnavailable));
        past(interval).await;
        assert!(v.verify(&signer.sign(&good_claims())).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn garbage_from_the_endpoint_yields_keys_unavailable() {
    within("the test", async {
        for body in ["<html>sign in</html>", "{\"keys\": 5}", "[]"] {
            let server = JwksServer::start(Mode::Serve(body.to_owned())).await;
            let v = verifier(&server, |_| {});
            let token = Signer::rs256(false).kid("k1").sign(&good_claims());
            assert_eq!(
                v.verify(&token).await,
                Err(AuthError::KeysUnavailable),
                "{body}"
            );
        }
        let server = JwksServer::start(Mode::Status(StatusCode::NOT_FOUND)).await;
        assert_eq!(
            verifier(&server, |_| {}).warm_up().await,
            Err(AuthError::KeysUnavailable)
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_must_fit_the_key_it_names() {
    within("the test", async {
        let rsa = Signer::rs256(false).kid("rsa-1");
        let server = JwksServer::start(Mode::Serve(jwks(&[&rsa]))).await;
        let v = verifier(&server, |_| {});
        // An EC signature claiming the RSA key's kid.
        let ec_as_rsa = Signer::es256().kid("rsa-1").sign(&good_claims());
        assert_eq!(
            v.verify(&ec_as_rsa).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        // HMAC with the published RSA key as the secret.
        let n = rsa.jwk()["n"].as_str().expect("n").to_owned();
        let confused = Signer::hmac(n.as_bytes(), jsonwebtoken::Algorithm::HS256).kid("rsa-1");
        assert_eq!(
            v.verify(&confused.sign(&good_claims())).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        assert_eq!(
            v.verify(&unsigned(&good_claims())).await,
            Err(AuthError::AlgorithmNotAllowed)
        );
        // The right kid, signed by someone else.
        let forged = Signer::rs256(true).kid("rsa-1").sign(&good_claims());
        assert_eq!(v.verify(&forged).await, Err(AuthError::BadSignature));
        // Claims are still checked after a JWKS signature verifies.
        let expired = rsa.sign(&json!({ "sub": "a", "iss": ISSUER, "aud": AUDIENCE, "exp": 1 }));
        assert_eq!(v.verify(&expired).await, Err(AuthError::Expired));
    })
    .await;
}

/// The tests' signer `name` (`rsa1`, `rsa2` or `ec`), naming `kid` if given.
fn signer(name: &str, kid: Option<&str>) -> Signer {
    let signer = match name {
        "rsa1" => Signer::rs256(false),
        "rsa2" => Signer::rs256(true),
        _ => Signer::es256(),
    };
    match kid {
        Some(kid) => signer.kid(kid),
        None => signer,
    }
}

#[tokio::test]
async fn a_token_is_checked_against_one_key_only() {
    within("the test", async {
        type Key<'a> = (&'a str, Option<&'a str>);
        // (the set's keys, the token's signing key and kid, the outcome)
        let cases: [(&[Key], Key, Result<(), AuthError>); 10] = [
            // Named keys: a kid uses its own key; a token without kid is ambiguous.
            (
                &[("rsa1", Some("a")), ("rsa2", Some("b"))],
                ("rsa2", Some("b")),
                Ok(()),
            ),
            (
                &[("rsa1", Some("a")), ("rsa2", Some("b"))],
                ("rsa2", None),
                Err(AuthError::UnknownKey),
            ),
            (
                &[("rsa1", Some("a")), ("rsa2", Some("b"))],
                ("rsa2", Some("x")),
                Err(AuthError::UnknownKey),
            ),
            // Two keys without kid: neither an unknown kid nor no kid picks one.
            (
                &[("rsa1", None), ("rsa2", None)],
                ("rsa2", Some("x")),
                Err(AuthError::UnknownKey),
            ),
            (
                &[("rsa1", None), ("rsa2", None)],
                ("rsa2", None),
                Err(AuthError::UnknownKey),
            ),
            // One key without kid: the fallback for unknown kids.
            (
                &[("rsa1", None), ("ec", Some("ec"))],
                ("rsa1", Some("x")),
                Ok(()),
            ),
            // Without kid, of two fitting keys the one without kid is used, and only it.
            (
                &[("rsa1", Some("a")), ("rsa2", None)],
                ("rsa2", None),
                Ok(()),
            ),
            (
                &[("rsa1", Some("a")), ("rsa2", None)],
                ("rsa1", None),
                Err(AuthError::BadSignature),
            ),
            // A duplicated kid: the first key with it, and only it.
            (
                &[("rsa1", Some("dup")), ("rsa2", Some("dup"))],
                ("rsa1", Some("dup")),
                Ok(()),
            ),
            (
                &[("rsa1", Some("dup")), ("rsa2", Some("dup"))],
                ("rsa2", Some("dup")),
                Err(AuthError::BadSignature),
            ),
        ];
        for (spec, (name, kid), expected) in cases {
            let keys: Vec<Signer> = spec.iter().map(|(name, kid)| signer(name, *kid)).collect();
            let server = JwksServer::start(Mode::Serve(jwks(&keys.iter().collect::<Vec<_>>())));
            let token = signer(name, kid).sign(&good_claims());
            let outcome = verifier(&server.await, |_| {}).verify(&token).await;
            assert_eq!(
                outcome.map(|_| ()),
                expected,
                "set {spec:?}, token by {name} with kid {kid:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn toml_settings_with_a_jwks_url_verify() {
    within("the test", async {
        let signer = Signer::eddsa().kid("ed");
        let server = JwksServer::start(Mode::Serve(jwks(&[&signer]))).await;
        let text = format!(
            r#"
            jwks_url = "{}"
            algorithms = "EdDSA"
            issuer = "{ISSUER}"
            audience = "{AUDIENCE}"
            jwks_fetch_timeout = "2s"
            "#,
            server.url()
        );
        let value = toml::Value::Table(text.parse().expect("TOML"));
        let settings = JwtSettings::from_toml(&value, "namespaces[1].auth").expect("valid");
        let v = JwtVerifier::new(settings).expect("built");
        assert!(v.verify(&signer.sign(&good_claims())).await.is_ok());
    })
    .await;
}
