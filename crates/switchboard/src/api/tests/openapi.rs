//! The OpenAPI document against the code: the same routes both ways, every example
//! request accepted by the real handlers, every answer (successes and errors) with a
//! documented status and a body that fits the documented schema.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};

use super::support::{Harness, Reply};
use crate::api::openapi::DOCUMENT;
use crate::api::routes::ROUTES;

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// Every `(path, method)` the document has.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_route_table_list_the_same_routes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.template.to_owned(), r.method.as_str().to_lowercase()))
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test(start_paused = true)]
async fn examples_pass_the_handlers_and_answers_fit_the_schemas() {
    let doc = document();
    let h = Harness::new();
    let client = h.connect("/").await;
    h.connect("/chat").await;
    let join = json!({"socket_ids": [client.id], "join": ["room:42"]});
    h.post("/api/v1/sockets/join", &join).await;
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or(&path).to_owned();
        if method == "post" {
            post_examples(&doc, &h, &path, &op).await;
            continue;
        }
        // Once with the documented examples, once with values that exist.
        let examples = get_path(&doc, &op, &path, &|p| p["example"].clone());
        let real = get_path(&doc, &op, &path, &|p| match p["name"].as_str() {
            Some("id" | "after") => json!(client.id),
            _ => p["example"].clone(),
        });
        for url in [examples, real] {
            let reply = h.get(&url).await;
            assert_documented(&doc, &op, &reply, &format!("{id} {url}"));
        }
    }
}

/// Every example body of a POST: valid by the document's schema, 200 from the
/// handler, and an answer that fits the 200 schema.
async fn post_examples(doc: &Value, h: &Harness, path: &str, op: &Value) {
    let media = &op["requestBody"]["content"]["application/json"];
    let examples = media["examples"].as_object().cloned().unwrap_or_default();
    assert!(!examples.is_empty(), "{path} has no example request");
    for (name, example) in examples {
        let value = &example["value"];
        let context = format!("{path} example {name}");
        let errors = validate(doc, &media["schema"], value);
        assert!(errors.is_empty(), "{context} breaks its schema: {errors:?}");
        let reply = h.post(path, value).await;
        assert_eq!(reply.status, StatusCode::OK, "{context}: {}", reply.text);
        assert_documented(doc, op, &reply, &context);
    }
}

/// `path` with its path parameters filled by `value` (percent-encoded) and its query
/// parameters appended.
fn get_path(doc: &Value, op: &Value, path: &str, value: &dyn Fn(&Value) -> Value) -> String {
    let mut url = path.to_owned();
    let mut query = Vec::new();
    for param in op["parameters"].as_array().into_iter().flatten() {
        let param = resolve(doc, param);
        let name = param["name"].as_str().unwrap_or_default();
        let text = match value(param) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let encoded = encode(&text);
        match param["in"].as_str() {
            Some("path") => url = url.replace(&format!("{{{name}}}"), &encoded),
            _ => query.push(format!("{name}={encoded}")),
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    url
}

/// Percent-encodes everything but unreserved characters, as clients encode a path
/// parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answer's status is documented for `op`, and its body fits that response's
/// schema.
fn assert_documented(doc: &Value, op: &Value, reply: &Reply, context: &str) {
    let status = reply.status.as_str();
    let response = &op["responses"][status];
    assert!(
        !response.is_null(),
        "{context}: status {status} is not documented ({})",
        reply.text
    );
    let response = resolve(doc, response);
    let schema = &response["content"]["application/json"]["schema"];
    let errors = validate(doc, schema, &reply.json);
    assert!(
        errors.is_empty(),
        "{context}: the answer breaks the schema: {errors:?}\n{}",
        reply.text
    );
}

#[tokio::test(start_paused = true)]
async fn error_answers_are_documented_and_fit_the_error_schema() {
    let doc = document();
    let ops = operations(&doc);
    let op = |path: &str| {
        ops.iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, _, op)| op.clone())
            .unwrap_or_default()
    };
    let h = Harness::with(|c| c.max_body_bytes = 200);
    let emit = op("/api/v1/emit");
    let big = json!({"event": "x", "args": ["y".repeat(300)]});
    let errors = [
        h.post("/api/v1/emit", &json!({"event": "connect"})).await,
        h.post("/api/v1/emit", &json!({"event": 1})).await,
        h.post("/api/v1/emit", &json!({"namespace": "/x", "event": "e"}))
            .await,
        h.post("/api/v1/emit", &big).await,
        h.send(super::support::request("POST", "/api/v1/emit", "{}"))
            .await,
        h.send(super::support::authorized("POST", "/api/v1/emit", "{"))
            .await,
    ];
    for reply in &errors {
        assert_documented(&doc, &emit, reply, "emit error");
    }
    let sockets = op("/api/v1/namespaces/{namespace}/sockets");
    let bad_query = h.get("/api/v1/namespaces/%2F/sockets?limit=0").await;
    assert_documented(&doc, &sockets, &bad_query, "sockets error");
    let join = op("/api/v1/sockets/join");
    let empty = h
        .post("/api/v1/sockets/join", &json!({"join": ["r"]}))
        .await;
    assert_documented(&doc, &join, &empty, "join error");
}

#[test]
fn the_validator_catches_what_it_must() {
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/EmitRequest"});
    assert!(validate(&doc, &schema, &json!({"event": "x"})).is_empty());
    for bad in [
        json!({}),
        json!({"event": 1}),
        json!({"event": "x", "extra": 1}),
        json!({"event": ""}),
        json!({"event": "x", "binary_args": [{"index": -1, "base64": ""}]}),
    ] {
        assert!(!validate(&doc, &schema, &bad).is_empty(), "{bad}");
    }
    // The selection rules of the socket operations (`anyOf`, `const`, `maxItems`).
    let join = json!({"$ref": "#/components/schemas/JoinRequest"});
    for good in [
        json!({"join": ["r"], "rooms": ["a"]}),
        json!({"join": ["r"], "socket_ids": ["uzQdNPnX8YbQ2l7mAAAB"], "all": false}),
        json!({"join": ["r"], "all": true}),
    ] {
        let errors = validate(&doc, &join, &good);
        assert!(errors.is_empty(), "{good}: {errors:?}");
    }
    for bad in [
        json!({"join": ["r"]}),
        json!({"join": ["r"], "rooms": []}),
        json!({"join": ["r"], "all": true, "rooms": ["a"]}),
        json!({"join": ["r"], "all": false}),
    ] {
        assert!(!validate(&doc, &join, &bad).is_empty(), "{bad}");
    }
}

/// Follows a local `$ref` (parameters and responses, which are not JSON Schema).
fn resolve<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(doc, doc.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => value,
    }
}

/// Checks `value` against `schema` (usually `{"$ref": "#/components/schemas/…"}`) with
/// a full JSON Schema 2020-12 validator (OpenAPI 3.1's dialect), the `$ref`s resolved
/// inside the whole document; one message per violation.
fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    // The document is the root resource, so `#/components/...` resolves; its other
    // top-level keys (`openapi`, `paths`) are not JSON Schema keywords and are ignored.
    let mut root = doc.clone();
    if let (Some(root), Some(rules)) = (root.as_object_mut(), schema.as_object()) {
        root.extend(rules.clone());
    }
    match jsonschema::draft202012::new(&root) {
        Ok(validator) => validator
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect(),
        Err(err) => vec![format!("the schema does not compile: {err}")],
    }
}
