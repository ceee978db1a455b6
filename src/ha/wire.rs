//! The journal's shipping protocol between the active instance and a
//! standby, over one TCP connection.
//!
//! Every frame is a kind byte, a u32 length (big-endian) and a payload.
//! The standby opens with `Hello`; the active answers with `Clear`, the copy
//! of its trees as `Copy` frames, `CopyDone`, then one `Batch` per batch its
//! journal writer applies from then on. The standby answers each batch with
//! `Ack` once the batch is on its disk.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::journal::shipping::{ShippedChange, ShippedTree};

/// Frames above this size are refused: a journal entry is far smaller.
const MAX_FRAME: u32 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Standby → active: who is asking for the journal.
    Hello { name: String },
    /// Active → standby: empty your copy, a new one follows.
    Clear,
    /// Active → standby: part of the copy of the active's trees.
    Copy { changes: Vec<ShippedChange> },
    /// Active → standby: the copy is whole; the batches after `batch`
    /// follow.
    CopyDone { batch: u64 },
    /// Active → standby: one batch of the writer, in order.
    Batch {
        batch: u64,
        flushed: bool,
        changes: Vec<ShippedChange>,
    },
    /// Standby → active: every batch up to `batch` is on the standby's disk.
    Ack { batch: u64 },
}

const HELLO: u8 = b'H';
const CLEAR: u8 = b'X';
const COPY: u8 = b'C';
const COPY_DONE: u8 = b'D';
const BATCH: u8 = b'B';
const ACK: u8 = b'A';

impl Frame {
    fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let kind = match self {
            Frame::Hello { name } => {
                payload.extend_from_slice(name.as_bytes());
                HELLO
            }
            Frame::Clear => CLEAR,
            Frame::Copy { changes } => {
                put_changes(&mut payload, changes);
                COPY
            }
            Frame::CopyDone { batch } => {
                payload.extend_from_slice(&batch.to_be_bytes());
                COPY_DONE
            }
            Frame::Batch {
                batch,
                flushed,
                changes,
            } => {
                payload.extend_from_slice(&batch.to_be_bytes());
                payload.push(u8::from(*flushed));
                put_changes(&mut payload, changes);
                BATCH
            }
            Frame::Ack { batch } => {
                payload.extend_from_slice(&batch.to_be_bytes());
                ACK
            }
        };
        let mut frame = Vec::with_capacity(payload.len() + 5);
        frame.push(kind);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Frame, WireError> {
        let mut reader = Reader(payload);
        let frame = match kind {
            HELLO => Frame::Hello {
                name: String::from_utf8_lossy(payload).into_owned(),
            },
            CLEAR => Frame::Clear,
            COPY => Frame::Copy {
                changes: reader.changes()?,
            },
            COPY_DONE => Frame::CopyDone {
                batch: reader.u64()?,
            },
            BATCH => Frame::Batch {
                batch: reader.u64()?,
                flushed: reader.u8()? != 0,
                changes: reader.changes()?,
            },
            ACK => Frame::Ack {
                batch: reader.u64()?,
            },
            _ => return Err(WireError::Malformed("unknown frame kind")),
        };
        Ok(frame)
    }

    pub async fn write_to<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> Result<(), WireError> {
        writer.write_all(&self.encode()).await?;
        writer.flush().await?;
        Ok(())
    }

    /// The next frame, or None when the peer closed the connection between
    /// frames.
    pub async fn read_from<R: AsyncRead + Unpin>(
        reader: &mut R,
    ) -> Result<Option<Frame>, WireError> {
        let mut head = [0u8; 5];
        match reader.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_FRAME {
            return Err(WireError::Malformed("frame too large"));
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).await?;
        Frame::decode(head[0], &payload).map(Some)
    }
}

fn put_changes(out: &mut Vec<u8>, changes: &[ShippedChange]) {
    out.extend_from_slice(&(changes.len() as u32).to_be_bytes());
    for change in changes {
        out.push(change.tree as u8);
        put_bytes(out, &change.key);
        match &change.value {
            Some(value) => {
                out.push(1);
                put_bytes(out, value);
            }
            None => out.push(0),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed("frame ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let bytes: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| WireError::Malformed("frame ends early"))?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn changes(&mut self) -> Result<Vec<ShippedChange>, WireError> {
        let count = self.u32()? as usize;
        // Every change takes at least 10 bytes: a count beyond that is a lie.
        if count > self.0.len() / 10 + 1 {
            return Err(WireError::Malformed("change count beyond the frame"));
        }
        let mut changes = Vec::with_capacity(count);
        for _ in 0..count {
            let tree =
                ShippedTree::from_byte(self.u8()?).ok_or(WireError::Malformed("unknown tree"))?;
            let key = self.bytes()?;
            let value = match self.u8()? {
                0 => None,
                _ => Some(self.bytes()?),
            };
            changes.push(ShippedChange { tree, key, value });
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_reads_back_as_written() {
        let changes = vec![
            ShippedChange {
                tree: ShippedTree::Entries,
                key: vec![1, 2, 3],
                value: Some(b"{\"a\":1}".to_vec()),
            },
            ShippedChange {
                tree: ShippedTree::Commits,
                key: 7u64.to_be_bytes().to_vec(),
                value: None,
            },
            ShippedChange {
                tree: ShippedTree::Nodes,
                key: Vec::new(),
                value: Some(Vec::new()),
            },
            ShippedChange {
                tree: ShippedTree::Outcomes,
                key: vec![9; 21],
                value: Some(b"{\"state\":\"done\"}".to_vec()),
            },
        ];
        let frames = vec![
            Frame::Hello { name: "ls2".into() },
            Frame::Clear,
            Frame::Copy {
                changes: changes.clone(),
            },
            Frame::CopyDone { batch: 41 },
            Frame::Batch {
                batch: 42,
                flushed: true,
                changes,
            },
            Frame::Ack { batch: u64::MAX },
        ];
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.write_to(&mut bytes).await.expect("write");
        }
        let mut reader = bytes.as_slice();
        for frame in &frames {
            let read = Frame::read_from(&mut reader).await.expect("read");
            assert_eq!(read.as_ref(), Some(frame));
        }
        assert_eq!(Frame::read_from(&mut reader).await.expect("end"), None);
    }

    #[tokio::test]
    async fn a_lying_frame_is_an_error_not_a_panic() {
        for bytes in [
            vec![BATCH, 0, 0, 0, 3, 1, 2, 3],
            vec![COPY, 0, 0, 0, 4, 255, 255, 255, 255],
            vec![b'?', 0, 0, 0, 0],
            vec![COPY, 255, 255, 255, 255],
        ] {
            let mut reader = bytes.as_slice();
            assert!(Frame::read_from(&mut reader).await.is_err(), "{bytes:?}");
        }
    }
}
