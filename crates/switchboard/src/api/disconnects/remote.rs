//! What one node asks the other Switchboard nodes about disconnects and timelines, and
//! their answers: built from what this node holds, and read back from another node's
//! JSON with every field checked and bounded; no IO.
//!
//! The question is `{"disconnects": {namespace, category, socket, since, limit}}` or
//! `{"timeline": {namespace, socket}}`; the answer `{"disconnects": [report, ...]}`
//! (reports as the API shows them, newest first, at most `limit`) or `{"timeline":
//! timeline}` (`null` when the node does not hold the socket). A node answers a
//! question it does not know with `null`. The answer's size is bounded by the cluster
//! (`switchboard_cluster`): a node answers with the newest reports that fit.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_engine::breadcrumbs::{Crumb, Step};
use switchboard_engine::diagnosis::MAX_REPORTS;
use switchboard_engine::diagnosis::{Reason, Stage};
use switchboard_engine::protocol::engineio::TransportKind;
use switchboard_engine::{DisconnectReason, Io};

use super::{Filter, ReportView, TimelineView, category, local_reports, local_timeline};

/// Longest text taken from an answer: a namespace, a socket id, a line of evidence, a
/// room or a marked step. Room names a client may join are at most 256 bytes, and the
/// rest is shorter; the API's joins take longer ones, up to a few KiB.
const MAX_TEXT: usize = 4096;
/// Most lines of evidence in one report: a diagnosis has a handful.
const MAX_EVIDENCE: usize = 32;
/// Most steps in one timeline: the most `diagnosis.breadcrumbs` may be set to.
const MAX_STEPS: usize = 256;
/// Longest recovery offset a step shows (the engine cuts the client's to this).
const MAX_OFFSET: usize = 64;
/// What `{"disconnects":[]}` takes around the reports of an answer.
const LIST_OVERHEAD: usize = 32;

/// The transports a report or a step may name.
const TRANSPORTS: [TransportKind; 3] = [
    TransportKind::Polling,
    TransportKind::Websocket,
    TransportKind::Sse,
];

/// The memory pressure tiers a step may name (the API's `Breadcrumb` schema).
const TIERS: [&str; 4] = ["normal", "elevated", "critical", "imminent"];

/// A question as it crosses the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Question {
    Disconnects {
        namespace: Option<String>,
        category: Option<String>,
        socket: Option<String>,
        since: Option<u64>,
        limit: usize,
    },
    Timeline {
        namespace: String,
        socket: String,
    },
}

