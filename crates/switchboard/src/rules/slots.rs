//! Places counted per key, each key with a cap, given back when their guard drops:
//! forwarded events waiting per connection (`forward`), token refreshes per socket
//! (`auth`). A key with nothing taken has no entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_protocol::Sid;

/// How many places each key holds now.
#[derive(Debug, Default)]
pub(crate) struct PerKey(Mutex<HashMap<Sid, usize>>);

/// One place of a key, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    of: Arc<PerKey>,
    key: Sid,
}

impl PerKey {
    /// A place for `key`, unless it holds `max` already.
    pub(crate) fn take(self: &Arc<Self>, key: Sid, max: usize) -> Option<Slot> {
        let mut counts = self.lock();
        let count = counts.get(&key).copied().unwrap_or(0);
        if count >= max {
            return None;
        }
        counts.insert(key, count + 1);
        Some(Slot {
            of: self.clone(),
            key,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Sid, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.of.lock();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a cap of one (a socket refreshes one token at a time): another key is not
    /// held up, and the place comes back when its guard drops (however its task ends).
    #[test]
    fn one_place_at_a_time_per_key() {
        let refreshing = Arc::new(PerKey::default());
        let (a, b) = (Sid::from_random([1; 15]), Sid::from_random([2; 15]));
        let first = refreshing.take(a, 1).expect("a place");
        assert!(refreshing.take(a, 1).is_none(), "still under way");
        assert!(refreshing.take(b, 1).is_some(), "another socket");
        drop(first);
        assert!(refreshing.take(a, 1).is_some(), "over");
        assert!(refreshing.lock().is_empty(), "every place given back");
    }
}
