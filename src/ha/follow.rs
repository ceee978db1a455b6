//! A standby's side of the journal copy: it takes the active's trees, then
//! every batch, applies them to its own journal in the active's order and
//! acknowledges each batch once it is on its disk (`ship` waits for that
//! before the active acknowledges a commit).
//!
//! While a copy is under way the standby's journal is partial: a marker
//! file in the journal's directory says so from the first change to the
//! copy's last, and an instance with that marker never takes over.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::BufWriter;
use tokio::net::TcpStream;
use tokio::sync::mpsc::unbounded_channel;
use tracing::info;

use super::wire::{Frame, WireError};
use crate::journal::{Durable, Journal, JournalError};

/// Present while this instance's journal holds a partial copy.
const COPYING_MARKER: &str = "lockstep-copy-under-way";

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the active sent {0} out of turn")]
    OutOfTurn(&'static str),
}

impl From<std::io::Error> for FollowError {
    fn from(e: std::io::Error) -> FollowError {
        FollowError::Wire(WireError::Io(e))
    }
}

/// Whether `journal_dir` holds a whole journal (its own, or a finished copy).
pub fn copy_is_whole(journal_dir: &Path) -> bool {
    !marker(journal_dir).exists()
}

fn marker(journal_dir: &Path) -> PathBuf {
    journal_dir.join(COPYING_MARKER)
}

fn set_marker(journal_dir: &Path, copying: bool) -> std::io::Result<()> {
    let path = marker(journal_dir);
    if copying {
        std::fs::File::create(&path)?.sync_all()?;
    } else if path.exists() {
        std::fs::remove_file(&path)?;
    }
    std::fs::File::open(journal_dir)?.sync_all()
}

/// Copies the journal of the active instance at `from` into `journal`
/// until the connection ends.
pub async fn follow(journal: &Journal, me: &str, from: SocketAddr) -> Result<(), FollowError> {
    let stream = TcpStream::connect(from).await?;
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    Frame::Hello { name: me.into() }
        .write_to(&mut writer)
        .await?;
    let (acks_tx, mut acks) = unbounded_channel::<(u64, Option<Durable>)>();
    // Acknowledgements go back in batch order, each once its batch is on
    // disk, while the next batches are applied.
    let acknowledging = async move {
        while let Some((batch, durable)) = acks.recv().await {
            if let Some(durable) = durable {
                durable.wait().await?;
            }
            Frame::Ack { batch }.write_to(&mut writer).await?;
        }
        Ok::<(), FollowError>(())
    };
    let dir = journal.dir().to_path_buf();
    let applying = async move {
        let mut copying = false;
        loop {
            let Some(frame) = Frame::read_from(&mut reader).await? else {
                return Ok(());
            };
            match frame {
                Frame::Clear => {
                    set_marker(&dir, true)?;
                    copying = true;
                    journal.clear_for_copy()?;
                }
                Frame::Copy { changes } if copying => {
                    journal.apply_copied(changes, false)?;
                }
                Frame::CopyDone { batch } if copying => {
                    if let Some(durable) = journal.apply_copied(Vec::new(), true)? {
                        durable.wait().await?;
                    }
                    set_marker(&dir, false)?;
                    copying = false;
                    info!(
                        after_batch = batch,
                        "journal copy whole: following the active's batches"
                    );
                }
                Frame::Batch {
                    batch,
                    flushed,
                    changes,
                } if !copying => {
                    let durable = journal.apply_copied(changes, flushed)?;
                    if acks_tx.send((batch, durable)).is_err() {
                        return Ok(());
                    }
                }
                Frame::Copy { .. } | Frame::CopyDone { .. } => {
                    return Err(FollowError::OutOfTurn("a copy"))
                }
                Frame::Batch { .. } => return Err(FollowError::OutOfTurn("a batch")),
                Frame::Hello { .. } | Frame::Ack { .. } => {
                    return Err(FollowError::OutOfTurn("a standby's frame"))
                }
            }
        }
    };
    tokio::select! {
        applied = applying => applied,
        acknowledged = acknowledging => acknowledged,
    }
}
