//! [`TopicName`]: a topic name as the image keeps it, inline when short.
//!
//! A large image is mostly topics, and a `String` key costs a heap block per topic (24 bytes of
//! mimalloc for a typical 20-character name) on top of its 24-byte handle in the map's node.
//! Names of up to [`INLINE`] bytes (nearly all: Kafka's generated and conventional names are
//! short) live in the handle itself, so the map's node is all a topic costs. Longer names fall
//! back to a boxed `str`. Either way the type compares, orders, prints and serializes exactly as
//! the `str` it holds, so the map's order, the snapshot bytes and the JSON views do not change.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

use serde::de::{Deserialize, Deserializer, Error, Visitor};
use serde::{Serialize, Serializer};

/// The longest name held inline: the handle is 24 bytes (a tag, a length and the bytes), the
/// size of a `String` handle.
pub const INLINE: usize = 22;

/// A topic name, inline up to [`INLINE`] bytes, boxed beyond.
#[derive(Clone)]
pub struct TopicName(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the name, whole UTF-8 copied from a `str`; the rest is zero.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A name longer than [`INLINE`] bytes.
    Boxed(Box<str>),
}

impl TopicName {
    /// The name `s`, inline when it fits.
    pub fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0u8; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                TopicName(Repr::Inline { len, bytes })
            }
            _ => TopicName(Repr::Boxed(s.into())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let b = &bytes[..usize::from(*len)];
                // SAFETY: `new` is the only constructor of `Inline`, and it copies a whole `str`
                // into `bytes[..len]`, so these bytes are valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            Repr::Boxed(s) => s,
        }
    }

    /// Whether the name is held inline (for the tests of the layout).
    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for TopicName {
    fn from(s: &str) -> Self {
        TopicName::new(s)
    }
}

impl PartialEq for TopicName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TopicName {}

impl PartialOrd for TopicName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TopicName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TopicName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TopicName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Reads a string into a [`TopicName`] without an intermediate `String` when the format lends
/// its bytes.
struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = TopicName;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a topic name")
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<TopicName, E> {
        Ok(TopicName::new(v))
    }
    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<TopicName, E> {
        std::str::from_utf8(v)
            .map(TopicName::new)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Bytes(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names at and around the inline limit, empty, multi-byte, and long.
    fn samples() -> Vec<String> {
        let mut v: Vec<String> = vec![
            String::new(),
            "a".into(),
            "t-1a2b3c4d-0-63-15625".into(),
            "é".repeat(11),
            "é".repeat(12),
            "x".repeat(INLINE - 1),
            "x".repeat(INLINE),
            "x".repeat(INLINE + 1),
            "y".repeat(249),
            "a.b_c-D".into(),
            "\u{0}".into(),
        ];
        v.push(format!("{}\u{0}", "x".repeat(INLINE - 1)));
        v
    }

    proptest::proptest! {
        /// Any two strings (multi-byte, NUL, around the inline limit, equal in a prefix) order
        /// and compare as names exactly as they do as `str`, and a map of names iterates in the
        /// order of a map of `String`s.
        #[test]
        fn any_strings_order_as_str(
            a in "\\PC{0,8}[a\\x00\u{e9}\u{10348}]{0,30}",
            b in "\\PC{0,8}[a\\x00\u{e9}\u{10348}]{0,30}",
            rest in proptest::collection::vec("[a\u{e9}]{20,25}", 0..40),
        ) {
            let (na, nb) = (TopicName::new(&a), TopicName::new(&b));
            proptest::prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
            proptest::prop_assert_eq!(na == nb, a == b);
            proptest::prop_assert_eq!(na.as_str(), a.as_str());
            let mut names = super::super::RunMap::new();
            let mut strings = std::collections::BTreeMap::new();
            for (i, s) in rest.iter().chain([&a, &b]).enumerate() {
                names.insert(TopicName::new(s), i);
                strings.insert(s.clone(), i);
            }
            proptest::prop_assert!(names
                .iter()
                .map(|(n, i)| (n.as_str(), *i))
                .eq(strings.iter().map(|(s, i)| (s.as_str(), *i))));
        }
    }

    #[test]
    fn handle_is_the_size_of_a_string_and_short_names_are_inline() {
        assert_eq!(
            std::mem::size_of::<TopicName>(),
            std::mem::size_of::<String>()
        );
        assert!(TopicName::new(&"x".repeat(INLINE)).is_inline());
        assert!(!TopicName::new(&"x".repeat(INLINE + 1)).is_inline());
        assert!(TopicName::new("t-1a2b3c4d-0-63-15625").is_inline());
    }

    #[test]
    fn round_trips_every_sample() {
        for s in samples() {
            let n = TopicName::new(&s);
            assert_eq!(n.as_str(), s);
            assert_eq!(&*n, s.as_str());
            assert_eq!(n.to_string(), s);
            assert_eq!(format!("{n:?}"), format!("{s:?}"));
            assert_eq!(n.clone(), n);
        }
    }

    #[test]
    fn orders_and_compares_as_str_does() {
        let all = samples();
        for a in &all {
            for b in &all {
                let (na, nb) = (TopicName::new(a), TopicName::new(b));
                assert_eq!(na.cmp(&nb), a.as_str().cmp(b.as_str()), "{a:?} vs {b:?}");
                assert_eq!(na == nb, a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn serializes_to_the_same_bytes_as_a_string_and_reads_back() {
        for s in samples() {
            let n = TopicName::new(&s);
            let mp = rmp_serde::to_vec_named(&n).expect("encodes");
            assert_eq!(mp, rmp_serde::to_vec_named(&s).expect("encodes"));
            let back: TopicName = rmp_serde::from_slice(&mp).expect("decodes");
            assert_eq!(back, n);
            let json = serde_json::to_string(&n).expect("encodes");
            assert_eq!(json, serde_json::to_string(&s).expect("encodes"));
            let back: TopicName = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back, n);
        }
        assert!(rmp_serde::from_slice::<TopicName>(&rmp_serde::to_vec(&7u8).unwrap()).is_err());
    }

    #[test]
    fn finds_a_map_entry_by_str_and_iterates_in_str_order() {
        let all = samples();
        let mut m = imbl::OrdMap::new();
        for (i, s) in all.iter().enumerate() {
            m.insert(TopicName::new(s), i);
        }
        for (i, s) in all.iter().enumerate() {
            assert_eq!(m.get(s.as_str()), Some(&i));
        }
        assert_eq!(m.get("not there"), None);
        let keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        let mut sorted: Vec<&str> = all.iter().map(String::as_str).collect();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
