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

use crate::packet_reader::*;
use crate::U24_MAX;

fn read_all(data: &[u8]) -> std::io::Result<Vec<(u8, Vec<u8>)>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut pr = PacketReader::new(data);
        let mut out = Vec::new();
        while let Some(p) = pr.next_async().await? {
            out.push(p);
        }
        Ok(out)
    })
}

#[test]
fn test_ping() {
    assert_eq!(
        read_all(&[0x01, 0, 0, 0, 0x10]).unwrap(),
        vec![(0, vec![0x10])]
    );
}

// PATCHES.md "packet reader": several packets arriving in one read used to be
// returned as slices of a buffer that was then replaced (use-after-free).
#[test]
fn several_packets_in_one_read_stay_intact() {
    let mut data = Vec::new();
    for i in 0..50u8 {
        data.extend_from_slice(&[3, 0, 0, i, 0x03, b'a' + (i % 26), i]);
    }
    let packets = read_all(&data).unwrap();
    assert_eq!(packets.len(), 50);
    for (i, (seq, payload)) in packets.into_iter().enumerate() {
        let i = i as u8;
        assert_eq!(seq, i);
        assert_eq!(payload, vec![0x03, b'a' + (i % 26), i]);
    }
}

#[test]
fn test_long_exact() {
    let mut data = vec![0xff, 0xff, 0xff, 0];
    data.extend(&[0; U24_MAX][..]);
    data.extend_from_slice(&[0, 0, 0, 1]);
    let packets = read_all(&data).unwrap();
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].0, 1);
    assert_eq!(packets[0].1.len(), U24_MAX);
}

#[test]
fn test_long_more() {
    let mut data = vec![0xff, 0xff, 0xff, 0];
    data.extend(&[0; U24_MAX][..]);
    data.extend_from_slice(&[1, 0, 0, 1, 0x10]);
    // and a second, small packet right behind it
    data.extend_from_slice(&[1, 0, 0, 0, 0x0e]);
    let packets = read_all(&data).unwrap();
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0].1.len(), U24_MAX + 1);
    assert_eq!(packets[0].1[U24_MAX], 0x10);
    assert_eq!(packets[1], (0, vec![0x0e]));
}

#[test]
fn out_of_order_continuation_is_an_error() {
    let mut data = vec![0xff, 0xff, 0xff, 0];
    data.extend(&[0; U24_MAX][..]);
    data.extend_from_slice(&[1, 0, 0, 5, 0x10]);
    let err = read_all(&data).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn truncated_packet_is_an_error() {
    let err = read_all(&[0x05, 0, 0, 0, 0x03, b'a']).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}
