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
