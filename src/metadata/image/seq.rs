//! Serializes an iterator as a sequence without collecting it first: the snapshot encoding
//! and `/get_metadata` both walk the image's maps straight into their output.

use serde::{Serialize, Serializer};

/// A sequence whose items `F` produces anew each time it is serialized.
pub(super) struct Each<F>(pub(super) F);

impl<F, I> Serialize for Each<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}
