//! What must not leave the node in diagnostics: e-mail addresses and tokens in text
//! (room names, marked steps, evidence) and, as configured, clients' IP addresses.
//! Reports, timelines, disconnect logs and hooks pass what they show through here
//! (docs/diagnosis.md lists exactly what is kept).
//!
//! Pure and allocation-free when there is nothing to scrub.

use std::borrow::Cow;
use std::net::IpAddr;

/// Replaces e-mail addresses with `[email]` and bearer tokens and JSON Web Tokens
/// with `[token]`.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains('@') && !s.contains("eyJ") && !contains_bearer(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = email_at(bytes, i, &mut out) {
            i = end;
            continue;
        }
        if let Some((kept, end)) = token_at(bytes, i) {
            out.push_str(&s[i..i + kept]);
            out.push_str("[token]");
            i = end;
            continue;
        }
        // Copy one whole character.
        let len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + len]);
        i += len;
    }
    Cow::Owned(out)
}

fn contains_bearer(s: &str) -> bool {
    s.len() >= 7
        && s.as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"bearer "))
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".-".contains(&b)
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.=+/".contains(&b)
}

/// At `i`, the start of a run of local-part characters followed by `@` and a domain
/// with a dot: writes `[email]` and returns the end. The local part starts at `i`
/// only when the character before it is not itself a local-part character.
fn email_at(b: &[u8], i: usize, out: &mut String) -> Option<usize> {
    if !is_local(b[i]) || (i > 0 && is_local(b[i - 1])) {
        return None;
    }
    let at = i + b[i..].iter().take_while(|&&c| is_local(c)).count();
    if b.get(at) != Some(&b'@') {
        return None;
    }
    let domain = &b[at + 1..];
    let len = domain.iter().take_while(|&&c| is_domain(c)).count();
    let domain = &domain[..len];
    // A dot inside the domain, not at its ends.
    let trimmed = domain.strip_suffix(b".").unwrap_or(domain);
    if trimmed.len() < 3 || !trimmed[1..trimmed.len() - 1].contains(&b'.') {
        return None;
    }
    out.push_str("[email]");
    Some(at + 1 + trimmed.len())
}

/// At `i`, `Bearer <token>` (any case) or a JSON Web Token (`eyJ…` with two dots):
/// how many bytes to keep (the `Bearer `) and the end of the token.
fn token_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    // A word of its own: not inside another (`…xeyJ…`), but after anything else, `=`
    // and `/` included (a query's `?token=eyJ…`, a path's `/eyJ…`).
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let rest = &b[i..];
    if rest.len() > 7 && rest[..7].eq_ignore_ascii_case(b"bearer ") {
        let len = rest[7..].iter().take_while(|&&c| is_token(c)).count();
        return (len > 0).then_some((7, i + 7 + len));
    }
    if rest.starts_with(b"eyJ") {
        let len = rest.iter().take_while(|&&c| is_token(c)).count();
        let dots = rest[..len].iter().filter(|&&c| c == b'.').count();
        return (dots >= 2).then_some((0, i + len));
    }
    None
}

/// How much of a client's IP address diagnostics and hooks may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIps {
    /// The whole address.
    #[default]
    Keep,
    /// The network only: the last octet of IPv4 (`/24`), the last 80 bits of IPv6
    /// (`/48`) set to zero.
    Truncate,
    /// Nothing.
    Drop,
}

impl ClientIps {
    /// The configuration's names: `keep`, `truncate`, `drop`.
    pub const NAMES: [&'static str; 3] = ["keep", "truncate", "drop"];

    /// Reads a configured name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "keep" => Some(ClientIps::Keep),
            "truncate" => Some(ClientIps::Truncate),
            "drop" => Some(ClientIps::Drop),
            _ => None,
        }
    }

    /// The address as it may be shown, or `None` when it may not.
    pub fn show(self, ip: IpAddr) -> Option<IpAddr> {
        match (self, ip.to_canonical()) {
            (ClientIps::Keep, ip) => Some(ip),
            (ClientIps::Drop, _) => None,
            (ClientIps::Truncate, IpAddr::V4(v4)) => {
                let [a, b, c, _] = v4.octets();
                Some(IpAddr::from([a, b, c, 0]))
            }
            (ClientIps::Truncate, IpAddr::V6(v6)) => {
                let s = v6.segments();
                Some(IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_tokens_are_replaced() {
        for (raw, want) in [
            ("user:ann.lee+x@example.co.uk", "user:[email]"),
            ("two a@b.io, c@d.org.", "two [email], [email]."),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl expired",
                "token [token] expired",
            ),
            (
                "header Bearer abc.def-123 refused",
                "header Bearer [token] refused",
            ),
            ("bearer  x", "bearer  x"),
            // After `=` or `/` too (a query string, a path), not inside a word.
            (
                "?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln&x=1",
                "?token=[token]&x=1",
            ),
            ("/s/eyJhbGciOiJ9.eyJzdWIi.c2ln", "/s/[token]"),
            ("auth=Bearer abc.def", "auth=Bearer [token]"),
            ("xeyJa.b.c", "xeyJa.b.c"),
        ] {
            assert_eq!(text(raw), want, "{raw}");
        }
    }

    #[test]
    fn text_without_secrets_is_left_alone_and_borrowed() {
        for raw in [
            "room a",
            "@channel",
            "x@localhost",
            "a@.b",
            "eyJ alone",
            "price 3 @ 4.5",
            "Jürgen@",
            "",
        ] {
            assert!(
                matches!(text(raw), Cow::Borrowed(_)) || text(raw) == raw,
                "{raw}"
            );
            assert_eq!(text(raw), raw);
        }
    }

    #[test]
    fn multibyte_text_around_a_secret_survives() {
        assert_eq!(text("Grüße an ann@example.com — ✓"), "Grüße an [email] — ✓");
    }

    #[test]
    fn client_ips_are_kept_truncated_or_dropped() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let v6: IpAddr = "2001:db8:85a3:1:2:3:4:5"
            .parse()
            .unwrap_or(IpAddr::from([0u16; 8]));
        let mapped: IpAddr = "::ffff:203.0.113.77"
            .parse()
            .unwrap_or(IpAddr::from([0u16; 8]));
        assert_eq!(ClientIps::Keep.show(v4), Some(v4));
        assert_eq!(ClientIps::Keep.show(mapped), Some(v4));
        assert_eq!(
            ClientIps::Truncate.show(v4).map(|ip| ip.to_string()),
            Some("203.0.113.0".to_owned())
        );
        assert_eq!(
            ClientIps::Truncate.show(v6).map(|ip| ip.to_string()),
            Some("2001:db8:85a3::".to_owned())
        );
        assert_eq!(ClientIps::Drop.show(v4), None);
        assert_eq!(ClientIps::parse("truncate"), Some(ClientIps::Truncate));
        assert_eq!(ClientIps::parse("mask"), None);
    }
}
