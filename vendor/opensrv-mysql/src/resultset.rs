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

//! Writers for the responses to client commands.
//!
//! Patched for lockstep (see PATCHES.md, "result sets"): terminators carry the
//! backend's status flags and warnings, an OK terminator (CLIENT_DEPRECATE_EOF)
//! gets SERVER_MORE_RESULTS_EXISTS when another result follows, errors carry any
//! code, and rows can be written pre-encoded (a relay keeps the backend's bytes).

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::io::{self, Write};

use byteorder::WriteBytesExt;
use mysql_common::constants::{CapabilityFlags, ColumnFlags, StatusFlags};
use tokio::io::AsyncWrite;

use crate::local_infile::{ClientPackets, LocalInfile};
use crate::packet_writer::PacketWriter;
use crate::value::ToMysqlValue;
use crate::{writers, OkResponse};
use crate::{Column, ErrorKind, StatementData};

/// Convenience type for responding to a client `USE <db>` command.
pub struct InitWriter<'a, W> {
    pub(crate) client_capabilities: CapabilityFlags,
    pub(crate) writer: &'a mut PacketWriter<W>,
}

impl<'a, W: 'a + AsyncWrite + Unpin> InitWriter<'a, W> {
    /// Tell client that database context has been changed
    pub async fn ok(self) -> io::Result<()> {
        writers::write_ok_packet(self.writer, self.client_capabilities, OkResponse::default()).await
    }

    /// Tell client that there was a problem changing the database context.
    /// Although you can return any valid MySQL error code you probably want
    /// to keep it similar to the MySQL server and issue either a
    /// `ErrorKind::ER_BAD_DB_ERROR` or a `ErrorKind::ER_DBACCESS_DENIED_ERROR`.
    pub async fn error<E>(self, kind: ErrorKind, msg: &E) -> io::Result<()>
    where
        E: Borrow<[u8]> + ?Sized,
    {
        writers::write_err(kind, msg.borrow(), self.writer).await
    }

    /// Tell the client the command succeeded, with the given OK packet.
    pub async fn ok_with(self, ok: OkResponse) -> io::Result<()> {
        writers::write_ok_packet(self.writer, self.client_capabilities, ok).await
    }

    /// Reply with an error of any code and SQLSTATE.
    pub async fn error_raw(self, code: u16, sqlstate: &[u8], msg: &[u8]) -> io::Result<()> {
        writers::write_err_raw(code, sqlstate, msg, self.writer).await
    }

    /// Reply with an EOF packet (an 0xFE OK under CLIENT_DEPRECATE_EOF), as
    /// MariaDB answers COM_SET_OPTION and COM_DEBUG.
    pub async fn eof(self, status: StatusFlags) -> io::Result<()> {
        if self
            .client_capabilities
            .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
        {
            let ok = OkResponse {
                header: 0xfe,
                status_flags: status,
                ..Default::default()
            };
            writers::write_ok_packet(self.writer, self.client_capabilities, ok).await
        } else {
            writers::write_eof_packet(self.writer, status, 0).await
        }
    }

    /// Reply to COM_FIELD_LIST with these column definitions.
    pub async fn field_list(self, columns: &[Column], status: StatusFlags) -> io::Result<()> {
        writers::write_field_list(columns, self.writer, self.client_capabilities, status).await
    }

    /// Reply with one raw packet payload (COM_STATISTICS answers with a bare string).
    pub async fn raw_packet(self, payload: &[u8]) -> io::Result<()> {
        self.writer.write_all(payload)?;
        self.writer.end_packet().await
    }
}

/// Convenience type for responding to a client `PREPARE` command.
///
/// This type should not be dropped without calling
/// [`reply`](struct.StatementMetaWriter.html#method.reply) or
/// [`error`](struct.StatementMetaWriter.html#method.error).
#[must_use]
pub struct StatementMetaWriter<'a, W> {
    pub(crate) writer: &'a mut PacketWriter<W>,
    pub(crate) stmts: &'a mut HashMap<u32, StatementData>,
    pub(crate) client_capabilities: CapabilityFlags,
}