/// Why another node's answer was refused whole. Logged with the node's name.
#[derive(Debug, thiserror::Error)]
pub(super) enum AnswerError {
    /// Not the kind of answer the question asked for.
    #[error("an answer to another question")]
    Kind,
    /// JSON that is not a report or a timeline.
    #[error("malformed: {0}")]
    Shape(#[from] serde_json::Error),
    /// More reports than the limit asked for.
    #[error("{got} reports for a limit of {limit}")]
    TooMany {
        /// Reports in the answer.
        got: usize,
        /// The limit asked for.
        limit: usize,
    },
    /// A field out of its bounds or not one of its values.
    #[error("bad {0}")]
    Field(&'static str),
    /// A report the question's filter excludes, or another socket's timeline.
    #[error("not what was asked for")]
    NotAsked,
}

/// The question for the reports `filter` keeps.
pub(super) fn question(filter: &Filter) -> Value {
    to_json(&Question::Disconnects {
        namespace: filter.namespace.clone(),
        category: filter.category.map(|c| c.as_str().to_owned()),
        socket: filter.socket.clone(),
        since: filter.since,
        limit: filter.limit(),
    })
}

/// The question for the timeline of socket `id` of namespace `namespace`.
pub(super) fn timeline_question(namespace: &str, id: &str) -> Value {
    to_json(&Question::Timeline {
        namespace: namespace.to_owned(),
        socket: id.to_owned(),
    })
}

/// A question as JSON (plain strings and numbers: it cannot fail).
fn to_json(question: &Question) -> Value {
    serde_json::to_value(question).unwrap_or(Value::Null)
}

/// This node's answer to another node's `question`, at most `budget` bytes of JSON.
pub(super) fn answer(io: &Io, question: &Value, budget: usize) -> Value {
    match Question::deserialize(question) {
        Ok(Question::Disconnects {
            namespace,
            category: wanted,
            socket,
            since,
            limit,
        }) => {
            let category = match wanted.as_deref().map(category) {
                // A category this node does not know: none of its reports has it.
                Some(None) => return json!({ "disconnects": [] }),
                Some(known) => known,
                None => None,
            };
            let filter = Filter {
                namespace,
                category,
                socket,
                since,
                limit: Some(limit.clamp(1, MAX_REPORTS)),
            };
            reports_answer(local_reports(io, &filter, None), budget)
        }
        Ok(Question::Timeline { namespace, socket }) => {
            json!({ "timeline": local_timeline(io, &namespace, &socket, None) })
        }
        Err(_) => Value::Null,
    }
}

/// `{"disconnects": [...]}` with the first of `reports` (the newest) that fit in
/// `budget` bytes.
fn reports_answer(reports: Vec<ReportView>, budget: usize) -> Value {
    let total = reports.len();
    let mut used = LIST_OVERHEAD;
    let mut kept = Vec::with_capacity(total);
    for report in reports {
        let Ok(value) = serde_json::to_value(&report) else {
            continue;
        };
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len().saturating_add(1));
        if used.saturating_add(size) > budget {
            tracing::info!(
                total,
                kept = kept.len(),
                "disconnect reports cut to fit an answer to another node"
            );
            break;
        }
        used += size;
        kept.push(value);
    }
    json!({ "disconnects": kept })
}

/// A report as another node sends it (its `node` is the answer's, not its own).
#[derive(Debug, Deserialize)]
struct RemoteReport {
    at: u64,
    namespace: String,
    socket_id: String,
    transport: String,
    reason: String,
    category: String,
    confidence: f64,
    evidence: Vec<String>,
    breadcrumbs: Value,
    dropped_steps: u32,
}

/// A timeline as another node sends it.
#[derive(Debug, Deserialize)]
struct RemoteTimeline {
    namespace: String,
    socket_id: String,
    breadcrumbs: Value,
    dropped_steps: u32,
}

/// Another node's reports for `filter`, checked: at most its limit (counted before
/// any is read), each field bounded and known, each kept by the filter.
pub(super) fn reports(body: Value, filter: &Filter) -> Result<Vec<ReportView>, AnswerError> {
    let Value::Object(mut map) = body else {
        return Err(AnswerError::Kind);
    };
    let Some(Value::Array(items)) = map.remove("disconnects") else {
        return Err(AnswerError::Kind);
    };
    let limit = filter.limit();
    if items.len() > limit {
        return Err(AnswerError::TooMany {
            got: items.len(),
            limit,
        });
    }
    items
        .into_iter()
        .map(|item| {
            let view = serde_json::from_value::<RemoteReport>(item)?.check()?;
            if filter.keeps(&view) {
                Ok(view)
            } else {
                Err(AnswerError::NotAsked)
            }
        })
        .collect()
}

/// Another node's answer about socket `id` of namespace `namespace`: its timeline, or
/// `None` when it does not hold the socket.
pub(super) fn timeline(
    body: Value,
    namespace: &str,
    id: &str,
) -> Result<Option<TimelineView>, AnswerError> {
    let Value::Object(mut map) = body else {
        return Err(AnswerError::Kind);
    };
    let Some(found) = map.remove("timeline") else {
        return Err(AnswerError::Kind);
    };
    if found.is_null() {
        return Ok(None);
    }
    let found: RemoteTimeline = serde_json::from_value(found)?;
    if found.namespace != namespace || found.socket_id != id {
        return Err(AnswerError::NotAsked);
    }
    Ok(Some(TimelineView {
        namespace: found.namespace,
        socket_id: found.socket_id,
        node: None,
        breadcrumbs: steps(found.breadcrumbs)?,
        dropped_steps: found.dropped_steps,
    }))
}

impl RemoteReport {
    /// The report as this node shows it, once every field is within its bounds.
    fn check(self) -> Result<ReportView, AnswerError> {
        let field = AnswerError::Field;
        let transport = TRANSPORTS
            .into_iter()
            .map(TransportKind::as_str)
            .find(|t| *t == self.transport)
            .ok_or(field("transport"))?;
        let refused = Stage::ALL.map(|stage| Reason::Refused(stage).as_str());
        let reason = DisconnectReason::ALL
            .into_iter()
            .map(DisconnectReason::as_str)
            .chain(refused)
            .find(|r| *r == self.reason)
            .ok_or(field("reason"))?;
        let category = category(&self.category)
            .map(|c| c.as_str())
            .ok_or(field("category"))?;
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(field("confidence"));
        }
        if self.evidence.len() > MAX_EVIDENCE {
            return Err(field("evidence"));
        }
        for line in &self.evidence {
            text(line, "evidence")?;
        }
        Ok(ReportView {
            at: self.at,
            node: None,
            namespace: text(&self.namespace, "namespace")?.to_owned(),
            socket_id: text(&self.socket_id, "socket_id")?.to_owned(),
            transport,
            reason,
            category,
            confidence: self.confidence,
            evidence: self.evidence,
            breadcrumbs: steps(self.breadcrumbs)?,
            dropped_steps: self.dropped_steps,
        })
    }
}

