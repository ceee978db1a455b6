//! One configured node and how a client session connects to it.

use mysql_async::{Conn, Opts, OptsBuilder};

use super::ServerInfo;
use crate::config;

/// A node of the chain, as configured.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    opts: Opts,
}

/// What CLIENT_INTERACTIVE does to a new session on MariaDB, done on the
/// backend session of a client that asked for it.
const INTERACTIVE_TIMEOUT: &str = "SET SESSION wait_timeout = @@global.interactive_timeout";

/// What a client session asks of its backend connection.
#[derive(Debug, Clone, Default)]
pub struct SessionParams {
    /// Collation id the client sent in its handshake (0: server default).
    pub collation: u16,
    /// The client asked for CLIENT_FOUND_ROWS, which changes affected-row counts.
    pub found_rows: bool,
    /// The client said CLIENT_INTERACTIVE: MariaDB then gives its session
    /// `interactive_timeout` as its `wait_timeout`.
    pub interactive: bool,
    /// The client said CLIENT_LOCAL_FILES: it sends the files `LOAD DATA
    /// LOCAL INFILE` names.
    pub local_files: bool,
    /// The client asked for MariaDB's extended column metadata, which the
    /// node is then asked for too (relayed with each column).
    pub extended_metadata: bool,
    pub db: Option<String>,
}

impl Node {
    pub fn from_config(node: &config::Node) -> Result<Node, mysql_async::UrlError> {
        Ok(Node {
            name: node.name.clone(),
            opts: Opts::from_url(&node.url)?,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.opts.ip_or_hostname(), self.opts.tcp_port())
    }

    /// A connection with the node's own defaults, for lockstep's own queries.
    pub async fn connect_admin(&self) -> Result<Conn, mysql_async::Error> {
        Conn::new(self.builder()).await
    }

    /// A connection for one client session: its character set, its
    /// FOUND_ROWS choice and its default database.
    pub async fn connect_session(
        &self,
        params: &SessionParams,
        server: &ServerInfo,
    ) -> Result<Conn, mysql_async::Error> {
        // `setup` (not `init`) so that COM_RESET_CONNECTION restores the
        // handshake's character set, as MariaDB does.
        let mut setup: Vec<String> = server.set_names_for(params.collation).into_iter().collect();
        if params.interactive {
            // mysql_async cannot send CLIENT_INTERACTIVE itself.
            setup.push(INTERACTIVE_TIMEOUT.to_string());
        }
        let builder = self
            .builder()
            .client_found_rows(params.found_rows)
            .mariadb_extended_metadata(params.extended_metadata)
            .db_name(params.db.clone())
            .setup(setup);
        Conn::new(builder).await
    }

    fn builder(&self) -> OptsBuilder {
        OptsBuilder::from_opts(self.opts.clone())
            // A TCP node must stay TCP: with the default, mysql_async would
            // reconnect to the node's @@socket when it runs on this host.
            .prefer_socket(false)
            // The cache's LRU would close statements a client still uses, and
            // two prepares of the same text would share one backend id.
            .stmt_cache_size(0)
    }
}
