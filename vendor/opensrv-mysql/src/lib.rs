// Copyright 2021 Datafuse Labs.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// Note to developers: you can find decent overviews of the protocol at
//
//   https://github.com/cwarden/mysql-proxy/blob/master/doc/protocol.rst
//
// and
//
//   https://mariadb.com/kb/en/library/clientserver-protocol/
//
// Wireshark also does a pretty good job at parsing the MySQL protocol.

//! Patched for lockstep: see PATCHES.md for every change and its test.

// Upstream's style, kept as it is so that the diff to upstream stays about
// the fixes (value/encode.rs is unchanged upstream code).
#![allow(
    clippy::legacy_numeric_constants,
    clippy::needless_lifetimes,
    clippy::io_other_error
)]

extern crate mysql_common as myc;

use std::collections::HashMap;
use std::io;
use std::io::Write;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
#[cfg(feature = "tls")]
use tokio_rustls::rustls::ServerConfig;

pub use crate::myc::constants::{CapabilityFlags, ColumnFlags, ColumnType, StatusFlags};
#[cfg(feature = "tls")]
pub use crate::tls::{plain_run_with_options, secure_run_with_options};

mod commands;
mod errorcodes;
mod local_infile;
mod packet_reader;
mod packet_writer;
mod params;
mod resultset;
#[cfg(feature = "tls")]
mod tls;
mod value;
mod writers;

#[cfg(test)]
mod tests;

// max payload size 2^(24-1)
pub const U24_MAX: usize = 16_777_215;

/// A column definition (Protocol::ColumnDefinition41), used either to describe
/// a prepared statement parameter or an output column.
///
/// Patched for lockstep: every field of the packet is here, as bytes (names are
/// in the client's character set, not necessarily UTF-8), so a relay can pass
/// on the backend's definitions unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub schema: Vec<u8>,
    /// The table's alias.
    pub table: Vec<u8>,
    pub org_table: Vec<u8>,
    /// The column's alias.
    pub column: Vec<u8>,
    pub org_column: Vec<u8>,
    /// Collation id of the column's values.
    pub charset: u16,
    pub column_length: u32,
    pub coltype: ColumnType,
    pub colflags: ColumnFlags,
    pub decimals: u8,
    /// MariaDB's extended metadata (type and format names), sent to a
    /// client that asked for it (`ClientInfo::extended_metadata`).
    pub extended_metadata: Vec<u8>,
}

impl Column {
    /// A computed column named `name` (no table), binary collation.
    pub fn new(name: &str, coltype: ColumnType) -> Self {
        Column {
            schema: Vec::new(),
            table: Vec::new(),
            org_table: Vec::new(),
            column: name.as_bytes().to_vec(),
            org_column: Vec::new(),
            charset: 63,
            column_length: 0,
            coltype,
            colflags: ColumnFlags::empty(),
            decimals: 0,
            extended_metadata: Vec::new(),
        }
    }
}

/// QueryStatusInfo represents the status of a query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkResponse {
    /// header
    pub header: u8,
    /// affected rows in update/insert
    pub affected_rows: u64,
    /// insert_id in update/insert
    pub last_insert_id: u64,
    /// StatusFlags associated with this query
    pub status_flags: StatusFlags,
    /// Warnings
    pub warnings: u16,
    /// Extra infomation
    pub info: String,
    /// session state change information
    pub session_state_info: String,
}

/// What the client said about itself in the handshake (or COM_CHANGE_USER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub username: Vec<u8>,
    /// The capabilities both sides support.
    pub capabilities: CapabilityFlags,
    /// The collation id the client asked for.
    pub collation: u16,
    /// The default database, if the client named one.
    pub db: Option<Vec<u8>>,
    /// The client asked for MariaDB's extended column metadata.
    pub extended_metadata: bool,
}

