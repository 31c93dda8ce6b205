//! Where a connecting client's token is found: the Socket.IO CONNECT `auth` object, an
//! `Authorization: Bearer` header, or a named cookie, tried in the configured order.

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// The CONNECT `auth` field read when none is named: socket.io-client's documented
/// convention is `io({ auth: { token } })`.
pub const DEFAULT_AUTH_FIELD: &str = "token";

/// One place a token may be presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A string field of the CONNECT packet's `auth` object (`io({ auth: { token } })`):
    /// works with every transport, including browsers' WebSocket, which cannot set
    /// headers.
    ConnectAuth {
        /// The field name, usually [`DEFAULT_AUTH_FIELD`].
        field: String,
    },
    /// `Authorization: Bearer <token>` on the handshake request (scheme matched
    /// case-insensitively, RFC 9110 §11.1).
    BearerHeader,
    /// A cookie sent with the handshake request. Its value is percent-decoded when it
    /// holds escapes (as Express's cookie parser does), so signed session ids such as
    /// `s%3A…` read as written by the application.
    Cookie {
        /// The cookie name, matched exactly.
        name: String,
    },
}

impl TokenSource {
    /// The sources used when none are configured: the CONNECT `auth.token` field, then
    /// a bearer header. Cookies are never read unless asked for, because a browser sends
    /// them on cross-site requests too.
    pub fn defaults() -> Vec<TokenSource> {
        vec![
            TokenSource::ConnectAuth {
                field: DEFAULT_AUTH_FIELD.to_owned(),
            },
            TokenSource::BearerHeader,
        ]
    }

    /// Reads the config spelling: `"auth"` (field `token`), `"auth:<field>"`,
    /// `"bearer"`, or `"cookie:<name>"`.
    pub fn parse(text: &str) -> Result<TokenSource, String> {
        let (kind, arg) = match text.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (text, None),
        };
        let named = |what: &str| match arg {
            Some(name) if is_token_name(name) => Ok(name.to_owned()),
            Some(name) => Err(format!(
                "{what} name {name:?} is empty or holds spaces, `;`, `,` or `=`"
            )),
            None => Err(format!("`{kind}` needs a name: `{kind}:<name>`")),
        };
        match kind {
            "auth" => Ok(TokenSource::ConnectAuth {
                field: match arg {
                    None => DEFAULT_AUTH_FIELD.to_owned(),
                    Some(_) => named("field")?,
                },
            }),
            "bearer" if arg.is_none() => Ok(TokenSource::BearerHeader),
            "cookie" => Ok(TokenSource::Cookie {
                name: named("cookie")?,
            }),
            _ => Err(format!(
                r#"unknown token source {text:?} (use "auth", "auth:<field>", "bearer" or "cookie:<name>")"#
            )),
        }
    }

    /// This source's token, if it holds a non-empty one.
    pub fn extract<'a>(&self, auth: &'a Value, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
        match self {
            TokenSource::ConnectAuth { field } => auth
                .get(field)
                .and_then(Value::as_str)
                .filter(|token| !token.is_empty())
                .map(Cow::Borrowed),
            TokenSource::BearerHeader => bearer(headers).map(Cow::Borrowed),
            TokenSource::Cookie { name } => cookie(headers, name),
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::ConnectAuth { field } => write!(f, "auth:{field}"),
            TokenSource::BearerHeader => f.write_str("bearer"),
            TokenSource::Cookie { name } => write!(f, "cookie:{name}"),
        }
    }
}

/// The first non-empty token found, trying `sources` in order. `auth` is the CONNECT
/// packet's auth payload (`Value::Null` when the client sent none); `headers` are the
/// handshake request's.
pub fn extract_token<'a>(
    sources: &[TokenSource],
    auth: &'a Value,
    headers: &'a HeaderMap,
) -> Option<Cow<'a, str>> {
    sources
        .iter()
        .find_map(|source| source.extract(auth, headers))
}

/// Whether `name` can be a cookie or field name as written in config.
fn is_token_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '='))
}

/// The token of the first `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(AUTHORIZATION).iter().find_map(|value| {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    })
}

