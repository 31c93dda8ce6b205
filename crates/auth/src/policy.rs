//! Room policy building blocks: [`RoomPattern`] (`chat:*`) says which room names a rule
//! covers; [`RoomTemplate`] (`user:{sub}`) makes a room name, or a pattern, from a
//! token's claims. No IO; both are parsed once from config and matched per event.

use std::fmt;

use serde_json::Value;

use crate::jwt::Claims;

/// The wildcard of a [`RoomPattern`]: any run of characters, the empty run included.
pub const WILDCARD: char = '*';

/// The longest claim value a [`RoomTemplate`] puts into a room name. Room names are
/// held per socket and per room; a token must not be able to make them arbitrarily long.
pub const MAX_CLAIM_VALUE_BYTES: usize = 256;

/// A room name pattern: literal text where `*` matches any run of characters (also an
/// empty one). `chat:*` covers `chat:` and `chat:lobby`; `*` covers every room;
/// `team:*:general` covers `team:red:general`. There is no escape: a pattern cannot
/// match a literal `*` other than through a wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomPattern {
    /// The pattern as written.
    source: String,
    /// The literal runs between wildcards, in order (`a*b*` → `["a", "b", ""]`).
    parts: Vec<String>,
}

impl RoomPattern {
    /// Reads a pattern; only the empty pattern is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a room pattern must not be empty".to_owned());
        }
        Ok(RoomPattern {
            source: text.to_owned(),
            parts: text.split(WILDCARD).map(str::to_owned).collect(),
        })
    }

    /// Whether the pattern has no wildcard (it names exactly one room).
    pub fn is_exact(&self) -> bool {
        self.parts.len() == 1
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `room` is covered. Linear in the room's length per literal part: the
    /// first part is a prefix, the last a suffix, the ones between are found leftmost
    /// in order (leftmost is always safe for `*`-only patterns).
    pub fn matches(&self, room: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return room.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return room == first;
        };
        let Some(mut remaining) = room.strip_prefix(first.as_str()) else {
            return false;
        };
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.ends_with(last.as_str())
    }
}

impl fmt::Display for RoomPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A room name made from claims: `user:{sub}`, `org:{org_id}:*`. `{name}` is replaced
/// by the top-level claim `name` (a string, or an integer written in decimal); `{{` and
/// `}}` write literal braces. The literal text may hold `*`, so a rendered template can
/// be read as a [`RoomPattern`]; claim values therefore may not — see
/// [`render`](Self::render).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomTemplate {
    /// The template as written.
    source: String,
    /// Literal text and placeholders, in order.
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    /// Text copied as is.
    Literal(String),
    /// A claim's value.
    Claim(String),
}

impl RoomTemplate {
    /// Reads a template. Refused: an empty template, an empty or unclosed `{`, a stray
    /// `}`, a `{` inside a placeholder.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a room template must not be empty".to_owned());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "stray `}}` in {text:?} (write `}}}}` for a literal brace)"
                    ));
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') => {
                                return Err(format!("`{{` inside a placeholder in {text:?}"));
                            }
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed `{{` in {text:?}")),
                        }
                    }
                    if name.trim().is_empty() {
                        return Err(format!("empty placeholder `{{}}` in {text:?}"));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Claim(name));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(RoomTemplate {
            source: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template has a placeholder (else it renders to itself, minus escapes).
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Claim(_)))
    }

    /// The claims this template reads, in order.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Claim(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The room name for `claims`, or `None` when a claim is missing or unusable: not a
    /// string or integer, empty, longer than [`MAX_CLAIM_VALUE_BYTES`], or holding `*`,
    /// braces or control characters. Refusing those keeps a claim from widening a rule
    /// (`sub = "*"` must not turn `user:{sub}` into "every user's room").
    pub fn render(&self, claims: &Claims) -> Option<String> {
        let mut room = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => room.push_str(text),
                Part::Claim(name) => room.push_str(&claim_text(claims.get(name)?)?),
            }
        }
        Some(room)
    }

    /// The rendered template read as a pattern (a template with `*` in its literal text
    /// covers a family of rooms).
    pub fn render_pattern(&self, claims: &Claims) -> Option<RoomPattern> {
        RoomPattern::parse(&self.render(claims)?).ok()
    }
}