pub use crate::errorcodes::ErrorKind;
pub use crate::local_infile::LocalInfile;
pub use crate::packet_writer::PacketWriter;
pub use crate::params::{ParamParser, ParamValue};
pub use crate::resultset::{InitWriter, QueryResultWriter, RowWriter, StatementMetaWriter};
pub use crate::value::{decode::to_naive_datetime, ToMysqlValue, Value, ValueInner};
use crate::{commands::ClientHandshake, packet_reader::PacketReader};

const SCRAMBLE_SIZE: usize = 20;
const MYSQL_NATIVE_PASSWORD: &str = "mysql_native_password";
const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
const ER_WRONG_ARGUMENTS: u16 = 1210;
const ER_MALFORMED_PACKET: u16 = 1835;
const ER_UNKNOWN_COM_ERROR: u16 = 1047;
const ER_ACCESS_DENIED_ERROR: u16 = 1045;

#[async_trait]
/// Implementors of this async-trait can be used to drive a MySQL-compatible database backend.
pub trait AsyncMysqlShim<W: Send> {
    /// The error type produced by operations on this shim.
    ///
    /// Must implement `From<io::Error>` so that transport-level errors can be lifted.
    type Error: From<io::Error>;

    /// Server version
    fn version(&self) -> String {
        // 5.1.10 because that's what Ruby's ActiveRecord requires
        "5.1.10-alpha-msql-proxy".to_string()
    }

    /// Connection id
    fn connect_id(&self) -> u32;

    /// The server's default collation id, sent in the handshake.
    fn character_set(&self) -> u8 {
        0x21
    }

    /// Status flags for the responses the intermediary makes up itself (PING,
    /// COM_STMT_RESET, COM_SET_OPTION): clients track autocommit and
    /// in-transaction from every OK packet.
    fn status_flags(&self) -> StatusFlags {
        StatusFlags::SERVER_STATUS_AUTOCOMMIT
    }

    /// get auth plugin
    fn default_auth_plugin(&self) -> &str {
        MYSQL_NATIVE_PASSWORD
    }

    /// get auth plugin
    async fn auth_plugin_for_username(&self, _user: &[u8]) -> &str {
        MYSQL_NATIVE_PASSWORD
    }

    /// The 20-byte scramble of this connection. It is asked for more than once
    /// per connection and must return the same bytes each time; it must be
    /// random per connection (patched: the published default was a constant)
    /// and must not contain `\0` or `$`.
    fn salt(&self) -> [u8; SCRAMBLE_SIZE];

    /// authenticate method for the specified plugin
    async fn authenticate(
        &self,
        auth_plugin: &str,
        username: &[u8],
        salt: &[u8],
        auth_data: &[u8],
    ) -> bool;

    /// The host part of ER_ACCESS_DENIED_ERROR's message.
    fn peer_host(&self) -> String {
        "localhost".to_string()
    }

