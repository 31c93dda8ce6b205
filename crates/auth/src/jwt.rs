//! JWT verification: settings, keys (secret, PEM public key or a cached JWKS), the
//! verifier that turns a token into [`Claims`] or an [`AuthError`].
//!
//! A token is checked in this order: size and shape; the header's `alg` against the
//! pinned algorithms (so `none` and HS/RS confusion are refused before any key is
//! touched); the one key its `kid` names (or, without `kid`, the one key that fits its
//! `alg`); the signature, checked once; then `exp`, `nbf`, `iss` and `aud` with the
//! configured leeway, `iss` a string and `aud` a string or a list of strings.

mod algorithm;
mod error;
mod fetch;
mod header;
mod jwks;
mod keys;
mod settings;

use std::sync::Arc;

use jsonwebtoken::Validation;
use serde_json::{Map, Value};

pub use algorithm::{Algorithm, KeyFamily};
pub use error::AuthError;
pub use keys::MAX_JWKS_KEYS;
pub use settings::{
    DEFAULT_JWKS_CACHE_TTL, DEFAULT_JWKS_FETCH_TIMEOUT, DEFAULT_JWKS_REFRESH_INTERVAL,
    DEFAULT_LEEWAY, DEFAULT_REQUIRE_EXP, JwksSettings, JwtSettings, KeySource, MAX_JWKS_BYTES,
    MAX_LEEWAY, MAX_TOKEN_BYTES, Secret,
};

use crate::token::{TokenSource, extract_token};
use jwks::JwksCache;
use keys::VerifyKey;
use switchboard_settings::SettingError;

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    /// `sub`, when it is a string.
    pub sub: Option<String>,
    /// `exp` in seconds since the Unix epoch, when present.
    pub exp: Option<u64>,
    /// Every claim as sent, `sub` and `exp` included.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The claim called `name` (top level only).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// All claims as one JSON object (for hook payloads).
    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(raw: Map<String, Value>) -> Self {
        let sub = raw.get("sub").and_then(Value::as_str).map(str::to_owned);
        let exp = raw.get("exp").and_then(|exp| {
            exp.as_u64().or_else(|| {
                exp.as_f64()
                    .filter(|secs| secs.is_finite() && *secs >= 0.0 && *secs < u64::MAX as f64)
                    // In range, checked just above.
                    .map(|secs| secs.round() as u64)
            })
        });
        Claims { sub, exp, raw }
    }
}

/// Verifies tokens for one namespace. Cheap to clone (shared state); safe to use from
/// many connections at once.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    /// Everything, shared by clones.
    inner: Arc<Inner>,
}

/// A verifier's keys and rules.
#[derive(Debug)]
struct Inner {
    /// The pinned algorithms.
    algorithms: Vec<Algorithm>,
    /// Claim checks per pinned algorithm, built once.
    validations: Vec<(Algorithm, Validation)>,
    /// Where keys come from.
    keys: Keys,
    /// Where tokens are looked for.
    sources: Vec<TokenSource>,
}

/// A verifier's keys.
#[derive(Debug)]
enum Keys {
    /// One secret or public key, loaded at construction.
    Static(VerifyKey),
    /// A cached JWKS.
    Jwks(JwksCache),
}

impl JwtVerifier {
    /// Builds a verifier, reading key files and parsing keys now, so a bad key is a
    /// config error at startup rather than a refused connection later. A JWKS is not
    /// fetched here (see [`warm_up`](Self::warm_up)). Errors name the settings' keys.
    pub fn new(settings: JwtSettings) -> Result<Self, Vec<SettingError>> {
        check_algorithms(&settings)?;
        check_leeway(&settings)?;
        let keys = match &settings.key {
            KeySource::Jwks(jwks) => {
                let fetcher = fetch::HttpFetcher::new(jwks.url.clone(), jwks.ca_file.as_deref())
                    .map_err(|err| {
                        let key = if err.is_ca_file() {
                            "jwks_ca_file"
                        } else {
                            "jwks_url"
                        };
                        vec![SettingError::new(
                            settings::setting_key(&settings, key),
                            err.to_string(),
                        )]
                    })?;
                Keys::Jwks(JwksCache::new(jwks.clone(), Box::new(fetcher)))
            }
            _ => Keys::Static(keys::load_static(&settings)?),
        };
        Ok(Self::with_keys(&settings, keys))
    }

