//! The filter, and how this node's reports and the other nodes' answers become one list.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard_engine::DisconnectReason;
use switchboard_engine::breadcrumbs::{Crumb, Step};
use switchboard_engine::diagnosis::{Diagnosis, Reason, Refusal, Report, Stage};
use switchboard_engine::protocol::engineio::TransportKind;

use super::*;

/// A report of socket `id` in `/`, `at_ms` after the epoch, as this node shows it.
pub(super) fn view(id: &str, at_ms: u64, node: Option<&str>) -> ReportView {
    let report = Report {
        at: UNIX_EPOCH + Duration::from_millis(at_ms),
        namespace: "/".into(),
        socket_id: id.into(),
        transport: TransportKind::Websocket,
        reason: Reason::Disconnect(DisconnectReason::PingTimeout),
        diagnosis: Diagnosis {
            category: Category::Heartbeat,
            confidence: 1.0,
            evidence: vec![
                "last heard 46.1 s ago".into(),
                "connected for 90.0 s".into(),
            ],
        }
        .into(),
        breadcrumbs: vec![
            Crumb {
                at_us: at_ms.saturating_sub(10) * 1000,
                step: Step::Opened(TransportKind::Polling),
            },
            Crumb {
                at_us: at_ms.saturating_sub(5) * 1000,
                step: Step::Joined("room:a".into()),
            },
        ],
        dropped_steps: 3,
    };
    ReportView::of(&report, node)
}

/// Another node's answer holding `reports`, as it crosses the cluster.
pub(super) fn answer_of(reports: &[ReportView]) -> Value {
    json!({ "disconnects": reports })
}

fn answers(asked: Option<usize>, answers: Vec<(&str, Value)>) -> NodeAnswers {
    NodeAnswers {
        asked,
        answers: answers
            .into_iter()
            .map(|(node, body)| (node.to_owned(), body))
            .collect(),
    }
}

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

#[test]
fn the_nodes_reports_are_merged_newest_first_each_naming_its_node() {
    let filter = Filter {
        limit: Some(3),
        ..Filter::default()
    };
    let local = vec![
        view("a2", 2_000, Some("sb-1")),
        view("a1", 1_000, Some("sb-1")),
    ];
    let list = merge(
        local,
        answers(
            Some(2),
            vec![
                (
                    "sb-2",
                    answer_of(&[view("b3", 3_000, None), view("b0", 500, None)]),
                ),
                ("sb-3", answer_of(&[view("c1", 1_500, None)])),
            ],
        ),
        &filter,
    );
    let shown: Vec<(&str, Option<&str>)> = list
        .disconnects
        .iter()
        .map(|r| (r.socket_id.as_str(), r.node.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("b3", Some("sb-2")),
            ("a2", Some("sb-1")),
            ("c1", Some("sb-3"))
        ],
        "newest first, cut to the limit"
    );
    assert_eq!(
        list.nodes,
        NodesView {
            asked: Some(3),
            answered: 3
        }
    );
}

#[test]
fn an_answer_that_is_not_what_was_asked_is_dropped_whole_and_shows_as_unanswered() {
    let filter = Filter {
        category: Some(Category::Heartbeat),
        limit: Some(2),
        ..Filter::default()
    };
    let mut other_category = view("x", 9_000, None);
    other_category.category = "client";
    let list = merge(
        vec![view("a", 1_000, None)],
        answers(
            Some(4),
            vec![
                // One report too many for the limit.
                (
                    "too-many",
                    answer_of(&[
                        view("t1", 9_000, None),
                        view("t2", 9_000, None),
                        view("t3", 9_000, None),
                    ]),
                ),
                // A report the filter excludes.
                (
                    "outside",
                    answer_of(&[view("o", 9_000, None), other_category]),
                ),
                ("garbage", json!({"disconnects": "all of them"})),
                ("good", answer_of(&[view("g", 2_000, None)])),
            ],
        ),
        &filter,
    );
    let ids: Vec<&str> = list
        .disconnects
        .iter()
        .map(|r| r.socket_id.as_str())
        .collect();
    assert_eq!(ids, ["g", "a"]);
    assert_eq!(
        list.nodes,
        NodesView {
            asked: Some(5),
            answered: 2
        }
    );
}

#[test]
fn another_nodes_refusals_and_sheds_cross_the_cluster() {
    let refusal = Report::refused(Refusal::new(
        Stage::Connect,
        "/secure",
        TransportKind::Websocket,
        Category::Auth,
        "invalid_token",
        "the namespace's middleware refused: bad token",
    ));
    let mut shed = view("s", 3_000, None);
    shed.reason = "server overloaded";
    shed.category = "pressure";
    let list = merge(
        Vec::new(),
        answers(
            Some(2),
            vec![("b", answer_of(&[shed, ReportView::of(&refusal, None)]))],
        ),
        &Filter::default(),
    );
    let reasons: Vec<&str> = list.disconnects.iter().map(|r| r.reason).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.contains(&"connect refused") && reasons.contains(&"server overloaded"));
    assert_eq!(list.nodes.answered, 2);
}

#[test]
fn a_cluster_that_could_not_be_asked_says_so() {
    let list = merge(
        vec![view("a", 1, None)],
        answers(None, vec![]),
        &Filter::default(),
    );
    assert_eq!(
        serde_json::to_value(&list).ok().map(|v| v["nodes"].clone()),
        Some(json!({"asked": null, "answered": 1}))
    );
    let alone = merge(Vec::new(), answers(Some(0), vec![]), &Filter::default());
    assert_eq!(
        alone.nodes,
        NodesView {
            asked: Some(1),
            answered: 1
        }
    );
}
