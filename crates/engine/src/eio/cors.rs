//! CORS headers for long-polling and the Origin check that guards every handshake and
//! WebSocket upgrade against cross-site use.

use http::{HeaderMap, HeaderValue, header};

use crate::config::{AllowedOrigins, CorsConfig};

/// Whether the request's `Origin` (if any) may use the server. Requests without an
/// `Origin` header come from non-browser clients and are allowed.
pub(crate) fn origin_allowed(cors: &CorsConfig, req: &HeaderMap) -> bool {
    match req.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(origin)) => cors.allowed_origins.allows(origin),
        Some(Err(_)) => false,
    }
}

/// The request headers CORS answers depend on, kept once the request is consumed.
pub(crate) fn request_headers(req: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    if let Some(origin) = req.get(header::ORIGIN) {
        kept.insert(header::ORIGIN, origin.clone());
    }
    kept
}

/// Adds CORS response headers for a request from an allowed origin.
pub(crate) fn apply(cors: &CorsConfig, req: &HeaderMap, res: &mut HeaderMap) {
    let Some(origin) = req.get(header::ORIGIN) else {
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
