//! A JWKS endpoint over HTTPS, its certificate signed by a private CA: it is trusted
//! exactly when the CA is among the system's root certificates or in the namespace's
//! `jwks_ca_file`, the trust policy of `switchboard-http-client` (JWKS fetches used to
//! trust a built-in list instead).
//!
//! The certificates are `crates/http-client/testdata/` (a CA and a server certificate for
//! `127.0.0.1`). The CA file case runs in process with [`JwksSettings::ca_file`]. An
//! operator adds a root to the system's with `SSL_CERT_FILE`; a test may not change its
//! own environment (`set_var` is unsafe, and tests share the process), so the system-root
//! case re-runs this test binary with `SSL_CERT_FILE` naming the CA and runs the ignored
//! [`child_verifies_over_https`] there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_auth::jwt::{
    Algorithm, AuthError, JwksSettings, JwtSettings, JwtVerifier, KeySource,
};
use switchboard_test_support::within;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::support::{AUDIENCE, ISSUER, Signer, good_claims, jwks};

/// Set (to anything) in the child process, where the CA is a system root.
const CHILD: &str = "SB_JWKS_TLS_CHILD";

/// The trust policy's test certificates.
fn tls_testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../http-client/testdata")
        .join(name)
}

/// Serves `body` as the JWKS at `https://127.0.0.1:PORT/jwks.json` until dropped.
struct HttpsJwks {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for HttpsJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsJwks {
    async fn start(body: String) -> Self {
        let certs = CertificateDer::pem_file_iter(tls_testdata("server.pem"))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .expect("server.pem");
        let key = PrivateKeyDer::from_pem_file(tls_testdata("server.key")).expect("server.key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}/jwks.json", listener.local_addr().expect("addr"));
        let task = tokio::spawn(serve(listener, acceptor, Bytes::from(body)));
        HttpsJwks { url, task }
    }
}

/// Accepts TLS connections and answers every request with `body`, until aborted.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, body: Bytes) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, body) = (acceptor.clone(), body.clone());
        connections.spawn(async move {
            // A client that refuses the certificate ends the handshake: nothing to serve.
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |_request| {
                let body = body.clone();
                async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// A token, and a verifier on an HTTPS endpoint that publishes its key, trusting the
/// system's roots and those of `ca_file`.
async fn endpoint_and_token(ca_file: Option<PathBuf>) -> (HttpsJwks, JwtVerifier, String) {
    let signer = Signer::rs256(false).kid("tls-1");
    let server = HttpsJwks::start(jwks(&[&signer])).await;
    let mut jwks = JwksSettings::new(server.url.parse().expect("URL"));
    jwks.ca_file = ca_file;
    let mut settings = JwtSettings::new(KeySource::Jwks(jwks), vec![Algorithm::RS256]);
    settings.issuers = vec![ISSUER.to_owned()];
    settings.audiences = vec![AUDIENCE.to_owned()];
    let verifier = JwtVerifier::new(settings).expect("valid settings");
    (server, verifier, signer.sign(&good_claims()))
}

#[tokio::test]
async fn a_jwks_endpoint_with_a_ca_outside_the_system_roots_is_not_trusted() {
    within("the test", async {
        let (_server, verifier, token) = endpoint_and_token(None).await;
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::KeysUnavailable)
        );
    })
    .await;
}

#[tokio::test]
async fn a_jwks_endpoint_whose_ca_is_in_the_ca_file_is_trusted() {
    within("the test", async {
        let ca = Some(tls_testdata("ca.pem"));
        let (_server, verifier, token) = endpoint_and_token(ca).await;
        let claims = verifier.verify(&token).await.expect("verified over https");
        assert_eq!(claims.sub.as_deref(), Some("alice"));
    })
    .await;
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_at_jwks_ca_file() {
    let jwks_settings = |ca_file: &str| {
        let mut jwks = JwksSettings::new("https://127.0.0.1:9/jwks.json".parse().expect("URL"));
        jwks.ca_file = Some(tls_testdata(ca_file));
        let mut settings = JwtSettings::new(KeySource::Jwks(jwks), vec![Algorithm::RS256]);
        settings.path = "namespaces[0].auth".to_owned();
        settings
    };
    for ca_file in ["not-a-certificate.pem", "missing.pem"] {
        let errors = JwtVerifier::new(jwks_settings(ca_file)).expect_err("refused");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["namespaces[0].auth.jwks_ca_file"], "{errors:?}");
        assert!(errors[0].to_string().contains(ca_file), "{errors:?}");
    }
}

#[test]
fn a_jwks_endpoint_whose_ca_is_a_system_root_is_trusted() {
    let test = "jwt::tls::child_verifies_over_https";
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--include-ignored", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", tls_testdata("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test failed or did not run:\n{stdout}\n{stderr}"
    );
}

/// Run by [`a_jwks_endpoint_whose_ca_is_a_system_root_is_trusted`] with the test CA as
/// `SSL_CERT_FILE`; does nothing elsewhere.
#[tokio::test]
#[ignore = "run by a_jwks_endpoint_whose_ca_is_a_system_root_is_trusted, with SSL_CERT_FILE set"]
async fn child_verifies_over_https() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    within("the test", async {
        let (_server, verifier, token) = endpoint_and_token(None).await;
        let claims = verifier.verify(&token).await.expect("verified over https");
        assert_eq!(claims.sub.as_deref(), Some("alice"));
    })
    .await;
}
