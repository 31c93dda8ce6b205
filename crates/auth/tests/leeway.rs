//! `leeway` is whole seconds: token times (`exp`, `nbf`) are whole seconds and the
//! claim checks tolerate whole seconds only, so `"500ms"` used to be read as no leeway
//! at all. A part of a second is refused under its key, read from a table or set in
//! code, with the whole seconds to write instead.

#![allow(missing_docs)]

use std::time::Duration;

use switchboard_auth::jwt::{Algorithm, JwtSettings, JwtVerifier, KeySource, Secret};
use switchboard_settings::{ErrorKind, SettingError};

const PATH: &str = "namespaces[0].auth";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn with_leeway(leeway: &str) -> Result<JwtSettings, Vec<SettingError>> {
    let text = format!("secret = \"{SECRET}\"\nleeway = {leeway}\n");
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|err| panic!("bad test TOML: {err}"));
    JwtSettings::from_toml(&toml::Value::Table(table), PATH)
}

fn message(errors: &[SettingError]) -> &str {
    match errors {
        [
            SettingError {
                kind: ErrorKind::Invalid(message),
                key,
            },
        ] if key == "namespaces[0].auth.leeway" => message,
        other => panic!("one error under leeway expected: {other:?}"),
    }
}

#[test]
fn a_leeway_with_a_part_of_a_second_is_refused_under_its_key() {
    for (written, instead) in [
        (r#""500ms""#, r#""0s" or "1s""#),
        (r#""1s 500ms""#, r#""1s" or "2s""#),
        ("1500", r#""1s" or "2s""#),
    ] {
        let errors = with_leeway(written).expect_err(written);
        let message = message(&errors);
        assert!(
            message.contains("whole number of seconds") && message.contains(instead),
            "{written}: {message}"
        );
    }
    for (written, seconds) in [(r#""0s""#, 0), (r#""2s""#, 2), ("3000", 3), (r#""1m""#, 60)] {
        let settings = with_leeway(written).unwrap_or_else(|e| panic!("{written}: {e:?}"));
        assert_eq!(settings.leeway, Duration::from_secs(seconds), "{written}");
    }
    let errors = with_leeway(r#""301s""#).expect_err("over the bound");
    assert!(message(&errors).contains("at most 300s"));
}

#[test]
fn a_verifier_refuses_a_leeway_with_a_part_of_a_second_set_in_code() {
    let key = KeySource::Secret(Secret::new(SECRET));
    let mut settings = JwtSettings::new(key, vec![Algorithm::HS256]);
    settings.path = PATH.to_owned();
    settings.leeway = Duration::from_millis(500);
    let errors = JwtVerifier::new(settings.clone()).expect_err("refused");
    assert!(message(&errors).contains("whole number of seconds"));
    settings.leeway = Duration::from_secs(1);
    assert!(JwtVerifier::new(settings).is_ok());
}
