//! `LOAD DATA LOCAL INFILE` (lockstep patch 17): the server asks the client
//! for the file a statement names and reads its content, in the middle of a
//! COM_QUERY, from the same connection the command came on.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::AsyncRead;

use crate::packet_reader::PacketReader;

/// The client's packets that follow a command, for a command that reads
/// more of them.
pub(crate) trait ClientPackets: Send {
    #[allow(clippy::type_complexity)]
    fn next_packet(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = io::Result<Option<(u8, Vec<u8>)>>> + Send + '_>>;
}

impl<R: AsyncRead + Unpin + Send> ClientPackets for PacketReader<R> {
    fn next_packet(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = io::Result<Option<(u8, Vec<u8>)>>> + Send + '_>> {
        Box::pin(self.next_async())
    }
}

/// What the client sent for a `LOAD DATA LOCAL INFILE`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalInfile {
    /// The file's content, up to the limit asked for.
    pub content: Vec<u8>,
    /// The client sent more than the limit: the rest was read and dropped.
    pub truncated: bool,
}
