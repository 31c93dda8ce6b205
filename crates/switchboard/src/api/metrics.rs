//! API request counters by route template, method and status, for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use http::{Method, StatusCode};

use crate::http::Collector;
use crate::http::prometheus::Exposition;

/// Requests counted so far. Labels are bounded: route templates come from the route
/// table (or `unmatched`), methods from a fixed list (or `other`), statuses are the
/// few the API answers.
///
/// A `std` mutex: one map update per request, never held across `.await`.
#[derive(Debug, Default)]
pub(crate) struct ApiMetrics {
    counts: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
}

/// One counter, as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestCount {
    /// Route template, e.g. `/api/v1/namespaces/{namespace}/rooms`, or `unmatched`.
    pub(crate) route: &'static str,
    /// Request method.
    pub(crate) method: &'static str,
    /// Response status.
    pub(crate) status: u16,
    /// Requests.
    pub(crate) count: u64,
}

impl ApiMetrics {
    /// Counts one answered request.
    pub(crate) fn record(&self, route: &'static str, method: &Method, status: StatusCode) {
        let key = (route, method_label(method), status.as_u16());
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// Every counter, ordered by route, method and status.
    pub(crate) fn snapshot(&self) -> Vec<RequestCount> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&(route, method, status), &count)| RequestCount {
                route,
                method,
                status,
                count,
            })
            .collect()
    }
}

impl Collector for ApiMetrics {
    /// `switchboard_api_requests_total`, declared even before the first request.
    fn render(&self, out: &mut Exposition) {
        out.family(
            "switchboard_api_requests_total",
            "counter",
            "HTTP API requests by route template, method and response status.",
        );
        for r in self.snapshot() {
            let status = r.status.to_string();
            let labels = [
                ("route", r.route),
                ("method", r.method),
                ("status", status.as_str()),
            ];
            out.sample("switchboard_api_requests_total", &labels, r.count);
        }
    }
}

/// A bounded label for any method a client may send.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[Method] = &[
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let m = ApiMetrics::default();
        m.record("/api/v1/emit", &Method::POST, StatusCode::OK);
        m.record("/api/v1/emit", &Method::POST, StatusCode::OK);
        let odd = Method::from_bytes(b"BREW").unwrap_or_default();
        m.record("unmatched", &odd, StatusCode::UNAUTHORIZED);
        assert_eq!(
            m.snapshot(),
            [
                RequestCount {
                    route: "/api/v1/emit",
                    method: "POST",
                    status: 200,
                    count: 2
                },
                RequestCount {
                    route: "unmatched",
                    method: "other",
                    status: 401,
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn requests_render_as_one_counter_family() {
        let m = ApiMetrics::default();
        let mut empty = Exposition::default();
        m.render(&mut empty);
        assert_eq!(
            empty.into_string().lines().nth(1),
            Some("# TYPE switchboard_api_requests_total counter"),
            "declared before the first request"
        );
        m.record("/api/v1/emit", &Method::POST, StatusCode::OK);
        let mut out = Exposition::default();
        m.render(&mut out);
        let text = out.into_string();
        let line =
            r#"switchboard_api_requests_total{route="/api/v1/emit",method="POST",status="200"} 1"#;
        assert!(text.lines().any(|l| l == line), "{text}");
    }
}
