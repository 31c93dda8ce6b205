//! Giving back what a burst left: a collection keeps the capacity of its largest
//! size, so a long-lived map that once held a burst (a network blip's sessions, a
//! loop of fresh room names) keeps its table for the life of the node, while the
//! gauges that count its entries read zero. [`give_back`] is the one rule every such
//! collection follows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// A collection with a length and a capacity it can be shrunk towards.
pub trait Held {
    /// Entries held.
    fn entries(&self) -> usize;
    /// Entries it has room for.
    fn capacity(&self) -> usize;
    /// Shrinks its capacity towards `min` (at least its length).
    fn shrink_to(&mut self, min: usize);
}

/// Shrinks `held` to twice its length when it uses less than a quarter of its
/// capacity and that capacity is over `floor`: a quarter and twice, so that shrinking
/// and growing cannot alternate (the cost is amortized over the removals that made
/// room), and a floor, so that small collections are never touched.
pub fn give_back(held: &mut impl Held, floor: usize) {
    if held.capacity() > floor && held.entries() < held.capacity() / 4 {
        held.shrink_to(held.entries() * 2);
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Held for HashMap<K, V, S> {
    fn entries(&self) -> usize {
        HashMap::len(self)
    }
    fn capacity(&self) -> usize {
        HashMap::capacity(self)
    }
    fn shrink_to(&mut self, min: usize) {
        HashMap::shrink_to(self, min);
    }
}

impl<T: Eq + Hash, S: BuildHasher> Held for HashSet<T, S> {
    fn entries(&self) -> usize {
        HashSet::len(self)
    }
    fn capacity(&self) -> usize {
        HashSet::capacity(self)
    }
    fn shrink_to(&mut self, min: usize) {
        HashSet::shrink_to(self, min);
    }
}

impl<T> Held for VecDeque<T> {
    fn entries(&self) -> usize {
        VecDeque::len(self)
    }
    fn capacity(&self) -> usize {
        VecDeque::capacity(self)
    }
    fn shrink_to(&mut self, min: usize) {
        VecDeque::shrink_to(self, min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_mostly_empty_collection_over_the_floor_is_shrunk() {
        let mut queue: VecDeque<u32> = (0..10_000).collect();
        let peak = queue.capacity();
        queue.truncate(4_000);
        give_back(&mut queue, 64);
        assert_eq!(queue.capacity(), peak, "over a quarter still used: kept");
        queue.truncate(100);
        give_back(&mut queue, 64);
        assert!(
            (200..peak / 4).contains(&queue.capacity()),
            "{}",
            queue.capacity()
        );
        let mut map: HashMap<u32, u32> = (0..10_000).map(|n| (n, n)).collect();
        let peak = map.capacity();
        map.retain(|n, _| *n < 100);
        give_back(&mut map, 64);
        assert!(map.capacity() < peak / 4, "{}", map.capacity());
        let mut small: VecDeque<u8> = VecDeque::with_capacity(50);
        small.push_back(1);
        give_back(&mut small, 64);
        assert!(small.capacity() >= 50, "under the floor: kept");
    }
}
