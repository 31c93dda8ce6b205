//! Verification keys and what each may verify: loading a secret or PEM public key from
//! settings, and reading a JWKS document into keys. Which token may use which key is
//! decided here, from the key's family, curve and declared `alg`.

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::settings::{JwtSettings, KeySource, setting_key};
use super::{Algorithm, KeyFamily};
use switchboard_settings::SettingError;

/// The most keys used from one JWKS document. Providers publish two or three (current,
/// next, previous). However many there are, a token is checked against one key only.
pub const MAX_JWKS_KEYS: usize = 32;

/// One verification key and what it may verify.
#[derive(Debug, Clone)]
pub(crate) struct VerifyKey {
    /// The JWK `kid`, if any (static keys have none and fit any `kid`).
    pub(crate) kid: Option<String>,
    /// The key's family: a token's `alg` must be of it.
    pub(crate) family: KeyFamily,
    /// The only algorithm the key may verify, when it is pinned (JWK `alg`, or the curve
    /// of an EC key).
    pub(crate) only: Option<Algorithm>,
    /// The key itself.
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    /// Whether a token declaring `alg` may be verified with this key.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.only.is_none_or(|only| only == alg)
    }
}

/// Loads the key of a secret or PEM key source, checked against the allowed algorithms.
/// Errors name the setting's dotted key.
pub(crate) fn load_static(settings: &JwtSettings) -> Result<VerifyKey, Vec<SettingError>> {
    let key_name = setting_key(settings, settings.key.config_key());
    let error = |message: String| vec![SettingError::new(key_name.clone(), message)];
    let key = match &settings.key {
        KeySource::Secret(secret) => secret_key(secret.expose(), &settings.algorithms),
        KeySource::SecretFile(path) => {
            let bytes = std::fs::read(path)
                .map_err(|err| error(format!("cannot read {}: {err}", path.display())))?;
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            secret_key(bytes, &settings.algorithms)
        }
        KeySource::PublicKeyPem(pem) => public_key(pem.as_bytes()),
        KeySource::PublicKeyFile(path) => {
            let bytes = std::fs::read(path)
                .map_err(|err| error(format!("cannot read {}: {err}", path.display())))?;
            public_key(&bytes)
        }
        KeySource::Jwks(_) => Err("a JWKS has no static key".to_owned()),
    }
    .map_err(error)?;
    if let Some(alg) = settings.algorithms.iter().find(|alg| !key.accepts(**alg)) {
        let message = match key.only {
            Some(only) => format!("this {} verifies {only} only, not {alg}", key.family),
            None => format!("this {} cannot verify {alg}", key.family),
        };
        return Err(vec![SettingError::new(
            setting_key(settings, "algorithms"),
            message,
        )]);
    }
    Ok(key)
}

/// An HMAC key, long enough for every allowed algorithm (RFC 7518 §3.2).
fn secret_key(secret: &[u8], algorithms: &[Algorithm]) -> Result<VerifyKey, String> {
    let needed = algorithms
        .iter()
        .filter_map(|alg| alg.min_secret_bytes())
        .max();
    if let Some(needed) = needed
        && secret.len() < needed
    {
        return Err(format!(
            "secret is {} bytes; the algorithms allowed need at least {needed} (RFC 7518 §3.2)",
            secret.len()
        ));
    }
    Ok(VerifyKey {
        kid: None,
        family: KeyFamily::Hmac,
        only: None,
        key: DecodingKey::from_secret(secret),
    })
}

/// A PEM public key: RSA, EC (P-256 or P-384) or Ed25519. A private key is refused, so
/// it is not left lying in a config that only needs the public half.
fn public_key(pem: &[u8]) -> Result<VerifyKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "is not PEM text".to_owned())?;
    if text.contains("PRIVATE KEY-----") {
        return Err("is a private key; give the public key (openssl pkey -pubout)".to_owned());
    }
    if !text.contains("-----BEGIN") {
        return Err("is not a PEM public key (no -----BEGIN line)".to_owned());
    }
    let static_key = |family, only, key| VerifyKey {
        kid: None,
        family,
        only,
        key,
    };
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(static_key(KeyFamily::Rsa, None, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The key is the uncompressed point 04 || x || y.
        let only = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => return Err("is an EC key on a curve other than P-256 or P-384".to_owned()),
        };
        return Ok(static_key(KeyFamily::Ec, Some(only), key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(static_key(KeyFamily::Ed, Some(Algorithm::EdDSA), key));
    }
    Err("is not an RSA, EC (P-256, P-384) or Ed25519 public key in PEM".to_owned())
}

/// Reads a JWKS document into the signing keys it holds. Keys that cannot be used here
/// are skipped rather than failing the set: encryption keys, `oct` (shared secrets do
/// not belong in a published document), unknown types and curves, and keys whose `alg`
/// does not fit their type. Errors only when the document is not a JWKS at all.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let document: Value = serde_json::from_slice(body).map_err(|err| format!("not JSON: {err}"))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS: no \"keys\" array")?;
    Ok(keys.iter().filter_map(jwk).take(MAX_JWKS_KEYS).collect())
}

