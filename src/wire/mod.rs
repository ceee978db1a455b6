//! The client's wire format for what the nodes answer: a node's response
//! relayed as it came (`relay`), and rows and column definitions encoded
//! again in the protocol the client used (`encode`). Below both the
//! client-facing session (`frontend`) and the write protocol (`write`),
//! which relays the master's answer to a write.

pub mod encode;
pub mod relay;
