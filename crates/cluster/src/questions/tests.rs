//! Questions between nodes on a real `redis-server`: who is asked, what is waited for,
//! and what a peer on the Redis that does not know the secret cannot make a node take.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use switchboard_engine::Shutdown;
use switchboard_test_support::RedisServer;
use switchboard_test_support::{eventually, within};

use super::*;
use crate::AdapterKind;

const SECRET: &str = "questions-tests-secret-0123456789abcdef";

fn config(redis: &RedisServer, timeout: Duration) -> ClusterConfig {
    ClusterConfig {
        adapter: AdapterKind::Redis,
        redis_url: redis.url(),
        secret: Some(ClusterSecret::new(SECRET).expect("long enough")),
        request_timeout: timeout,
        ..ClusterConfig::default()
    }
}

/// A node's questions on a broker of its own, once Redis hears its subscriptions.
async fn node(config: &ClusterConfig, uid: &str) -> Arc<Questions> {
    let broker =
        Broker::start(config, Arc::new(|_: &str, _| {}), Shutdown::never()).expect("a broker");
    let questions = Questions::start(&broker, config, uid).expect("with the secret");
    eventually("the node's broker is up", || async {
        broker.health().is_up()
    })
    .await;
    questions
}

/// Answers every question with the node's name and the question.
fn echo(name: &str) -> Answerer {
    let name = name.to_owned();
    Arc::new(move |question: &Value, _budget| json!({ "by": name, "question": question }))
}

#[tokio::test]
async fn every_other_switchboard_node_is_asked_and_each_answers_once() {
    let redis = RedisServer::start().await;
    let config = config(&redis, Duration::from_secs(10));
    let a = node(&config, "uid-a").await;
    let b = node(&config, "uid-b").await;
    let c = node(&config, "uid-c").await;
    b.answer_with("node-b".into(), echo("node-b"));
    c.answer_with("node-c".into(), echo("node-c"));
    a.answer_with("node-a".into(), echo("node-a"));
    assert_eq!(a.name(), "node-a");
    let question = json!({"disconnects": {"limit": 5}});
    let mut got = within("the answers", a.ask(&question)).await;
    got.answers.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got.asked, Some(2), "the two other nodes, not the asker");
    assert_eq!(
        got.answers,
        vec![
            (
                "node-b".to_owned(),
                json!({"by": "node-b", "question": question})
            ),
            (
                "node-c".to_owned(),
                json!({"by": "node-c", "question": question})
            ),
        ]
    );
}

#[tokio::test]
async fn a_node_that_does_not_answer_is_waited_for_until_the_timeout_only() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_millis(500);
    let config = config(&redis, timeout);
    let a = node(&config, "uid-a").await;
    let b = node(&config, "uid-b").await;
    // `c` hears questions but was never given an answerer: it stays silent.
    let _c = node(&config, "uid-c").await;
    b.answer_with("node-b".into(), echo("node-b"));
    let started = tokio::time::Instant::now();
    let got = within("a partial answer", a.ask(&json!("q"))).await;
    assert_eq!(got.asked, Some(2));
    assert_eq!(got.answers.len(), 1, "{got:?}");
    assert_eq!(got.answers[0].0, "node-b");
    assert!(started.elapsed() >= timeout, "gave up before the timeout");
    // Alone, a node asks nobody and answers at once.
    let lone = RedisServer::start().await;
    let alone = node(&config_for(&lone), "uid-x").await;
    assert_eq!(
        within("no answer", alone.ask(&json!("q"))).await,
        NodeAnswers {
            asked: Some(0),
            answers: Vec::new()
        }
    );
}

fn config_for(redis: &RedisServer) -> ClusterConfig {
    config(redis, Duration::from_secs(10))
}

/// What a peer on the Redis without the secret sees and sends: the questions on the
/// question channel, and anything it likes on the asker's answer channel.
#[tokio::test]
async fn answers_not_signed_with_the_secret_oversized_or_replayed_are_not_taken() {
    let redis = RedisServer::start().await;
    let config = config(&redis, Duration::from_secs(1));
    let a = node(&config, "uid-a").await;
    let b = node(&config, "uid-b").await;
    b.answer_with("node-b".into(), echo("node-b"));
    let client = redis::Client::open(redis.url()).expect("url");
    let mut spy = client.get_async_pubsub().await.expect("a subscriber");
    spy.subscribe(question_channel("socket.io"))
        .await
        .expect("subscribed");
    spy.subscribe(answer_channel("socket.io", "uid-a"))
        .await
        .expect("subscribed");
    let mut publisher = client
        .get_multiplexed_async_connection()
        .await
        .expect("a connection");
    let attacker = async move {
        let mut messages = spy.on_message();
        let question = messages.next().await.expect("the question");
        let sealed: Vec<u8> = question.get_payload().expect("bytes");
        // Questions are signed, not secret: their id can be read.
        let Ok(Frame::Question { id, .. }) =
            serde_json::from_slice::<Frame>(&sealed[crate::sign::TAG_LEN..])
        else {
            panic!("not a question");
        };
        let forged = Frame::Answer {
            id,
            from: "evil".into(),
            to: "uid-a".into(),
            node: "evil".into(),
            ts: now_ms(),
            body: json!({"disconnects": ["forged"]}),
        };
        let unsigned = [
            vec![0; crate::sign::TAG_LEN],
            serde_json::to_vec(&forged).expect("json"),
        ]
        .concat();
        let other_secret = Seal::new(&ClusterSecret::new(&"o".repeat(32)).expect("long"))
            .seal(&forged)
            .expect("sealed");
        let oversized = vec![b'x'; MAX_ANSWER_BYTES + 1];
        let channel = answer_channel("socket.io", "uid-a");
        for payload in [unsigned, other_secret.to_vec(), oversized] {
            let _: usize = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async(&mut publisher)
                .await
                .expect("published");
        }
        // B's genuine answer (the spy hears its own forgeries too), then the same
        // bytes again: a replay.
        let replayed = loop {
            let message = messages.next().await.expect("b's answer");
            let payload: Vec<u8> = message.get_payload().expect("bytes");
            let from_b = payload.get(crate::sign::TAG_LEN..).is_some_and(|json| {
                matches!(
                    serde_json::from_slice::<Frame>(json),
                    Ok(Frame::Answer { from, .. }) if from == "uid-b"
                )
            });
            if from_b {
                break payload;
            }
        };
        let _: usize = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(replayed)
            .query_async(&mut publisher)
            .await
            .expect("published");
    };
    let question = json!("q");
    let (got, ()) = within("the answers", async {
        tokio::join!(a.ask(&question), attacker)
    })
    .await;
    // The spy listens on the question channel too: counted, and never answers.
    assert_eq!(got.asked, Some(2));
    assert_eq!(
        got.answers,
        vec![(
            "node-b".to_owned(),
            json!({"by": "node-b", "question": "q"})
        )]
    );
}

