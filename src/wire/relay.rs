//! Relays a backend's response (one or more result sets) to the client.
//!
//! Each set goes out as the node sent it: column definitions (re-encoded:
//! a column's name is the one the client wrote, `sql::intercept`), rows as
//! the node's bytes, undecoded (the node's connection speaks the protocol
//! the client used, text or binary; a row is decoded only for the compare
//! module's digest), and a terminator with the node's status flags and
//! warning count. A result's terminator is written once it is known
//! whether another result follows (opensrv's writer holds it back), so
//! SERVER_MORE_RESULTS_EXISTS is right for multi-statements and CALL.
//!
//! A result set's terminator is the node's own even when another result
//! follows it (a multi-statement, a CALL): mysql_async reads the next result
//! before the set's stream ends, and would lose the set's terminator there;
//! the vendored copy keeps it (`vendor/mysql_async/PATCHES.md`).

use std::io;

use mysql_async::prelude::Protocol;
use mysql_async::{Conn, QueryResult};
use opensrv_mysql::{OkResponse, QueryResultWriter, RowWriter, StatusFlags};
use tokio::io::AsyncWrite;

use super::encode;
use crate::compare::digest::Digest;
use crate::error::{ClientError, SendError};
use crate::sql::intercept::original_names;

/// How relaying a response ended.
pub enum SetsEnd<'w, W> {
    /// Every result was written but the last terminator, which waits for the
    /// final status flags (`finish`).
    Complete(QueryResultWriter<'w, W>),
    /// An error was written to the client in place of the next result or row.
    Failed(ClientError),
    /// The node answered `Shown::refused_with` before anything reached the
    /// client: nothing was written, the writer is handed back with the error.
    Refused(QueryResultWriter<'w, W>, ClientError),
}

/// How the node's response is shown to the client, and what is learnt
/// from it on the way.
#[derive(Default)]
pub struct Shown<'d> {
    /// Flags the client must not see: SERVER_STATUS_IN_TRANS while lockstep
    /// runs a client's autocommit statement in a transaction of its own.
    pub hide: StatusFlags,
    /// Leading results that are lockstep's own (the statements pinning the
    /// context, sent in the same round trip): read, not relayed.
    pub skip: usize,
    /// Collects a checksum of the rows for the compare module.
    pub digest: Option<&'d mut Digest>,
    /// Error codes that, when the node answers one before the first row of
    /// the first result, are not relayed (`SetsEnd::Refused`): column
    /// definitions are held back until the first row or the end.
    pub refused_with: &'static [u16],
}

/// Relays the response to a query or execute: `started` is what mysql_async
/// returned for it (an error there is the first statement's).
pub async fn relay_response<'w, W, P>(
    node: &str,
    started: mysql_async::Result<QueryResult<'_, '_, P>>,
    w: QueryResultWriter<'w, W>,
    renames: &[(Vec<u8>, Vec<u8>)],
    status: &mut StatusFlags,
    shown: Shown<'_>,
) -> io::Result<SetsEnd<'w, W>>
where
    W: AsyncWrite + Send + Unpin,
    P: Protocol + Unpin,
{
    match started {
        Ok(mut result) => relay_sets(node, &mut result, w, renames, status, shown).await,
        Err(e) if is_code(&e, shown.refused_with) => {
            Ok(SetsEnd::Refused(w, ClientError::from_backend(node, e)))
        }
        Err(e) => Ok(SetsEnd::Failed(fail(node, e, w).await?)),
    }
}

/// A `SetsEnd::Refused` where no refusal was asked for (it cannot happen):
/// the client gets an error, and so does the caller.
pub async fn unexpected_refusal<W: AsyncWrite + Send + Unpin>(
    w: QueryResultWriter<'_, W>,
) -> io::Result<ClientError> {
    let err = ClientError::internal("a response was held back that no one asked for");
    w.send_error(&err).await?;
    Ok(err)
}

fn is_code(e: &mysql_async::Error, codes: &[u16]) -> bool {
    matches!(e, mysql_async::Error::Server(s) if codes.contains(&s.code))
}

/// Answers the next result with the backend's error; returns that error.
async fn fail<W: AsyncWrite + Send + Unpin>(
    node: &str,
    e: mysql_async::Error,
    w: QueryResultWriter<'_, W>,
) -> io::Result<ClientError> {
    let err = ClientError::from_backend(node, e);
    w.send_error(&err).await?;
    Ok(err)
}

