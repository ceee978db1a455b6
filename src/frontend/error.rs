//! Errors a client sees, each with the MySQL error code and SQLSTATE a
//! client or driver expects for it.

use mysql_async::Error as BackendError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node refused the statement: relayed as it is.
    #[error("{message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// The connection to the node broke: the session's state there is gone.
    #[error("Lost connection to node '{node}' during query: {reason}")]
    BackendLost { node: String, reason: String },
    #[error("Can't connect to node '{node}' ({address}): {reason}")]
    BackendUnreachable {
        node: String,
        address: String,
        reason: String,
    },
    #[error("Unknown thread id: {0}")]
    NoSuchThread(u64),
    #[error("This version of lockstep doesn't yet support '{0}'")]
    NotSupported(String),
    /// The write could not be journaled, so it was not executed anywhere.
    #[error("lockstep cannot write its journal ({0}); the statement was not executed")]
    JournalUnavailable(String),
    /// `min_sync_slaves = 1` and no slave holds the synchronous role.
    #[error(
        "lockstep refuses writes: no synchronous slave is in place ({0}) and min_sync_slaves = 1"
    )]
    NoSyncSlave(String),
    /// A statement that must run alone across the chain (DDL) waited for
    /// the open transactions for the session's `lock_wait_timeout`, as
    /// MariaDB's DDL waits for metadata locks.
    #[error("Lock wait timeout exceeded; try restarting transaction")]
    LockWaitTimeout,
}

impl ClientError {
    /// ER_UNKNOWN_ERROR: lockstep reached a state it does not expect; the
    /// client gets an error instead of a dropped connection.
    pub fn internal(what: &str) -> ClientError {
        ClientError::Server {
            code: 1105,
            state: "HY000".into(),
            message: format!("lockstep internal error: {what}"),
        }
    }

    /// Classifies a mysql_async error on node `node`: a server's own error
    /// is relayed, anything else means the connection is lost.
    ///
    /// A driver error counts as lost too: mysql_async closes its connection
    /// after any non-server error inside a command.
    pub fn from_backend(node: &str, e: BackendError) -> ClientError {
        match e {
            BackendError::Server(s) => ClientError::Server {
                code: s.code,
                state: s.state,
                message: s.message,
            },
            other => ClientError::BackendLost {
                node: node.to_string(),
                reason: other.to_string(),
            },
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ClientError::Server { code, .. } => *code,
            ClientError::BackendLost { .. } => 2013,
            ClientError::BackendUnreachable { .. } => 2003,
            ClientError::NoSuchThread(_) => 1094,
            ClientError::NotSupported(_) => 1235,
            // ER_ERROR_ON_WRITE: what MariaDB says when it cannot write a file.
            ClientError::JournalUnavailable(_) => 1026,
            // ER_OPTION_PREVENTS_STATEMENT: what a read-only MariaDB says to a
            // write, which is what lockstep is until a slave is synchronous.
            ClientError::NoSyncSlave(_) => 1290,
            // ER_LOCK_WAIT_TIMEOUT, what MariaDB gives a DDL whose metadata
            // lock wait timed out.
            ClientError::LockWaitTimeout => 1205,
        }
    }

    pub fn sqlstate(&self) -> &[u8] {
        match self {
            ClientError::Server { state, .. } => state.as_bytes(),
            ClientError::NotSupported(_) => b"42000",
            _ => b"HY000",
        }
    }

    /// After this error the session cannot go on: its backend state is lost.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            ClientError::BackendLost { .. } | ClientError::BackendUnreachable { .. }
        )
    }
}

/// The writers an error can go out on (COM_QUERY/EXECUTE answers, other
/// commands' answers, PREPARE answers), so every error is written one way.
#[async_trait::async_trait]
pub trait SendError {
    async fn send_error(self, err: &ClientError) -> std::io::Result<()>;
}

macro_rules! impl_send_error {
    ($writer:ident) => {
        #[async_trait::async_trait]
        impl<W: tokio::io::AsyncWrite + Send + Unpin> SendError for opensrv_mysql::$writer<'_, W> {
            async fn send_error(self, err: &ClientError) -> std::io::Result<()> {
                self.error_raw(err.code(), err.sqlstate(), err.to_string().as_bytes())
                    .await
            }
        }
    };
}

impl_send_error!(QueryResultWriter);
impl_send_error!(InitWriter);
impl_send_error!(StatementMetaWriter);
