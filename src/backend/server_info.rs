//! What lockstep learns from the master at startup and shows clients as its own.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

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
        let (version, collation_server): (String, String) = conn
            .query_first("SELECT VERSION(), @@collation_server")
            .await?
            .unwrap_or_default();
        let rows: Vec<(Option<u64>, String, String)> = conn
            .query(
                "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS",
            )
            .await?;
        let collations: HashMap<u16, Collation> = rows
            .into_iter()
            .filter_map(|(id, charset, name)| {
                Some((u16::try_from(id?).ok()?, Collation { charset, name }))
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
