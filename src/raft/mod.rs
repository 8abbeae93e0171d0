//! openraft glue.
