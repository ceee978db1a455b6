//! The client-facing half: the MySQL protocol server (opensrv-mysql, vendored
//! and patched), authentication, and the per-client session that relays to
//! the nodes.

mod commands;
mod params;
mod query;
mod server;
pub mod session;
mod show;
mod tls;

pub use server::Frontend;
pub use tls::TlsError;

/// Takes up the statements the `retry-master` policy was still retrying
/// when lockstep last stopped (called once at start, by `app`).
pub fn resume_retries(shared: &std::sync::Arc<crate::shared::Shared>) {
    crate::write::retry_master::resume(shared);
}
