//! `[static] dir`: files served at `/` on the main listener, `index.html` for a
//! directory, never anything outside the directory, dotfiles or over a size bound.

use std::io;
use std::path::{Component, Path, PathBuf};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use switchboard_engine::eio::Body;

use super::routes::percent_decode;
use crate::http::ApiError;

/// Largest file served: 16 MiB. Files are read whole into memory per request, so the
/// bound is what one request can cost; this serves a demo page or a small app, and
/// anything larger belongs on a CDN.
pub(crate) const MAX_STATIC_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The file a directory path serves.
const INDEX: &str = "index.html";

/// Content types by extension; others are served as `application/octet-stream`.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("woff2", "font/woff2"),
    ("wasm", "application/wasm"),
];

/// Serves one directory.
#[derive(Debug, Clone)]
pub(crate) struct StaticFiles {
    /// Canonical (symlinks resolved), so a resolved file path can be checked to be
    /// inside it.
    root: PathBuf,
}

impl StaticFiles {
    /// Serves `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        Ok(StaticFiles {
            root: dir.canonicalize()?,
        })
    }

    /// Answers a GET or HEAD for a file; 404 for anything missing or refused.
    pub(crate) async fn serve<B>(&self, req: &Request<B>) -> Response<Body> {
        let mut res = self
            .answer(req)
            .await
            .unwrap_or_else(ApiError::into_response);
        if req.method() == Method::HEAD {
            *res.body_mut() = Body::default();
        }
        res
    }

    async fn answer<B>(&self, req: &Request<B>) -> Result<Response<Body>, ApiError> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
        }
        let wanted = wanted(req.uri().path()).ok_or(ApiError::NotFound)?;
        let file = self.resolve(&wanted).await?;
        let meta = tokio::fs::metadata(&file).await.map_err(not_found)?;
        if meta.is_dir() {
            return Ok(redirect_to_dir(req));
        }
        if meta.len() > MAX_STATIC_FILE_BYTES {
            return Err(ApiError::Internal(format!(
                "{} is larger than the {MAX_STATIC_FILE_BYTES}-byte static file limit",
                file.display()
            )));
        }
        let bytes = tokio::fs::read(&file).await.map_err(not_found)?;
        Ok(file_response(&file, bytes))
    }

    /// The real file `wanted` names inside the root (`index.html` for a directory
    /// URL); 404 when it is missing or resolves, through symlinks, outside the root.
    async fn resolve(&self, wanted: &Wanted) -> Result<PathBuf, ApiError> {
        let mut path = self.root.join(&wanted.path);
        if wanted.dir_url {
            path.push(INDEX);
        }
        let real = tokio::fs::canonicalize(&path).await.map_err(not_found)?;
        if !real.starts_with(&self.root) {
            return Err(ApiError::NotFound);
        }
        Ok(real)
    }
}

/// A file path asked for by a URL.
#[derive(Debug, PartialEq, Eq)]
struct Wanted {
    /// Relative to the root; every component a plain name.
    path: PathBuf,
    /// The URL ended with `/`: serve the directory's index.
    dir_url: bool,
}

/// The URL path as a relative file path: percent-decoded, every segment a plain name
/// (no `..`, no `.`, no dotfiles, no separators or NUL hidden in escapes).
fn wanted(url_path: &str) -> Option<Wanted> {
    let trimmed = url_path.strip_prefix('/')?;
    let mut path = PathBuf::new();
    for segment in trimmed.split('/').filter(|s| !s.is_empty()) {
        let name = percent_decode(segment)?;
        if name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return None;
        }
        path.push(name);
    }
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| Wanted {
        path,
        dir_url: url_path.ends_with('/'),
    })
}

fn not_found(_: io::Error) -> ApiError {
    ApiError::NotFound
}

/// A directory URL without its trailing `/`: relative links in its index would
/// resolve against the parent, so send the browser to `path/` first.
///
/// The target is rebuilt from the path's non-empty segments, so it always starts with
/// exactly one `/`: `GET //evil.example` must not answer `Location: //evil.example/`,
/// which a browser reads as another host (an open redirect).
fn redirect_to_dir<B>(req: &Request<B>) -> Response<Body> {
    let location = dir_location(req.uri().path(), req.uri().query());
    let mut res = Response::new(Body::default());
    *res.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, value);
    }
    res
}

/// `/a/b/` (with `?query` when given) for a URL path such as `//a//b`.
fn dir_location(path: &str, query: Option<&str>) -> String {
    let mut location = String::with_capacity(path.len() + 2);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        location.push('/');
        location.push_str(segment);
    }
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    location
}

fn file_response(file: &Path, bytes: Vec<u8>) -> Response<Body> {
    let mut res = Response::new(Body::from(bytes));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(file)),
    );
    // Never let a browser guess a type from the content (an uploaded .txt as HTML).
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Revalidate each time: a demo or admin page must never show a stale copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    CONTENT_TYPES
        .iter()
        .find(|(known, _)| *known == ext)
        .map_or("application/octet-stream", |(_, ty)| ty)
}

#[cfg(test)]
mod tests;
