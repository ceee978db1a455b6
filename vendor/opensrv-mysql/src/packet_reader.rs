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

//! Reads MySQL packets from the client.
//!
//! Patched for lockstep (see PATCHES.md, "packet reader"): the published
//! version returned packets that borrowed a buffer it then replaced when more
//! than one packet had arrived in one read (a use-after-free), and it asserted
//! on bad sequence numbers. This version hands out owned payloads, joins
//! 16 MiB+ payloads split over several packets, and reports framing errors as
//! `io::ErrorKind::InvalidData` instead of panicking.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::U24_MAX;

const HEADER_LEN: usize = 4;
const READ_CHUNK: usize = 16 * 1024;

/// The largest payload accepted from a client, as MariaDB's largest
/// `max_allowed_packet`: a hostile length prefix must not make us allocate
/// without bound.
pub const MAX_CLIENT_PAYLOAD: usize = 1 << 30;

pub struct PacketReader<R> {
    /// Bytes read from the stream and not yet handed out; `start` is where
    /// the unread part begins.
    bytes: Vec<u8>,
    start: usize,
    pub r: R,
}

impl<R> PacketReader<R> {
    pub fn new(r: R) -> Self {
        PacketReader {
            bytes: Vec::new(),
            start: 0,
            r,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// Takes one complete logical packet out of the buffer, if one is there.
    fn take_packet(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        let mut offset = 0;
        let mut total = 0usize;
        let mut expected_seq: Option<u8> = None;
        // First pass: find the end of the logical packet without copying.
        loop {
            let buf = &self.buffered()[offset..];
            if buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
            let seq = buf[3];
            if let Some(expected) = expected_seq {
                if seq != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("packets out of order: got sequence {seq}, expected {expected}"),
                    ));
                }
            }
            total += len;
            if total > MAX_CLIENT_PAYLOAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("packet larger than {MAX_CLIENT_PAYLOAD} bytes"),
                ));
            }
            if buf.len() < HEADER_LEN + len {
                return Ok(None);
            }
            offset += HEADER_LEN + len;
            if len < U24_MAX {
                break;
            }
            expected_seq = Some(seq.wrapping_add(1));
        }
        // Second pass: copy the payload chunks out, dropping their headers.
        let mut payload = Vec::with_capacity(total);
        let mut pos = self.start;
        let mut last_seq = 0;
        while pos < self.start + offset {
            let len = usize::from(self.bytes[pos])
                | usize::from(self.bytes[pos + 1]) << 8
                | usize::from(self.bytes[pos + 2]) << 16;
            last_seq = self.bytes[pos + 3];
            payload.extend_from_slice(&self.bytes[pos + HEADER_LEN..pos + HEADER_LEN + len]);
            pos += HEADER_LEN + len;
        }
        self.start += offset;
        Ok(Some((last_seq, payload)))
    }
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    /// Returns the next packet's sequence number and payload, or `None` when
    /// the client closed the connection cleanly between packets.
    pub async fn next_async(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        loop {
            if let Some(packet) = self.take_packet()? {
                return Ok(Some(packet));
            }
            self.bytes.drain(..self.start);
            self.start = 0;
            let filled = self.bytes.len();
            self.bytes.resize(filled + READ_CHUNK, 0);
            let read = self.r.read(&mut self.bytes[filled..]).await;
            let read = match read {
                Ok(n) => n,
                Err(e) => {
                    self.bytes.truncate(filled);
                    return Err(e);
                }
            };
            self.bytes.truncate(filled + read);
            if read == 0 {
                if self.bytes.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed inside a packet ({} bytes unread)",
                        self.bytes.len()
                    ),
                ));
            }
        }
    }
}

/// After the TLS switch the bytes already buffered belong to the TLS stream.
impl<R: AsyncRead + Unpin> AsyncRead for PacketReader<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if self.start < self.bytes.len() {
            let n = std::cmp::min(buf.remaining(), self.bytes.len() - self.start);
            let start = self.start;
            buf.put_slice(&self.bytes[start..start + n]);
            self.start += n;
            if self.start == self.bytes.len() {
                self.bytes.clear();
                self.start = 0;
            }
            std::task::Poll::Ready(Ok(()))
        } else {
            std::pin::Pin::new(&mut self.r).poll_read(cx, buf)
        }
    }
}
