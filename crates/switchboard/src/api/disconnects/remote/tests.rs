//! Questions and answers between nodes: what a node answers, and what it takes from
//! another node's answer (forged, oversized or malformed ones refused).

use serde_json::json;
use switchboard_engine::diagnosis::Category;
use switchboard_engine::{Io, Shutdown, SocketIoConfig};

use super::super::tests::{answer_of, view};
use super::*;

fn limit(n: usize) -> Filter {
    Filter {
        limit: Some(n),
        ..Filter::default()
    }
}

#[test]
fn a_report_crosses_the_cluster_unchanged() {
    let sent = view("AbCdEfGhIjKlMnOpQrSt", 1_700_000_000_000, None);
    let got = reports(answer_of(std::slice::from_ref(&sent)), &limit(1));
    assert_eq!(got.ok(), Some(vec![sent]));
}

#[test]
fn questions_name_the_filter_and_the_socket() {
    let filter = Filter {
        namespace: Some("/chat".into()),
        category: Some(Category::SlowConsumer),
        socket: Some("s".into()),
        since: Some(5),
        limit: None,
    };
    assert_eq!(
        question(&filter),
        json!({"disconnects": {"namespace": "/chat", "category": "slow_consumer", "socket": "s", "since": 5, "limit": 100}})
    );
    assert_eq!(
        timeline_question("/chat", "s"),
        json!({"timeline": {"namespace": "/chat", "socket": "s"}})
    );
}

#[test]
fn a_node_answers_what_it_holds_and_null_to_what_it_does_not_know() {
    let io = Io::new(SocketIoConfig::default(), Shutdown::never());
    let budget = 1 << 20;
    assert_eq!(
        answer(&io, &question(&limit(5)), budget),
        json!({"disconnects": []})
    );
    assert_eq!(
        answer(&io, &timeline_question("/", "AbCdEfGhIjKlMnOpQrSt"), budget),
        json!({"timeline": null})
    );
    // A category of a newer version: no report of this node has it.
    let newer = json!({"disconnects": {"category": "cosmic_ray", "limit": 5}});
    assert_eq!(answer(&io, &newer, budget), json!({"disconnects": []}));
    for unknown in [json!({"shout": {}}), json!("disconnects"), json!(null)] {
        assert_eq!(answer(&io, &unknown, budget), Value::Null, "{unknown}");
    }
}

#[test]
fn an_answer_keeps_the_newest_reports_that_fit_its_budget() {
    let all: Vec<ReportView> = (0..10)
        .map(|n| view(&format!("s{n}"), 10_000 - n, None))
        .collect();
    let one = serde_json::to_vec(&all[0]).map_or(0, |v| v.len());
    let answer = reports_answer(all.clone(), LIST_OVERHEAD + 3 * (one + 1));
    assert_eq!(answer, answer_of(&all[..3]));
    let whole = reports_answer(all.clone(), 1 << 20);
    assert_eq!(whole, answer_of(&all));
    assert!(serde_json::to_vec(&whole).is_ok_and(|v| v.len() <= LIST_OVERHEAD + 10 * (one + 1)));
}

#[test]
fn more_reports_than_the_limit_are_refused_before_any_is_read() {
    let reports_ = vec![json!("not even a report"); 3];
    assert!(matches!(
        reports(json!({ "disconnects": reports_ }), &limit(2)),
        Err(AnswerError::TooMany { got: 3, limit: 2 })
    ));
    // The API's largest limit bounds every answer.
    let many = vec![json!(0); MAX_REPORTS + 1];
    assert!(matches!(
        reports(json!({ "disconnects": many }), &limit(MAX_REPORTS)),
        Err(AnswerError::TooMany { .. })
    ));
}