    /// A verifier over `keys`, with claim checks built once per pinned algorithm.
    fn with_keys(settings: &JwtSettings, keys: Keys) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|alg| (*alg, validation(settings, *alg)))
            .collect();
        JwtVerifier {
            inner: Arc::new(Inner {
                algorithms: settings.algorithms.clone(),
                validations,
                keys,
                sources: settings.sources.clone(),
            }),
        }
    }

    /// Verifies `token` (a compact JWS) and returns its claims.
    ///
    /// With a JWKS this may wait for a fetch (bounded by the fetch timeout), which runs
    /// in a task spawned on the current tokio runtime, so it must be called inside one.
    /// The fetch finishes even if this future is dropped, and its result serves the
    /// connections that wait for it.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let peeked = header::peek(token, &self.inner.algorithms)?;
        let validation = self.validation(peeked.alg)?;
        match &self.inner.keys {
            Keys::Static(key) if key.accepts(peeked.alg) => decode(token, key, validation),
            Keys::Static(_) => Err(AuthError::AlgorithmNotAllowed),
            Keys::Jwks(cache) => {
                let kid = peeked.kid.as_deref();
                let keys = cache.lookup(kid, peeked.alg).await?;
                // One key, so one signature check per token, however many keys the set
                // holds (`lookup` found it; the set it returned holds it).
                let key = jwks::choose(&keys, kid, peeked.alg).ok_or(AuthError::UnknownKey)?;
                decode(token, key, validation)
            }
        }
    }

    /// Finds the token in the configured [`sources`](Self::sources) and verifies it;
    /// `Missing` when no source holds one.
    pub async fn verify_request(
        &self,
        auth: &Value,
        headers: &http::HeaderMap,
    ) -> Result<Claims, AuthError> {
        match extract_token(&self.inner.sources, auth, headers) {
            Some(token) => self.verify(&token).await,
            None => Err(AuthError::Missing),
        }
    }

    /// Where tokens are looked for, in order.
    pub fn sources(&self) -> &[TokenSource] {
        &self.inner.sources
    }

    /// Fetches a JWKS now if it was never fetched, so startup can log an unreachable
    /// identity provider before the first client meets it. Nothing to do for static
    /// keys. `KeysUnavailable` when the set could not be fetched.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        match &self.inner.keys {
            Keys::Static(_) => Ok(()),
            Keys::Jwks(cache) => cache.warm_up().await,
        }
    }

    /// The claim checks for `alg`.
    fn validation(&self, alg: Algorithm) -> Result<&Validation, AuthError> {
        self.inner
            .validations
            .iter()
            .find_map(|(pinned, validation)| (*pinned == alg).then_some(validation))
            .ok_or(AuthError::AlgorithmNotAllowed)
    }
}

/// Algorithms set in code get the same checks as those read from config.
fn check_algorithms(settings: &JwtSettings) -> Result<(), Vec<SettingError>> {
    let key = settings::setting_key(settings, "algorithms");
    if settings.algorithms.is_empty() {
        return Err(vec![SettingError::new(
            key,
            "must name at least one algorithm",
        )]);
    }
    let hmac_source = matches!(
        settings.key,
        KeySource::Secret(_) | KeySource::SecretFile(_)
    );
    if settings
        .algorithms
        .iter()
        .any(|alg| (alg.family() == KeyFamily::Hmac) != hmac_source)
    {
        return Err(vec![SettingError::new(
            key,
            "must fit the key source: only HS* with a secret, never HS* with a public key or JWKS",
        )]);
    }
    Ok(())
}

/// A leeway set in code gets the same checks as one read from config: whole seconds
/// (the claim checks count in seconds: 500 ms would be none at all), at most
/// [`MAX_LEEWAY`].
fn check_leeway(settings: &JwtSettings) -> Result<(), Vec<SettingError>> {
    match settings::leeway_problem(settings.leeway) {
        Some(message) => Err(vec![SettingError::new(
            settings::setting_key(settings, "leeway"),
            message,
        )]),
        None => Ok(()),
    }
}

/// The claim checks for tokens declaring `alg`.
fn validation(settings: &JwtSettings, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg.to_jwt());
    validation.leeway = settings.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    let mut required = Vec::new();
    if settings.require_exp {
        required.push("exp");
    }
    if !settings.issuers.is_empty() {
        validation.set_issuer(&settings.issuers);
        required.push("iss");
    }
    if !settings.audiences.is_empty() {
        validation.set_audience(&settings.audiences);
        required.push("aud");
    }
    validation.required_spec_claims = required.into_iter().map(str::to_owned).collect();
    validation
}

/// Verifies `token`'s signature with `key`, then its claims.
fn decode(token: &str, key: &VerifyKey, validation: &Validation) -> Result<Claims, AuthError> {
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
        .map_err(|err| AuthError::from_jwt(&err))?
        .claims;
    check_iss_and_aud(&claims, validation)?;
    Ok(Claims::from(claims))
}

/// What `jsonwebtoken`'s claim checks let through: it skips an `aud` or `iss` it cannot
/// parse unless that claim is required, and accepts an `iss` list that names an accepted
/// issuer. Refuses an `iss` that is not a string and an `aud` that is neither a string
/// nor a list of strings (`Malformed`), and any `aud` when no audience is configured
/// (`WrongAudience`, RFC 7519 §4.1.3). Accepted values were checked by `jsonwebtoken`.
fn check_iss_and_aud(
    claims: &Map<String, Value>,
    validation: &Validation,
) -> Result<(), AuthError> {
    // `null` is as good as absent, as `jsonwebtoken` reads it.
    let claim = |name| claims.get(name).filter(|v| !v.is_null());
    if claim("iss").is_some_and(|iss| !iss.is_string()) {
        return Err(AuthError::Malformed);
    }
    if let Some(aud) = claim("aud") {
        let well_formed = match aud {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !well_formed {
            return Err(AuthError::Malformed);
        }
        // `validation()` sets an audience exactly when one is configured.
        if validation.aud.is_none() {
            return Err(AuthError::WrongAudience);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
