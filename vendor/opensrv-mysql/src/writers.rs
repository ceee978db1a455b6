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

//! Encodes the server's response packets.
//!
//! Patched for lockstep (see PATCHES.md, "writers"): OK and EOF packets carry
//! the real warning count; column definitions carry schema, org_table,
//! org_name, character set, length and decimals instead of hard-coded values;
//! errors carry any code and SQLSTATE (a relay must pass on codes the crate's
//! enum does not know, e.g. MariaDB's 4025); COM_FIELD_LIST responses end with
//! a terminator also under CLIENT_DEPRECATE_EOF; the OK packet's info string
//! is length-encoded, as MariaDB sends it.

use std::io::{self, Write};

use byteorder::{LittleEndian, WriteBytesExt};
use tokio::io::AsyncWrite;

use crate::myc::constants::{CapabilityFlags, StatusFlags};
use crate::myc::io::WriteMysqlExt;
use crate::packet_writer::PacketWriter;
use crate::{Column, ErrorKind, OkResponse};

pub(crate) async fn write_eof_packet<W: AsyncWrite + Unpin>(
    w: &mut PacketWriter<W>,
    s: StatusFlags,
    warnings: u16,
) -> io::Result<()> {
    w.write_u8(0xFE)?;
    w.write_u16::<LittleEndian>(warnings)?;
    w.write_u16::<LittleEndian>(s.bits())?;
    w.end_packet().await
}

pub(crate) async fn write_ok_packet<W: AsyncWrite + Unpin>(
    w: &mut PacketWriter<W>,
    client_capabilities: CapabilityFlags,
    ok_packet: OkResponse,
) -> io::Result<()> {
    w.write_u8(ok_packet.header)?; // OK packet type
    w.write_lenenc_int(ok_packet.affected_rows)?;
    w.write_lenenc_int(ok_packet.last_insert_id)?;
    if client_capabilities.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        w.write_u16::<LittleEndian>(ok_packet.status_flags.bits())?;
        w.write_u16::<LittleEndian>(ok_packet.warnings)?;
    } else if client_capabilities.contains(CapabilityFlags::CLIENT_TRANSACTIONS) {
        w.write_u16::<LittleEndian>(ok_packet.status_flags.bits())?;
    }

    if client_capabilities.contains(CapabilityFlags::CLIENT_SESSION_TRACK) {
        w.write_lenenc_str(ok_packet.info.as_bytes())?;
        if ok_packet
            .status_flags
            .contains(StatusFlags::SERVER_SESSION_STATE_CHANGED)
        {
            w.write_lenenc_str(ok_packet.session_state_info.as_bytes())?;
        }
    } else if !ok_packet.info.is_empty() {
        // Length-encoded, as MariaDB's net_send_ok writes it (libmariadb
        // reads it so; the published version wrote it bare).
        w.write_lenenc_str(ok_packet.info.as_bytes())?;
    }
    w.end_packet().await
}

pub async fn write_err<W: AsyncWrite + Unpin>(
    err: ErrorKind,
    msg: &[u8],
    w: &mut PacketWriter<W>,
) -> io::Result<()> {
    write_err_raw(err as u16, err.sqlstate(), msg, w).await
}

/// Writes an ERR packet with any error code; `sqlstate` must be 5 bytes
/// (anything else is replaced by the generic "HY000").
pub async fn write_err_raw<W: AsyncWrite + Unpin>(
    code: u16,
    sqlstate: &[u8],
    msg: &[u8],
    w: &mut PacketWriter<W>,
) -> io::Result<()> {
    let sqlstate = if sqlstate.len() == 5 {
        sqlstate
    } else {
        b"HY000"
    };
    w.write_u8(0xFF)?;
    w.write_u16::<LittleEndian>(code)?;
    w.write_u8(b'#')?;
    w.write_all(sqlstate)?;
    w.write_all(msg)?;
    w.end_packet().await
}