impl fmt::Display for RoomTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A claim value as room-name text, if it is safe to use.
fn claim_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
        _ => return None,
    };
    let unsafe_char = |c: char| c == WILDCARD || c == '{' || c == '}' || c.is_control();
    (!text.is_empty() && text.len() <= MAX_CLAIM_VALUE_BYTES && !text.contains(unsafe_char))
        .then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(text: &str) -> RoomPattern {
        RoomPattern::parse(text).expect("test pattern")
    }

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => Claims::from(map),
            other => panic!("claims must be an object, not {other}"),
        }
    }

    fn template(text: &str) -> RoomTemplate {
        RoomTemplate::parse(text).expect("test template")
    }

    #[test]
    fn wildcards_match_any_run_including_empty() {
        let cases = [
            ("chat:*", "chat:lobby", true),
            ("chat:*", "chat:", true),
            ("chat:*", "chat", false),
            ("chat:*", "xchat:a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("*:general", "team:red:general", true),
            ("*:general", "general", false),
            ("team:*:general", "team:red:general", true),
            ("team:*:general", "team::general", true),
            ("team:*:general", "team:general", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("**", "x", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("é*", "été", true),
        ];
        for (p, room, expected) in cases {
            assert_eq!(pattern(p).matches(room), expected, "{p} vs {room}");
        }
        assert!(pattern("exact").is_exact());
        assert!(!pattern("a*").is_exact());
        assert!(RoomPattern::parse("").is_err());
    }

    #[test]
    fn templates_render_string_and_integer_claims() {
        let c = claims(json!({ "sub": "alice", "org": 42, "team": "red" }));
        assert_eq!(
            template("user:{sub}").render(&c).as_deref(),
            Some("user:alice")
        );
        assert_eq!(
            template("{org}/{team}").render(&c).as_deref(),
            Some("42/red")
        );
        assert_eq!(template("lobby").render(&c).as_deref(), Some("lobby"));
        assert_eq!(
            template("{{x}}:{sub}").render(&c).as_deref(),
            Some("{x}:alice")
        );
        let family = template("org:{org}:*")
            .render_pattern(&c)
            .expect("a pattern");
        assert!(family.matches("org:42:news"));
        assert!(!family.matches("org:43:news"));
        assert_eq!(
            template("a{sub}b{org}").claim_names().collect::<Vec<_>>(),
            ["sub", "org"]
        );
    }

    #[test]
    fn missing_or_unsafe_claims_render_nothing() {
        let unusable = [
            json!({}),
            json!({ "sub": null }),
            json!({ "sub": "" }),
            json!({ "sub": 1.5 }),
            json!({ "sub": true }),
            json!({ "sub": ["a"] }),
            json!({ "sub": { "a": 1 } }),
            json!({ "sub": "*" }),
            json!({ "sub": "a*b" }),
            json!({ "sub": "{org}" }),
            json!({ "sub": "line\nbreak" }),
            json!({ "sub": "x".repeat(MAX_CLAIM_VALUE_BYTES + 1) }),
        ];
        let t = template("user:{sub}");
        for value in unusable {
            assert_eq!(t.render(&claims(value.clone())), None, "{value}");
        }
        assert!(
            t.render(&claims(json!({ "sub": "x".repeat(MAX_CLAIM_VALUE_BYTES) })))
                .is_some()
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in ["", "user:{", "user:{}", "user:{ }", "a}b", "{a{b}}", "{sub"] {
            assert!(RoomTemplate::parse(bad).is_err(), "{bad}");
        }
        assert!(template("user:{sub}").has_placeholders());
        assert!(!template("lobby").has_placeholders());
    }
}