/// Writes every result set of `result` to `w`. `status` is the session's last
/// known status flags, updated from every OK packet seen.
async fn relay_sets<'w, W, P>(
    node: &str,
    result: &mut QueryResult<'_, '_, P>,
    mut w: QueryResultWriter<'w, W>,
    renames: &[(Vec<u8>, Vec<u8>)],
    status: &mut StatusFlags,
    shown: Shown<'_>,
) -> io::Result<SetsEnd<'w, W>>
where
    W: AsyncWrite + Send + Unpin,
    P: Protocol + Unpin,
{
    let mut row_buf = Vec::new();
    let mut skip = shown.skip;
    let mut digest = shown.digest;
    let mut refused_with = shown.refused_with;
    loop {
        let set = match result.next_raw_set().await {
            Ok(Some(set)) => set,
            Ok(None) => return Ok(SetsEnd::Complete(w)),
            Err(e) if is_code(&e, refused_with) => {
                return Ok(SetsEnd::Refused(w, ClientError::from_backend(node, e)))
            }
            Err(e) => return Ok(SetsEnd::Failed(fail(node, e, w).await?)),
        };
        if set.columns.is_empty() {
            let mut ok = set.ok_packet.as_ref().map(ok_response).unwrap_or_default();
            if let Some(digest) = digest.as_deref_mut() {
                digest.insert_id(ok.last_insert_id);
            }
            ok.status_flags -= shown.hide;
            *status = without_more_results(ok.status_flags);
            if skip > 0 {
                skip -= 1;
            } else {
                // Held back only before the first result the client sees.
                refused_with = &[];
                w = w.complete_one(ok).await?;
            }
            continue;
        }
        if let Some(digest) = digest.as_deref_mut() {
            digest.columns(&set.columns);
        }
        let names = original_names(renames, &set.columns);
        let client_columns = set
            .columns
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (c, name))| encode::column(c, name, set.extended_metadata.get(i)))
            .collect();
        // Held back until the first row shows the node did not refuse it:
        // `prefetched` is that first row (in `row_buf`), or the end of the set.
        let mut prefetched = match std::mem::take(&mut refused_with) {
            [] => None,
            codes => {
                row_buf.clear();
                match result.next_raw_row(&set, &mut row_buf).await {
                    Err(e) if is_code(&e, codes) => {
                        return Ok(SetsEnd::Refused(w, ClientError::from_backend(node, e)));
                    }
                    first => Some(first),
                }
            }
        };
        let mut rows = w.start_owned(client_columns).await?;
        let (mut relayed, mut decoded) = (0, 0);
        loop {
            let next = match prefetched.take() {
                Some(first) => first,
                None => {
                    row_buf.clear();
                    result.next_raw_row(&set, &mut row_buf).await
                }
            };
            match next {
                Ok(false) => break,
                // The row goes out as the node sent it, in the protocol the
                // client used (the node's connection answers in the same).
                Ok(true) => {
                    if let Some(digest) = digest.as_deref_mut() {
                        decoded += 1;
                        match QueryResult::<P>::decode_raw_row(&set, &row_buf) {
                            Ok(row) => digest.row(&row),
                            Err(e) => return Ok(SetsEnd::Failed(fail_rows(node, e, rows).await?)),
                        }
                    }
                    rows.write_row_payload(&row_buf).await?;
                    relayed += 1;
                }
                // The node sent an error instead of the next row (the
                // query was killed, a value could not be computed, …).
                Err(e) => return Ok(SetsEnd::Failed(fail_rows(node, e, rows).await?)),
            }
        }
        crate::metrics::count_relayed_rows(relayed, decoded);
        let (set_status, warnings) = set_end(result, *status);
        *status = set_status - shown.hide;
        w = rows.finish_one_with(*status, warnings).await?;
    }
}

/// Ends a result set whose rows were being written with the node's error.
async fn fail_rows<W: AsyncWrite + Send + Unpin>(
    node: &str,
    e: mysql_async::Error,
    rows: RowWriter<'_, W>,
) -> io::Result<ClientError> {
    let err = ClientError::from_backend(node, e);
    rows.finish_error_raw(err.code(), err.sqlstate(), err.to_string().as_bytes())
        .await?;
    Ok(err)
}

/// The status flags (without SERVER_MORE_RESULTS_EXISTS, which the
/// writer sets) and warnings of the result set just read to its end, from
/// its own terminator (`last` when there is none).
fn set_end<P: Protocol>(result: &QueryResult<'_, '_, P>, last: StatusFlags) -> (StatusFlags, u16) {
    match result.last_result_set_end() {
        Some(end) => (
            without_more_results(status_flags(end.status_flags().bits())),
            end.warnings(),
        ),
        None => (last, result.warnings()),
    }
}

/// Ends a completely relayed response with the node's final status flags and
/// warnings, which mysql_async holds once the response was read to its end.
pub async fn finish<W>(
    conn: &Conn,
    w: QueryResultWriter<'_, W>,
    status: &mut StatusFlags,
) -> io::Result<()>
where
    W: AsyncWrite + Send + Unpin,
{
    let end = final_status(conn, *status);
    finish_with(w, end, status).await
}

/// The status flags and warnings of the response just read from `conn`
/// (`last` when mysql_async has none).
pub fn final_status(conn: &Conn, last: StatusFlags) -> (StatusFlags, u16) {
    match conn.last_ok_packet() {
        Some(ok) => (status_flags(ok.status_flags().bits()), ok.warnings()),
        None => (last, 0),
    }
}

/// Ends a relayed response with status flags and warnings taken earlier.
pub async fn finish_with<W>(
    w: QueryResultWriter<'_, W>,
    (final_status, warnings): (StatusFlags, u16),
    status: &mut StatusFlags,
) -> io::Result<()>
where
    W: AsyncWrite + Send + Unpin,
{
    *status = without_more_results(final_status);
    w.no_more_results_with(*status, warnings).await
}

pub fn ok_response(ok: &mysql_async::OkPacket<'_>) -> OkResponse {
    OkResponse {
        header: 0x00,
        affected_rows: ok.affected_rows(),
        last_insert_id: ok.last_insert_id().unwrap_or(0),
        status_flags: status_flags(ok.status_flags().bits()),
        warnings: ok.warnings(),
        info: ok
            .info_ref()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .unwrap_or_default(),
        session_state_info: String::new(),
    }
}

pub fn status_flags(bits: u16) -> StatusFlags {
    StatusFlags::from_bits_truncate(bits)
}

fn without_more_results(s: StatusFlags) -> StatusFlags {
    s - StatusFlags::SERVER_MORE_RESULTS_EXISTS
}
