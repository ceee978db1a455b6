//! The commit number: the one rule that keeps the journal in the master's
//! order.
//!
//! Replaying the journal gives the master's data only if the journal lists
//! conflicting transactions in the order the master serialized them. The
//! master serializes them with its locks, held until its COMMIT: so the
//! number is taken after the master ran all of the work (it holds every
//! lock the work needs) and before its COMMIT is sent (no lock released
//! yet). Any transaction that conflicts with this one either committed on
//! the master before these locks were granted (and took its number before
//! its COMMIT, so before this one) or waits for them (and takes its number
//! after this COMMIT). The order of numbers is then a valid serial order of
//! the master's history, whatever B did, whether or not B exists.
//!
//! The number is made durable before the master commits under it: after
//! any crash the journal knows every number the master may have used, and
//! the master's `lockstep.commits` row (by requestId) says whether it did.

use uuid::Uuid;

use crate::journal::{CommitState, Journal, JournalError, Reservation};

/// Phase "number": call it only while the master holds the locks of all of
/// `statements` and has not been asked to commit them.
pub async fn number(
    journal: &Journal,
    request_id: Uuid,
    statements: Vec<Uuid>,
    serialized: bool,
) -> Result<Reservation, JournalError> {
    let mut reservation = journal.reserve_commit(request_id, statements, serialized)?;
    if let Err(e) = reservation.durable().await {
        // The master will not be asked to commit under it.
        reservation.resolve(CommitState::Aborted);
        return Err(e);
    }
    Ok(reservation)
}
