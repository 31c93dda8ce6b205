//! Amounts counted per key, each key with a cap, given back when their guard drops:
//! forwarded events (and their bytes) waiting per connection (`forward`), token
//! refreshes per socket (`auth`). A key with nothing taken has no entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_protocol::Sid;

/// How much each key holds now.
#[derive(Debug, Default)]
pub(crate) struct PerKey(Mutex<HashMap<Sid, usize>>);

/// An amount taken for a key, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    of: Arc<PerKey>,
    key: Sid,
    amount: usize,
}

impl PerKey {
    /// `amount` more for `key`, unless that would take it past `max`. A key holding
    /// nothing gets any amount: one thing larger than the cap is let through alone.
    pub(crate) fn take(self: &Arc<Self>, key: Sid, amount: usize, max: usize) -> Option<Slot> {
        let mut counts = self.lock();
        let count = counts.get(&key).copied().unwrap_or(0);
        if count > 0 && count.saturating_add(amount) > max {
            return None;
        }
        counts.insert(key, count.saturating_add(amount));
        Some(Slot {
            of: self.clone(),
            key,
            amount,
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
            *count = count.saturating_sub(self.amount);
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
        let first = refreshing.take(a, 1, 1).expect("a place");
        assert!(refreshing.take(a, 1, 1).is_none(), "still under way");
        assert!(refreshing.take(b, 1, 1).is_some(), "another socket");
        drop(first);
        assert!(refreshing.take(a, 1, 1).is_some(), "over");
        assert!(refreshing.lock().is_empty(), "every place given back");
    }

    /// Amounts (bytes of forwarded events): taken up to the cap, one larger than the
    /// cap only alone, and given back exactly.
    #[test]
    fn amounts_up_to_the_cap_and_one_large_one_alone() {
        let bytes = Arc::new(PerKey::default());
        let a = Sid::from_random([1; 15]);
        let big = bytes.take(a, 100, 10).expect("alone, past the cap");
        assert!(bytes.take(a, 1, 10).is_none(), "nothing beside it");
        drop(big);
        let six = bytes.take(a, 6, 10).expect("six");
        let four = bytes.take(a, 4, 10).expect("up to the cap");
        assert!(bytes.take(a, 1, 10).is_none(), "past the cap");
        drop(six);
        let five = bytes.take(a, 5, 10).expect("room again");
        drop((four, five));
        assert!(bytes.lock().is_empty(), "every byte given back");
    }
}
