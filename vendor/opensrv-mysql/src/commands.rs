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

use crate::myc::constants::{CapabilityFlags, Command as CommandByte};

#[derive(Debug)]
pub struct ClientHandshake {
    #[allow(dead_code)]
    pub(crate) maxps: u32,
    pub(crate) capabilities: CapabilityFlags,
    /// MariaDB's extended capabilities (the last 4 bytes of the filler,
    /// sent to a server without CLIENT_MYSQL).
    pub(crate) mariadb_capabilities: u32,
    #[allow(dead_code)]
    pub(crate) collation: u16,
    #[allow(dead_code)]
    pub(crate) db: Option<Vec<u8>>,
    pub(crate) username: Option<Vec<u8>>,
    pub(crate) auth_response: Vec<u8>,
    pub(crate) auth_plugin: Vec<u8>,
}

#[allow(clippy::branches_sharing_code)]
pub fn client_handshake(i: &[u8], after_tls: bool) -> nom::IResult<&[u8], ClientHandshake> {
    // mysql handshake protocol documentation
    // https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_response.html
    let (i, cap) = nom::number::complete::le_u16(i)?;

    let mut capabilities = CapabilityFlags::from_bits_truncate(cap as u32);
    if capabilities.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
        // HandshakeResponse41
        let (i, cap2) = nom::number::complete::le_u16(i)?;
        let cap = (cap2 as u32) << 16 | cap as u32;

        capabilities = CapabilityFlags::from_bits_truncate(cap);

        let (i, maxps) = nom::number::complete::le_u32(i)?;
        let (i, collation) = nom::bytes::complete::take(1u8)(i)?;

        let (i, _) = nom::bytes::complete::take(19u8)(i)?;
        let (i, mariadb_capabilities) = nom::number::complete::le_u32(i)?;

        if !after_tls && capabilities.contains(CapabilityFlags::CLIENT_SSL) {
            return Ok((
                i,
                ClientHandshake {
                    capabilities,
                    mariadb_capabilities,
                    maxps,
                    collation: u16::from(collation[0]),
                    username: None,
                    db: None,
                    auth_response: vec![],
                    auth_plugin: vec![],
                },
            ));
        }

        let (i, username) = if after_tls || !capabilities.contains(CapabilityFlags::CLIENT_SSL) {
            let (i, user) = nom::bytes::complete::take_until(&b"\0"[..])(i)?;
            let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;
            (i, Some(user.to_owned()))
        } else {
            (i, None)
        };

        let (i, auth_response) =
            if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
                let (i, size) = read_length_encoded_number(i)?;
                nom::bytes::complete::take(size)(i)?
            } else if capabilities.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
                let (i, size) = nom::number::complete::le_u8(i)?;
                nom::bytes::complete::take(size)(i)?
            } else {
                nom::bytes::complete::take_until(&b"\0"[..])(i)?
            };

        let (i, db) =
            if capabilities.contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB) && !i.is_empty() {
                let (i, db) = nom::bytes::complete::take_until(&b"\0"[..])(i)?;
                let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;
                (i, Some(db))
            } else {
                (i, None)
            };

        let (i, auth_plugin) =
            if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) && !i.is_empty() {
                let (i, auth_plugin) = nom::bytes::complete::take_until(&b"\0"[..])(i)?;

                let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;
                (i, auth_plugin)
            } else {
                (i, &b""[..])
            };

        Ok((
            i,
            ClientHandshake {
                capabilities,
                mariadb_capabilities,
                maxps,
                collation: u16::from(collation[0]),
                username,
                db: db.map(|c| c.to_vec()),
                auth_response: auth_response.to_vec(),
                auth_plugin: auth_plugin.to_vec(),
            },
        ))
    } else {
        // HandshakeResponse320
        let (i, maxps1) = nom::number::complete::le_u16(i)?;
        let (i, maxps2) = nom::number::complete::le_u8(i)?;
        let maxps = (maxps2 as u32) << 16 | maxps1 as u32;
        let (i, username) = nom::bytes::complete::take_until(&b"\0"[..])(i)?;
        let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;

        let (i, auth_response, db) =
            if capabilities.contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB) {
                let (i, auth_response) = nom::bytes::complete::tag(b"\0")(i)?;
                let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;

                let (i, db) = nom::bytes::complete::tag(b"\0")(i)?;
                let (i, _) = nom::bytes::complete::tag(b"\0")(i)?;

                (i, auth_response, Some(db))
            } else {
                (&b""[..], i, None)
            };

        Ok((
            i,
            ClientHandshake {
                capabilities,
                mariadb_capabilities: 0,
                maxps,
                collation: 0,
                username: Some(username.to_vec()),
                db: db.map(|c| c.to_vec()),
                auth_response: auth_response.to_vec(),
                auth_plugin: vec![],
            },
        ))
    }
}

