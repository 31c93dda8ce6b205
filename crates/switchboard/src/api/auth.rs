//! Bearer API keys: which configured key a request presents, compared in constant time.

use http::{HeaderMap, header};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};

use crate::config::ApiKey;
use crate::http::ApiError;

/// Which configured key a request presented (its position in the list): the rate
/// limiter's bucket. The key itself never leaves [`ApiKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyId(pub(crate) usize);

/// The accepted keys.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    /// Accepts exactly `keys`.
    pub(crate) fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeys { keys }
    }

    /// How many keys there are (one rate-limit bucket each).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key in `Authorization: Bearer <key>`, or 401.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<KeyId, ApiError> {
        let presented = bearer(headers).ok_or(ApiError::Unauthorized(
            "send the API key as `Authorization: Bearer <key>`",
        ))?;
        self.check(presented)
            .ok_or(ApiError::Unauthorized("unknown API key"))
    }

    /// Compares `presented` with every key, without stopping at a match and without
    /// branching on bytes, so timing tells nothing about how close a guess was (only,
    /// as `subtle` documents, whether its length equals a key's).
    fn check(&self, presented: &[u8]) -> Option<KeyId> {
        let mut found = 0u64;
        let mut any = subtle::Choice::from(0);
        for (i, key) in self.keys.iter().enumerate() {
            let equal = presented.ct_eq(key.expose());
            found.conditional_assign(&(i as u64), equal);
            any |= equal;
        }
        bool::from(any).then_some(KeyId(found as usize))
    }
}

/// The credentials of a `Bearer` authorization (scheme case-insensitive, RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(vec![
            ApiKey::new("first-key-0123456789"),
            ApiKey::new("second-key-0123456789"),
        ])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn each_configured_key_is_recognized() {
        let k = keys();
        assert_eq!(
            k.authenticate(&headers("Bearer first-key-0123456789")),
            Ok(KeyId(0))
        );
        assert_eq!(
            k.authenticate(&headers("bearer  second-key-0123456789 ")),
            Ok(KeyId(1))
        );
    }

    #[test]
    fn missing_malformed_and_wrong_keys_are_401() {
        let k = keys();
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Basic Zmlyc3Q6a2V5",
            "first-key-0123456789",
            "Bearer first-key-012345678",
            "Bearer first-key-01234567890",
            "Bearer FIRST-KEY-0123456789",
        ] {
            let result = k.authenticate(&headers(value));
            assert!(
                matches!(result, Err(ApiError::Unauthorized(_))),
                "{value:?}"
            );
        }
        assert!(k.authenticate(&HeaderMap::new()).is_err());
        assert!(ApiKeys::new(vec![]).check(b"anything").is_none());
    }
}
