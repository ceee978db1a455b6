//! Errors a client sees, each with the MySQL error code and SQLSTATE a
//! client or driver expects for it.

use mysql_async::Error as BackendError;
use opensrv_mysql::ErrorKind;

/// Codes the vendored (MySQL) error list lacks: MariaDB's own, and the
/// client library's for a lost or refused connection.
const ER_CONNECTION_KILLED: u16 = 1927;
const CR_SERVER_LOST: u16 = 2013;
const CR_CONN_HOST_ERROR: u16 = 2003;
const ER_LOAD_INFILE_CAPABILITY_DISABLED: u16 = 4166;

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
    /// A statement serialized across the chain (DDL) waited for
    /// the open transactions for the session's `lock_wait_timeout`, as
    /// MariaDB's DDL waits for metadata locks.
    #[error("Lock wait timeout exceeded; try restarting transaction")]
    LockWaitTimeout,
}

impl ClientError {
    /// A server error of `kind`, with its SQLSTATE, as lockstep answers it.
    fn of_kind(kind: ErrorKind, message: impl Into<String>) -> ClientError {
        ClientError::Server {
            code: kind as u16,
            state: String::from_utf8_lossy(kind.sqlstate()).into_owned(),
            message: message.into(),
        }
    }

    /// ER_UNKNOWN_ERROR: lockstep reached a state it does not expect; the
    /// client gets an error instead of a dropped connection.
    pub fn internal(what: &str) -> ClientError {
        Self::of_kind(
            ErrorKind::ER_UNKNOWN_ERROR,
            format!("lockstep internal error: {what}"),
        )
    }

    /// A command byte lockstep does not serve (MariaDB's answer to one it
    /// does not know).
    pub fn unknown_command() -> ClientError {
        Self::of_kind(ErrorKind::ER_UNKNOWN_COM_ERROR, "Unknown command")
    }

    /// COM_STMT_EXECUTE of a statement id the session never prepared.
    pub fn unknown_prepared_statement(id: u32, command: &str) -> ClientError {
        Self::of_kind(
            ErrorKind::ER_UNKNOWN_STMT_HANDLER,
            format!("Unknown prepared statement handler ({id}) given to {command}"),
        )
    }

    /// A text of several statements of which more than one makes
    /// AUTO_INCREMENT values (`UnrepeatableBodies::auto_increment_inserts`).
    pub fn several_auto_increment_inserts() -> ClientError {
        ClientError::NotSupported(
            "a text of several statements of which more than one inserts into a table with an \
             AUTO_INCREMENT column: lockstep pins the values of one of them on every node \
             (send the inserts as statements of their own)"
                .into(),
        )
    }

    /// A text that commits by itself (`BEGIN … COMMIT`, a DDL) with a CALL
    /// and an insert into a table with an AUTO_INCREMENT column: the
    /// inserts' values are pinned by pairing statements with results,
    /// which the CALL's results make impossible (`write::serialized`).
    pub fn call_among_pinned_inserts() -> ClientError {
        ClientError::NotSupported(
            "a CALL in a text of several statements that commits by itself and inserts into a \
             table with an AUTO_INCREMENT column: lockstep could not pin the inserts' values on \
             every node (send the CALL as a statement of its own)"
                .into(),
        )
    }

    /// `LOAD DATA LOCAL INFILE` from a client that did not say it can send
    /// files (CLIENT_LOCAL_FILES): MariaDB's answer, without asking it.
    pub fn client_files_disabled() -> ClientError {
        ClientError::Server {
            code: ER_LOAD_INFILE_CAPABILITY_DISABLED,
            state: "HY000".into(),
            message: "The used command is not allowed because the MariaDB server or client has \
                      disabled the local infile capability"
                .into(),
        }
    }

    /// `LOAD DATA LOCAL INFILE` in a text of several statements: the
    /// client's file is asked for before any node runs the text.
    pub fn client_file_among_several() -> ClientError {
        ClientError::NotSupported(
            "LOAD DATA INFILE in a text of several statements (send it as a statement of its \
             own)"
                .into(),
        )
    }

