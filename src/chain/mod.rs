//! The chain of nodes behind lockstep: what every node records of its
//! commits, how a statement's outcome on a node is summarized, and the tail
//! appliers that replay committed work on the nodes after the first slave.
//!
//! The synchronous half of the write path (B first, then A) runs in the
//! client's session task: see `frontend/write.rs`.

pub mod commits;
pub mod nontransactional;
pub mod outcome;
pub mod replay_state;
pub mod tail;
