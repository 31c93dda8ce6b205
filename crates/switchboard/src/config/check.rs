//! Checks of single values: each takes what was written and returns the typed value
//! or a message saying what is wrong and what would be right.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_engine::AllowedOrigins;
use switchboard_protocol::engineio::TransportKind;
use switchboard_settings::duration;

use super::raw::Count;
use crate::paths;

/// The result of a check: the typed value or what is wrong.
pub(crate) type Checked<T> = Result<T, String>;

/// An IP address and port.
pub(crate) fn listen(text: String) -> Checked<SocketAddr> {
    text.parse().map_err(|_| {
        format!("`{text}` is not an IP address and port (e.g. 0.0.0.0:3000 or [::]:3000)")
    })
}

/// A duration greater than zero (a zero timeout would close everything at once).
pub(crate) fn positive_duration(d: duration::HumanDuration) -> Checked<Duration> {
    if d.0.is_zero() {
        return Err("must be greater than 0".into());
    }
    any_duration(d)
}

/// The shortest period of a timer that runs for every connection or all the time
/// (heartbeats, memory samples): below it a node spends more on timers than on its
/// clients (a 1 ms `ping_interval` sent each client hundreds of pings a second), and
/// no client's network answers within it.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(100);

/// A duration of at least [`MIN_PERIOD`].
pub(crate) fn period(d: duration::HumanDuration) -> Checked<Duration> {
    if d.0 < MIN_PERIOD {
        return Err(format!(
            "must be at least {}ms: a shorter period costs more in timers than it serves",
            MIN_PERIOD.as_millis()
        ));
    }
    any_duration(d)
}

/// A duration up to [`duration::MAX`]; zero allowed.
pub(crate) fn any_duration(d: duration::HumanDuration) -> Checked<Duration> {
    duration::check_max(d.0).map_err(|e| e.to_string())
}

/// A count or size greater than zero.
pub(crate) fn positive_count(n: Count) -> Checked<usize> {
    if n.0 == 0 {
        return Err("must be greater than 0".into());
    }
    any_count(n)
}

/// A count or size from `min` to `max`; `why` says what the bounds are for.
pub(crate) fn count_in(
    min: usize,
    max: usize,
    why: &'static str,
) -> impl FnOnce(Count) -> Checked<usize> {
    move |n| match any_count(n)? {
        n if n < min => Err(format!("must be at least {min}: {why}")),
        n if n > max => Err(format!("must be at most {max}: {why}")),
        n => Ok(n),
    }
}

/// A count or size; zero allowed.
pub(crate) fn any_count(n: Count) -> Checked<usize> {
    usize::try_from(n.0).map_err(|_| format!("{} is too large", n.0))
}

/// A count that fits a `u32`; zero allowed.
pub(crate) fn u32_count(n: Count) -> Checked<u32> {
    u32::try_from(n.0).map_err(|_| format!("{} is too large", n.0))
}

/// A count that fits a `u32`, greater than zero.
pub(crate) fn positive_u32(n: Count) -> Checked<u32> {
    match u32_count(n)? {
        0 => Err("must be greater than 0".into()),
        n => Ok(n),
    }
}

/// The engine's URL prefix: starts with `/`, gets a trailing `/` if missing, and must
/// not hide the health and metrics routes that share the listener.
pub(crate) fn engine_path(text: String) -> Checked<String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with `/` (e.g. /socket.io/)"));
    }
    if text.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        return Err(format!("`{text}` must be a plain URL path"));
    }
    let path = if text.ends_with('/') {
        text
    } else {
        format!("{text}/")
    };
    let base = path.trim_end_matches('/');
    // The same rule as `EngineServer::matches`.
    if paths::is_api(base) {
        return Err(format!("`{path}` is under /api/, which the HTTP API owns"));
    }
    let hidden = paths::ROUTES
        .iter()
        .find(|route| **route == base || route.starts_with(&path));
    match hidden {
        Some(route) => Err(format!("`{path}` would hide the {route} route")),
        None => Ok(path),
    }
}

