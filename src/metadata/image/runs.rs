//! [`RunMap`]: a persistent sorted map whose entries sit in exact-size shared blocks.
//!
//! The image's topic indexes hold close to a million entries. In an `imbl::OrdMap` each entry
//! sits in a B-tree leaf of 16 slots that is allocated whole and split in half when full, so
//! with the log's insertion order (names grow within 64 writers' ranges) the leaves are under
//! half full: a 40-byte topic slot cost 95 bytes. A `RunMap` keeps its entries in sorted *runs*
//! of at most [`RUN`] entries, each a shared block of exactly its length, found through an
//! `OrdMap` by its first key; an insert changes the one run it lands in, in place (a `memmove`)
//! unless a copy of the map shares it, then in a copy, and splits it in two past [`RUN`]. An
//! entry costs its own size plus a few percent.
//!
//! It is persistent like the other maps: `clone()` copies the outer map's root (O(1)), runs are
//! shared between copies, and a change copies (only while shared) one run and the outer path to
//! it. A lookup is the outer map's (O(log n)) plus a binary search in one run; an insert adds
//! moving or copying at most [`RUN`] entries. Iteration is in key order, like `OrdMap`'s.

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;

/// Most entries in one run; a run that would grow past it splits into two halves.
pub const RUN: usize = 64;

/// One run: sorted entries in a block of exactly their size (capacity = length), shared
/// between copies; changed in place while no copy shares it.
type Run<K, V> = Arc<Vec<(K, V)>>;

/// The entries of `run` to change in place: a copy (room for `extra` more) when another map
/// shares the run, the run itself when not.
fn unshared<K: Clone, V: Clone>(run: &mut Run<K, V>, extra: usize) -> &mut Vec<(K, V)> {
    if Arc::get_mut(run).is_none() {
        let mut copy = Vec::with_capacity(run.len() + extra);
        copy.extend_from_slice(run);
        *run = Arc::new(copy);
    }
    // Not shared now, so this does not copy again.
    Arc::make_mut(run)
}

/// A sorted map of `K` to `V` in runs of at most [`RUN`] entries.
#[derive(Clone)]
pub struct RunMap<K: Ord + Clone, V: Clone> {
    /// Every run by its first key. Runs are non-empty, sorted, and in key order: every key of
    /// a run is below the first key of the next.
    runs: OrdMap<K, Run<K, V>>,
    /// Entries over all runs.
    len: usize,
}

