//! Tables in engines without transactions (MyISAM, Aria, MEMORY, …): a
//! write to them cannot be undone on B when A refuses it, nor held back
//! until A commits. lockstep keeps them working and says so, once per table.

use std::collections::HashSet;
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tracing::warn;

use crate::sql::lexer::lex;

#[derive(Default)]
pub struct NonTransactional {
    /// Lower-cased names of non-transactional tables (any schema).
    tables: Mutex<HashSet<String>>,
    warned: Mutex<HashSet<String>>,
    /// No list was read: any table may be one (`unknown`).
    unknown: bool,
}

impl NonTransactional {
    /// For a replay onto a server whose tables the journal itself creates:
    /// every table is taken for one that cannot be rolled back.
    pub fn unknown() -> NonTransactional {
        NonTransactional {
            unknown: true,
            ..NonTransactional::default()
        }
    }

    /// Re-reads the list from the master (at start and after DDL).
    pub async fn refresh(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        let rows: Vec<Row> = conn
            .query(
                "SELECT LOWER(t.TABLE_NAME) FROM information_schema.TABLES t \
                 JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE \
                 WHERE e.TRANSACTIONS = 'NO' AND t.TABLE_TYPE = 'BASE TABLE' \
                 AND t.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
            )
            .await?;
        let names = rows
            .iter()
            .filter_map(|r| r.get_opt::<String, usize>(0).and_then(Result::ok));
        if let Ok(mut tables) = self.tables.lock() {
            *tables = names.collect();
        }
        Ok(())
    }

    /// Whether the text names such a table.
    pub fn named_in(&self, sql: &[u8]) -> bool {
        self.unknown || !self.names(sql).is_empty()
    }

    fn names(&self, sql: &[u8]) -> Vec<String> {
        let Ok(tables) = self.tables.lock() else {
            return Vec::new();
        };
        if tables.is_empty() {
            return Vec::new();
        }
        let Some(lexemes) = lex(sql) else {
            return Vec::new();
        };
        lexemes
            .iter()
            .filter_map(|l| match &l.token {
                sqlparser::tokenizer::Token::Word(w) => Some(w.value.to_lowercase()),
                _ => None,
            })
            .filter(|w| tables.contains(w))
            .collect()
    }

    /// Logs a warning the first time a write names such a table.
    pub fn warn_if_named(&self, sql: &[u8]) {
        let named = self.names(sql);
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        for table in named {
            if warned.insert(table.clone()) {
                warn!(
                    %table,
                    "writes to this non-transactional table cannot be undone on the synchronous \
                     slave when the master refuses them, and are visible there before the master \
                     commits; use InnoDB for zero-divergence guarantees"
                );
            }
        }
    }
}
