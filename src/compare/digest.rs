//! A checksum over a statement's result sets (column definitions and rows),
//! so that results from different nodes can be compared without keeping
//! them.

use mysql_async::{Column, Row};
use sha1::{Digest as _, Sha1};

pub use crate::journal::Rows;

/// Builds `Rows` as result sets stream by.
#[derive(Default)]
pub struct Digest {
    hash: Sha1,
    count: u64,
    sets: u64,
    first_insert_id: Option<u64>,
    /// Each result's AUTO_INCREMENT value in order (0: none, or rows).
    insert_ids: Vec<u64>,
}

impl Digest {
    /// A new result set begins with these columns: their names, types,
    /// flags and decimals are part of the result.
    pub fn columns(&mut self, columns: &[Column]) {
        self.sets += 1;
        self.insert_ids.push(0);
        self.hash.update(b"set");
        for c in columns {
            self.hash.update(c.name_ref());
            self.hash.update([0, c.column_type() as u8, c.decimals()]);
            self.hash.update(c.flags().bits().to_le_bytes());
        }
    }

    pub fn row(&mut self, row: &Row) {
        self.count += 1;
        self.hash.update(b"row");
        for i in 0..row.len() {
            match row.as_ref(i) {
                Some(value) => {
                    // The SQL literal is one unambiguous text per value.
                    let literal = value.as_sql(false);
                    self.hash.update((literal.len() as u64).to_le_bytes());
                    self.hash.update(literal.as_bytes());
                }
                None => self.hash.update(b"?"),
            }
        }
    }

    /// A result without rows ended with this `last_insert_id` (0: none).
    pub fn insert_id(&mut self, id: u64) {
        self.insert_ids.push(id);
        if id > 0 && self.first_insert_id.is_none() {
            self.first_insert_id = Some(id);
        }
    }

    /// Each result's AUTO_INCREMENT value, when the response had several
    /// results (a text of several statements: one each) and one made a
    /// value; else empty.
    pub fn result_insert_ids(&self) -> Vec<u64> {
        if self.insert_ids.len() > 1 && self.insert_ids.iter().any(|&id| id > 0) {
            self.insert_ids.clone()
        } else {
            Vec::new()
        }
    }

    /// The AUTO_INCREMENT value the response's first inserting statement
    /// reported: in a text of several statements (`INSERT …; SELECT
    /// LAST_INSERT_ID()`) the value a node chose, which the last result's
    /// does not carry.
    pub fn first_insert_id(&self) -> Option<u64> {
        self.first_insert_id
    }

    /// The rows seen, or None when the statement returned no result set.
    pub fn finish(self) -> Option<Rows> {
        (self.sets > 0).then(|| Rows {
            count: self.count,
            checksum: hex::encode(self.hash.finalize()),
        })
    }
}
