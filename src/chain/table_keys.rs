//! The order a table's rows are chosen in by `UPDATE`/`DELETE … LIMIT`
//! without `ORDER BY` (`sql::limit_order`): its primary key's columns, or
//! every column for a table without one. Only for InnoDB tables: there a
//! full scan already reads in primary-key order, so the order changes
//! nothing MariaDB would choose directly in the usual case. A MyISAM or Aria
//! table is read in the order of its data file, which a client may rely on
//! (MariaDB's own tests do) and which is the same on every node as long as
//! they apply the same writes in the same order (non-transactional tables
//! are outside lockstep's full guarantees anyway: README, limits).
//!
//! Asked of the master when such a statement first names the table, then
//! remembered until the next serialized statement (DDL) through
//! lockstep, which may have changed the key.

use std::collections::HashMap;
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// (schema, table) as written → the columns to order by (`None`: not
/// ordered, the table is not InnoDB).
type Known = HashMap<(String, String), Option<Vec<String>>>;

#[derive(Default)]
pub struct TableKeys {
    known: Mutex<Known>,
}

impl TableKeys {
    /// The remembered order of a table: `None` when not asked yet,
    /// `Some(None)` when the table is not ordered.
    pub fn get(&self, schema: &str, table: &str) -> Option<Option<Vec<String>>> {
        self.lock()
            .get(&(schema.to_string(), table.to_string()))
            .cloned()
    }

    /// Asks the master for a table's order and remembers it; `None` when
    /// the master does not know the table (a temporary table, a view, a
    /// typo: the statement then goes as written).
    pub async fn fetch(
        &self,
        conn: &mut Conn,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<String>>, mysql_async::Error> {
        let engine: Option<String> = conn
            .exec_first(
                "SELECT ENGINE FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
                (schema, table),
            )
            .await?;
        match engine {
            None => return Ok(None),
            Some(engine) if !engine.eq_ignore_ascii_case("InnoDB") => {
                self.remember(schema, table, None);
                return Ok(None);
            }
            Some(_) => {}
        }
        let primary: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
                 ORDER BY SEQ_IN_INDEX",
                (schema, table),
            )
            .await?;
        let columns = if primary.is_empty() {
            conn.exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            .await?
        } else {
            primary
        };
        if columns.is_empty() {
            return Ok(None);
        }
        self.remember(schema, table, Some(columns.clone()));
        Ok(Some(columns))
    }

    fn remember(&self, schema: &str, table: &str, columns: Option<Vec<String>>) {
        self.lock()
            .insert((schema.to_string(), table.to_string()), columns);
    }

    /// A DDL ran: every key may have changed.
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        // Every update is one insert or clear: a poisoned map is usable.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