fn read_length_encoded_number(i: &[u8]) -> nom::IResult<&[u8], u64> {
    let (i, b) = nom::number::complete::le_u8(i)?;
    let size: usize = match b {
        0xfb => return Ok((i, 0)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return Ok((i, b as u64)),
    };
    let mut bytes = [0u8; 8];
    let (i, b) = nom::bytes::complete::take(size)(i)?;
    bytes[..size].copy_from_slice(b);
    Ok((i, u64::from_le_bytes(bytes)))
}

/// A client command, after the command byte.
///
/// Patched for lockstep (see PATCHES.md, "commands"): the published version
/// parsed nine commands and answered every other one, and every malformed one,
/// with a silent OK. Commands the intermediary or the shim must act on are
/// parsed here; the rest arrive as `Other` so the shim can answer each as
/// MariaDB does (or with ER_UNKNOWN_COM_ERROR).
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Query(&'a [u8]),
    ListFields {
        table: &'a [u8],
        wildcard: &'a [u8],
    },
    Close(u32),
    Prepare(&'a [u8]),
    Init(&'a [u8]),
    Execute {
        stmt: u32,
        params: &'a [u8],
    },
    SendLongData {
        stmt: u32,
        param: u16,
        data: &'a [u8],
    },
    ResetStmt(u32),
    SetOption(u16),
    ResetConnection,
    /// COM_CHANGE_USER; its payload depends on the capabilities, see `change_user`.
    ChangeUser(&'a [u8]),
    Ping,
    Quit,
    Other(u8, &'a [u8]),
}

/// The payload of a command was not what its command byte promises.
#[derive(Debug, PartialEq, Eq)]
pub struct MalformedCommand(pub u8);

fn le_u32_at(i: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(i.get(..4)?.try_into().ok()?))
}

fn le_u16_at(i: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(i.get(..2)?.try_into().ok()?))
}

pub fn parse(packet: &[u8]) -> Result<Command<'_>, MalformedCommand> {
    let (&byte, i) = packet.split_first().ok_or(MalformedCommand(0))?;
    let bad = || MalformedCommand(byte);
    let cmd = match byte {
        b if b == CommandByte::COM_QUERY as u8 => Command::Query(i),
        b if b == CommandByte::COM_FIELD_LIST as u8 => {
            let nul = i.iter().position(|&c| c == 0).ok_or_else(bad)?;
            Command::ListFields {
                table: &i[..nul],
                wildcard: &i[nul + 1..],
            }
        }
        b if b == CommandByte::COM_INIT_DB as u8 => Command::Init(i),
        b if b == CommandByte::COM_STMT_PREPARE as u8 => Command::Prepare(i),
        b if b == CommandByte::COM_STMT_EXECUTE as u8 => {
            // stmt id (4), flags (1), iteration count (4), then the parameters.
            if i.len() < 9 {
                return Err(bad());
            }
            Command::Execute {
                stmt: le_u32_at(i).ok_or_else(bad)?,
                params: &i[9..],
            }
        }
        b if b == CommandByte::COM_STMT_SEND_LONG_DATA as u8 => Command::SendLongData {
            stmt: le_u32_at(i).ok_or_else(bad)?,
            param: le_u16_at(i.get(4..).ok_or_else(bad)?).ok_or_else(bad)?,
            data: &i[6..],
        },
        b if b == CommandByte::COM_STMT_CLOSE as u8 => {
            Command::Close(le_u32_at(i).ok_or_else(bad)?)
        }
        b if b == CommandByte::COM_STMT_RESET as u8 => {
            Command::ResetStmt(le_u32_at(i).ok_or_else(bad)?)
        }
        b if b == CommandByte::COM_SET_OPTION as u8 => {
            Command::SetOption(le_u16_at(i).ok_or_else(bad)?)
        }
        b if b == CommandByte::COM_RESET_CONNECTION as u8 => Command::ResetConnection,
        b if b == CommandByte::COM_CHANGE_USER as u8 => Command::ChangeUser(i),
        b if b == CommandByte::COM_QUIT as u8 => Command::Quit,
        b if b == CommandByte::COM_PING as u8 => Command::Ping,
        b => Command::Other(b, i),
    };
    Ok(cmd)
}

/// The fields of COM_CHANGE_USER.
#[derive(Debug, PartialEq, Eq)]
pub struct ChangeUser {
    pub username: Vec<u8>,
    pub auth_response: Vec<u8>,
    pub db: Option<Vec<u8>>,
    pub collation: Option<u16>,
    pub auth_plugin: Vec<u8>,
}

fn take_cstr(i: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = i.iter().position(|&c| c == 0)?;
    Some((&i[..nul], &i[nul + 1..]))
}

/// Parses COM_CHANGE_USER's payload (after the command byte). Everything after
/// the database name is optional: old clients stop there.
pub fn change_user(i: &[u8], capabilities: CapabilityFlags) -> Option<ChangeUser> {
    let (username, i) = take_cstr(i)?;
    let (auth_response, i) = if capabilities.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
        let (&len, rest) = i.split_first()?;
        let len = usize::from(len);
        (rest.get(..len)?, &rest[len..])
    } else {
        take_cstr(i)?
    };
    let (db, i) = match take_cstr(i) {
        Some((db, rest)) => (db, rest),
        None => (i, &[][..]),
    };
    let (collation, i) = match le_u16_at(i) {
        Some(c) => (Some(c), &i[2..]),
        None => (None, &[][..]),
    };
    let auth_plugin = if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) {
        take_cstr(i).map(|(p, _)| p).unwrap_or(i)
    } else {
        &[][..]
    };
    Some(ChangeUser {
        username: username.to_vec(),
        auth_response: auth_response.to_vec(),
        db: if db.is_empty() {
            None
        } else {
            Some(db.to_vec())
        },
        collation,
        auth_plugin: auth_plugin.to_vec(),
    })
}
