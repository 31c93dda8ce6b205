//! The listener's URL layout beside the engine: which paths the API, health and metrics
//! own. A leaf, so the config can refuse an engine path that would hide one of them
//! and the routes can match on them without either importing the other.

/// Every path of the API starts with this.
pub(crate) const API_PREFIX: &str = "/api/";
/// Liveness: 200 while the process can answer at all.
pub(crate) const LIVE_PATH: &str = "/health/live";
/// Readiness: 200 while serving, 503 once shutdown has begun.
pub(crate) const READY_PATH: &str = "/health/ready";
/// Prometheus metrics.
pub(crate) const METRICS_PATH: &str = "/metrics";
/// Every health and metrics route (static files never hide them).
pub(crate) const ROUTES: &[&str] = &[LIVE_PATH, READY_PATH, METRICS_PATH];

/// Whether `path` belongs to the API (on whichever listener serves it, and answered
/// 404 everywhere else).
pub(crate) fn is_api(path: &str) -> bool {
    path.starts_with(API_PREFIX) || path == API_PREFIX.trim_end_matches('/')
}