/// At least one transport, each once, in upgrade order.
pub(crate) fn transports(list: Vec<String>) -> Checked<Vec<TransportKind>> {
    if list.is_empty() {
        return Err("needs at least one of \"polling\", \"websocket\"".into());
    }
    let mut kinds = Vec::with_capacity(list.len());
    for name in &list {
        let kind = match name.as_str() {
            "polling" => TransportKind::Polling,
            "websocket" => TransportKind::Websocket,
            other => {
                return Err(format!(
                    "unknown transport `{other}` (expected \"polling\" or \"websocket\")"
                ));
            }
        };
        if kinds.contains(&kind) {
            return Err(format!("lists `{name}` twice"));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

/// Networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a bare address); an
/// IPv4-mapped one (`::ffff:10.0.0.0/104`) is read as its IPv4 network.
pub(crate) fn networks(list: Vec<String>) -> Checked<Vec<switchboard_engine::config::Cidr>> {
    let mut nets = Vec::with_capacity(list.len());
    let mut bad = Vec::new();
    for text in &list {
        match text.parse::<switchboard_engine::config::Cidr>() {
            Ok(net) => nets.push(net),
            Err(err) => bad.push(format!("{text:?} {err}")),
        }
    }
    if bad.is_empty() {
        Ok(nets)
    } else {
        Err(bad.join("; "))
    }
}

/// `"*"` (any origin) or exact origins such as `https://app.example.com`.
pub(crate) fn allowed_origins(list: Vec<String>) -> Checked<AllowedOrigins> {
    if list.iter().any(|o| o == "*") {
        return match list.len() {
            1 => Ok(AllowedOrigins::Any),
            _ => Err("`*` already allows every origin; list it alone".into()),
        };
    }
    let bad: Vec<String> = list.iter().filter_map(|o| origin_problem(o)).collect();
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    Ok(AllowedOrigins::List(list))
}

/// An example of an origin, for messages.
const ORIGIN_EXAMPLE: &str = "e.g. https://app.example.com";

/// What is wrong with one origin, if anything. Browsers send `Origin` serialized —
/// `scheme://host[:port]`, scheme and host in lowercase, no default port (`:443` for
/// https, `:80` for http), no user info, path, query or fragment — and it is compared
/// exactly, so an entry written any other way would never match: each such entry is
/// refused with the form to write instead.
fn origin_problem(origin: &str) -> Option<String> {
    let not_an_origin = || {
        Some(format!(
            "`{origin}` is not an origin ({ORIGIN_EXAMPLE}, or \"*\" alone for any)"
        ))
    };
    if origin.contains('*') {
        return Some(format!(
            "`{origin}` has a wildcard, but origins are compared exactly: list each origin \
             ({ORIGIN_EXAMPLE}), or write \"*\" alone to allow every origin"
        ));
    }
    if origin.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "`{origin}` holds blanks or control characters, which browsers never send \
             ({ORIGIN_EXAMPLE})"
        ));
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return not_an_origin();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return not_an_origin();
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut wrong = Vec::new();
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => {
            wrong.push("user info (`user@`)".to_owned());
            host
        }
        None => authority,
    };
    // `[v6]:port` or `host:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (&authority[..addr.len() + 2], None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(port) => (&authority[..addr.len() + 2], Some(port)),
                None => return not_an_origin(),
            },
            None => return not_an_origin(),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return not_an_origin();
    }
    // The URL Standard lowercases (and punycodes) the host of its special schemes
    // only; an app scheme's host (`capacitor://MyApp`, an extension's id) is sent as
    // written.
    let special = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ws" | "wss" | "ftp" | "file"
    );
    if special && !host.is_ascii() {
        return Some(format!(
            "`{origin}` would never match: browsers send an international host name in its \
             ASCII (punycode) form `{scheme}://xn--…`: write that (`new URL(\"{origin}\").origin` \
             in a browser's console gives it)"
        ));
    }
    let scheme_lower = scheme.to_ascii_lowercase();
    if scheme != scheme_lower || (special && host.chars().any(|c| c.is_ascii_uppercase())) {
        wrong.push("uppercase letters (browsers send the scheme and host in lowercase)".to_owned());
    }
    let port = match port {
        None => None,
        Some("") => {
            wrong.push("a `:` without a port".to_owned());
            None
        }
        Some(text) => match text.parse::<u16>() {
            Ok(n) if n != 0 && text.bytes().all(|b| b.is_ascii_digit()) => {
                let default = match scheme_lower.as_str() {
                    "https" => Some(443),
                    "http" => Some(80),
                    _ => None,
                };
                if default == Some(n) {
                    wrong.push(format!(
                        "the default port `:{n}` of {scheme_lower} (browsers leave it out)"
                    ));
                    None
                } else {
                    if text != n.to_string() {
                        wrong.push(format!("the port `{text}` written with leading zeros"));
                    }
                    Some(n)
                }
            }
            _ => {
                return Some(format!(
                    "`{origin}`: `{text}` is not a port (1 to 65535; {ORIGIN_EXAMPLE}:8443)"
                ));
            }
        },
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    match &tail[..path_end] {
        "" => {}
        "/" => wrong.push("a trailing `/`".to_owned()),
        _ => wrong.push("a path".to_owned()),
    }
    if tail.contains('?') {
        wrong.push("a query (`?…`)".to_owned());
    }
    if tail.contains('#') {
        wrong.push("a fragment (`#…`)".to_owned());
    }
    if wrong.is_empty() {
        return None;
    }
    let port = port.map_or(String::new(), |n| format!(":{n}"));
    let instead = format!("{scheme_lower}://{}{port}", host.to_ascii_lowercase());
    Some(format!(
        "`{origin}` would never match: it has {}, and browsers send only \
         scheme://host[:port], exactly; write `{instead}`",
        wrong.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_needs_ip_and_port() {
        assert!(listen("127.0.0.1:0".into()).is_ok());
        assert!(listen("[::1]:3000".into()).is_ok());
        assert!(listen("localhost:3000".into()).is_err());
        assert!(listen("3000".into()).is_err());
    }

    #[test]
    fn engine_path_is_normalized_and_must_not_hide_routes() {
        assert_eq!(engine_path("/socket.io".into()), Ok("/socket.io/".into()));
        assert_eq!(engine_path("/rt/".into()), Ok("/rt/".into()));
        assert!(engine_path("socket.io".into()).is_err());
        assert!(engine_path("/".into()).is_err());
        assert!(engine_path("/health".into()).is_err());
        assert!(engine_path("/metrics".into()).is_err());
        assert!(engine_path("/api".into()).is_err());
        assert!(engine_path("/api/v1/emit".into()).is_err());
        assert_eq!(engine_path("/apis".into()), Ok("/apis/".into()));
        assert!(engine_path("/a b/".into()).is_err());
        assert_eq!(engine_path("/healthz".into()), Ok("/healthz/".into()));
    }

    #[test]
    fn origins_are_star_alone_or_exact_origins() {
        assert_eq!(allowed_origins(vec!["*".into()]), Ok(AllowedOrigins::Any));
        assert!(allowed_origins(vec!["*".into(), "https://a.example".into()]).is_err());
        assert!(allowed_origins(vec!["https://a.example/".into()]).is_err());
        assert!(allowed_origins(vec!["a.example".into()]).is_err());
        for fine in [
            "https://app.example.com",
            "http://localhost:5173",
            "https://app.example.com:8443",
            "http://[::1]:3000",
            "http://127.0.0.1",
            "capacitor://localhost",
        ] {
            assert_eq!(origin_problem(fine), None, "{fine}");
        }
        assert_eq!(
            allowed_origins(vec!["http://localhost:8080".into()]),
            Ok(AllowedOrigins::List(vec!["http://localhost:8080".into()]))
        );
        assert_eq!(allowed_origins(vec![]), Ok(AllowedOrigins::List(vec![])));
    }

    /// An IPv4-mapped network is read as its IPv4 network (peers are compared as IPv4);
    /// one wider than the mapped range is refused with what to write instead.
    #[test]
    fn ipv4_mapped_trusted_proxies_are_read_as_ipv4() {
        let nets = networks(vec!["::ffff:10.0.0.0/104".into(), "fd00::/8".into()])
            .unwrap_or_else(|e| panic!("valid: {e}"));
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8"]);
        let Err(message) = networks(vec!["::ffff:10.0.0.0/90".into()]) else {
            panic!("refused");
        };
        assert!(
            message.contains("\"::ffff:10.0.0.0/90\"") && message.contains("10.0.0.0/8"),
            "{message}"
        );
    }

    /// Entries that could never equal an `Origin` a browser sends are refused, each
    /// with the form to write instead (they passed, and matched nothing).
    #[test]
    fn origins_that_could_never_match_are_refused_with_what_to_write() {
        let problem = |origin: &str| {
            origin_problem(origin).unwrap_or_else(|| panic!("{origin} should be refused"))
        };
        for (origin, says, instead) in [
            ("https://*.example.com", "wildcard", "\"*\" alone"),
            ("*.example.com", "wildcard", "\"*\" alone"),
            (
                "https://App.Example.com:443",
                "uppercase",
                "`https://app.example.com`",
            ),
            (
                "HTTPS://app.example.com",
                "uppercase",
                "`https://app.example.com`",
            ),
            (
                "https://app.example.com:443",
                "default port",
                "`https://app.example.com`",
            ),
            (
                "http://app.example.com:80",
                "default port",
                "`http://app.example.com`",
            ),
            (
                "https://a.example.com?x=1",
                "query",
                "`https://a.example.com`",
            ),
            (
                "https://a.example.com#top",
                "fragment",
                "`https://a.example.com`",
            ),
            (
                "https://a.example.com/app",
                "path",
                "`https://a.example.com`",
            ),
            (
                "https://a.example.com/",
                "trailing `/`",
                "`https://a.example.com`",
            ),
            (
                "https://user@a.example.com:8443",
                "user info",
                "`https://a.example.com:8443`",
            ),
            (
                "http://localhost:05173",
                "leading zeros",
                "`http://localhost:5173`",
            ),
            ("http://localhost:", "without a port", "`http://localhost`"),
            ("http://localhost:http", "not a port", "e.g."),
            ("http://localhost:70000", "not a port", "e.g."),
            ("https://bücher.example", "punycode", "xn--"),
            ("https://a.example.com ", "blanks", "e.g."),
            ("//a.example.com", "not an origin", "e.g."),
        ] {
            let message = problem(origin);
            assert!(
                message.contains(says) && message.contains(instead),
                "{origin}: {message}"
            );
        }
        // An app scheme's host is sent as written: its case is its own.
        for fine in [
            "capacitor://MyApp",
            "safari-web-extension://E4A8D2C1-0000-4000-8000-000000000000",
            "capacitor://localhost",
            "http://[::1]:3000",
        ] {
            assert_eq!(origin_problem(fine), None, "{fine}");
        }
        // Every bad entry is reported, not just the first.
        let Err(message) = allowed_origins(vec![
            "https://ok.example".into(),
            "https://*.example.com".into(),
            "https://B.example".into(),
        ]) else {
            panic!("refused");
        };
        assert!(
            message.contains("*.example.com") && message.contains("B.example"),
            "{message}"
        );
    }

    #[test]
    fn transports_are_known_unique_and_not_empty() {
        assert_eq!(
            transports(vec!["websocket".into()]),
            Ok(vec![TransportKind::Websocket])
        );
        assert!(transports(vec![]).is_err());
        assert!(transports(vec!["polling".into(), "polling".into()]).is_err());
        assert!(transports(vec!["carrier-pigeon".into()]).is_err());
    }

    #[test]
    fn durations_and_counts_have_bounds() {
        use duration::HumanDuration as H;
        assert!(positive_duration(H(Duration::ZERO)).is_err());
        assert_eq!(any_duration(H(Duration::ZERO)), Ok(Duration::ZERO));
        assert!(any_duration(H(duration::MAX + Duration::from_millis(1))).is_err());
        assert!(positive_count(Count(0)).is_err());
        assert_eq!(any_count(Count(0)), Ok(0));
    }
}