impl<'a, W: AsyncWrite + Unpin + 'a> StatementMetaWriter<'a, W> {
    /// Reply to the client with the given meta-information.
    ///
    /// `id` is a statement identifier that the client should supply when it later wants to execute
    /// this statement. `params` is a set of [`Column`](struct.Column.html) descriptors for the
    /// parameters the client must provide when executing the prepared statement. `columns` is a
    /// second set of [`Column`](struct.Column.html) descriptors for the values that will be
    /// returned in each row then the statement is later executed.
    pub async fn reply<'c, PI, CI>(self, id: u32, params: PI, columns: CI) -> io::Result<()>
    where
        PI: IntoIterator<Item = &'c Column>,
        CI: IntoIterator<Item = &'c Column>,
        <PI as IntoIterator>::IntoIter: ExactSizeIterator,
        <CI as IntoIterator>::IntoIter: ExactSizeIterator,
    {
        let params = params.into_iter();
        self.stmts.insert(
            id,
            StatementData {
                params: params.len() as u16,
                ..Default::default()
            },
        );
        writers::write_prepare_ok(id, params, columns, self.writer, self.client_capabilities).await
    }

    /// Reply to the client's `PREPARE` with an error.
    pub async fn error<E>(self, kind: ErrorKind, msg: &E) -> io::Result<()>
    where
        E: Borrow<[u8]> + ?Sized,
    {
        writers::write_err(kind, msg.borrow(), self.writer).await
    }

    /// Reply to the client's `PREPARE` with an error of any code and SQLSTATE.
    pub async fn error_raw(self, code: u16, sqlstate: &[u8], msg: &[u8]) -> io::Result<()> {
        writers::write_err_raw(code, sqlstate, msg, self.writer).await
    }
}

enum Finalizer {
    Ok(OkResponse),
    Eof { status: StatusFlags, warnings: u16 },
}

/// Convenience type for providing query results to clients.
///
/// This type should not be dropped without calling
/// [`start`](struct.QueryResultWriter.html#method.start),
/// [`completed`](struct.QueryResultWriter.html#method.completed), or
/// [`error`](struct.QueryResultWriter.html#method.error).
///
/// To send multiple resultsets, use
/// [`RowWriter::finish_one`](struct.RowWriter.html#method.finish_one) and
/// [`complete_one`](struct.QueryResultWriter.html#method.complete_one). These are similar to
/// `RowWriter::finish` and `completed`, but both eventually yield back the `QueryResultWriter` so
/// that another resultset can be sent. To indicate that no more resultset will be sent, call
/// [`no_more_results`](struct.QueryResultWriter.html#method.no_more_results). All methods on
/// `QueryResultWriter` (except `no_more_results`) automatically start a new resultset. The
#[must_use]
pub struct QueryResultWriter<'a, W> {
    // XXX: specialization instead?
    pub(crate) is_bin: bool,
    pub(crate) client_capabilities: CapabilityFlags,
    pub(crate) writer: &'a mut PacketWriter<W>,
    last_end: Option<Finalizer>,
    /// The client's connection, for a COM_QUERY that reads the content of
    /// a `LOAD DATA LOCAL INFILE` from it.
    client: Option<&'a mut (dyn ClientPackets + 'a)>,
}

impl<'a, W: AsyncWrite + Unpin> QueryResultWriter<'a, W> {
    /// A writer of one command's answer. Public (lockstep patch 19) so that
    /// a shim's own logic can be driven without a client connection, over a
    /// `PacketWriter` of memory.
    pub fn new(
        writer: &'a mut PacketWriter<W>,
        is_bin: bool,
        client_capabilities: CapabilityFlags,
    ) -> Self {
        QueryResultWriter {
            is_bin,
            client_capabilities,
            writer,
            last_end: None,
            client: None,
        }
    }