/// One JWK, if it is a signing key this verifier can use.
fn jwk(value: &Value) -> Option<VerifyKey> {
    let field = |name| value.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    if let Some(ops) = value.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return None;
        }
    }
    let declared = match field("alg") {
        Some(name) => Some(Algorithm::parse(name)?),
        None => None,
    };
    let (family, curve) = match (field("kty")?, field("crv")) {
        ("RSA", _) => (KeyFamily::Rsa, None),
        ("EC", Some("P-256")) => (KeyFamily::Ec, Some(Algorithm::ES256)),
        ("EC", Some("P-384")) => (KeyFamily::Ec, Some(Algorithm::ES384)),
        ("OKP", Some("Ed25519")) => (KeyFamily::Ed, Some(Algorithm::EdDSA)),
        _ => return None,
    };
    let only = match (declared, curve) {
        (Some(alg), _) if alg.family() != family => return None,
        (Some(alg), Some(curve)) if alg != curve => return None,
        (declared, curve) => declared.or(curve),
    };
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(value.clone()).ok()?;
    let key = DecodingKey::from_jwk(&parsed).ok()?;
    Some(VerifyKey {
        kid: field("kid").map(str::to_owned),
        family,
        only,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::settings::Secret;

    const RSA_PUBLIC: &str = include_str!("../../testdata/rsa-public.pem");
    const RSA_PRIVATE: &str = include_str!("../../testdata/rsa-private.pem");
    const EC256_PUBLIC: &str = include_str!("../../testdata/ec-p256-public.pem");
    const EC384_PUBLIC: &str = include_str!("../../testdata/ec-p384-public.pem");
    const ED_PUBLIC: &str = include_str!("../../testdata/ed25519-public.pem");

    fn load(key: KeySource, algorithms: &[Algorithm]) -> Result<VerifyKey, Vec<SettingError>> {
        let mut settings = JwtSettings::new(key, algorithms.to_vec());
        settings.path = "ns.auth".into();
        load_static(&settings)
    }

    fn error_key(result: Result<VerifyKey, Vec<SettingError>>) -> String {
        match result {
            Ok(key) => panic!("expected an error, got {key:?}"),
            Err(errors) => errors[0].key.clone(),
        }
    }

    #[test]
    fn pem_keys_are_recognised_with_their_curve() {
        let pem = |text: &str| KeySource::PublicKeyPem(text.to_owned());
        let rsa = load(pem(RSA_PUBLIC), &[Algorithm::RS256, Algorithm::PS512]).expect("rsa");
        assert_eq!((rsa.family, rsa.only), (KeyFamily::Rsa, None));
        let ec = load(pem(EC256_PUBLIC), &[Algorithm::ES256]).expect("p-256");
        assert_eq!(ec.only, Some(Algorithm::ES256));
        let ec = load(pem(EC384_PUBLIC), &[Algorithm::ES384]).expect("p-384");
        assert_eq!(ec.only, Some(Algorithm::ES384));
        let ed = load(pem(ED_PUBLIC), &[Algorithm::EdDSA]).expect("ed25519");
        assert_eq!(ed.family, KeyFamily::Ed);
    }

    #[test]
    fn algorithms_must_fit_the_key() {
        let pem = |text: &str| KeySource::PublicKeyPem(text.to_owned());
        assert_eq!(
            error_key(load(pem(EC256_PUBLIC), &[Algorithm::ES384])),
            "ns.auth.algorithms"
        );
        assert_eq!(
            error_key(load(pem(RSA_PUBLIC), &[Algorithm::ES256])),
            "ns.auth.algorithms"
        );
        assert_eq!(
            error_key(load(pem(ED_PUBLIC), &[Algorithm::RS256])),
            "ns.auth.algorithms"
        );
    }

    #[test]
    fn private_keys_and_garbage_are_refused_at_their_key() {
        let pem = |text: &str| KeySource::PublicKeyPem(text.to_owned());
        assert_eq!(
            error_key(load(pem(RSA_PRIVATE), &[Algorithm::RS256])),
            "ns.auth.public_key"
        );
        assert_eq!(
            error_key(load(pem("hello"), &[Algorithm::RS256])),
            "ns.auth.public_key"
        );
        let missing = KeySource::PublicKeyFile("/nonexistent/key.pem".into());
        assert_eq!(
            error_key(load(missing, &[Algorithm::RS256])),
            "ns.auth.public_key_file"
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        let secret = |len: usize| KeySource::Secret(Secret::new(vec![b'k'; len]));
        assert!(load(secret(32), &[Algorithm::HS256]).is_ok());
        assert_eq!(
            error_key(load(secret(31), &[Algorithm::HS256])),
            "ns.auth.secret"
        );
        assert_eq!(
            error_key(load(secret(32), &[Algorithm::HS256, Algorithm::HS512])),
            "ns.auth.secret"
        );
    }

    #[test]
    fn jwks_keeps_only_usable_signing_keys() {
        let body = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "kid": "ec",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "EC", "crv": "P-256", "kid": "mismatch", "alg": "ES384",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB" },
            { "kty": "XYZ", "kid": "odd" },
            "not an object",
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).expect("a JWKS");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ec")]);
        assert!(keys[0].accepts(Algorithm::ES256));
        assert!(!keys[0].accepts(Algorithm::ES384));
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\": 3}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }
}
