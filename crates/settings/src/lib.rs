//! Reading Switchboard's settings out of TOML: one duration grammar, one table reader
//! that keeps going past a bad value, and one error type, shared by the binary's config
//! loader, `switchboard-auth` (`[namespaces.auth]`) and `switchboard-hooks`
//! (`[hooks.webhook]`), so a value means the same thing and a mistake reads the same
//! way wherever it is written.
//!
//! # Layout
//!
//! - [`duration`]: `"25s"`, `"300ms"`, `"1m30s"` or integer milliseconds — the grammar
//!   ([`duration::parse`]), its inverse ([`duration::format`]), the 24-hour cap
//!   ([`duration::MAX`]), reading one from a TOML value ([`duration::from_value`]) and
//!   the serde form ([`HumanDuration`]);
//! - [`error`]: [`SettingError`] (a dotted key and what is wrong with it) and
//!   [`Errors`], every error of one load;
//! - [`table`]: [`Section`], a TOML table at a key path whose typed getters report a bad
//!   value into an [`Errors`] and read it as absent;
//! - [`reader`]: [`TableReader`], a [`Section`] that owns its errors and remembers the
//!   keys asked for, so keys nobody asked for are reported as unknown.
//!
//! # One grammar
//!
//! The binary, `switchboard-auth` and `switchboard-hooks` each had a copy of the duration
//! parser. All three accepted the same strings — one or more `<integer><unit>` parts
//! with units `ms`, `s`, `m`, `h`, blanks allowed around and between the parts and
//! between a number and its unit (`"1m 30s"`, `"5 s"`), or a non-negative TOML integer
//! of milliseconds — and differed only in their error texts. That grammar is kept as
//! is, with the binary's typed errors ([`duration::DurationError`]). Nothing documented
//! is refused: `docs/configuration.md` promises exactly these units and forms.
//!
//! The one change of behaviour is the documented cap: `docs/configuration.md` says every
//! duration is "at most 24 hours", which only the binary's own sections enforced. Every
//! duration read through [`Section::duration`] or [`TableReader::duration`] is now
//! capped at [`duration::MAX`] too, so `[hooks.webhook]` and `[namespaces.auth]` obey
//! the documented limit.

pub mod duration;
pub mod error;
pub mod reader;
pub mod table;

pub use duration::{DurationError, HumanDuration};
pub use error::{ErrorKind, Errors, SettingError};
pub use reader::TableReader;
pub use table::{Section, join};