    pub(crate) fn reading_from(mut self, client: &'a mut (dyn ClientPackets + 'a)) -> Self {
        self.client = Some(client);
        self
    }

    /// Asks the client for the content of `file_name` (a `LOAD DATA LOCAL
    /// INFILE`) and reads it, keeping at most `limit` bytes: the client
    /// sends it all, ended by an empty packet, whatever the server does
    /// with it. The statement's answer (OK or error) follows on this
    /// writer. A client that cannot read the file sends no content.
    pub async fn local_infile(
        &mut self,
        file_name: &[u8],
        limit: usize,
    ) -> io::Result<LocalInfile> {
        let Some(client) = self.client.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "LOCAL INFILE is read only during a COM_QUERY",
            ));
        };
        if self.last_end.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "LOCAL INFILE asked after a result of the same command",
            ));
        }
        self.writer.write_all(&[0xFB])?;
        self.writer.write_all(file_name)?;
        self.writer.end_packet().await?;
        self.writer.flush_all().await?;
        let mut infile = LocalInfile::default();
        loop {
            let Some((seq, packet)) = client.next_packet().await? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection while sending a LOCAL INFILE",
                ));
            };
            self.writer.set_seq(seq.wrapping_add(1));
            if packet.is_empty() {
                return Ok(infile);
            }
            if infile.content.len() + packet.len() > limit {
                infile.truncated = true;
            } else {
                infile.content.extend_from_slice(&packet);
            }
        }
    }

    async fn finalize(&mut self, more_exists: bool) -> io::Result<()> {
        match self.last_end.take() {
            None => Ok(()),
            Some(Finalizer::Ok(mut ok_packet)) => {
                ok_packet
                    .status_flags
                    .set(StatusFlags::SERVER_MORE_RESULTS_EXISTS, more_exists);
                writers::write_ok_packet(self.writer, self.client_capabilities, ok_packet).await
            }
            Some(Finalizer::Eof {
                mut status,
                warnings,
            }) => {
                status.set(StatusFlags::SERVER_MORE_RESULTS_EXISTS, more_exists);
                writers::write_eof_packet(self.writer, status, warnings).await
            }
        }
    }

    /// Reply with an error of any code and SQLSTATE (after any earlier result
    /// sets of this response).
    pub async fn error_raw(mut self, code: u16, sqlstate: &[u8], msg: &[u8]) -> io::Result<()> {
        self.finalize(true).await?;
        writers::write_err_raw(code, sqlstate, msg, self.writer).await?;
        self.send_now().await
    }

    /// Reply with an error in place of the result still held back (the last
    /// statement's OK, or the terminator of its rows): a relay that learns
    /// only after the node's response that the statement failed after all
    /// (its commit failed) must not show it as a success.
    pub async fn error_instead_raw(
        mut self,
        code: u16,
        sqlstate: &[u8],
        msg: &[u8],
    ) -> io::Result<()> {
        self.last_end = None;
        writers::write_err_raw(code, sqlstate, msg, self.writer).await?;
        self.send_now().await
    }

    /// Like `no_more_results`, but the last result's terminator carries these
    /// status flags and warnings: a relay learns the final ones only after the
    /// backend's whole response has been read.
    pub async fn no_more_results_with(
        mut self,
        status: StatusFlags,
        warnings: u16,
    ) -> io::Result<()> {
        match self.last_end.as_mut() {
            Some(Finalizer::Ok(ok)) => {
                ok.status_flags = status;
                ok.warnings = warnings;
            }
            Some(Finalizer::Eof {
                status: s,
                warnings: w,
            }) => {
                *s = status;
                *w = warnings;
            }
            None => {}
        }
        self.finalize(false).await?;
        self.send_now().await
    }

    /// Start a resultset response to the client that conforms to the given `columns`.
    ///
    /// Note that if no columns are emitted, any written rows are ignored.
    ///
    /// See [`RowWriter`](struct.RowWriter.html).
    pub async fn start(mut self, columns: &'a [Column]) -> io::Result<RowWriter<'a, W>> {
        self.finalize(true).await?;
        RowWriter::new(self, Cow::Borrowed(columns)).await
    }

    /// Like `start`, with columns the writer keeps (a relay builds them per
    /// result set).
    pub async fn start_owned(mut self, columns: Vec<Column>) -> io::Result<RowWriter<'a, W>> {
        self.finalize(true).await?;
        RowWriter::new(self, Cow::Owned(columns)).await
    }

    /// Send an empty resultset response to the client indicating that `rows` rows were affected by
    /// the query in this resultset. `last_insert_id` may be given to communiate an identifier for
    /// a client's most recent insertion.
    pub async fn complete_one(
        mut self,
        ok_packet: OkResponse,
    ) -> io::Result<QueryResultWriter<'a, W>> {
        self.finalize(true).await?;
        self.last_end = Some(Finalizer::Ok(ok_packet));
        Ok(self)
    }

    /// Send an empty resultset response to the client indicating that `rows` rows were affected by
    /// the query. `last_insert_id` may be given to communiate an identifier for a client's most
    /// recent insertion.
    pub async fn completed(self, ok_packet: OkResponse) -> io::Result<()> {
        self.complete_one(ok_packet).await?.no_more_results().await
    }

    /// Reply to the client's query with an error.
    pub async fn error<E>(mut self, kind: ErrorKind, msg: &E) -> io::Result<()>
    where
        E: Borrow<[u8]> + ?Sized,
    {
        self.finalize(true).await?;
        writers::write_err(kind, msg.borrow(), self.writer).await?;
        self.send_now().await
    }

    /// Send the last bits of the last resultset to the client, and indicate that there are no more
    /// resultsets coming.
    pub async fn no_more_results(mut self) -> io::Result<()> {
        self.finalize(false).await?;
        self.send_now().await
    }

    /// The answer is complete: it goes to the client now, not when the
    /// shim's handler returns (lockstep patch 20). A shim may go on working
    /// after answering (lockstep commits on its second node after the
    /// client has the master's answer); until then the answer sat in the
    /// buffer and the client waited for that work too.
    async fn send_now(&mut self) -> io::Result<()> {
        self.writer.flush_all().await
    }
}

