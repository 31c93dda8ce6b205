//! A first look at a token before any key is chosen: its shape, its `alg` (checked
//! against the allow-list by name, so `none` is refused as an algorithm rather than as
//! garbage) and its `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Algorithm, AuthError};

/// The header fields that choose the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peeked {
    /// The declared algorithm, known to be allowed.
    pub(crate) alg: Algorithm,
    /// The declared key id, if any.
    pub(crate) kid: Option<String>,
}

/// Reads the header of a compact JWS and checks its `alg` against `allowed`.
///
/// Refuses: anything but three dot-separated parts (a JWE has five), a header that is
/// not base64url JSON object, a missing or non-string `alg` (`Malformed`); an `alg` that
/// is unknown, `none`, or not in `allowed` (`AlgorithmNotAllowed`); and any `crit`
/// header, since no extension is understood here (RFC 7515 §4.1.11).
pub(crate) fn peek(token: &str, allowed: &[Algorithm]) -> Result<Peeked, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let serde_json::Value::Object(fields) =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?
    else {
        return Err(AuthError::Malformed);
    };
    if fields.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    let name = fields
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or(AuthError::Malformed)?;
    let alg = Algorithm::parse(name)
        .filter(|alg| allowed.contains(alg))
        .ok_or(AuthError::AlgorithmNotAllowed)?;
    let kid = match fields.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok(Peeked { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    const RS: &[Algorithm] = &[Algorithm::RS256];

    #[test]
    fn reads_alg_and_kid() {
        let peeked = peek(&token(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#), RS);
        assert_eq!(
            peeked,
            Ok(Peeked {
                alg: Algorithm::RS256,
                kid: Some("k1".into())
            })
        );
        let no_kid = peek(&token(r#"{"alg":"RS256"}"#), RS);
        assert_eq!(no_kid.map(|p| p.kid), Ok(None));
    }

    #[test]
    fn refuses_algorithms_outside_the_allow_list() {
        for alg in ["none", "HS256", "rs256", "RS384", "XX"] {
            let header = format!(r#"{{"alg":"{alg}"}}"#);
            assert_eq!(
                peek(&token(&header), RS),
                Err(AuthError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_malformed_shapes_and_headers() {
        let bad = [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d.e".to_owned(),
            "!!!.e30.c2ln".to_owned(),
            token("[]"),
            token("not json"),
            token(r#"{"typ":"JWT"}"#),
            token(r#"{"alg":256}"#),
            token(r#"{"alg":"RS256","kid":7}"#),
            token(r#"{"alg":"RS256","crit":["exp"]}"#),
        ];
        for t in bad {
            assert_eq!(peek(&t, RS), Err(AuthError::Malformed), "{t}");
        }
    }
}
