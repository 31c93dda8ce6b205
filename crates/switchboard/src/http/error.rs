//! Every HTTP error the binary answers outside the engine, and the one place where each
//! becomes a response: client mistakes as JSON `{code, message}`, internal failures
//! logged and answered with a plain 500.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use switchboard_engine::eio::Body;

/// What went wrong with a request; turned into a response by [`ApiError::into_response`]
/// only. `code` strings are part of the API: clients match on them, never on messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// No route has this path (every `/api/` path too while the API is disabled).
    #[error("no such route")]
    NotFound,
    /// The route exists but not for this method; `allow` lists the methods it has.
    #[error("method not allowed (allowed: {allow})")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// Shutdown has begun; load balancers should send new clients elsewhere.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The cluster's broker (Redis) cannot be reached; this node would not hear the
    /// rest of the cluster.
    #[error("the cluster could not answer: Redis is unreachable or a node did not answer in time")]
    ClusterUnavailable,
    /// The node is at critical memory pressure or worse: it takes no new clients.
    #[error("the node is under memory pressure and takes no new clients")]
    MemoryPressure,
    /// As many static file downloads as the node serves at once are under way.
    #[error("too many static file downloads at once; retry shortly")]
    DownloadsFull,
    /// No `Authorization: Bearer` header, or a key that is not configured.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// This key used up its request budget.
    #[error("rate limit exceeded; retry in {}s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// When the next request will be accepted.
        retry_after: Duration,
    },
    /// The body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body did not arrive in time (a stalled or very slow client).
    #[error("request body did not arrive within {}ms", .0.as_millis())]
    BodyTimeout(Duration),
    /// The body is not JSON, or could not be read to its end.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A query parameter could not be read.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// No namespace with this name exists on this node.
    #[error("no namespace {0:?}")]
    UnknownNamespace(String),
    /// No connected socket with this id in the namespace.
    #[error("no socket {0:?} in this namespace")]
    UnknownSocket(String),
    /// The event name is one Socket.IO reserves (`connect`, `disconnect`, ...).
    #[error("event name {0:?} is reserved by Socket.IO")]
    ReservedEvent(String),
    /// A binary argument is not valid base64.
    #[error("binary_args[{0}].base64 is not valid base64")]
    InvalidBase64(usize),
    /// An operation that needs a selection of sockets got none.
    #[error("select sockets with `rooms` or `socket_ids`, or `\"all\": true` for every socket")]
    EmptySelection,
    /// Well-formed JSON whose content is not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// A failure on our side; the detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::ClusterUnavailable => "cluster_unavailable",
            ApiError::MemoryPressure => "memory_pressure",
            ApiError::DownloadsFull => "busy",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::UnknownNamespace(_) => "unknown_namespace",
            ApiError::UnknownSocket(_) => "unknown_socket",
            ApiError::ReservedEvent(_) => "reserved_event",
            ApiError::InvalidBase64(_) => "invalid_base64",
            ApiError::EmptySelection => "empty_selection",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::UnknownNamespace(_) | ApiError::UnknownSocket(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ShuttingDown
            | ApiError::ClusterUnavailable
            | ApiError::MemoryPressure
            | ApiError::DownloadsFull => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MalformedJson(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::ReservedEvent(_)
            | ApiError::InvalidBase64(_)
            | ApiError::EmptySelection
            | ApiError::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: JSON `{code, message}` with the headers the status calls for, or
    /// a plain 500 for an internal error (logged here, so no caller forgets to).
    pub(crate) fn into_response(self) -> Response<Body> {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
            let mut res = Response::new(Body::from("internal server error"));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return res;
        }
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        let mut res = super::json(self.status(), &body);
        let headers = res.headers_mut();
        match self {
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"switchboard\""),
                );
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(retry_after)),
                );
            }
            ApiError::DownloadsFull => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

/// `Retry-After` takes whole seconds: round up, and never say 0 (which would invite an
/// immediate retry that is refused again).
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_json_with_their_headers() {
        let res = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let res = ApiError::Unauthorized("missing").into_response();
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        let res = ApiError::MethodNotAllowed { allow: "POST" }.into_response();
        assert_eq!(res.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn internal_errors_are_a_plain_500_without_detail() {
        let res = ApiError::Internal("disk on fire at /secret/path".into()).into_response();
        assert_eq!(res.status(), 500);
        let body = res.into_body();
        let text = format!("{body:?}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::from_millis(3001)), 4);
    }
}
