//! A load of a file on the master's machine (`LOAD DATA INFILE 'f'`,
//! without LOCAL). B, the tail and a later replay run on other machines,
//! where the file is not (or is another one, or is gone by then): each
//! would fail the statement and leave the chain. So lockstep reads the
//! file on the master once, before any node runs the statement, as
//! MariaDB's statement binary log does, and gives its bytes to every node
//! as a LOCAL file (`sql::load_data`). The master itself runs the
//! statement as the client wrote it, reading its own file: its errors are
//! the client's (without LOCAL a duplicate key or, in strict mode, a bad
//! value fails the load; with LOCAL both are warnings), and B's part is
//! undone when the master refuses. A master that passes it met no such
//! error, and the same bytes then load the same rows everywhere else.
//!
//! A file the master cannot read (absent, unreadable, outside its
//! `secure_file_priv`) is left to the master to refuse: the statement runs
//! as written, B fails it too, and the client gets MariaDB's own error.
//!
//! Left: the file read twice on the master (here, then by the load); a
//! file changed in between loads other rows there than on the others,
//! which the compare sees, and one that appears in between loads on the
//! master only (B and the tail fail it and leave the chain, logged).

use bytes::Bytes;
use mysql_async::prelude::Queryable;

use super::Driver;
use crate::error::ClientError;
use crate::protocol::control;
use crate::sql::load_data::{self, ServerFile};

/// The largest server file lockstep reads and journals, as for client files.
pub const SERVER_FILE_LIMIT: usize = 64 << 20;

impl Driver {
    /// The content of the file `file` names, read on the master; `None`
    /// when the master cannot read it (absent, unreadable, outside its
    /// `secure_file_priv`): the statement then runs as written, and fails
    /// on the master as it would directly, with MariaDB's own error.
    pub(crate) async fn read_master_file(
        &mut self,
        file: &ServerFile,
    ) -> Result<Option<Bytes>, ClientError> {
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            return Err(self.lost_master());
        };
        let query = control::read_server_file(&load_data::server_path_expression(file));
        let content: Option<Option<Vec<u8>>> = conn
            .query_first(query)
            .await
            .map_err(|e| ClientError::from_backend(&node, e))?;
        // LOAD_FILE() warns (1301) when the file exceeds max_allowed_packet:
        // the master would load it, lockstep cannot journal it.
        let too_large = conn.get_warnings() > 0;
        match content.flatten() {
            Some(content) if content.len() > SERVER_FILE_LIMIT => {
                Err(ClientError::server_file_too_large())
            }
            Some(content) => Ok(Some(Bytes::from(content))),
            None if too_large => Err(ClientError::server_file_too_large()),
            None => Ok(None),
        }
    }
}
