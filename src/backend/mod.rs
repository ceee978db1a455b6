//! Connections from lockstep to the MySQL/MariaDB nodes (mysql_async).

pub mod fence;
mod node;
mod server_info;

pub use node::{Node, SessionParams};
pub use server_info::ServerInfo;