/// The value of the first cookie called `name`, across every `Cookie` header.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    headers.get_all(COOKIE).iter().find_map(|value| {
        // Not `to_str`: cookie values may carry non-ASCII bytes that are still UTF-8.
        let text = std::str::from_utf8(value.as_bytes()).ok()?;
        text.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            if key.trim() != name {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (!value.is_empty()).then(|| percent_decode(value))
        })
    })
}

/// Decodes `%XX` escapes (`+` stays `+`: cookies are not form-encoded). A `%` that
/// does not start an escape is kept as written; text whose escapes do not decode to
/// UTF-8 is returned as written.
fn percent_decode(text: &str) -> Cow<'_, str> {
    percent_decode_str(text)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                name.clone(),
                HeaderValue::from_str(value).expect("test header"),
            );
        }
        map
    }

    fn cookie_source(name: &str) -> TokenSource {
        TokenSource::Cookie { name: name.into() }
    }

    #[test]
    fn parses_the_config_spellings() {
        assert_eq!(
            TokenSource::parse("auth"),
            Ok(TokenSource::ConnectAuth {
                field: "token".into()
            })
        );
        assert_eq!(
            TokenSource::parse("auth:jwt"),
            Ok(TokenSource::ConnectAuth {
                field: "jwt".into()
            })
        );
        assert_eq!(TokenSource::parse("bearer"), Ok(TokenSource::BearerHeader));
        assert_eq!(TokenSource::parse("cookie:sid"), Ok(cookie_source("sid")));
        for bad in [
            "",
            "cookie",
            "cookie:",
            "cookie:a b",
            "auth:",
            "bearer:x",
            "header",
            "Bearer",
        ] {
            assert!(TokenSource::parse(bad).is_err(), "{bad}");
        }
        for source in TokenSource::defaults()
            .into_iter()
            .chain([cookie_source("sid")])
        {
            assert_eq!(TokenSource::parse(&source.to_string()), Ok(source));
        }
    }

    #[test]
    fn tries_sources_in_order() {
        let auth = json!({ "token": "from-auth" });
        let map = headers(&[
            (AUTHORIZATION, "Bearer from-header"),
            (COOKIE, "sid=from-cookie"),
        ]);
        let order =
            |sources: &[TokenSource]| extract_token(sources, &auth, &map).map(Cow::into_owned);
        let defaults = TokenSource::defaults();
        assert_eq!(order(&defaults).as_deref(), Some("from-auth"));
        assert_eq!(
            order(&[TokenSource::BearerHeader, defaults[0].clone()]).as_deref(),
            Some("from-header")
        );
        assert_eq!(
            order(&[cookie_source("sid"), TokenSource::BearerHeader]).as_deref(),
            Some("from-cookie")
        );
        assert_eq!(order(&[]), None);
    }

    #[test]
    fn skips_empty_and_wrongly_typed_values() {
        let map = headers(&[
            (AUTHORIZATION, "Bearer   "),
            (AUTHORIZATION, "Basic abc"),
            (COOKIE, "sid="),
        ]);
        for auth in [
            json!(null),
            json!({ "token": "" }),
            json!({ "token": 42 }),
            json!("token"),
        ] {
            let sources = [TokenSource::defaults(), vec![cookie_source("sid")]].concat();
            assert_eq!(extract_token(&sources, &auth, &map), None, "{auth}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_later_headers_count() {
        let map = headers(&[
            (AUTHORIZATION, "Basic abc"),
            (AUTHORIZATION, "bEaReR  tok.en "),
        ]);
        assert_eq!(bearer(&map), Some("tok.en"));
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers_and_decoded() {
        let map = headers(&[
            (COOKIE, "a=1; sidx=no"),
            (COOKIE, r#"theme=dark; sid="s%3Aabc.def"; sid=second"#),
        ]);
        assert_eq!(cookie(&map, "sid").as_deref(), Some("s:abc.def"));
        assert_eq!(cookie(&map, "a").as_deref(), Some("1"));
        assert_eq!(cookie(&map, "missing"), None);
    }

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert!(matches!(percent_decode("plain"), Cow::Borrowed("plain")));
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF"), "%FF");
        assert_eq!(percent_decode("%%41%4"), "%A%4");
        assert_eq!(percent_decode("a+b%2B"), "a+b+");
    }
}