#[test]
fn forged_or_oversized_fields_are_refused() {
    let good = || serde_json::to_value(view("s", 5_000, None)).unwrap_or_default();
    let long = "x".repeat(MAX_TEXT + 1);
    let deep = json!([{"at": 1, "step": "joined", "room": {"nested": true}}]);
    let unknown_step = json!([{"at": 1, "step": "teleported"}]);
    let bad_tier = json!([{"at": 1, "step": "pressure", "tier": "apocalyptic"}]);
    let long_offset =
        json!([{"at": 1, "step": "recovered", "offset": "o".repeat(65), "replayed": 1}]);
    let huge_count = json!([{"at": 1, "step": "queue_high", "packets": 1_u64 << 40, "bytes": 1}]);
    let crumb = json!({"at": 1, "step": "joined", "room": "r"});
    let cases: Vec<(&str, Value, Value)> = vec![
        ("transport", json!("transport"), json!("carrier-pigeon")),
        ("reason", json!("reason"), json!("gremlins")),
        ("category", json!("category"), json!("cosmic_ray")),
        ("confidence", json!("confidence"), json!(1.5)),
        ("confidence", json!("confidence"), json!(-0.1)),
        ("namespace", json!("namespace"), json!(long)),
        ("socket_id", json!("socket_id"), json!(long)),
        ("evidence", json!("evidence"), json!([long])),
        (
            "evidence",
            json!("evidence"),
            json!(vec!["e"; MAX_EVIDENCE + 1]),
        ),
        ("breadcrumbs", json!("breadcrumbs"), json!("steps")),
        ("breadcrumbs", json!("breadcrumbs"), deep),
        ("breadcrumbs", json!("breadcrumbs"), unknown_step),
        ("breadcrumbs", json!("breadcrumbs"), bad_tier),
        ("breadcrumbs", json!("breadcrumbs"), long_offset),
        ("breadcrumbs", json!("breadcrumbs"), huge_count),
        (
            "breadcrumbs",
            json!("breadcrumbs"),
            json!(vec![crumb.clone(); MAX_STEPS + 1]),
        ),
        (
            "breadcrumbs",
            json!("breadcrumbs"),
            json!([{"step": "joined"}]),
        ),
        (
            "breadcrumbs",
            json!("breadcrumbs"),
            json!([{"at": -1, "step": "joined"}]),
        ),
        (
            "breadcrumbs",
            json!("breadcrumbs"),
            json!([{"at": 1, "step": "joined", "room": long}]),
        ),
    ];
    for (what, key, bad) in cases {
        let mut report = good();
        report[key.as_str().unwrap_or_default()] = bad;
        let got = reports(json!({ "disconnects": [report] }), &limit(1));
        assert!(
            matches!(&got, Err(AnswerError::Field(f)) if *f == what),
            "{what}: {got:?}"
        );
    }
    for shape in [json!({"at": "yesterday"}), json!({}), json!(7)] {
        assert!(matches!(
            reports(json!({ "disconnects": [shape] }), &limit(1)),
            Err(AnswerError::Shape(_))
        ));
    }
    for kind in [
        json!(null),
        json!([]),
        json!({"timeline": null}),
        json!({"disconnects": {}}),
    ] {
        assert!(matches!(reports(kind, &limit(1)), Err(AnswerError::Kind)));
    }
    // Within its bounds the same report is taken.
    let mut report = good();
    report["breadcrumbs"] = json!(vec![crumb; MAX_STEPS]);
    assert!(reports(json!({ "disconnects": [report] }), &limit(1)).is_ok());
}

#[test]
fn every_kind_of_step_crosses_the_cluster_and_fields_it_does_not_have_are_dropped() {
    let sent = json!([
        {"at": 1, "step": "opened", "transport": "polling"},
        {"at": 2, "step": "upgraded", "transport": "websocket"},
        {"at": 3, "step": "connected", "recovered": true},
        {"at": 4, "step": "recovered", "offset": "1700000000000-0", "replayed": 3},
        {"at": 5, "step": "joined", "room": "room:[email]"},
        {"at": 6, "step": "left", "room": "room:a"},
        {"at": 7, "step": "queue_high", "packets": 512, "bytes": 2_097_152},
        {"at": 8, "step": "pressure", "tier": "elevated"},
        {"at": 9, "step": "marked", "detail": "token refreshed"},
    ]);
    assert_eq!(steps(sent.clone()).ok(), Some(sent));
    let padded = json!([{"at": 1, "step": "opened", "transport": "sse", "secret": "x"}]);
    assert_eq!(
        steps(padded).ok(),
        Some(json!([{"at": 1, "step": "opened", "transport": "sse"}]))
    );
}

#[test]
fn a_report_outside_the_filter_is_refused() {
    let filter = Filter {
        socket: Some("mine".into()),
        since: Some(10),
        limit: Some(5),
        ..Filter::default()
    };
    for other in [view("theirs", 5_000, None), view("mine", 5, None)] {
        assert!(matches!(
            reports(answer_of(&[other]), &filter),
            Err(AnswerError::NotAsked)
        ));
    }
    assert!(reports(answer_of(&[view("mine", 5_000, None)]), &filter).is_ok());
}

#[test]
fn a_timeline_answer_is_the_asked_sockets_or_none() {
    let steps = json!([{"at": 1, "step": "opened", "transport": "polling"}]);
    let sent = json!({"timeline": {"namespace": "/", "socket_id": "s", "node": null, "breadcrumbs": steps, "dropped_steps": 2}});
    let got = timeline(sent.clone(), "/", "s").ok().flatten();
    assert_eq!(
        got,
        Some(TimelineView {
            namespace: "/".into(),
            socket_id: "s".into(),
            node: None,
            breadcrumbs: steps,
            dropped_steps: 2
        })
    );
    assert!(matches!(
        timeline(json!({"timeline": null}), "/", "s"),
        Ok(None)
    ));
    assert!(matches!(
        timeline(sent.clone(), "/", "other"),
        Err(AnswerError::NotAsked)
    ));
    assert!(matches!(
        timeline(sent, "/chat", "s"),
        Err(AnswerError::NotAsked)
    ));
    assert!(matches!(
        timeline(json!({"disconnects": []}), "/", "s"),
        Err(AnswerError::Kind)
    ));
    let bad_steps = json!({"timeline": {"namespace": "/", "socket_id": "s", "breadcrumbs": [1], "dropped_steps": 0}});
    assert!(matches!(
        timeline(bad_steps, "/", "s"),
        Err(AnswerError::Field("breadcrumbs"))
    ));
}