pub(crate) async fn write_prepare_ok<'a, PI, CI, W>(
    id: u32,
    params: PI,
    columns: CI,
    w: &mut PacketWriter<W>,
    client_capabilities: CapabilityFlags,
) -> io::Result<()>
where
    PI: IntoIterator<Item = &'a Column>,
    CI: IntoIterator<Item = &'a Column>,
    <PI as IntoIterator>::IntoIter: ExactSizeIterator,
    <CI as IntoIterator>::IntoIter: ExactSizeIterator,
    W: AsyncWrite + Unpin,
{
    let pi = params.into_iter();
    let ci = columns.into_iter();

    // first, write out COM_STMT_PREPARE_OK
    w.write_u8(0x00)?;
    w.write_u32::<LittleEndian>(id)?;
    w.write_u16::<LittleEndian>(ci.len() as u16)?;
    w.write_u16::<LittleEndian>(pi.len() as u16)?;
    w.write_u8(0x00)?;
    w.write_u16::<LittleEndian>(0)?; // number of warnings
    w.end_packet().await?;

    if pi.len() > 0 {
        write_column_definitions_41(pi, w, client_capabilities).await?;
    }
    if ci.len() > 0 {
        write_column_definitions_41(ci, w, client_capabilities).await?;
    }
    Ok(())
}

fn write_column_definition<W>(c: &Column, w: &mut PacketWriter<W>) -> io::Result<()> {
    w.write_lenenc_str(b"def")?;
    w.write_lenenc_str(&c.schema)?;
    w.write_lenenc_str(&c.table)?;
    w.write_lenenc_str(&c.org_table)?;
    w.write_lenenc_str(&c.column)?;
    w.write_lenenc_str(&c.org_column)?;
    if w.extended_metadata {
        w.write_lenenc_str(&c.extended_metadata)?;
    }
    w.write_lenenc_int(0xC)?;
    w.write_u16::<LittleEndian>(c.charset)?;
    w.write_u32::<LittleEndian>(c.column_length)?;
    w.write_u8(c.coltype as u8)?;
    w.write_u16::<LittleEndian>(c.colflags.bits())?;
    w.write_u8(c.decimals)?;
    w.write_all(&[0x00, 0x00]) // filler
}

/// works for Protocol::ColumnDefinition41 is set
/// see: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_column_definition.html
pub(crate) async fn write_column_definitions_41<'a, I, W>(
    i: I,
    w: &mut PacketWriter<W>,
    client_capabilities: CapabilityFlags,
) -> io::Result<()>
where
    I: IntoIterator<Item = &'a Column>,
    W: AsyncWrite + Unpin,
{
    for c in i {
        write_column_definition(c, w)?;
        w.end_packet().await?;
    }

    if !client_capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
        write_eof_packet(w, StatusFlags::empty(), 0).await
    } else {
        Ok(())
    }
}

/// The response to COM_FIELD_LIST: each definition followed by its default
/// value (NULL here), then EOF (an 0xFE OK under CLIENT_DEPRECATE_EOF).
pub(crate) async fn write_field_list<'a, I, W>(
    i: I,
    w: &mut PacketWriter<W>,
    client_capabilities: CapabilityFlags,
    status: StatusFlags,
) -> io::Result<()>
where
    I: IntoIterator<Item = &'a Column>,
    W: AsyncWrite + Unpin,
{
    for c in i {
        write_column_definition(c, w)?;
        w.write_u8(0xfb)?;
        w.end_packet().await?;
    }
    if client_capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
        let ok = OkResponse {
            header: 0xfe,
            status_flags: status,
            ..Default::default()
        };
        write_ok_packet(w, client_capabilities, ok).await
    } else {
        write_eof_packet(w, status, 0).await
    }
}

pub(crate) async fn column_definitions<'a, I, W>(
    i: I,
    w: &mut PacketWriter<W>,
    client_capabilities: CapabilityFlags,
) -> io::Result<()>
where
    I: IntoIterator<Item = &'a Column>,
    <I as IntoIterator>::IntoIter: ExactSizeIterator,
    W: AsyncWrite + Unpin,
{
    let i = i.into_iter();
    w.write_lenenc_int(i.len() as u64)?;
    w.end_packet().await?;
    write_column_definitions_41(i, w, client_capabilities).await
}
