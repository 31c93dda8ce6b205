//! `GET /api/v1/disconnects`: the last disconnects of sockets on this node, each with
//! its diagnosis (category, confidence, evidence) and the steps that led to it,
//! newest first, filtered by namespace, category, socket id and time; and
//! `GET /api/v1/namespaces/{ns}/sockets/{id}/timeline`: a live socket's steps.

use std::time::UNIX_EPOCH;

use serde::Serialize;
use switchboard_engine::diagnosis::{Category, MAX_REPORTS, Report};

use super::body::query_pairs;
use super::{ApiState, select};
use crate::http::ApiError;

/// Reports in one answer when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct DisconnectList {
    /// Newest first.
    disconnects: Vec<ReportView>,
}

/// One report as the API shows it.
#[derive(Debug, Serialize)]
struct ReportView {
    /// When the socket left, in milliseconds since the Unix epoch.
    at: u64,
    namespace: String,
    socket_id: String,
    transport: &'static str,
    reason: &'static str,
    category: &'static str,
    confidence: f64,
    evidence: Vec<String>,
    /// The steps before it left, oldest first.
    breadcrumbs: serde_json::Value,
    /// Earlier steps not kept.
    dropped_steps: u32,
}

/// A live socket's timeline.
#[derive(Debug, Serialize)]
pub(crate) struct TimelineView {
    namespace: String,
    socket_id: String,
    /// Oldest first.
    breadcrumbs: serde_json::Value,
    /// Earlier steps not shown.
    dropped_steps: u32,
}

impl ReportView {
    fn of(report: &Report) -> Self {
        let d = &report.diagnosis;
        ReportView {
            at: report
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            namespace: report.namespace.clone(),
            socket_id: report.socket_id.clone(),
            transport: report.transport.as_str(),
            reason: report.reason.as_str(),
            category: d.category.as_str(),
            confidence: (f64::from(d.confidence) * 100.0).round() / 100.0,
            evidence: d.evidence.clone(),
            breadcrumbs: report.breadcrumbs_value(),
            dropped_steps: report.dropped_steps,
        }
    }
}

/// What the query asks for.
#[derive(Debug, Default)]
struct Filter {
    namespace: Option<String>,
    category: Option<Category>,
    socket: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Filter, ApiError> {
        let mut filter = Filter::default();
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "namespace" => filter.namespace = Some(value),
                "socket" => filter.socket = Some(value),
                "category" => {
                    let found = Category::ALL.into_iter().find(|c| c.as_str() == value);
                    filter.category = Some(found.ok_or_else(|| {
                        let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                        ApiError::BadQuery(format!("`category` must be one of {}", all.join(", ")))
                    })?);
                }
                "since" => {
                    filter.since = Some(value.parse().map_err(|_| {
                        ApiError::BadQuery(
                            "`since` must be milliseconds since the Unix epoch".to_owned(),
                        )
                    })?);
                }
                "limit" => {
                    filter.limit = Some(match value.parse::<usize>() {
                        Ok(n @ 1..=MAX_REPORTS) => n,
                        _ => {
                            return Err(ApiError::BadQuery(format!(
                                "`limit` must be a number from 1 to {MAX_REPORTS}"
                            )));
                        }
                    });
                }
                other => {
                    return Err(ApiError::BadQuery(format!(
                        "unknown parameter `{other}` (expected namespace, category, socket, since, limit)"
                    )));
                }
            }
        }
        Ok(filter)
    }

    fn keeps(&self, report: &ReportView) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| *n == report.namespace)
            && self.category.is_none_or(|c| c.as_str() == report.category)
            && self.socket.as_ref().is_none_or(|s| *s == report.socket_id)
            && self.since.is_none_or(|t| report.at >= t)
    }
}

/// The handler.
pub(crate) fn list(state: &ApiState, query: Option<&str>) -> Result<DisconnectList, ApiError> {
    let filter = Filter::parse(query)?;
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    let disconnects = state
        .io
        .disconnect_reports()
        .iter()
        .rev()
        .map(|r| ReportView::of(r))
        .filter(|r| filter.keeps(r))
        .take(limit)
        .collect();
    Ok(DisconnectList { disconnects })
}

/// The timeline handler: 404 when the namespace or the socket is not on this node.
pub(crate) fn timeline(
    state: &ApiState,
    namespace: &str,
    id: &str,
) -> Result<TimelineView, ApiError> {
    select::namespace(&state.io, namespace)?;
    let (crumbs, dropped_steps) = state
        .io
        .timeline(namespace, id)
        .ok_or_else(|| ApiError::UnknownSocket(id.to_owned()))?;
    Ok(TimelineView {
        namespace: namespace.to_owned(),
        socket_id: id.to_owned(),
        breadcrumbs: crumbs.iter().map(|c| c.to_value()).collect(),
        dropped_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_and_checked() -> Result<(), ApiError> {
        let f = Filter::parse(Some(
            "namespace=%2Fchat&category=slow_consumer&since=5&limit=7",
        ))?;
        assert_eq!(f.namespace.as_deref(), Some("/chat"));
        assert_eq!(f.category, Some(Category::SlowConsumer));
        assert_eq!((f.since, f.limit), (Some(5), Some(7)));
        for bad in [
            "category=nope",
            "since=yesterday",
            "limit=0",
            "limit=1001",
            "x=1",
        ] {
            assert!(
                matches!(Filter::parse(Some(bad)), Err(ApiError::BadQuery(_))),
                "{bad}"
            );
        }
        Ok(())
    }
}
