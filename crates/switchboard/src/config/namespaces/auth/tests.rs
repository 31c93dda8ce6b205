//! `jwks_ca_file`: read with the rest of `[namespaces.auth]` by `switchboard-auth`, and
//! checked when the verifier is built, so an unreadable or certificate-less CA file is a
//! configuration error under its own key (exit 64 at start-up, like any other), not a
//! refused connection later.

use std::path::{Path, PathBuf};

use switchboard_auth::jwt::KeySource;

use crate::config::{Config, ConfigErrors, from_text};

/// A file of `switchboard-http-client`'s test certificates.
fn tls_testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../http-client/testdata")
        .join(name)
}

/// One namespace verifying tokens from an `https` JWKS, trusting `ca_file` as well.
fn with_ca_file(ca_file: &Path) -> Result<Config, ConfigErrors> {
    let ca_file = toml::Value::String(ca_file.display().to_string());
    from_text(&format!(
        r#"
        [[namespaces]]
        name = "/"
        [namespaces.auth]
        jwks_url = "https://127.0.0.1:9/jwks.json"
        algorithms = ["RS256"]
        jwks_ca_file = {ca_file}
        "#
    ))
}

#[test]
fn a_readable_jwks_ca_file_is_kept_in_the_settings() {
    let ca = tls_testdata("ca.pem");
    let config = with_ca_file(&ca).unwrap_or_else(|errors| panic!("valid: {errors}"));
    let auth = config.namespaces[0].auth.as_ref().expect("auth");
    let KeySource::Jwks(jwks) = &auth.settings.key else {
        panic!("a JWKS key source: {:?}", auth.settings.key);
    };
    assert_eq!(jwks.ca_file.as_ref(), Some(&ca));
}

#[test]
fn an_unreadable_or_certificate_less_jwks_ca_file_is_refused_under_its_key() {
    for name in ["missing.pem", "not-a-certificate.pem"] {
        let ca = tls_testdata(name);
        let errors = with_ca_file(&ca).expect_err("refused");
        assert_eq!(
            errors.keys(),
            ["namespaces[0].auth.jwks_ca_file"],
            "{errors}"
        );
        assert!(errors.to_string().contains(name), "{errors}");
    }
}

#[test]
fn a_jwks_ca_file_needs_a_jwks_url() {
    let text = r#"
        [[namespaces]]
        name = "/"
        [namespaces.auth]
        secret = "0123456789abcdef0123456789abcdef"
        jwks_ca_file = "ca.pem"
    "#;
    let errors = from_text(text).expect_err("refused");
    assert_eq!(
        errors.keys(),
        ["namespaces[0].auth.jwks_ca_file"],
        "{errors}"
    );
}

/// `max_sockets_per_user`: read beside the JWT settings (which would refuse it as an
/// unknown key), off when unset, and a bad value is reported under its key.
#[test]
fn max_sockets_per_user_is_read_and_checked() {
    let with = |line: &str| {
        from_text(&format!(
            "[[namespaces]]\nname = \"/\"\n[namespaces.auth]\n\
             secret = \"0123456789abcdef0123456789abcdef\"\n{line}\n"
        ))
    };
    let config = with("").unwrap_or_else(|errors| panic!("valid: {errors}"));
    let auth = config.namespaces[0].auth.as_ref().expect("auth");
    assert_eq!(auth.max_sockets_per_user, 0, "off by default");
    let config = with("max_sockets_per_user = 5").unwrap_or_else(|errors| panic!("{errors}"));
    let auth = config.namespaces[0].auth.as_ref().expect("auth");
    assert_eq!(auth.max_sockets_per_user, 5);
    for bad in ["-1", "\"five\""] {
        let errors = with(&format!("max_sockets_per_user = {bad}")).expect_err("refused");
        assert_eq!(
            errors.keys(),
            ["namespaces[0].auth.max_sockets_per_user"],
            "{errors}"
        );
    }
}

/// The keys are loaded (secret length, key files) even when other settings of the
/// table are wrong, so every problem of `[namespaces.auth]` comes out in one run: a
/// short secret was reported only once a bad `leeway` was fixed.
#[test]
fn key_problems_are_reported_with_the_other_settings_problems() {
    let errors = |auth: &str| {
        let text = format!("[[namespaces]]\nname = \"/\"\n[namespaces.auth]\n{auth}\n");
        let errors = from_text(&text).expect_err("refused");
        let mut keys: Vec<String> = errors.keys().into_iter().map(str::to_owned).collect();
        keys.sort();
        (keys, errors.to_string())
    };
    let (keys, shown) = errors("secret = \"short\"\nleeway = \"10m\"");
    assert_eq!(
        keys,
        ["namespaces[0].auth.leeway", "namespaces[0].auth.secret"],
        "{shown}"
    );
    assert!(shown.contains("at least 32"), "{shown}");
    let (keys, shown) =
        errors("secret_file = \"/nonexistent/secret\"\nleewy = \"5s\"\ntoken_sources = []");
    assert_eq!(
        keys,
        [
            "namespaces[0].auth.leewy",
            "namespaces[0].auth.secret_file",
            "namespaces[0].auth.token_sources"
        ],
        "{shown}"
    );
    // A problem of the keys' own settings is reported once, not again by the loader.
    let (keys, shown) = errors("secret = \"short\"\nalgorithms = [\"RS256\"]\nleeway = \"10m\"");
    assert_eq!(
        keys,
        ["namespaces[0].auth.algorithms", "namespaces[0].auth.leeway"],
        "{shown}"
    );
}
