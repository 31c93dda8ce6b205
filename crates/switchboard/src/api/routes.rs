//! The API's route table, the one list the dispatcher, the metrics labels and the
//! OpenAPI test all read, and matching a request path against it.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::http::ApiError;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /api/v1/emit`.
    Emit,
    /// `POST /api/v1/sockets/join`.
    Join,
    /// `POST /api/v1/sockets/leave`.
    Leave,
    /// `POST /api/v1/sockets/disconnect`.
    Disconnect,
    /// `GET /api/v1/namespaces`.
    Namespaces,
    /// `GET /api/v1/namespaces/{namespace}/rooms`.
    Rooms,
    /// `GET /api/v1/namespaces/{namespace}/rooms/{room}`.
    Room,
    /// `GET /api/v1/namespaces/{namespace}/sockets`.
    Sockets,
    /// `GET /api/v1/namespaces/{namespace}/sockets/{id}`.
    Socket,
    /// `GET /api/v1/namespaces/{namespace}/sockets/{id}/timeline`.
    Timeline,
    /// `GET /api/v1/disconnects`.
    Disconnects,
    /// `GET /api/v1/openapi.json`.
    OpenApi,
}

/// One route: a method and a path template whose `{name}` segments are parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// What it does.
    pub(crate) endpoint: Endpoint,
    /// Its method.
    pub(crate) method: Method,
    /// Its path, as OpenAPI writes it; also the `route` label of the metrics.
    pub(crate) template: &'static str,
}

const fn route(endpoint: Endpoint, method: Method, template: &'static str) -> Route {
    Route {
        endpoint,
        method,
        template,
    }
}

/// Every route of the API.
pub(crate) static ROUTES: &[Route] = &[
    route(Endpoint::Emit, Method::POST, "/api/v1/emit"),
    route(Endpoint::Join, Method::POST, "/api/v1/sockets/join"),
    route(Endpoint::Leave, Method::POST, "/api/v1/sockets/leave"),
    route(
        Endpoint::Disconnect,
        Method::POST,
        "/api/v1/sockets/disconnect",
    ),
    route(Endpoint::Namespaces, Method::GET, "/api/v1/namespaces"),
    route(
        Endpoint::Rooms,
        Method::GET,
        "/api/v1/namespaces/{namespace}/rooms",
    ),
    route(
        Endpoint::Room,
        Method::GET,
        "/api/v1/namespaces/{namespace}/rooms/{room}",
    ),
    route(
        Endpoint::Sockets,
        Method::GET,
        "/api/v1/namespaces/{namespace}/sockets",
    ),
    route(
        Endpoint::Socket,
        Method::GET,
        "/api/v1/namespaces/{namespace}/sockets/{id}",
    ),
    route(
        Endpoint::Timeline,
        Method::GET,
        "/api/v1/namespaces/{namespace}/sockets/{id}/timeline",
    ),
    route(Endpoint::Disconnects, Method::GET, "/api/v1/disconnects"),
    route(Endpoint::OpenApi, Method::GET, "/api/v1/openapi.json"),
];

/// The metrics label of a path no route has.
pub(crate) const UNMATCHED: &str = "unmatched";

/// A matched route with its parameters, percent-decoded, in template order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matched {
    /// The route.
    pub(crate) route: &'static Route,
    /// The `{...}` segments' values.
    pub(crate) params: Vec<String>,
}

/// The template `path` matches, whatever the method: the metrics label.
pub(crate) fn template_of(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|r| params(r.template, path).is_some())
        .map(|r| r.template)
}

/// The route for `method` and `path`: 404 when no template matches, 405 (with the
/// methods it has) when one matches for another method.
pub(crate) fn find(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let mut other_method = None;
    for route in ROUTES {
        let Some(params) = params(route.template, path) else {
            continue;
        };
        if route.method == *method {
            return Ok(Matched { route, params });
        }
        other_method = Some(route.method.clone());
    }
    match other_method {
        Some(m) if m == Method::POST => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        Some(_) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        None => Err(ApiError::NotFound),
    }
}

/// The decoded parameters if `path` fits `template` segment by segment.
fn params(template: &str, path: &str) -> Option<Vec<String>> {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    let mut out = Vec::new();
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return Some(out),
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return None;
                }
                out.push(percent_decode(g)?);
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Decodes `%XX` escapes; `None` for a `%` not followed by two hex digits, or escapes
/// that do not decode to UTF-8. `+` stays `+` (the query reader turns it into a space
/// first).
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    // `percent_decode_str` keeps a bad escape as written; here it is an error.
    let escapes_valid = text.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_valid {
        return None;
    }
    let decoded = percent_decode_str(text).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates_with_decoded_parameters() {
        let m = find(&Method::GET, "/api/v1/namespaces/%2Fchat/rooms/a%20b").ok();
        let m = m.map(|m| (m.route.endpoint, m.params));
        assert_eq!(
            m,
            Some((Endpoint::Room, vec!["/chat".into(), "a b".into()]))
        );
        let m = find(&Method::GET, "/api/v1/namespaces").map(|m| m.route.endpoint);
        assert_eq!(m, Ok(Endpoint::Namespaces));
        assert_eq!(
            find(&Method::POST, "/api/v1/emit").map(|m| m.params),
            Ok(vec![])
        );
    }

    #[test]
    fn other_methods_are_405_and_other_paths_404() {
        assert_eq!(
            find(&Method::GET, "/api/v1/emit"),
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            find(&Method::DELETE, "/api/v1/namespaces"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
        for path in [
            "/api/v1/emit/",
            "/api/v1/namespaces//rooms",
            "/api/v2/emit",
            "/api/v1/namespaces/%2/rooms",
            "/api/v1/namespaces/%FF/rooms",
        ] {
            assert_eq!(find(&Method::GET, path), Err(ApiError::NotFound), "{path}");
        }
    }

    #[test]
    fn templates_label_metrics() {
        assert_eq!(
            template_of("/api/v1/namespaces/x/sockets/y"),
            Some("/api/v1/namespaces/{namespace}/sockets/{id}")
        );
        assert_eq!(template_of("/api/v1/nope"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2F"), Some("/".into()));
        assert_eq!(percent_decode("a%C3%A9"), Some("aé".into()));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%%41"), None);
        assert_eq!(percent_decode("%+F"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%2525"), Some("%25".into()));
        assert_eq!(percent_decode("a+b"), Some("a+b".into()));
        assert_eq!(percent_decode(""), Some(String::new()));
    }
}
