//! CORS headers for long-polling and the Origin check that guards every handshake and
//! WebSocket upgrade against cross-site use.

use http::{HeaderMap, HeaderValue, header};

use crate::config::{AllowedOrigins, CorsConfig};

use super::server::owned_value;

/// Whether the request's `Origin` (if any) may use the server.
///
/// - No `Origin` header: a non-browser client (browsers always send one on WebSocket
///   and cross-origin requests), allowed; such clients are not protected by origins
///   anyway and authenticate with tokens.
/// - A same-origin request (the `Origin`'s host and port are the request's `Host`) is
///   allowed whatever the list: a page served by this server, and non-browser clients
///   such as python-socketio that send their target URL as `Origin`.
/// - Otherwise the origin must be allowed by the configuration.
pub(crate) fn origin_allowed(cors: &CorsConfig, req: &HeaderMap) -> bool {
    match req.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(origin)) => {
            cors.allowed_origins.allows(origin) || is_same_origin(origin, req.get(header::HOST))
        }
        Some(Err(_)) => false,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the
/// request's `Host` header, default ports (80 for `http`, 443 for `https`) included.
fn is_same_origin(origin: &str, host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    // `Origin` never carries a path or user info; anything else is not a match.
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return false;
    }
    with_port(authority, default_port).eq_ignore_ascii_case(&with_port(host, default_port))
}

/// `host:port`, adding `default_port` when the authority has none (IPv6 literals in
/// brackets included).
fn with_port(authority: &str, default_port: &str) -> String {
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    }
}

/// The request's `Origin`, which CORS answers depend on, kept (as a copy of its own,
/// see [`owned_value`]) once the request is consumed.
pub(crate) fn request_origin(req: &HeaderMap) -> Option<HeaderValue> {
    req.get(header::ORIGIN).map(owned_value)
}

/// Adds CORS response headers for a request from an allowed `origin`.
pub(crate) fn apply(cors: &CorsConfig, origin: Option<&HeaderValue>, res: &mut HeaderMap) {
    let Some(origin) = origin else {
        return;
    };
    let allow = match (&cors.allowed_origins, cors.credentials) {
        // `*` cannot be combined with credentials; echo the origin instead.
        (AllowedOrigins::Any, false) => HeaderValue::from_static("*"),
        _ => origin.clone(),
    };
    res.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    res.insert(header::VARY, HeaderValue::from_static("Origin"));
    if cors.credentials {
        res.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// Adds the preflight headers of an `OPTIONS` answer.
pub(crate) fn apply_preflight(req: &HeaderMap, res: &mut HeaderMap) {
    res.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
    );
    if let Some(h) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        res.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("origin"),
        );
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        h
    }

    fn listed() -> CorsConfig {
        CorsConfig {
            allowed_origins: AllowedOrigins::List(vec!["https://app.example.com".into()]),
            credentials: false,
        }
    }

    #[test]
    fn same_origin_requests_pass_any_allowlist() {
        let cors = listed();
        for (origin, host) in [
            ("http://127.0.0.1:3000", "127.0.0.1:3000"),
            ("http://chat.example.com", "chat.example.com"),
            ("http://chat.example.com", "chat.example.com:80"),
            ("https://chat.example.com:443", "CHAT.example.com"),
            ("http://[::1]:3000", "[::1]:3000"),
            ("http://[::1]", "[::1]:80"),
        ] {
            assert!(
                origin_allowed(&cors, &request(origin, host)),
                "{origin} {host}"
            );
        }
    }

    #[test]
    fn other_origins_need_the_allowlist() {
        let cors = listed();
        for (origin, host) in [
            ("http://evil.example", "chat.example.com"),
            ("http://127.0.0.1:3001", "127.0.0.1:3000"),
            ("https://chat.example.com", "chat.example.com:80"),
            ("http://chat.example.com", "chat.example.com:443"),
            ("null", "chat.example.com"),
            ("ws://chat.example.com", "chat.example.com"),
            ("http://user@chat.example.com", "chat.example.com"),
        ] {
            assert!(
                !origin_allowed(&cors, &request(origin, host)),
                "{origin} {host}"
            );
        }
        let allowed = request("https://app.example.com", "chat.example.com");
        assert!(origin_allowed(&cors, &allowed));
        let mut no_host = HeaderMap::new();
        no_host.insert(header::ORIGIN, HeaderValue::from_static("http://a.example"));
        assert!(!origin_allowed(&cors, &no_host));
    }
}