    /// Called once the client is authenticated; must answer with `w` (OK or
    /// an error). Returning `Ok(false)` closes the connection after the answer.
    async fn on_connect<'a>(
        &'a mut self,
        client: &'a ClientInfo,
        w: InitWriter<'a, W>,
    ) -> Result<bool, Self::Error>;

    /// Called when the client issues a request to prepare `query` for later execution.
    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a [u8],
        info: StatementMetaWriter<'a, W>,
    ) -> Result<(), Self::Error>;

    /// Called when the client executes a previously prepared statement, with
    /// its parameters decoded.
    async fn on_execute<'a>(
        &'a mut self,
        id: u32,
        params: &'a [ParamValue<'a>],
        results: QueryResultWriter<'a, W>,
    ) -> Result<(), Self::Error>;

    /// Called when the client wishes to deallocate resources associated with a previously prepared
    /// statement.
    async fn on_close<'a>(&'a mut self, stmt: u32)
    where
        W: 'async_trait;

    /// Called when the client issues a query for immediate execution. The
    /// bytes are in the client's character set.
    async fn on_query<'a>(
        &'a mut self,
        query: &'a [u8],
        results: QueryResultWriter<'a, W>,
    ) -> Result<(), Self::Error>;

    /// Called on COM_INIT_DB.
    async fn on_init<'a>(
        &'a mut self,
        schema: &'a [u8],
        w: InitWriter<'a, W>,
    ) -> Result<(), Self::Error>;

    /// Called on COM_FIELD_LIST.
    async fn on_field_list<'a>(
        &'a mut self,
        table: &'a [u8],
        wildcard: &'a [u8],
        w: InitWriter<'a, W>,
    ) -> Result<(), Self::Error>;

    /// Called on COM_RESET_CONNECTION (the intermediary forgets its prepared
    /// statements itself).
    async fn on_reset_connection<'a>(&'a mut self, w: InitWriter<'a, W>)
        -> Result<(), Self::Error>;

    /// Called after COM_CHANGE_USER authenticated the new user: the session
    /// starts over as if newly connected.
    async fn on_change_user<'a>(
        &'a mut self,
        client: &'a ClientInfo,
        w: InitWriter<'a, W>,
    ) -> Result<bool, Self::Error>;

    /// Asked after every command's answer was sent: true closes the
    /// connection (a relay whose backend connection broke cannot go on, but
    /// must first get its error packet to the client).
    fn should_close(&self) -> bool {
        false
    }

    /// Called on COM_SET_OPTION, after the intermediary recorded it.
    fn on_set_multi_statements(&mut self, _enabled: bool) {}

    /// Any command the intermediary does not handle itself (COM_STATISTICS,
    /// COM_PROCESS_KILL, COM_DEBUG, …).
    /// Answer ER_UNKNOWN_COM_ERROR (1047, "Unknown command") to what the shim
    /// does not implement.
    async fn on_other_command<'a>(
        &'a mut self,
        command: u8,
        payload: &'a [u8],
        w: InitWriter<'a, W>,
    ) -> Result<(), Self::Error>;
}

/// The options which passed to AsyncMysqlIntermediary struct
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntermediaryOptions {
    /// reject connection if dbname not provided
    pub reject_connection_on_dbname_absence: bool,
}

#[derive(Default)]
struct StatementData {
    long_data: HashMap<u16, Vec<u8>>,
    bound_types: Vec<(myc::constants::ColumnType, bool)>,
    params: u16,
}

const AUTH_PLUGIN_DATA_PART_1_LENGTH: usize = 8;

/// What the server offers. Not offered: compression, LOAD DATA LOCAL (a relay
/// would have to forward the file), session tracking (the backend's session
/// state changes are not relayed), and MariaDB's extended capabilities.
/// MariaDB's extended capabilities offered: MARIADB_CLIENT_EXTENDED_METADATA.
const MARIADB_EXTENDED_METADATA: u32 = 1 << 3;

/// Without CLIENT_LONG_PASSWORD (CLIENT_MYSQL), which is how a MariaDB
/// server tells clients that its handshake carries extended capabilities.
fn server_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_LOCAL_FILES
}

fn handshake_error(e: nom::Err<nom::error::Error<&[u8]>>) -> io::Error {
    match e {
        nom::Err::Incomplete(_) => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client sent incomplete handshake",
        ),
        nom::Err::Failure(nom_error) | nom::Err::Error(nom_error) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad client handshake ({:?})", nom_error.code),
        ),
    }
}

fn peer_closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "peer terminated connection",
    )
}

/// A server that speaks the MySQL/MariaDB protocol, and can delegate client commands to a backend
/// that implements [`AsyncMysqlShim`](trait.AsyncMysqlShim.html).
pub struct AsyncMysqlIntermediary<B, S: AsyncRead + Unpin, W> {
    pub(crate) client_capabilities: CapabilityFlags,
    reject_connection_on_dbname_absence: bool,
    shim: B,
    reader: packet_reader::PacketReader<S>,
    writer: packet_writer::PacketWriter<W>,
}

