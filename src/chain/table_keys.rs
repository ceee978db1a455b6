//! The order a table's rows are chosen in by `UPDATE`/`DELETE … LIMIT`
//! without `ORDER BY` (`sql::limit_order`): its primary key's columns, or
//! every column for a table without one.
//!
//! Asked of the master when such a statement first names the table, then
//! remembered until the next statement that runs alone (DDL) through
//! lockstep, which may have changed the key.

use std::collections::HashMap;
use std::sync::Mutex;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Default)]
pub struct TableKeys {
    /// (schema, table) as written → the columns to order by.
    known: Mutex<HashMap<(String, String), Vec<String>>>,
}

impl TableKeys {
    /// The remembered order of a table, if any.
    pub fn get(&self, schema: &str, table: &str) -> Option<Vec<String>> {
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
                "SELECT c.COLUMN_NAME FROM information_schema.COLUMNS c \
                 JOIN information_schema.TABLES t USING (TABLE_SCHEMA, TABLE_NAME) \
                 WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? AND t.TABLE_TYPE = 'BASE TABLE' \
                 ORDER BY c.ORDINAL_POSITION",
                (schema, table),
            )
            .await?
        } else {
            primary
        };
        if columns.is_empty() {
            return Ok(None);
        }
        self.lock()
            .insert((schema.to_string(), table.to_string()), columns.clone());
        Ok(Some(columns))
    }

    /// A DDL ran: every key may have changed.
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<String>>> {
        // Every update is one insert or clear: a poisoned map is usable.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
