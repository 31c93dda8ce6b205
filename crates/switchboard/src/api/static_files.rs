//! `[static] dir`: files served at `/` on the main listener, `index.html` for a
//! directory, never anything outside the directory, dotfiles (asked for, or reached
//! through a symlink), anything but a regular file, or over a size bound.
//!
//! A file is opened once, checked through that handle (a regular file, its size) and
//! streamed from it in chunks of [`CHUNK`] bytes, never read whole: what a download
//! holds is one chunk, however large the file and however slowly the client reads
//! (before 2026-12-07 each request read its file whole and held it until sent, so
//! slow downloads of a large file filled the node's memory). `HEAD` reads nothing.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use switchboard_engine::eio::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::routes::percent_decode;
use crate::http::ApiError;

/// Largest file served: 16 MiB. This serves a demo page or a small app; anything
/// larger belongs on a CDN.
pub(crate) const MAX_STATIC_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes read from a file at a time: what one download holds (with the runtime's read
/// buffer of the same size, and what the HTTP connection buffers: 64 KiB at most,
/// `serve::MAX_BUF_BYTES`) while the client takes it.
const CHUNK: usize = 16 * 1024;

/// Downloads served at once by the node (`GET`s whose body is being sent). Each holds
/// about 100 KiB while its client takes it, so a client that opens many slow
/// downloads holds about 25 MiB at most; past it, 503 with `Retry-After: 1`.
pub(crate) const MAX_DOWNLOADS: usize = 256;

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
    /// Places for downloads under way ([`MAX_DOWNLOADS`]).
    downloads: Arc<Semaphore>,
}

impl StaticFiles {
    /// Serves `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        Self::with_downloads(dir, MAX_DOWNLOADS)
    }

    /// Serves `dir` with `downloads` places for downloads under way.
    fn with_downloads(dir: &Path, downloads: usize) -> io::Result<Self> {
        Ok(StaticFiles {
            root: dir.canonicalize()?,
            downloads: Arc::new(Semaphore::new(downloads)),
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
        let path = self.resolve(&wanted).await?;
        // Only a regular file is opened: opening a FIFO blocks until someone writes to
        // it (holding a blocking thread), and a device never ends.
        let kind = tokio::fs::metadata(&path).await.map_err(not_found)?;
        if kind.is_dir() {
            return Ok(redirect_to_dir(req));
        }
        if !kind.is_file() {
            return Err(ApiError::NotFound);
        }
        let file = tokio::fs::File::open(&path).await.map_err(not_found)?;
        // Checked again through the handle that is read: the path may have changed
        // meanwhile (which takes write access to the directory).
        let meta = file.metadata().await.map_err(not_found)?;
        if !meta.is_file() {
            return Err(ApiError::NotFound);
        }
        if meta.len() > MAX_STATIC_FILE_BYTES {
            return Err(ApiError::Internal(format!(
                "{} is larger than the {MAX_STATIC_FILE_BYTES}-byte static file limit",
                path.display()
            )));
        }
        let body = match *req.method() {
            Method::HEAD => Body::default(),
            _ => {
                let place = (self.downloads.clone().try_acquire_owned())
                    .map_err(|_| ApiError::DownloadsFull)?;
                file_body(file, meta.len(), place)
            }
        };
        Ok(file_response(&path, meta.len(), body))
    }

    /// The real file `wanted` names inside the root (`index.html` for a directory
    /// URL); 404 when it is missing or resolves, through symlinks, outside the root
    /// or to a dotfile (or into a dot-directory) inside it.
    async fn resolve(&self, wanted: &Wanted) -> Result<PathBuf, ApiError> {
        let mut path = self.root.join(&wanted.path);
        if wanted.dir_url {
            path.push(INDEX);
        }
        let real = tokio::fs::canonicalize(&path).await.map_err(not_found)?;
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| ApiError::NotFound)?;
        let hidden = inside
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        if hidden {
            return Err(ApiError::NotFound);
        }
        Ok(real)
    }
}

/// `len` bytes of `file` in chunks of [`CHUNK`], read as the client takes them,
/// holding `place` until the last is sent or the client went away. No more than `len`
/// (the `Content-Length` sent) even if the file grew; a file that shrank or failed to
/// read ends the body early, and the connection with it.
fn file_body(file: tokio::fs::File, len: u64, place: OwnedSemaphorePermit) -> Body {
    use tokio::io::AsyncReadExt as _;
    let state = (file, len, place);
    let chunks = futures_util::stream::unfold(state, |(mut file, left, place)| async move {
        let want = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        if want == 0 {
            return None;
        }
        let mut chunk = vec![0; want];
        match file.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((bytes::Bytes::from(chunk), (file, left - n as u64, place)))
            }
        }
    });
    Body::stream(chunks)
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

fn file_response(file: &Path, len: u64, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    // A streamed body has no length of its own: without this it would go chunked,
    // and a file cut short would look whole.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
