//! The image's `metadata` object, walked entity by entity: each entity printed on its own as
//! compact JSON and handed to a [`Visitor`], never the whole image as one JSON tree or one
//! string.
//!
//! The walk is driven by [`MetadataView`], the one rendering of the image that `/get_metadata`
//! answers with: a serializer that accepts only its shape (a map of record names to lists)
//! catches every list it writes, so a record type added to the view later is walked too.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::metadata::image::MetadataView;
use crate::metadata::Image;

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The visitor asked to stop (its reader is gone).
    #[error("the walk was stopped: {0}")]
    Stopped(String),
    /// The view is not a map of lists (not expected: the view is this crate's own).
    #[error("the metadata view has an unexpected shape: {0}")]
    Shape(String),
}

impl ser::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        WalkError::Shape(msg.to_string())
    }
}

/// What a walk hands its entities to.
pub trait Visitor {
    /// The list of record `name` starts (every name comes once, empty lists too).
    fn name(&mut self, name: &str) -> Result<(), WalkError>;
    /// One entity of the current list, as compact JSON.
    fn entity(&mut self, json: &[u8]) -> Result<(), WalkError>;
}

/// Walks `image`'s `metadata` object: for each record name in the view's order, `name`, then
/// each of its entities.
pub fn walk(image: &Image, visitor: &mut impl Visitor) -> Result<(), WalkError> {
    MetadataView(image).serialize(Top(visitor))
}

/// Serializes the view's outer map.
struct Top<'a, V>(&'a mut V);

/// Serializes one list of the view.
struct List<'a, V>(&'a mut V);

/// Collects the entities of one list.
struct Entities<'a, V> {
    visitor: &'a mut V,
    scratch: Vec<u8>,
}

fn shape<T>(what: &str) -> Result<T, WalkError> {
    Err(WalkError::Shape(format!(
        "expected a map of lists, got {what}"
    )))
}

/// The serializer methods a walk never expects: each answers a shape error.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, WalkError> {
            shape(stringify!($method))
        })*
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), WalkError> {
            shape("an option")
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), WalkError> {
            shape("a variant")
        }
    };
}

macro_rules! scalars {
    () => {
        refuse! {
            serialize_bool(bool) -> ();
            serialize_i8(i8) -> ();
            serialize_i16(i16) -> ();
            serialize_i32(i32) -> ();
            serialize_i64(i64) -> ();
            serialize_u8(u8) -> ();
            serialize_u16(u16) -> ();
            serialize_u32(u32) -> ();
            serialize_u64(u64) -> ();
            serialize_f32(f32) -> ();
            serialize_f64(f64) -> ();
            serialize_char(char) -> ();
            serialize_str(&str) -> ();
            serialize_bytes(&[u8]) -> ();
            serialize_none() -> ();
            serialize_unit() -> ();
            serialize_unit_struct(&'static str) -> ();
            serialize_unit_variant(&'static str, u32, &'static str) -> ();
            serialize_tuple(usize) -> Impossible<(), WalkError>;
            serialize_tuple_struct(&'static str, usize) -> Impossible<(), WalkError>;
            serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), WalkError>;
            serialize_struct(&'static str, usize) -> Impossible<(), WalkError>;
            serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), WalkError>;
        }
    };
}

impl<'a, V: Visitor> Serializer for Top<'a, V> {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = Impossible<(), WalkError>;
    type SerializeTuple = Impossible<(), WalkError>;
    type SerializeTupleStruct = Impossible<(), WalkError>;
    type SerializeTupleVariant = Impossible<(), WalkError>;
    type SerializeMap = Self;
    type SerializeStruct = Impossible<(), WalkError>;
    type SerializeStructVariant = Impossible<(), WalkError>;

    scalars!();

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, WalkError> {
        shape("a list")
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, WalkError> {
        Ok(self)
    }
}

impl<V: Visitor> SerializeMap for Top<'_, V> {
    type Ok = ();
    type Error = WalkError;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), WalkError> {
        // A record name: a tiny string, the one value taken through serde_json's tree.
        match serde_json::to_value(key) {
            Ok(serde_json::Value::String(name)) => self.0.name(&name),
            _ => shape("a key that is not a string"),
        }
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WalkError> {
        value.serialize(List(&mut *self.0))
    }

    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl<'a, V: Visitor> Serializer for List<'a, V> {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = Entities<'a, V>;
    type SerializeTuple = Impossible<(), WalkError>;
    type SerializeTupleStruct = Impossible<(), WalkError>;
    type SerializeTupleVariant = Impossible<(), WalkError>;
    type SerializeMap = Impossible<(), WalkError>;
    type SerializeStruct = Impossible<(), WalkError>;
    type SerializeStructVariant = Impossible<(), WalkError>;

    scalars!();

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Entities<'a, V>, WalkError> {
        Ok(Entities {
            visitor: self.0,
            scratch: Vec::with_capacity(256),
        })
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, WalkError> {
        shape("a map inside the map")
    }
}

impl<V: Visitor> SerializeSeq for Entities<'_, V> {
    type Ok = ();
    type Error = WalkError;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WalkError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, value)
            .map_err(|e| WalkError::Shape(format!("an entity did not print: {e}")))?;
        self.visitor.entity(&self.scratch)
    }

    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}
