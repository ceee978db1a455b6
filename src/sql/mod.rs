//! Reading SQL text: a tokenizer view and the few statements lockstep answers
//! or rewrites itself. Everything else is relayed untouched.

pub mod ddl_tables;
pub mod intercept;
pub mod lexer;
pub mod limit_order;
pub mod load_data;
pub mod node_variables;
pub mod on_duplicate;
pub mod quote;
pub mod sequences;
pub mod unpinnable;