impl<K: Ord + Clone, V: Clone> Default for RunMap<K, V> {
    fn default() -> Self {
        RunMap {
            runs: OrdMap::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Clone, V: Clone> RunMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries the map holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The run that holds `key` if any run does: the last run whose first key is not above it.
    fn run_of<Q>(&self, key: &Q) -> Option<(&K, &Run<K, V>)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.runs.get_prev(key)
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (_, run) = self.run_of(key)?;
        let i = run
            .binary_search_by(|(k, _)| <K as std::borrow::Borrow<Q>>::borrow(k).cmp(key))
            .ok()?;
        run.get(i).map(|(_, v)| v)
    }

    /// Whether `key` is in the map.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Puts `value` under `key`; gives back the value it replaces, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let below_all = match self.runs.get_min() {
            None => {
                self.runs.insert(key.clone(), Arc::new(vec![(key, value)]));
                self.len = 1;
                return None;
            }
            Some((first, run)) => (key < *first).then(|| Arc::clone(run)),
        };
        if let Some(run) = below_all {
            // The key starts the first run now: file that run again under its new first key.
            let mut entries = Vec::with_capacity(run.len() + 1);
            entries.push((key, value));
            entries.extend_from_slice(&run);
            self.runs.remove(&run[0].0);
            self.put_runs(entries);
            self.len += 1;
            return None;
        }
        // Not below the first key of a non-empty map: some run's first key is at most `key`.
        let (_, run) = self.runs.get_prev_mut(&key)?;
        let i = run.binary_search_by(|(k, _)| k.cmp(&key));
        let entries = unshared(run, usize::from(i.is_err()));
        match i {
            Ok(i) => Some(std::mem::replace(&mut entries[i].1, value)),
            Err(i) => {
                entries.reserve_exact(1);
                entries.insert(i, (key, value));
                let right = (entries.len() > RUN).then(|| {
                    let right = entries.split_off(entries.len() / 2);
                    entries.shrink_to_fit();
                    right
                });
                if let Some(right) = right {
                    self.put_run(right);
                }
                self.len += 1;
                None
            }
        }
    }

    /// Files `entries` (sorted, non-empty) as one run, or two halves past [`RUN`].
    fn put_runs(&mut self, mut entries: Vec<(K, V)>) {
        if entries.len() > RUN {
            let right = entries.split_off(entries.len() / 2);
            entries.shrink_to_fit();
            self.put_run(right);
        }
        self.put_run(entries);
    }

    /// Files a run (sorted, non-empty, its capacity its length) under its first key, in place
    /// of the run that had it.
    fn put_run(&mut self, entries: Vec<(K, V)>) {
        if let Some((first, _)) = entries.first() {
            let first = first.clone();
            self.runs.insert(first, Arc::new(entries));
        }
    }

    /// Every entry, in key order; the iterator knows how many are left, as `OrdMap`'s does,
    /// so the snapshot encoder writes the topics' array header at once instead of buffering the
    /// whole array to count it (MessagePack puts the length first).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &V)> + '_ {
        Counted {
            inner: self
                .runs
                .values()
                .flat_map(|run| run.iter().map(|(k, v)| (k, v))),
            left: self.len,
        }
    }

    /// Every value, in key order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// A map of `entries`, which must be in strictly increasing key order (a snapshot's, checked
    /// by its reader): built run by run, each [`RUN`] × 3/4 long, without a copy per entry.
    /// Entries out of order are inserted one by one instead, so the map is right either way.
    pub fn from_sorted(entries: Vec<(K, V)>) -> Self {
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            let mut map = Self::new();
            for (k, v) in entries {
                map.insert(k, v);
            }
            return map;
        }
        let mut map = Self::new();
        map.len = entries.len();
        let mut rest = entries.into_iter().peekable();
        while rest.peek().is_some() {
            let mut run: Vec<(K, V)> = rest.by_ref().take(RUN * 3 / 4).collect();
            run.shrink_to_fit();
            map.put_run(run);
        }
        map
    }
}

/// An iterator that yields `left` more items: the map's entry count, which every insert keeps.
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for RunMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_sorted(iter.into_iter().collect())
    }
}

