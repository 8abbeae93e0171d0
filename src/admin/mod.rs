//! What the `yakt` subcommands other than `node` do, as a library: look at a cluster and change
//! its membership over HTTP, and run a local cluster of `yakt node` child processes.

pub mod http;
pub mod local_cluster;
pub mod members;
pub mod status;

pub use http::{AdminClient, AdminError};
