//! Reading requests: JSON bodies with a size limit and a deadline, and query strings.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;
use switchboard_engine::eio::server::RequestBody;

use crate::http::ApiError;

/// How much of a body may be read, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Largest body, in bytes.
    pub(crate) max_bytes: usize,
    /// Deadline for the whole body to arrive.
    pub(crate) timeout: Duration,
}

/// Reads `body` whole: 413 past the size limit (at once when `Content-Length` says
/// so), 408 when it does not arrive in time, 400 when the client breaks it off.
pub(crate) async fn read<B: RequestBody>(
    headers: &HeaderMap,
    body: B,
    limits: BodyLimits,
) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: limits.max_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(too_large);
    }
    let collect = switchboard_engine::eio::read_capped(body, limits.max_bytes);
    match tokio::time::timeout(limits.timeout, collect).await {
        Err(_) => Err(ApiError::BodyTimeout(limits.timeout)),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Ok(Err(err)) => Err(ApiError::MalformedJson(format!(
            "the body could not be read: {err}"
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Parses a JSON body: 400 when it is not JSON at all, 422 when it is JSON of the
/// wrong shape (missing or unknown fields, wrong types).
pub(crate) fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        let message = err.to_string();
        match err.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(message),
            _ => ApiError::MalformedJson(message),
        }
    })
}

/// The decoded `name=value` pairs of a query string (`+` is a space, as in forms).
pub(crate) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |text: &str| {
        super::routes::percent_decode(&text.replace('+', " "))
            .ok_or_else(|| ApiError::BadQuery(format!("bad percent-encoding in `{text}`")))
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::HeaderValue;
    use http_body_util::Full;
    use hyper::body::Frame;

    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 16,
        timeout: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn bodies_within_the_limit_are_read() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
        let read = read(&HeaderMap::new(), body, LIMITS).await;
        assert_eq!(read, Ok(Bytes::from_static(b"{\"a\":1}")));
    }

    #[tokio::test]
    async fn larger_bodies_are_413_with_or_without_content_length() {
        let big = Bytes::from(vec![b' '; 17]);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(17));
        let declared = read(&headers, Full::new(big.clone()), LIMITS).await;
        assert_eq!(declared, Err(ApiError::PayloadTooLarge { limit: 16 }));
        let undeclared = read(&HeaderMap::new(), Full::new(big), LIMITS).await;
        assert_eq!(undeclared, Err(ApiError::PayloadTooLarge { limit: 16 }));
    }

    /// A body whose bytes never come.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let res = read(&HeaderMap::new(), Stalled, LIMITS).await;
        assert_eq!(res, Err(ApiError::BodyTimeout(LIMITS.timeout)));
    }

    #[test]
    fn json_errors_split_into_malformed_and_invalid() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Shape {
            a: u8,
        }
        assert!(matches!(
            json::<Shape>(b"{\"a\":"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            json::<Shape>(b""),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            json::<Shape>(b"{\"a\":\"x\"}"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            json::<Shape>(b"{\"a\":1,\"b\":2}"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(json::<Shape>(b"{\"a\":1}").is_ok());
    }

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            query_pairs(Some("room=a%20b&limit=5&flag&x=a+b")),
            Ok(vec![
                ("room".into(), "a b".into()),
                ("limit".into(), "5".into()),
                ("flag".into(), String::new()),
                ("x".into(), "a b".into()),
            ])
        );
        assert_eq!(query_pairs(None), Ok(vec![]));
        assert!(query_pairs(Some("room=%zz")).is_err());
    }
}