/// Convenience type for sending rows of a resultset to a client.
///
/// Rows can either be written out one column at a time (using
/// [`write_col`](struct.RowWriter.html#method.write_col) and
/// [`end_row`](struct.RowWriter.html#method.end_row)), or one row at a time (using
/// [`write_row`](struct.RowWriter.html#method.write_row)).
///
/// This type *may* be dropped without calling
/// [`write_row`](struct.RowWriter.html#method.write_row) or
/// [`finish`](struct.RowWriter.html#method.finish). However, in this case, the program may panic
/// if an I/O error occurs when sending the end-of-records marker to the client. To avoid this,
/// call [`finish`](struct.RowWriter.html#method.finish) explicitly.
#[must_use]
pub struct RowWriter<'a, W: AsyncWrite + Unpin> {
    client_capabilities: CapabilityFlags,
    result: Option<QueryResultWriter<'a, W>>,
    bitmap_len: usize,
    data: Vec<u8>,
    columns: Cow<'a, [Column]>,

    // next column to write for the current row
    // NOTE: (ab)used to track number of *rows* for a zero-column resultset
    col: usize,
    finished: bool,
}

impl<'a, W> RowWriter<'a, W>
where
    W: 'a + AsyncWrite + Unpin,
{
    async fn new(
        result: QueryResultWriter<'a, W>,
        columns: Cow<'a, [Column]>,
    ) -> io::Result<RowWriter<'a, W>> {
        let bitmap_len = (columns.len() + 7 + 2) / 8;
        let client_capabilities = result.client_capabilities;
        let mut rw = RowWriter {
            client_capabilities,
            result: Some(result),
            columns,
            bitmap_len,
            data: Vec::new(),

            col: 0,

            finished: false,
        };
        rw.start().await?;
        Ok(rw)
    }

    #[inline]
    async fn start(&mut self) -> io::Result<()> {
        if !self.columns.is_empty() {
            writers::column_definitions(
                self.columns.iter(),
                self.result.as_mut().unwrap().writer,
                self.client_capabilities,
            )
            .await?;
        }

        Ok(())
    }

    /// Write a value to the next column of the current row as a part of this resultset.
    ///
    /// If you do not call [`end_row`](struct.RowWriter.html#method.end_row) after the last row,
    /// any errors that occur when writing out the last row will be returned by
    /// [`finish`](struct.RowWriter.html#method.finish). If you do not call `finish` either, any
    /// errors will cause a panic when the `RowWriter` is dropped.
    ///
    /// Note that the row *must* conform to the column specification provided to
    /// [`QueryResultWriter::start`](struct.QueryResultWriter.html#method.start). If it does not,
    /// this method will return an error indicating that an invalid value type or specification was
    /// provided.
    pub fn write_col<T>(&mut self, v: T) -> io::Result<()>
    where
        T: ToMysqlValue,
    {
        if self.columns.is_empty() {
            return Ok(());
        }

        if self.result.as_mut().unwrap().is_bin {
            if self.col == 0 {
                self.result.as_mut().unwrap().writer.write_u8(0x00)?;

                // leave space for nullmap
                self.data.resize(self.bitmap_len, 0);
            }

            let c = self.columns.get(self.col).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "row has more columns than specification",
                )
            })?;
            if v.is_null() {
                if c.colflags.contains(ColumnFlags::NOT_NULL_FLAG) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "given NULL value for NOT NULL column",
                    ));
                } else {
                    // https://web.archive.org/web/20170404144156/https://dev.mysql.com/doc/internals/en/null-bitmap.html
                    // NULL-bitmap-byte = ((field-pos + offset) / 8)
                    // NULL-bitmap-bit  = ((field-pos + offset) % 8)
                    self.data[(self.col + 2) / 8] |= 1u8 << ((self.col + 2) % 8);
                }
            } else {
                v.to_mysql_bin(&mut self.data, c)?;
            }
        } else {
            v.to_mysql_text(self.result.as_mut().unwrap().writer)?;
        }
        self.col += 1;
        Ok(())
    }

    /// Write one row whose payload the caller encoded already (text or binary
    /// protocol, as this result set requires).
    pub async fn write_row_payload(&mut self, payload: &[u8]) -> io::Result<()> {
        let result = self.result.as_mut().ok_or_else(finished_error)?;
        result.writer.write_all(payload)?;
        result.writer.end_packet().await
    }

    /// Indicate that no more column data will be written for the current row.
    pub async fn end_row(&mut self) -> io::Result<()> {
        if self.columns.is_empty() {
            self.col += 1;
            return Ok(());
        }

        if self.col != self.columns.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "row has fewer columns than specification",
            ));
        }

        if self.result.as_mut().unwrap().is_bin {
            self.result
                .as_mut()
                .unwrap()
                .writer
                .write_all(&self.data[..])?;
            self.data.clear();
        }
        self.result.as_mut().unwrap().writer.end_packet().await?;
        self.col = 0;

        Ok(())
    }

    /// Write a single row as a part of this resultset.
    ///
    /// Note that the row *must* conform to the column specification provided to
    /// [`QueryResultWriter::start`](struct.QueryResultWriter.html#method.start). If it does not,
    /// this method will return an error indicating that an invalid value type or specification was
    /// provided.
    pub async fn write_row<I, E>(&mut self, row: I) -> io::Result<()>
    where
        I: IntoIterator<Item = E>,
        E: ToMysqlValue,
    {
        if !self.columns.is_empty() {
            for v in row {
                self.write_col(v)?;
            }
        }
        self.end_row().await
    }
}

