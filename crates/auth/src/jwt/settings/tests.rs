//! Reading `auth` tables: defaults, every error at once with its path, and the rules
//! that keep algorithms and key sources from being mixed.

use super::*;

const PATH: &str = "namespaces[0].auth";

fn parse(text: &str) -> Result<JwtSettings, Vec<SettingError>> {
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(err) => panic!("bad test TOML: {err}"),
    };
    JwtSettings::from_toml(&toml::Value::Table(table), PATH)
}

fn error_keys(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(settings) => panic!("expected errors, got {settings:?}"),
        Err(errors) => errors.into_iter().map(|e| e.key).collect(),
    }
}

fn key(name: &str) -> String {
    format!("{PATH}.{name}")
}

#[test]
fn a_secret_alone_gets_hs256_and_defaults() {
    let settings = parse(r#"secret = "0123456789abcdef0123456789abcdef""#).expect("valid");
    assert_eq!(settings.path, PATH);
    assert_eq!(settings.algorithms, [Algorithm::HS256]);
    assert!(matches!(settings.key, KeySource::Secret(_)));
    assert_eq!(settings.leeway, DEFAULT_LEEWAY);
    assert_eq!(settings.require_exp, DEFAULT_REQUIRE_EXP);
    assert_eq!(settings.sources, TokenSource::defaults());
    assert!(settings.issuers.is_empty() && settings.audiences.is_empty());
}

#[test]
fn a_full_jwks_table_reads_every_key() {
    let settings = parse(
        r#"
        type = "jwt"
        jwks_url = "https://idp.example.com/.well-known/jwks.json"
        algorithms = ["RS256", "ES256", "RS256"]
        issuer = "https://idp.example.com/"
        audience = ["switchboard", "chat"]
        leeway = "5s"
        require_exp = false
        token_sources = ["cookie:jwt", "auth:access_token", "bearer"]
        jwks_cache_ttl = "1h"
        jwks_refresh_interval = "1m"
        jwks_fetch_timeout = 2500
        "#,
    )
    .expect("valid");
    assert_eq!(settings.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(settings.issuers, ["https://idp.example.com/"]);
    assert_eq!(settings.audiences, ["switchboard", "chat"]);
    assert_eq!(settings.leeway, Duration::from_secs(5));
    assert!(!settings.require_exp);
    assert_eq!(
        settings.sources,
        [
            TokenSource::Cookie { name: "jwt".into() },
            TokenSource::ConnectAuth {
                field: "access_token".into()
            },
            TokenSource::BearerHeader,
        ]
    );
    let KeySource::Jwks(jwks) = settings.key else {
        panic!("expected a JWKS source");
    };
    assert_eq!(jwks.url, "https://idp.example.com/.well-known/jwks.json");
    assert_eq!(jwks.cache_ttl, Duration::from_secs(3600));
    assert_eq!(jwks.refresh_interval, Duration::from_secs(60));
    assert_eq!(jwks.fetch_timeout, Duration::from_millis(2500));
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let mut keys = error_keys(
        r#"
        algorithms = ["none", "XX256"]
        leeway = "1h"
        jwks_cache_ttl = "1m"
        require_exp = "yes"
        token_sources = ["auth", "cookie:"]
        issuer = []
        typo = 1
        "#,
    );
    keys.sort();
    let expected = [
        PATH.to_owned(),
        key("algorithms"),
        key("algorithms"),
        key("issuer"),
        key("jwks_cache_ttl"),
        key("leeway"),
        key("require_exp"),
        key("token_sources[1]"),
        key("typo"),
    ];
    assert_eq!(keys, expected);
}

#[test]
fn exactly_one_key_source_is_allowed() {
    let keys = error_keys(
        r#"
        secret = "0123456789abcdef0123456789abcdef"
        public_key_file = "key.pem"
        jwks_url = "https://idp.example.com/jwks"
        algorithms = ["RS256"]
        "#,
    );
    assert_eq!(keys, [key("public_key_file"), key("jwks_url")]);
    assert_eq!(error_keys("algorithms = [\"RS256\"]"), [PATH]);
    assert_eq!(error_keys("secret = \"\""), [key("secret")]);
}

#[test]
fn algorithms_must_fit_the_key_source() {
    let secret = r#"secret = "0123456789abcdef0123456789abcdef""#;
    assert_eq!(
        error_keys(&format!("{secret}\nalgorithms = [\"RS256\"]")),
        [key("algorithms")]
    );
    assert_eq!(
        error_keys("public_key_file = \"k.pem\"\nalgorithms = [\"RS256\", \"HS256\"]"),
        [key("algorithms")]
    );
    assert_eq!(
        error_keys("jwks_url = \"https://a.example/jwks\"\nalgorithms = [\"HS256\"]"),
        [key("algorithms")]
    );
    assert_eq!(
        error_keys("jwks_url = \"https://a.example/jwks\""),
        [key("algorithms")]
    );
    assert_eq!(
        error_keys(&format!("{secret}\nalgorithms = []")),
        [key("algorithms")]
    );
}

#[test]
fn jwks_urls_need_https_except_on_loopback_or_when_allowed() {
    let with = |url: &str, extra: &str| {
        parse(&format!(
            "jwks_url = \"{url}\"\nalgorithms = [\"RS256\"]\n{extra}"
        ))
    };
    assert!(with("https://idp.example.com/jwks", "").is_ok());
    assert!(with("http://127.0.0.1:8080/jwks", "").is_ok());
    assert!(with("http://localhost/jwks", "").is_ok());
    assert!(with("http://[::1]:9000/jwks", "").is_ok());
    assert!(with("http://keycloak:8080/jwks", "jwks_allow_http = true").is_ok());
    for bad in [
        "http://keycloak:8080/jwks",
        "ftp://idp/jwks",
        "/relative/jwks",
        "not a url",
        // Not a port: the fetch would go to 443.
        "https://idp.example.com:99999/jwks",
        "https://idp.example.com:0/jwks",
    ] {
        let errors = with(bad, "").expect_err(bad);
        assert_eq!(errors[0].key, key("jwks_url"), "{bad}");
    }
}

#[test]
fn jwks_options_need_a_jwks_url_and_sane_values() {
    let secret = r#"secret = "0123456789abcdef0123456789abcdef""#;
    assert_eq!(
        error_keys(&format!(
            "{secret}\njwks_fetch_timeout = \"1s\"\njwks_allow_http = true"
        )),
        [key("jwks_fetch_timeout"), key("jwks_allow_http")]
    );
    let jwks = "jwks_url = \"https://a.example/jwks\"\nalgorithms = [\"ES256\"]";
    assert_eq!(
        error_keys(&format!("{jwks}\njwks_fetch_timeout = 0")),
        [key("jwks_fetch_timeout")]
    );
    assert_eq!(
        error_keys(&format!("{jwks}\njwks_refresh_interval = \"0s\"")),
        [key("jwks_refresh_interval")]
    );
    assert_eq!(
        error_keys(&format!(
            "{jwks}\njwks_cache_ttl = \"10s\"\njwks_refresh_interval = \"1m\""
        )),
        [key("jwks_cache_ttl")]
    );
}

#[test]
fn a_foreign_type_or_a_non_table_is_refused() {
    let secret = r#"secret = "0123456789abcdef0123456789abcdef""#;
    assert_eq!(
        error_keys(&format!("{secret}\ntype = \"session\"")),
        [key("type")]
    );
    let errors =
        JwtSettings::from_toml(&toml::Value::String("jwt".into()), PATH).expect_err("not a table");
    assert_eq!(errors[0].key, PATH);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let settings = parse(r#"secret = "0123456789abcdef0123456789abcdef""#).expect("valid");
    let shown = format!("{settings:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
}

/// Like every other list in the configuration whose items hold no comma, the
/// algorithms and the token sources may be one comma-separated string. Before, each
/// string was one item: `"HS256, HS384"` was refused as an unknown algorithm.
#[test]
fn algorithms_and_token_sources_may_be_one_comma_separated_string() {
    let settings = parse(
        r#"
        secret = "0123456789abcdef0123456789abcdef0123456789abcdef"
        algorithms = "HS256, HS384"
        token_sources = "cookie:jwt, bearer"
        "#,
    )
    .expect("valid");
    assert_eq!(settings.algorithms, [Algorithm::HS256, Algorithm::HS384]);
    assert_eq!(settings.sources.len(), 2, "{:?}", settings.sources);
}