/// Two maps are equal when they hold the same entries, however their runs are cut.
impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for RunMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Ord + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for RunMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The map and a `BTreeMap` given the same inserts hold the same entries in the same
    /// order, answer the same lookups, and every run keeps its bounds.
    fn check(map: &RunMap<u32, u32>, model: &BTreeMap<u32, u32>) {
        assert_eq!(map.len(), model.len());
        assert!(map.iter().eq(model.iter()));
        for (first, run) in map.runs.iter() {
            assert!(!run.is_empty() && run.len() <= RUN);
            assert_eq!(run.capacity(), run.len(), "a run holds no spare room");
            assert_eq!(&run[0].0, first);
            assert!(run.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    proptest! {
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec((0u32..2_000, any::<u32>()), 0..1_500)) {
            let mut map = RunMap::new();
            let mut model = BTreeMap::new();
            for (k, v) in ops {
                prop_assert_eq!(map.insert(k, v), model.insert(k, v));
            }
            check(&map, &model);
            let mut it = map.iter();
            for left in (0..=model.len()).rev() {
                prop_assert_eq!(it.len(), left);
                prop_assert_eq!(it.next().is_some(), left > 0);
            }
            for k in 0..2_000 {
                prop_assert_eq!(map.get(&k), model.get(&k));
                prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
            }
            let sorted: Vec<(u32, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            let bulk = RunMap::from_sorted(sorted);
            check(&bulk, &model);
            prop_assert_eq!(&bulk, &map);
        }
    }

    /// What a test does next to a map and its copies.
    #[derive(Clone, Debug)]
    enum Step {
        /// Insert (or replace) a key.
        Insert(u32, u32),
        /// Insert a key below every key in the map (the first run is filed again).
        Below(u32),
        /// Take a copy of the map as it is now.
        Copy,
        /// Drop the oldest copy still held (its runs become the map's own again).
        DropOldest,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0u32..600, any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            2 => any::<u32>().prop_map(Step::Below),
            1 => Just(Step::Copy),
            1 => Just(Step::DropOldest),
        ]
    }

    proptest! {
        /// Copies taken between any two inserts (of a new key, a replaced key, a key below
        /// every other, one that splits a run) keep exactly what the map held when they were
        /// taken, whatever the original and the other copies do later; and the original changes
        /// in place again once its copies are gone, still right.
        #[test]
        fn a_copy_never_sees_later_changes(steps in prop::collection::vec(step(), 0..800)) {
            let mut map: RunMap<u32, u32> = RunMap::new();
            let mut model = BTreeMap::new();
            let mut copies: std::collections::VecDeque<(RunMap<u32, u32>, BTreeMap<u32, u32>)> =
                Default::default();
            for step in steps {
                match step {
                    Step::Insert(k, v) => {
                        prop_assert_eq!(map.insert(k, v), model.insert(k, v));
                    }
                    Step::Below(v) => {
                        let k = model.keys().next().map_or(1_000, |k| k.saturating_sub(1));
                        prop_assert_eq!(map.insert(k, v), model.insert(k, v));
                    }
                    Step::Copy => copies.push_back((map.clone(), model.clone())),
                    Step::DropOldest => {
                        if let Some((copy, at)) = copies.pop_front() {
                            check(&copy, &at);
                        }
                    }
                }
                // A copy is itself a map that may change: the newest one takes an insert too,
                // which must not reach the original or the older copies.
                if let Some((copy, at)) = copies.back_mut() {
                    if at.len() % 7 == 3 {
                        let k = 10_000 + at.len() as u32;
                        copy.insert(k, 0);
                        at.insert(k, 0);
                    }
                }
            }
            check(&map, &model);
            for (copy, at) in &copies {
                check(copy, at);
            }
        }

        /// A bulk build from any input, in order or not, with repeated keys or not, is the map
        /// of inserting the entries one by one (the last of a repeated key wins).
        #[test]
        fn a_bulk_build_of_any_input_is_the_map_of_its_inserts(
            entries in prop::collection::vec((0u32..300, any::<u32>()), 0..400),
            sort in any::<bool>(),
        ) {
            let mut entries = entries;
            if sort {
                entries.sort_by_key(|(k, _)| *k);
            }
            let model: BTreeMap<u32, u32> = entries.iter().copied().collect();
            let built = RunMap::from_sorted(entries);
            check(&built, &model);
        }
    }

    #[test]
    fn ascending_descending_and_unsorted_builds_agree() {
        let n = 10 * RUN as u32 + 7;
        let mut up = RunMap::new();
        let mut down = RunMap::new();
        let mut model = BTreeMap::new();
        for k in 0..n {
            up.insert(k, k * 2);
            down.insert(n - 1 - k, (n - 1 - k) * 2);
            model.insert(k, k * 2);
        }
        check(&up, &model);
        check(&down, &model);
        let unsorted: Vec<(u32, u32)> = (0..n).rev().map(|k| (k, k * 2)).collect();
        let built = RunMap::from_sorted(unsorted);
        check(&built, &model);
        assert_eq!(built, up);
        assert_eq!(up.iter().count(), n as usize);
        assert!(up.values().eq(model.values()));
    }

    #[test]
    fn a_copy_is_unchanged_by_inserts_into_the_original() {
        let mut map: RunMap<u32, u32> = (0..1_000).map(|k| (k * 2, k)).collect();
        let copy = map.clone();
        for k in 0..1_000 {
            map.insert(k * 2 + 1, k);
            map.insert(k * 2, k + 1);
        }
        assert_eq!(copy.len(), 1_000);
        assert!(copy.iter().all(|(k, v)| *k == v * 2));
        assert_eq!(map.len(), 2_000);
        assert_ne!(map, copy);
    }
}
