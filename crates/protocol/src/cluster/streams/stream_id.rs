//! Redis stream ids, which double as the connection-state-recovery offsets the streams
//! adapter hands to clients.

use std::fmt;
use std::str::FromStr;

use crate::cluster::CodecError;

/// A stream entry id `<ms>-<seq>`, ordered as Redis orders entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part (the adding node's clock).
    pub ms: u64,
    /// Sequence number within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// The smallest id after this one: what Node's `nextOffset` computes (`seq + 1`),
    /// for an exclusive `XRANGE` start on Redis before 6.2. At the largest sequence it
    /// moves to the next millisecond instead of overflowing.
    pub fn next(self) -> StreamId {
        match self.seq.checked_add(1) {
            Some(seq) => StreamId { ms: self.ms, seq },
            None => StreamId {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = CodecError;

    /// Accepts exactly what `restoreSession` accepts (`^[0-9]+-[0-9]+$`), within 64 bits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(CodecError::StreamId)?;
        let part = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CodecError::StreamId);
            }
            p.parse::<u64>().map_err(|_| CodecError::StreamId)
        };
        Ok(StreamId {
            ms: part(ms)?,
            seq: part(seq)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> StreamId {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(
            id("1700000000000-3"),
            StreamId {
                ms: 1_700_000_000_000,
                seq: 3
            }
        );
        assert_eq!(id("0-0").to_string(), "0-0");
        assert_eq!(id("007-01").to_string(), "7-1");
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "1-2-3",
            "+1-2",
            "1 -2",
            "a-1",
            "$",
            "1-99999999999999999999",
        ] {
            assert_eq!(
                bad.parse::<StreamId>(),
                Err(CodecError::StreamId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(id("9-0") < id("10-0"));
        assert!(id("10-2") < id("10-10"));
        assert!(id("10-10") < id("11-0"));
        let mut ids = vec![id("2-1"), id("10-0"), id("2-0")];
        ids.sort();
        assert_eq!(ids, [id("2-0"), id("2-1"), id("10-0")]);
    }

    #[test]
    fn next_offset() {
        assert_eq!(id("5-1").next(), id("5-2"));
        assert_eq!(
            StreamId {
                ms: 5,
                seq: u64::MAX
            }
            .next(),
            id("6-0")
        );
        assert!(id("5-1") < id("5-1").next());
    }
}
