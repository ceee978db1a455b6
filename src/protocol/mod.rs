//! The write protocol's low floor: the statements lockstep sends around a
//! client's work (`control`) and the commit-number rule every write follows
//! (`commit`), how a restart tells which nodes ran a serialized statement
//! lockstep stopped in the middle of (`binlog_marks`), which AUTO_INCREMENT value a statement made and the nodes
//! after it pin (`insert_id`), and the rules that keep statements which
//! commit implicitly (DDL) in the master's order (`serialized`). The sessions (`write`)
//! and the retrier drive it; docs/write-protocol.md gives the whole
//! protocol and why each step is where it is.

pub mod binlog_marks;
pub mod commit;
pub mod control;
pub mod insert_id;
pub mod serialized;
pub mod text_inserts;