impl<B, R, W> AsyncMysqlIntermediary<B, R, W>
where
    W: AsyncWrite + Send + Unpin,
    B: AsyncMysqlShim<W> + Send + Sync,
    R: AsyncRead + Send + Unpin,
{
    /// Create a new server over two one-way channels and process client commands until the client
    /// disconnects or an error occurs.
    pub async fn run_on(shim: B, stream: R, output_stream: W) -> Result<(), B::Error> {
        Self::run_with_options(shim, stream, output_stream, &Default::default()).await
    }

    /// Create a new server over two one-way channels and process client commands until the client
    /// disconnects or an error occurs, with config options.
    pub async fn run_with_options(
        mut shim: B,
        input_stream: R,
        mut output_stream: W,
        opts: &IntermediaryOptions,
    ) -> Result<(), B::Error> {
        let (_, (handshake, seq, client_capabilities, input_stream)) =
            AsyncMysqlIntermediary::init_before_ssl(
                &mut shim,
                input_stream,
                &mut output_stream,
                #[cfg(feature = "tls")]
                &None,
            )
            .await?;

        let mut mi = AsyncMysqlIntermediary {
            client_capabilities,
            reject_connection_on_dbname_absence: opts.reject_connection_on_dbname_absence,
            shim,
            reader: input_stream,
            writer: PacketWriter::new(output_stream),
        };
        if mi.init_after_ssl(handshake, seq).await? {
            mi.run().await?;
        }
        Ok(())
    }

    /// Sends the server greeting and reads the client's answer. The bool is
    /// true when the client asked to switch to TLS.
    pub async fn init_before_ssl(
        shim: &mut B,
        input_stream: R,
        output_stream: &mut W,
        #[cfg(feature = "tls")] tls_conf: &Option<std::sync::Arc<ServerConfig>>,
    ) -> Result<
        (
            bool,
            (ClientHandshake, u8, CapabilityFlags, PacketReader<R>),
        ),
        B::Error,
    > {
        let mut reader = PacketReader::new(input_stream);
        let mut writer = PacketWriter::new(output_stream);
        // https://dev.mysql.com/doc/internals/en/connection-phase-packets.html#packet-Protocol::HandshakeV10
        writer.write_all(&[10])?; // protocol 10

        writer.write_all(shim.version().as_bytes())?;
        writer.write_all(&[0x00])?;

        // connection_id (4 bytes)
        writer.write_all(&shim.connect_id().to_le_bytes())?;

        let server_capabilities = server_capabilities();
        #[cfg(feature = "tls")]
        let server_capabilities = if tls_conf.is_some() {
            server_capabilities | CapabilityFlags::CLIENT_SSL
        } else {
            server_capabilities
        };

        let server_capabilities_vec = server_capabilities.bits().to_le_bytes();
        let default_auth_plugin = shim.default_auth_plugin();
        let scramble = shim.salt();

        writer.write_all(&scramble[0..AUTH_PLUGIN_DATA_PART_1_LENGTH])?; // auth-plugin-data-part-1
        writer.write_all(&[0x00])?;

        writer.write_all(&server_capabilities_vec[..2])?; // The lower 2 bytes of the Capabilities Flags
        writer.write_all(&[shim.character_set()])?;
        writer.write_all(&shim.status_flags().bits().to_le_bytes())?;
        writer.write_all(&server_capabilities_vec[2..4])?; // The upper 2 bytes of the Capabilities Flags

        if default_auth_plugin.is_empty() {
            // no plugins
            writer.write_all(&[0x00])?;
        } else {
            writer.write_all(&((scramble.len() + 1) as u8).to_le_bytes())?; // length of the combined auth_plugin_data(scramble), if auth_plugin_data_len is > 0
        }
        // 6 bytes filler, then MariaDB's extended capabilities.
        writer.write_all(&[0x00; 6][..])?;
        writer.write_all(&MARIADB_EXTENDED_METADATA.to_le_bytes())?;

        // Part2 of the auth_plugin_data
        // $len=MAX(13, length of auth-plugin-data - 8)
        writer.write_all(&scramble[AUTH_PLUGIN_DATA_PART_1_LENGTH..])?; // 12 bytes
        writer.write_all(&[0x00])?;

        // Plugin name
        writer.write_all(default_auth_plugin.as_bytes())?;
        writer.write_all(&[0x00])?;
        writer.end_packet().await?;
        writer.flush_all().await?;

        let (seq, handshake) = reader.next_async().await?.ok_or_else(peer_closed)?;
        let handshake = commands::client_handshake(&handshake, false)
            .map_err(handshake_error)?
            .1;

        let wants_tls = handshake.capabilities.contains(CapabilityFlags::CLIENT_SSL);
        #[cfg(not(feature = "tls"))]
        if wants_tls {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "client requested SSL despite us not advertising support for it",
            )
            .into());
        }
        #[cfg(feature = "tls")]
        if wants_tls && tls_conf.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "client requested TLS, which is not configured",
            )
            .into());
        }

        Ok((wants_tls, (handshake, seq, server_capabilities, reader)))
    }

    /// Authenticates the client and lets the shim set up its session. Returns
    /// whether the connection goes on to the command phase.
    pub async fn init_after_ssl(
        &mut self,
        #[cfg(feature = "tls")] mut handshake: ClientHandshake,
        #[cfg(not(feature = "tls"))] handshake: ClientHandshake,
        mut seq: u8,
    ) -> Result<bool, B::Error> {
        #[cfg(feature = "tls")]
        if handshake.capabilities.contains(CapabilityFlags::CLIENT_SSL) {
            let (tls_seq, hs) = self.reader.next_async().await?.ok_or_else(peer_closed)?;
            seq = tls_seq;
            handshake = commands::client_handshake(&hs, true)
                .map_err(handshake_error)?
                .1;
        }
        self.writer.set_seq(seq.wrapping_add(1));

        if !handshake
            .capabilities
            .contains(CapabilityFlags::CLIENT_PROTOCOL_41)
        {
            let err = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "Required capability: CLIENT_PROTOCOL_41, please upgrade your MySQL client version",
            );
            return Err(err.into());
        }

        // The server capabilities are in `client_capabilities` until now: keep
        // only what both sides support, or we would write packets in a format
        // the client does not expect (e.g. session tracking).
        self.client_capabilities &= handshake.capabilities;
        self.writer.extended_metadata =
            handshake.mariadb_capabilities & MARIADB_EXTENDED_METADATA != 0;
        let username = handshake.username.clone().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "handshake without user name")
        })?;
        if !self
            .authenticate(
                &username,
                &handshake.auth_plugin,
                handshake.auth_response.clone(),
                seq,
            )
            .await?
        {
            return Ok(false);
        }

        let client = ClientInfo {
            username,
            capabilities: self.client_capabilities,
            collation: handshake.collation,
            db: handshake.db.clone().filter(|db| !db.is_empty()),
            extended_metadata: self.writer.extended_metadata,
        };
        let accepted = if client.db.is_none() && self.reject_connection_on_dbname_absence {
            writers::write_err(
                ErrorKind::ER_DATABASE_NAME,
                "database required on connection".as_bytes(),
                &mut self.writer,
            )
            .await?;
            false
        } else {
            let w = InitWriter {
                client_capabilities: self.client_capabilities,
                writer: &mut self.writer,
            };
            self.shim.on_connect(&client, w).await?
        };
        self.writer.flush_all().await?;
        Ok(accepted)
    }

    /// Checks the client's credentials, switching it to the expected auth
    /// plugin first when it used another one (MySQL 8 clients default to
    /// caching_sha2_password). On failure the client gets ER_ACCESS_DENIED_ERROR
    /// in MySQL's wording and false is returned.
    async fn authenticate(
        &mut self,
        username: &[u8],
        client_plugin: &[u8],
        mut auth_response: Vec<u8>,
        seq: u8,
    ) -> Result<bool, B::Error> {
        let scramble = self.shim.salt();
        let expected_plugin = self.shim.auth_plugin_for_username(username).await;
        if !expected_plugin.is_empty()
            && !client_plugin.is_empty()
            && client_plugin != expected_plugin.as_bytes()
        {
            self.writer.set_seq(seq.wrapping_add(1));
            self.writer.write_all(&[0xfe])?;
            self.writer.write_all(expected_plugin.as_bytes())?;
            self.writer.write_all(&[0x00])?;
            self.writer.write_all(&scramble)?;
            self.writer.write_all(&[0x00])?;
            self.writer.end_packet().await?;
            self.writer.flush_all().await?;

            let (rseq, data) = self.reader.next_async().await?.ok_or_else(peer_closed)?;
            self.writer.set_seq(rseq.wrapping_add(1));
            auth_response = data;
        }

        if self
            .shim
            .authenticate(expected_plugin, username, &scramble, &auth_response)
            .await
        {
            return Ok(true);
        }
        let msg = format!(
            "Access denied for user '{}'@'{}' (using password: {})",
            String::from_utf8_lossy(username),
            self.shim.peer_host(),
            if auth_response.is_empty() {
                "NO"
            } else {
                "YES"
            }
        );
        writers::write_err_raw(
            ER_ACCESS_DENIED_ERROR,
            b"28000",
            msg.as_bytes(),
            &mut self.writer,
        )
        .await?;
        self.writer.flush_all().await?;
        Ok(false)
    }

    fn init_writer(&mut self) -> InitWriter<'_, W> {
        InitWriter {
            client_capabilities: self.client_capabilities,
            writer: &mut self.writer,
        }
    }

    async fn run(mut self) -> Result<(), B::Error> {
        let mut stmts: HashMap<u32, StatementData> = HashMap::new();
        while let Some((seq, packet)) = self.reader.next_async().await? {
            self.writer.set_seq(seq.wrapping_add(1));
            let go_on = match commands::parse(&packet) {
                Ok(cmd) => self.dispatch(cmd, &mut stmts).await?,
                Err(commands::MalformedCommand(byte)) => {
                    let msg = format!("Malformed communication packet (command 0x{byte:02x})");
                    self.init_writer()
                        .error_raw(ER_MALFORMED_PACKET, b"08S01", msg.as_bytes())
                        .await?;
                    true
                }
            };
            self.writer.flush_all().await?;
            if !go_on || self.shim.should_close() {
                break;
            }
        }
        Ok(())
    }

    /// Handles one command; false ends the connection.
    async fn dispatch(
        &mut self,
        cmd: commands::Command<'_>,
        stmts: &mut HashMap<u32, StatementData>,
    ) -> Result<bool, B::Error> {
        use crate::commands::Command;
        match cmd {
            Command::Query(q) => {
                let w = QueryResultWriter::new(&mut self.writer, false, self.client_capabilities)
                    .reading_from(&mut self.reader);
                self.shim.on_query(q, w).await?;
            }
            Command::Prepare(q) => {
                let w = StatementMetaWriter {
                    writer: &mut self.writer,
                    stmts,
                    client_capabilities: self.client_capabilities,
                };
                self.shim.on_prepare(q, w).await?;
            }
            Command::Execute { stmt, params } => self.execute(stmt, params, stmts).await?,
            Command::SendLongData { stmt, param, data } => {
                // Never answered, as in MariaDB; data for an unknown statement is dropped.
                if let Some(state) = stmts.get_mut(&stmt) {
                    state.long_data.entry(param).or_default().extend(data);
                }
            }
            Command::Close(stmt) => {
                self.shim.on_close(stmt).await;
                stmts.remove(&stmt);
            }
            Command::ResetStmt(stmt) => match stmts.get_mut(&stmt) {
                Some(state) => {
                    state.long_data.clear();
                    let ok = OkResponse {
                        status_flags: self.shim.status_flags(),
                        ..Default::default()
                    };
                    self.init_writer().ok_with(ok).await?;
                }
                None => self.unknown_statement(stmt, "mysqld_stmt_reset").await?,
            },
            Command::SetOption(option) => {
                // 0 = MYSQL_OPTION_MULTI_STATEMENTS_ON, 1 = _OFF.
                if option > 1 {
                    self.init_writer()
                        .error_raw(ER_UNKNOWN_COM_ERROR, b"08S01", b"Unknown command")
                        .await?;
                } else {
                    let enabled = option == 0;
                    self.client_capabilities
                        .set(CapabilityFlags::CLIENT_MULTI_STATEMENTS, enabled);
                    self.shim.on_set_multi_statements(enabled);
                    let status = self.shim.status_flags();
                    self.init_writer().eof(status).await?;
                }
            }
            Command::ResetConnection => {
                stmts.clear();
                let w = InitWriter {
                    client_capabilities: self.client_capabilities,
                    writer: &mut self.writer,
                };
                self.shim.on_reset_connection(w).await?;
            }
            Command::ChangeUser(payload) => return self.change_user(payload, stmts).await,
            Command::ListFields { table, wildcard } => {
                let w = InitWriter {
                    client_capabilities: self.client_capabilities,
                    writer: &mut self.writer,
                };
                self.shim.on_field_list(table, wildcard, w).await?;
            }
            Command::Init(schema) => {
                let w = InitWriter {
                    client_capabilities: self.client_capabilities,
                    writer: &mut self.writer,
                };
                self.shim.on_init(schema, w).await?;
            }
            Command::Ping => {
                let ok = OkResponse {
                    status_flags: self.shim.status_flags(),
                    ..Default::default()
                };
                self.init_writer().ok_with(ok).await?;
            }
            Command::Quit => return Ok(false),
            Command::Other(byte, payload) => {
                let w = InitWriter {
                    client_capabilities: self.client_capabilities,
                    writer: &mut self.writer,
                };
                self.shim.on_other_command(byte, payload, w).await?;
            }
        }
        Ok(true)
    }

    async fn unknown_statement(&mut self, stmt: u32, command: &str) -> io::Result<()> {
        let msg = format!("Unknown prepared statement handler ({stmt}) given to {command}");
        self.init_writer()
            .error_raw(ER_UNKNOWN_STMT_HANDLER, b"HY000", msg.as_bytes())
            .await
    }

    async fn execute(
        &mut self,
        stmt: u32,
        params: &[u8],
        stmts: &mut HashMap<u32, StatementData>,
    ) -> Result<(), B::Error> {
        let Some(state) = stmts.get_mut(&stmt) else {
            self.unknown_statement(stmt, "mysqld_stmt_execute").await?;
            return Ok(());
        };
        match params::ParamParser::new(params, state).parse() {
            Ok(values) => {
                let w = QueryResultWriter::new(&mut self.writer, true, self.client_capabilities);
                self.shim.on_execute(stmt, &values, w).await?;
            }
            Err(_) => {
                self.init_writer()
                    .error_raw(
                        ER_WRONG_ARGUMENTS,
                        b"HY000",
                        b"Incorrect arguments to mysqld_stmt_execute",
                    )
                    .await?;
            }
        }
        if let Some(state) = stmts.get_mut(&stmt) {
            state.long_data.clear();
        }
        Ok(())
    }

    /// COM_CHANGE_USER: authenticate again (a failure closes the connection,
    /// as MariaDB does) and start a fresh session.
    async fn change_user(
        &mut self,
        payload: &[u8],
        stmts: &mut HashMap<u32, StatementData>,
    ) -> Result<bool, B::Error> {
        let Some(request) = commands::change_user(payload, self.client_capabilities) else {
            self.init_writer()
                .error_raw(
                    ER_MALFORMED_PACKET,
                    b"08S01",
                    b"Malformed communication packet",
                )
                .await?;
            return Ok(true);
        };
        let seq = self.writer.seq().wrapping_sub(1);
        if !self
            .authenticate(
                &request.username,
                &request.auth_plugin,
                request.auth_response,
                seq,
            )
            .await?
        {
            return Ok(false);
        }
        stmts.clear();
        let client = ClientInfo {
            username: request.username,
            capabilities: self.client_capabilities,
            collation: request.collation.unwrap_or(0),
            db: request.db,
            extended_metadata: self.writer.extended_metadata,
        };
        let w = InitWriter {
            client_capabilities: self.client_capabilities,
            writer: &mut self.writer,
        };
        self.shim.on_change_user(&client, w).await
    }
}
