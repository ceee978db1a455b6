//! lockstep: a MySQL wire-protocol middleware in front of a chain of
//! MySQL/MariaDB servers. See README.md, and docs/ for the design.

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod chain;
pub mod check;
pub mod cli;
pub mod compare;
pub mod config;
pub mod error;
pub mod fail_points;
pub mod failover;
pub mod frontend;
pub mod ha;
pub mod journal;
pub mod mariadb;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod router;
pub mod shared;
pub mod sql;
pub mod wire;
pub mod write;