impl<'a, W: AsyncWrite + Unpin + 'a> RowWriter<'a, W> {
    async fn finish_inner(&mut self, extra_info: &str, complete: bool) -> io::Result<()> {
        self.finish_inner_with(extra_info, complete, StatusFlags::empty(), 0)
            .await
    }

    async fn finish_inner_with(
        &mut self,
        extra_info: &str,
        complete: bool,
        status: StatusFlags,
        warnings: u16,
    ) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }

        self.finished = true;

        if !self.columns.is_empty() && self.col != 0 {
            self.end_row().await?;
        }

        if complete {
            if self.columns.is_empty() {
                // response to no column query is always an OK packet
                let resp = OkResponse {
                    info: extra_info.to_string(),
                    status_flags: status,
                    warnings,
                    ..Default::default()
                };
                self.result.as_mut().unwrap().last_end = Some(Finalizer::Ok(resp));
            } else if self
                .client_capabilities
                .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
            {
                // response to no column query is always an OK packet
                let resp = OkResponse {
                    info: extra_info.to_string(),
                    header: 0xfe,
                    status_flags: status,
                    warnings,
                    ..Default::default()
                };
                self.result.as_mut().unwrap().last_end = Some(Finalizer::Ok(resp));
            } else {
                // we wrote out at least one row
                self.result.as_mut().unwrap().last_end = Some(Finalizer::Eof { status, warnings });
            }
        }

        Ok(())
    }

    /// Indicate to the client that no more rows are coming.
    pub async fn finish(self) -> io::Result<()> {
        self.finish_with_info("").await
    }

    /// End this resultset response, and indicate to the client that no more rows are coming.
    pub async fn finish_one(self) -> io::Result<QueryResultWriter<'a, W>> {
        self.finish_one_with_info("").await
    }

    /// Indicate to the client that no more rows are coming.
    pub async fn finish_with_info(self, extra_info: &str) -> io::Result<()> {
        self.finish_one_with_info(extra_info)
            .await?
            .no_more_results()
            .await
    }

    /// End this resultset response, and indicate to the client that no more rows are coming.
    pub async fn finish_one_with_info(
        mut self,
        extra_info: &str,
    ) -> io::Result<QueryResultWriter<'a, W>> {
        self.finish_inner(extra_info, true).await?;

        // we know that dropping self will see self.finished == true,
        // and so Drop won't try to use self.result.
        Ok(self.result.take().unwrap())
    }

    /// End this result set with the backend's status flags and warning count;
    /// the terminator is written once it is known whether more results follow.
    pub async fn finish_one_with(
        mut self,
        status: StatusFlags,
        warnings: u16,
    ) -> io::Result<QueryResultWriter<'a, W>> {
        self.finish_inner_with("", true, status, warnings).await?;
        self.result.take().ok_or_else(finished_error)
    }

    /// End this result set early with an error of any code (the backend
    /// failed while sending rows).
    pub async fn finish_error_raw(
        mut self,
        code: u16,
        sqlstate: &[u8],
        msg: &[u8],
    ) -> io::Result<()> {
        self.finish_inner("", false).await?;
        let result = self.result.take().ok_or_else(finished_error)?;
        result.error_raw(code, sqlstate, msg).await
    }

    /// End this resultset response, and indicate to the client there was an error.
    pub async fn finish_error<E>(mut self, kind: ErrorKind, msg: &E) -> io::Result<()>
    where
        E: Borrow<[u8]>,
    {
        self.finish_inner("", false).await?;

        self.result.take().unwrap().error(kind, msg).await
    }
}

fn finished_error() -> io::Error {
    io::Error::other("result set already finished")
}