/// `text` if it is at most [`MAX_TEXT`] bytes.
fn text<'a>(text: &'a str, name: &'static str) -> Result<&'a str, AnswerError> {
    if text.len() <= MAX_TEXT {
        Ok(text)
    } else {
        Err(AnswerError::Field(name))
    }
}

/// A timeline's steps as this node shows them: each step read back into the engine's
/// [`Crumb`] (its kind, and the fields that kind has, within their bounds; any other
/// field dropped) and shown again, at most [`MAX_STEPS`].
fn steps(value: Value) -> Result<Value, AnswerError> {
    let bad = AnswerError::Field("breadcrumbs");
    let Value::Array(list) = value else {
        return Err(bad);
    };
    if list.len() > MAX_STEPS {
        return Err(bad);
    }
    list.iter()
        .map(|step| {
            crumb(step)
                .map(|c| c.to_value())
                .ok_or(AnswerError::Field("breadcrumbs"))
        })
        .collect()
}

/// One step, as [`Crumb::to_value`] writes it.
fn crumb(value: &Value) -> Option<Crumb> {
    let fields = value.as_object()?;
    let string = |key: &str| fields.get(key)?.as_str().filter(|s| s.len() <= MAX_TEXT);
    let count = |key: &str| u32::try_from(fields.get(key)?.as_u64()?).ok();
    let transport = || {
        let name = string("transport")?;
        TRANSPORTS.into_iter().find(|t| t.as_str() == name)
    };
    let step = match string("step")? {
        "opened" => Step::Opened(transport()?),
        "upgraded" => Step::Upgraded(transport()?),
        "connected" => Step::Connected {
            recovered: fields.get("recovered")?.as_bool()?,
        },
        "recovered" => Step::Recovered {
            offset: string("offset").filter(|o| o.len() <= MAX_OFFSET)?.into(),
            replayed: count("replayed")?,
        },
        "joined" => Step::Joined(string("room")?.into()),
        "left" => Step::Left(string("room")?.into()),
        "queue_high" => Step::QueueHigh {
            packets: count("packets")?,
            bytes: count("bytes")?,
        },
        "pressure" => {
            let tier = string("tier")?;
            Step::Pressure(TIERS.into_iter().find(|t| *t == tier)?)
        }
        "marked" => Step::Marked(string("detail")?.into()),
        _ => return None,
    };
    Some(Crumb {
        at_us: fields.get("at")?.as_u64()?.checked_mul(1000)?,
        step,
    })
}

#[cfg(test)]
mod tests;
