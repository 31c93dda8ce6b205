//! The OpenAPI 3.1 document of the API, hand-written in `openapi.json` beside this
//! file and served as is. Tests in `api::tests::openapi` keep it true: every route is
//! documented and every documented path is served, its examples pass the real
//! handlers, and real answers match its schemas.

use http::{HeaderValue, Response, header};
use switchboard_engine::eio::Body;

/// The document.
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub(crate) fn response() -> Response<Body> {
    let mut res = Response::new(Body::from(DOCUMENT));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
