//! Why a token was refused: one cheap, copyable enum, with a message that is safe to
//! show the client and a stable code for logs, hooks and disconnect reasons.

/// Why a connection's token was refused. Cheap to copy: refusals are normal traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthError {
    /// No token was presented in any configured place.
    #[error("no token presented")]
    Missing,
    /// The token is not a well-formed JWS (shape, base64, JSON, claim types, size, or a
    /// required claim such as `exp` missing).
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the key the token names.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token's `alg` is not one the verifier is pinned to (including `none`), or does
    /// not fit the key it names.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not an accepted issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// `aud` is missing or names no accepted audience, or names one when none is
    /// configured (RFC 7519 §4.1.3).
    #[error("token audience not accepted")]
    WrongAudience,
    /// The token names a key (`kid`) the key set does not hold, even after a refresh; or
    /// no single key fits it (no `kid` while several keys fit its `alg`; an unknown `kid`
    /// while several keys without a `kid` do).
    #[error("unknown signing key")]
    UnknownKey,
    /// The key set could not be fetched (endpoint down, slow, or answering garbage) and
    /// no cached key fits the token. Not the client's fault; worth retrying later.
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// A message safe to show the client (in the CONNECT_ERROR packet): it says what
    /// to fix without echoing the token or anything about the keys.
    pub fn client_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "authentication required",
            AuthError::Malformed => "malformed token",
            AuthError::BadSignature => "invalid token",
            AuthError::AlgorithmNotAllowed => "token algorithm not allowed",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid",
            AuthError::WrongIssuer => "token issuer not accepted",
            AuthError::WrongAudience => "token audience not accepted",
            AuthError::UnknownKey => "invalid token",
            AuthError::KeysUnavailable => "authentication temporarily unavailable",
        }
    }

    /// A stable snake_case code for logs, metrics labels, hooks and disconnect reasons.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// Whether the failure is on the server's side (keys unreachable) rather than the
    /// token's: a client may retry the same token later.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }

    /// Classifies a `jsonwebtoken` failure.
    pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            // A key that cannot be used for this token (bad DER, wrong curve size) is
            // as good as a signature that does not verify.
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::MissingAlgorithm => AuthError::AlgorithmNotAllowed,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => AuthError::WrongIssuer,
                "aud" => AuthError::WrongAudience,
                _ => AuthError::Malformed,
            },
            _ => AuthError::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AuthError; 10] = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::BadSignature,
        AuthError::AlgorithmNotAllowed,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::UnknownKey,
        AuthError::KeysUnavailable,
    ];

    #[test]
    fn codes_are_distinct_and_snake_case() {
        let mut codes: Vec<_> = ALL.iter().map(AuthError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
        for code in codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }

    #[test]
    fn only_unavailable_keys_are_transient() {
        for err in ALL {
            assert_eq!(err.is_transient(), err == AuthError::KeysUnavailable);
            assert!(!err.client_message().is_empty());
        }
    }

    #[test]
    fn missing_claims_map_to_the_check_they_fail() {
        use jsonwebtoken::errors::ErrorKind;
        let missing = |claim: &str| {
            AuthError::from_jwt(&ErrorKind::MissingRequiredClaim(claim.to_owned()).into())
        };
        assert_eq!(missing("iss"), AuthError::WrongIssuer);
        assert_eq!(missing("aud"), AuthError::WrongAudience);
        assert_eq!(missing("exp"), AuthError::Malformed);
    }
}
