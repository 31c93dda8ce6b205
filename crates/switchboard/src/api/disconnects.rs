//! `GET /api/v1/disconnects`: the last disconnects of sockets on every node of the
//! cluster, each with its diagnosis (category, confidence, evidence), the steps that led
//! to it and the node that holds it, newest first, filtered by namespace, category,
//! socket id and time; and `GET /api/v1/namespaces/{ns}/sockets/{id}/timeline`: a live
//! socket's steps, from whichever node holds it.
//!
//! A report lives on the node that held the socket. With a cluster adapter both routes
//! ask the other Switchboard nodes ([`Adapter::ask_nodes`]) the question of `remote`,
//! which each answers from what it holds ([`node_answerer`]); the list says how many
//! nodes were asked and how many answered, so a partial answer shows.

mod remote;

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use switchboard_cluster::Answerer;
use switchboard_engine::Io;
use switchboard_engine::adapter::{Adapter, NodeAnswers};
use switchboard_engine::diagnosis::{Category, MAX_REPORTS, Report};
use switchboard_engine::protocol::Sid;

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
    nodes: NodesView,
}

/// Which nodes the list covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct NodesView {
    /// Switchboard nodes asked, this one included; `null` when the cluster could not be
    /// asked (its broker unreachable): how many nodes there are is unknown then.
    asked: Option<usize>,
    /// Nodes whose reports are in the list, this one included.
    answered: usize,
}

/// One report as the API shows it (and as a node answers another with it).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ReportView {
    /// When the socket left, in milliseconds since the Unix epoch.
    at: u64,
    /// The node that holds the report (`null` without a cluster).
    node: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TimelineView {
    namespace: String,
    socket_id: String,
    /// The node that holds the socket (`null` without a cluster).
    node: Option<String>,
    /// Oldest first.
    breadcrumbs: serde_json::Value,
    /// Earlier steps not shown.
    dropped_steps: u32,
}