#[tokio::test]
async fn a_question_that_is_stale_replayed_or_on_the_wrong_channel_is_not_answered() {
    let redis = RedisServer::start().await;
    let config = config(&redis, Duration::from_secs(1));
    let b = node(&config, "uid-b").await;
    let seal = Seal::new(config.secret.as_ref().expect("set"));
    let question = |ts| Frame::Question {
        id: 9,
        from: "uid-a".into(),
        ts,
        body: json!("q"),
    };
    let fresh = seal.seal(&question(now_ms())).expect("sealed");
    assert!(b.on_question(&fresh).is_ok());
    assert!(matches!(b.on_question(&fresh), Err(Rejected::Replayed)));
    for ts in [now_ms() - 5_000, now_ms() + 5_000] {
        let stale = seal.seal(&question(ts)).expect("sealed");
        assert!(matches!(b.on_question(&stale), Err(Rejected::Stale)));
    }
    let big = Frame::Question {
        id: 10,
        from: "uid-a".into(),
        ts: now_ms(),
        body: json!("x".repeat(MAX_QUESTION_BYTES)),
    };
    let big = seal.seal(&big).expect("sealed");
    assert!(matches!(
        b.on_question(&big),
        Err(Rejected::Frame(frame::FrameError::TooLarge(_)))
    ));
    let answer = Frame::Answer {
        id: 9,
        from: "uid-a".into(),
        to: "uid-b".into(),
        node: "a".into(),
        ts: now_ms(),
        body: Value::Null,
    };
    let answer = seal.seal(&answer).expect("sealed");
    assert!(matches!(
        b.on_question(&answer),
        Err(Rejected::WrongChannel)
    ));
    assert!(matches!(b.on_answer(&fresh), Err(Rejected::WrongChannel)));
    // An answer for another node, and one for a question `b` never asked.
    let to_c = Frame::Answer {
        id: 9,
        from: "uid-a".into(),
        to: "uid-c".into(),
        node: "a".into(),
        ts: now_ms(),
        body: Value::Null,
    };
    let to_c = seal.seal(&to_c).expect("sealed");
    assert!(matches!(b.on_answer(&to_c), Err(Rejected::NotForMe)));
    assert!(matches!(
        b.on_answer(&answer),
        Err(Rejected::Refused(pending::Refused::NotAsked))
    ));
}

#[test]
fn answers_under_way_are_bounded_and_given_back() {
    let count = Arc::default();
    let permits: Vec<Share> = (0..MAX_ANSWERING)
        .filter_map(|_| Share::take(&count, 1, MAX_ANSWERING))
        .collect();
    assert_eq!(permits.len(), MAX_ANSWERING);
    assert!(
        Share::take(&count, 1, MAX_ANSWERING).is_none(),
        "one too many"
    );
    drop(permits);
    assert!(
        Share::take(&count, 1, MAX_ANSWERING).is_some(),
        "given back"
    );
}

/// Answers waiting to be opened hold at most `MAX_HELD_BYTES`: a flood of
/// answer-sized junk on the answer channel while a question waits is dropped past it,
/// not queued for a blocking thread each; so is a flood of empty messages, each
/// charged `WAITING_COST`.
#[test]
fn bytes_waiting_to_be_opened_are_bounded_and_given_back() {
    let count = Arc::default();
    let held: Vec<Share> = (0..100)
        .filter_map(|_| Share::take(&count, MAX_ANSWER_BYTES, MAX_HELD_BYTES))
        .collect();
    assert_eq!(held.len(), MAX_HELD_BYTES / MAX_ANSWER_BYTES);
    assert!(Share::take(&count, 1, MAX_HELD_BYTES).is_none(), "full");
    assert!(
        Share::take(&count, usize::MAX, MAX_HELD_BYTES).is_none(),
        "no overflow"
    );
    drop(held);
    assert_eq!(
        count.load(std::sync::atomic::Ordering::Acquire),
        0,
        "given back"
    );
    let empty: Vec<Share> = (0..100_000)
        .filter_map(|_| Share::take(&count, WAITING_COST, MAX_HELD_BYTES))
        .collect();
    assert_eq!(empty.len(), MAX_HELD_BYTES / WAITING_COST);
}

#[tokio::test]
async fn a_name_no_node_could_have_is_replaced_by_the_uid() {
    let redis = RedisServer::start().await;
    let b = node(&config_for(&redis), "uid-b").await;
    b.answer_with("two words".into(), echo("x"));
    assert_eq!(b.name(), "uid-b");
}
