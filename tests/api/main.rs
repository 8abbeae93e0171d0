//! The HTTP contract of `docs/` (API.md), driven against real three-node clusters, one file per
//! concern: every endpoint's success path and every error row, with the original YAKt envelope
//! and bare field objects; every error has the `{"error", "message"}` shape and appends nothing to
//! the log; concurrent conflicting writes at different nodes commit exactly once; the catch-up
//! endpoints answer both modes for every timestamp form.
//!
//! One test binary (one link) with a test per concern; each test starts its own cluster, so tests
//! run in parallel without seeing each other's writes (the error checks prove that nothing was
//! appended, which a shared cluster would break).

#[path = "../support/mod.rs"]
mod support;

mod brokers;
mod catch_up;
mod common;
mod log_reads;
mod operating;
mod producers;
mod races;
mod routing;
mod topics;
