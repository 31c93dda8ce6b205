//! Test helpers: signers over the PEM fixtures, claims, and a scriptable JWKS server.
//! Test bodies are bounded by `switchboard_test_support::within`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The HMAC secret used by HS256 tests (32 bytes, the minimum for HS256).
pub(crate) const SECRET: &[u8] = b"an-hs256-test-secret-of-32-bytes";
/// The issuer and audience the tests' verifiers expect.
pub(crate) const ISSUER: &str = "https://idp.test/";
/// See [`ISSUER`].
pub(crate) const AUDIENCE: &str = "switchboard-tests";

/// A fixture file's path.
pub(crate) fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// A fixture file's text.
pub(crate) fn fixture(name: &str) -> String {
    match std::fs::read_to_string(testdata(name)) {
        Ok(text) => text,
        Err(err) => panic!("cannot read fixture {name}: {err}"),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    get_current_timestamp()
}

/// Claims every test verifier accepts: subject, issuer, audience, ten minutes to live.
pub(crate) fn good_claims() -> Value {
    json!({
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
        "room": "lobby",
    })
}

/// `good_claims` with `changes` applied (`null` removes a claim).
pub(crate) fn claims_with(changes: Value) -> Value {
    let mut claims = good_claims();
    if let (Some(base), Value::Object(changes)) = (claims.as_object_mut(), changes) {
        for (name, value) in changes {
            if value.is_null() {
                base.remove(&name);
            } else {
                base.insert(name, value);
            }
        }
    }
    claims
}

/// Signs tokens with one private key.
pub(crate) struct Signer {
    key: EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<String>,
}

impl Signer {
    /// HS256 with [`SECRET`].
    pub(crate) fn hs256() -> Self {
        Self::hmac(SECRET, jsonwebtoken::Algorithm::HS256)
    }

    /// HMAC with any secret (e.g. a public key's PEM, for confusion attacks).
    pub(crate) fn hmac(secret: &[u8], alg: jsonwebtoken::Algorithm) -> Self {
        Signer {
            key: EncodingKey::from_secret(secret),
            alg,
            kid: None,
        }
    }

    /// RS256 with `rsa-private.pem` (`rsa2-private.pem` when `second`).
    pub(crate) fn rs256(second: bool) -> Self {
        let file = if second {
            "rsa2-private.pem"
        } else {
            "rsa-private.pem"
        };
        let key = EncodingKey::from_rsa_pem(fixture(file).as_bytes()).expect("RSA fixture");
        Signer {
            key,
            alg: jsonwebtoken::Algorithm::RS256,
            kid: None,
        }
    }

    /// ES256 with `ec-p256-private.pem`.
    pub(crate) fn es256() -> Self {
        let key = EncodingKey::from_ec_pem(fixture("ec-p256-private.pem").as_bytes())
            .expect("EC fixture");
        Signer {
            key,
            alg: jsonwebtoken::Algorithm::ES256,
            kid: None,
        }
    }

    /// EdDSA with `ed25519-private.pem`.
    pub(crate) fn eddsa() -> Self {
        let key = EncodingKey::from_ed_pem(fixture("ed25519-private.pem").as_bytes())
            .expect("Ed25519 fixture");
        Signer {
            key,
            alg: jsonwebtoken::Algorithm::EdDSA,
            kid: None,
        }
    }

    /// The same signer, naming `kid` in its tokens.
    pub(crate) fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// A token over `claims`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        encode(&header, claims, &self.key).expect("signing")
    }

    /// This key's public JWK, with its `kid`, `alg` and `use`.
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("a JWK");
        jwk.common.key_id = self.kid.clone();
        let mut value = serde_json::to_value(&jwk).expect("JWK as JSON");
        value["use"] = json!("sig");
        value
    }
}

/// A JWKS document of these signers' public keys.
pub(crate) fn jwks(signers: &[&Signer]) -> String {
    let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
    json!({ "keys": keys }).to_string()
}

/// An unsigned token (`alg: none`) over `claims`.
pub(crate) fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// A token with this header JSON and this payload segment as written, correctly
/// HS256-signed with [`SECRET`], whatever the segments hold.
pub(crate) fn hs256_raw(header_json: &str, payload_segment: &str) -> String {
    let message = format!("{}.{payload_segment}", URL_SAFE_NO_PAD.encode(header_json));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("signing");
    format!("{message}.{signature}")
}

/// `token` with its header replaced by one declaring `alg` and `kid` (the signature no
/// longer verifies; cheap tokens for tests that never get that far).
pub(crate) fn with_header(token: &str, alg: &str, kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "kid": kid }).to_string());
    let (_, rest) = token.split_once('.').expect("three parts");
    format!("{header}.{rest}")
}

/// `token` with its payload swapped for `claims` (signature kept).
pub(crate) fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// `token` with one signature character changed.
pub(crate) fn with_flipped_signature(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let mut bytes = signature.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    format!("{message}.{}", String::from_utf8(bytes).expect("ASCII"))
}

/// What the JWKS server answers.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// 200 with this body.
    Serve(String),
    /// This status, empty body.
    Status(StatusCode),
    /// Never answers.
    Hang,
}

/// The server's shared state.
#[derive(Debug)]
struct ServerState {
    mode: Mutex<Mode>,
    hits: AtomicUsize,
}

/// A JWKS endpoint on `127.0.0.1:0` whose answers the test scripts.
pub(crate) struct JwksServer {
    url: String,
    state: Arc<ServerState>,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Starts serving `mode`.
    pub(crate) async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let state = Arc::new(ServerState {
            mode: Mutex::new(mode),
            hits: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept(listener, state.clone()));
        JwksServer { url, state, task }
    }

    /// The document URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Changes what the next requests get.
    pub(crate) fn set(&self, mode: Mode) {
        *self
            .state
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// How many requests arrived.
    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection: later fetches are refused.
    pub(crate) async fn stop(&self) {
        self.task.abort();
        // Wait until the loop and its connections are gone.
        while !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until aborted.
async fn accept(listener: TcpListener, state: Arc<ServerState>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| answer(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// One request, answered as scripted.
async fn answer(
    state: Arc<ServerState>,
    _request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = state
        .mode
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let response = match mode {
        Mode::Serve(body) => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body))),
        Mode::Status(status) => Response::builder()
            .status(status)
            .body(Full::new(Bytes::new())),
        Mode::Hang => std::future::pending().await,
    };
    Ok(response.expect("a valid response"))
}