impl ReportView {
    fn of(report: &Report, node: Option<&str>) -> Self {
        let d = &report.diagnosis;
        ReportView {
            at: millis(report),
            node: node.map(str::to_owned),
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
#[derive(Debug, Default, Clone, PartialEq)]
struct Filter {
    namespace: Option<String>,
    category: Option<Category>,
    socket: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

/// Longest `namespace` or `socket` filter, in characters (as the OpenAPI document's
/// `maxLength` counts): far beyond any name, and short enough that
/// the question carrying it to the other nodes stays small (a filter of tens of
/// kilobytes made the question too large to send, and the answer looked like a cluster
/// outage, with an error logged each time).
const MAX_FILTER_CHARS: usize = 1024;

/// `value` of filter `name`, refused when longer than [`MAX_FILTER_CHARS`].
fn bounded_filter(name: &str, value: String) -> Result<String, ApiError> {
    match value.chars().count() <= MAX_FILTER_CHARS {
        true => Ok(value),
        false => Err(ApiError::BadQuery(format!(
            "`{name}` must be at most {MAX_FILTER_CHARS} characters"
        ))),
    }
}

/// The category named `name`.
fn category(name: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.as_str() == name)
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Filter, ApiError> {
        let mut filter = Filter::default();
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "namespace" => filter.namespace = Some(bounded_filter("namespace", value)?),
                "socket" => filter.socket = Some(bounded_filter("socket", value)?),
                "category" => {
                    filter.category = Some(category(&value).ok_or_else(|| {
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

    /// The most reports an answer holds.
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// [`Filter::keeps`] on the report itself, before its view is made: the view
    /// words the report and writes its timeline, and a call whose filter keeps few
    /// made one of every report first (before 2026-12-07, on every node).
    fn keeps_report(&self, report: &Report) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| *n == report.namespace)
            && self.socket.as_ref().is_none_or(|s| *s == report.socket_id)
            && self.since.is_none_or(|t| millis(report) >= t)
            && self
                .category
                .is_none_or(|c| c == report.diagnosis.category())
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

/// The adapter that reaches the other nodes: any namespace's does (questions are
/// node-wide), and the main namespace always exists.
fn cluster(io: &Io) -> Arc<dyn Adapter> {
    io.of("/").adapter().clone()
}

/// When a report's socket left, in milliseconds since the Unix epoch.
fn millis(report: &Report) -> u64 {
    report
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// This node's reports that `filter` keeps, newest first, at most its limit: only
/// those are made into views.
fn local_reports(io: &Io, filter: &Filter, node: Option<&str>) -> Vec<ReportView> {
    io.disconnect_reports()
        .iter()
        .rev()
        .filter(|r| filter.keeps_report(r))
        .take(filter.limit())
        .map(|r| ReportView::of(r, node))
        .collect()
}

/// This node's reports and the other nodes' answers in one list, newest first, at most
/// `filter`'s limit. An answer that is not what was asked (too many reports, a report
/// outside the filter, a malformed one) is dropped whole and not counted as answered.
fn merge(local: Vec<ReportView>, asked: NodeAnswers, filter: &Filter) -> DisconnectList {
    let mut all = local;
    let mut answered = 1;
    for (node, body) in asked.answers {
        match remote::reports(body, filter) {
            Ok(reports) => {
                answered += 1;
                all.extend(reports.into_iter().map(|mut r| {
                    r.node = Some(node.clone());
                    r
                }));
            }
            Err(err) => {
                tracing::warn!(node, error = %err, "a node's disconnect reports refused");
            }
        }
    }
    // Stable: this node's reports first among those of the same millisecond.
    all.sort_by_key(|r| std::cmp::Reverse(r.at));
    all.truncate(filter.limit());
    DisconnectList {
        disconnects: all,
        nodes: NodesView {
            asked: asked.asked.map(|others| others + 1),
            answered,
        },
    }
}

/// The handler.
pub(crate) async fn list(
    state: &ApiState,
    query: Option<&str>,
) -> Result<DisconnectList, ApiError> {
    let filter = Filter::parse(query)?;
    let adapter = cluster(&state.io);
    let node = adapter.node_name();
    let local = local_reports(&state.io, &filter, node.as_deref());
    let asked = adapter.ask_nodes(&remote::question(&filter)).await;
    Ok(merge(local, asked, &filter))
}

/// The timeline handler: from this node when it holds the socket, else from the node
/// that does. 404 only when no node has it (and every node asked answered); when some
/// did not, 503: the socket may be on one of them.
pub(crate) async fn timeline(
    state: &ApiState,
    namespace: &str,
    id: &str,
) -> Result<TimelineView, ApiError> {
    let here = select::namespace(&state.io, namespace);
    let name = match &here {
        Ok(ns) => ns.name().to_owned(),
        Err(ApiError::UnknownNamespace(name)) => name.clone(),
        Err(err) => return Err(err.clone()),
    };
    let not_found = || match &here {
        Ok(_) => ApiError::UnknownSocket(id.to_owned()),
        Err(err) => err.clone(),
    };
    let adapter = cluster(&state.io);
    if let Some(view) = local_timeline(&state.io, &name, id, adapter.node_name()) {
        return Ok(view);
    }
    if id.parse::<Sid>().is_err() {
        // No node can hold it.
        return Err(not_found());
    }
    let asked = adapter
        .ask_nodes(&remote::timeline_question(&name, id))
        .await;
    let mut answered = 0;
    for (node, body) in asked.answers {
        match remote::timeline(body, &name, id) {
            Ok(Some(mut view)) => {
                view.node = Some(node);
                return Ok(view);
            }
            Ok(None) => answered += 1,
            Err(err) => tracing::warn!(node, error = %err, "a node's timeline refused"),
        }
    }
    if asked.asked == Some(answered) {
        Err(not_found())
    } else {
        Err(ApiError::ClusterUnavailable)
    }
}

/// The timeline of socket `id` of namespace `name` if this node holds it.
fn local_timeline(io: &Io, name: &str, id: &str, node: Option<String>) -> Option<TimelineView> {
    let (crumbs, dropped_steps) = io.timeline(name, id)?;
    Some(TimelineView {
        namespace: name.to_owned(),
        socket_id: id.to_owned(),
        node,
        breadcrumbs: crumbs.iter().map(|c| c.to_value()).collect(),
        dropped_steps,
    })
}

/// What this node answers when another Switchboard node asks (given to
/// [`switchboard_cluster::Cluster::answer_nodes`]): its reports, or a socket's timeline.
pub(crate) fn node_answerer(io: Io) -> Answerer {
    Arc::new(move |question, budget| remote::answer(&io, question, budget))
}

#[cfg(test)]
mod tests;
