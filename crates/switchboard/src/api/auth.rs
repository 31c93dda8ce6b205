//! Bearer API keys: which configured key a request presents. The lookup, in constant
//! time, is [`switchboard_auth::ApiKeys`]; this file reads the header and maps a
//! refusal to a 401.

use http::{HeaderMap, header};

pub(crate) use switchboard_auth::KeyId;

use crate::config::ApiKey;
use crate::http::ApiError;

/// The accepted keys: [`switchboard_auth::ApiKeys`] (which does the constant-time
/// lookup) behind the HTTP side of it. A [`KeyId`] is the key's position in the
/// configured list, one rate-limit bucket each.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeys(switchboard_auth::ApiKeys);

impl ApiKeys {
    /// Accepts exactly `keys` (the config refuses empty and repeated ones).
    pub(crate) fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeys(switchboard_auth::ApiKeys::new(
            keys.iter().map(ApiKey::expose),
        ))
    }

    /// How many keys there are (one rate-limit bucket each).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The key in `Authorization: Bearer <key>`, or 401.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<KeyId, ApiError> {
        let presented = bearer(headers).ok_or(ApiError::Unauthorized(
            "send the API key as `Authorization: Bearer <key>`",
        ))?;
        self.0
            .find(presented)
            .ok_or(ApiError::Unauthorized("unknown API key"))
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
    fn each_configured_key_is_recognized_at_its_position() {
        let k = keys();
        let position = |value: &str| k.authenticate(&headers(value)).map(KeyId::index);
        assert_eq!(position("Bearer first-key-0123456789"), Ok(0));
        assert_eq!(position("bearer  second-key-0123456789 "), Ok(1));
        assert_eq!(k.len(), 2);
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
        let none = ApiKeys::new(vec![]);
        assert!(
            none.authenticate(&headers("Bearer anything-0123456789"))
                .is_err()
        );
    }
}