    /// A server file lockstep reads on the master and journals, larger than
    /// the master lets one value be (`LOAD_FILE()` gives NULL).
    pub fn server_file_too_large() -> ClientError {
        ClientError::NotSupported(
            "LOAD DATA INFILE of a server file larger than the master's max_allowed_packet \
             through lockstep, which reads the file on the master and journals its content \
             (raise max_allowed_packet, or use LOAD DATA LOCAL INFILE)"
                .into(),
        )
    }

    /// A client file larger than lockstep holds in memory and journals.
    pub fn client_file_too_large(limit: usize) -> ClientError {
        ClientError::NotSupported(format!(
            "LOAD DATA LOCAL INFILE of a file larger than {} MiB through lockstep, which \
             journals the file's content (split the file)",
            limit >> 20
        ))
    }

    /// A write of rows a `SKIP LOCKED` read chose (`router::writes_skipped_rows`).
    pub fn writes_skipped_rows() -> ClientError {
        ClientError::NotSupported(
            "a write of the rows a SKIP LOCKED read chose: each node skips the rows its own \
             sessions hold, so each would write other rows (claim rows with SELECT … FOR \
             UPDATE SKIP LOCKED, then write them by key)"
                .into(),
        )
    }

    /// `SET PASSWORD` / `ALTER USER` of the account a statement runs as:
    /// through lockstep that is lockstep's own account on every node, and
    /// its new password would lock lockstep out of them.
    pub fn own_account_change() -> ClientError {
        ClientError::NotSupported(
            "changing the account a session runs as: through lockstep that is lockstep's own \
             account on the nodes (a lockstep user's password is set in lockstep's \
             configuration, [[users]])"
                .into(),
        )
    }

    /// A statement that would run a trigger or stored routine lockstep
    /// cannot replay alike on every node (`chain::unrepeatable_bodies`);
    /// `definition` is described (`trigger s.t, which calls UUID()`).
    pub fn unrepeatable_body(definition: &str) -> ClientError {
        ClientError::NotSupported(format!(
            "a statement that runs {definition}: lockstep cannot replay it alike on every \
             node (compute such values in the client's statement, where lockstep pins them, \
             and control transactions from the client)"
        ))
    }

    /// `SHOW LOCKSTEP REQUEST` for an id the journal does not hold.
    pub fn unknown_request(id: &str) -> ClientError {
        Self::of_kind(
            ErrorKind::ER_UNKNOWN_ERROR,
            format!("lockstep's journal has no request '{id}'"),
        )
    }

    /// What MariaDB answers a session killed with KILL CONNECTION.
    pub fn connection_killed() -> ClientError {
        ClientError::Server {
            code: ER_CONNECTION_KILLED,
            state: "70100".into(),
            message: "Connection was killed".into(),
        }
    }

    pub fn malformed_packet() -> ClientError {
        Self::of_kind(
            ErrorKind::ER_MALFORMED_PACKET,
            "Malformed communication packet",
        )
    }

    pub fn parse_error(message: impl Into<String>) -> ClientError {
        Self::of_kind(ErrorKind::ER_PARSE_ERROR, message)
    }

    pub fn deadlock() -> ClientError {
        Self::of_kind(
            ErrorKind::ER_LOCK_DEADLOCK,
            "Deadlock found when trying to get lock; try restarting transaction",
        )
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
            ClientError::BackendLost { .. } => CR_SERVER_LOST,
            ClientError::BackendUnreachable { .. } => CR_CONN_HOST_ERROR,
            ClientError::NoSuchThread(_) => ErrorKind::ER_NO_SUCH_THREAD as u16,
            ClientError::NotSupported(_) => ErrorKind::ER_NOT_SUPPORTED_YET as u16,
            // What MariaDB says when it cannot write a file.
            ClientError::JournalUnavailable(_) => ErrorKind::ER_ERROR_ON_WRITE as u16,
            // What a read-only MariaDB says to a write, which is what
            // lockstep is until a slave is synchronous.
            ClientError::NoSyncSlave(_) => ErrorKind::ER_OPTION_PREVENTS_STATEMENT as u16,
            // What MariaDB gives a DDL whose metadata lock wait timed out.
            ClientError::LockWaitTimeout => ErrorKind::ER_LOCK_WAIT_TIMEOUT as u16,
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
