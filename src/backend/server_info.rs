//! What lockstep learns from the master at startup and shows clients as its own.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

/// A collation the server knows: its id, character set and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Collation {
    charset: String,
    name: String,
}

#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The version string of the handshake, as the master sends it.
    pub version: String,
    /// The handshake's collation byte: the master's `collation_server`.
    pub default_collation: u8,
    collations: HashMap<u16, Collation>,
}

impl ServerInfo {
    pub async fn query(conn: &mut Conn) -> Result<ServerInfo, mysql_async::Error> {
        // Rows are read as `Row` and converted fallibly: mysql_async's typed
        // conversions panic on a NULL where a value was expected.
        let first: Option<Row> = conn
            .query_first("SELECT VERSION(), @@collation_server")
            .await?;
        let text = |row: &Row, i: usize| -> Option<String> { row.get_opt::<String, _>(i)?.ok() };
        let version = first.as_ref().and_then(|r| text(r, 0)).unwrap_or_default();
        let collation_server = first.as_ref().and_then(|r| text(r, 1)).unwrap_or_default();
        // MariaDB 10.10+ lists UCA-14.0 collations without an id; skip them.
        let rows: Vec<Row> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS \
                 WHERE ID IS NOT NULL AND CHARACTER_SET_NAME IS NOT NULL",
            )
            .await?;
        let collations: HashMap<u16, Collation> = rows
            .iter()
            .filter_map(|row| {
                let id = u16::try_from(row.get_opt::<u64, _>(0)?.ok()?).ok()?;
                Some((
                    id,
                    Collation {
                        charset: text(row, 1)?,
                        name: text(row, 2)?,
                    },
                ))
            })
            .collect();
        let default_collation = collations
            .iter()
            .find(|(_, c)| c.name == collation_server)
            .and_then(|(id, _)| u8::try_from(*id).ok())
            .unwrap_or(45);
        Ok(ServerInfo {
            version: handshake_version(&version),
            default_collation,
            collations,
        })
    }

    /// `SET NAMES` for a handshake's collation id; `None` for an id the server
    /// does not know (the server then keeps its default, as MariaDB does).
    pub fn set_names_for(&self, collation: u16) -> Option<String> {
        let c = self.collations.get(&collation)?;
        Some(format!("SET NAMES '{}' COLLATE '{}'", c.charset, c.name))
    }
}

/// MariaDB prefixes its handshake version with "5.5.5-" so that old MySQL
/// clients do not take 10.x for a version they cannot talk to; libmariadb
/// strips it again. Relay the same string.
fn handshake_version(version: &str) -> String {
    if version.contains("MariaDB") && !version.starts_with("5.5.5-") {
        format!("5.5.5-{version}")
    } else {
        version.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_versions_get_the_compatibility_prefix() {
        assert_eq!(
            handshake_version("10.11.6-MariaDB-0+deb12u1"),
            "5.5.5-10.11.6-MariaDB-0+deb12u1"
        );
        assert_eq!(handshake_version("8.0.36"), "8.0.36");
    }
}
