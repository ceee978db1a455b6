//! The write protocol's low floor: the statements lockstep sends around a
//! client's work (`control`) and the commit-number rule every write follows
//! (`commit`). The sessions (`frontend::write`) and the retrier drive it;
//! docs/write-protocol.md gives the whole protocol and why each step is
//! where it is.

pub mod commit;
pub mod control;
