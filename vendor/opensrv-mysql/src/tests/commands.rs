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

use crate::commands::*;
use crate::myc::constants::{CapabilityFlags, UTF8_GENERAL_CI};
use crate::packet_reader::PacketReader;

fn read_one(data: &[u8]) -> (u8, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut pr = PacketReader::new(data);
        pr.next_async().await.unwrap().unwrap()
    })
}

#[test]
fn it_parses_handshake() {
    let data = &[
        0x5b, 0x00, 0x00, 0x01, 0x8d, 0xa6, 0xff, 0x09, 0x00, 0x00, 0x00, 0x01, 0x21, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x00, 0x14,
        0xf7, 0xd1, 0x6c, 0xe9, 0x0d, 0x2f, 0x34, 0xb0, 0x2f, 0xd8, 0x1d, 0x18, 0xc7, 0xa4, 0xe8,
        0x98, 0x97, 0x67, 0xeb, 0xad, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x00, 0x6d, 0x79,
        0x73, 0x71, 0x6c, 0x5f, 0x6e, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f, 0x70, 0x61, 0x73, 0x73,
        0x77, 0x6f, 0x72, 0x64, 0x00,
    ];

    let (_, p) = read_one(&data[..]);
    let (_, handshake) = client_handshake(&p, false).unwrap();
    println!("{:?}", handshake);
    assert!(handshake
        .capabilities
        .contains(CapabilityFlags::CLIENT_LONG_PASSWORD));
    assert!(handshake
        .capabilities
        .contains(CapabilityFlags::CLIENT_MULTI_RESULTS));
    assert!(handshake
        .capabilities
        .contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB));
    assert!(handshake
        .capabilities
        .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF));
    assert_eq!(handshake.collation, UTF8_GENERAL_CI);
    assert_eq!(handshake.username, Some(b"default"[..].to_vec()));
    assert_eq!(handshake.maxps, 16777216);
}

#[test]
fn it_parses_request() {
    let (_, p) = read_one(b"\x21\x00\x00\x00\x03select @@version_comment limit 1");
    assert_eq!(
        parse(&p).unwrap(),
        Command::Query(&b"select @@version_comment limit 1"[..])
    );
}

#[test]
fn it_parses_list_fields_with_wildcard() {
    assert_eq!(
        parse(b"\x04t1\x00i%").unwrap(),
        Command::ListFields {
            table: b"t1",
            wildcard: b"i%"
        }
    );
}

// PATCHES.md "commands": commands the published version answered with a
// silent OK are parsed, unknown ones are passed on, malformed ones are errors.
#[test]
fn it_parses_session_commands() {
    assert_eq!(parse(b"\x1f").unwrap(), Command::ResetConnection);
    assert_eq!(
        parse(b"\x1a\x07\x00\x00\x00").unwrap(),
        Command::ResetStmt(7)
    );
    assert_eq!(parse(b"\x1b\x01\x00").unwrap(), Command::SetOption(1));
    assert_eq!(parse(b"\x09").unwrap(), Command::Other(0x09, b""));
    assert_eq!(
        parse(b"\x0c\x05\x00\x00\x00").unwrap(),
        Command::Other(0x0c, b"\x05\x00\x00\x00")
    );
}

#[test]
fn malformed_commands_are_errors_not_panics() {
    assert_eq!(parse(b""), Err(MalformedCommand(0)));
    assert_eq!(parse(b"\x17\x01\x00"), Err(MalformedCommand(0x17)));
    assert_eq!(parse(b"\x19\x01"), Err(MalformedCommand(0x19)));
    assert_eq!(
        parse(b"\x18\x01\x00\x00\x00\x00"),
        Err(MalformedCommand(0x18))
    );
    assert_eq!(parse(b"\x04no-nul"), Err(MalformedCommand(0x04)));
}

#[test]
fn it_parses_change_user() {
    let caps = CapabilityFlags::CLIENT_SECURE_CONNECTION | CapabilityFlags::CLIENT_PLUGIN_AUTH;
    let payload = b"app\x00\x03abcshop\x00\x2d\x00mysql_native_password\x00";
    let cu = change_user(payload, caps).unwrap();
    assert_eq!(cu.username, b"app");
    assert_eq!(cu.auth_response, b"abc");
    assert_eq!(cu.db.as_deref(), Some(&b"shop"[..]));
    assert_eq!(cu.collation, Some(45));
    assert_eq!(cu.auth_plugin, b"mysql_native_password");
    // Old clients stop after the database.
    let cu = change_user(b"app\x00\x00\x00", caps).unwrap();
    assert_eq!(cu.db, None);
    assert_eq!(cu.collation, None);
    // Truncated: no panic.
    assert!(change_user(b"app\x00\x09ab", caps).is_none());
    assert!(change_user(b"app", caps).is_none());
}
