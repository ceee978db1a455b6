//! Where a tail applier runs a session's commits. Most sessions share one
//! connection, so that consecutive commits share one node transaction. A
//! session whose state holds temporary tables gets a connection of its own
//! (its lane): temporary tables and their rows belong to a connection, and
//! the shared one is reset whenever it changes sessions, which would drop
//! them. A MariaDB replica keeps temporary tables per origin thread the same
//! way.

use std::collections::{HashMap, HashSet};

use mysql_async::Conn;
use tracing::warn;

use super::replay_state::AppliedState;
use crate::backend::Node;
use crate::journal::{Entry, SessionState, Statement};
use crate::router;

/// Most sessions with a lane of their own at once; the least recently used
/// one loses its lane (and its temporary tables on this node) beyond it.
const OWN_LANES: usize = 32;

/// A connection to the node and the session state it reproduces.
pub struct Lane {
    pub conn: Conn,
    pub state: AppliedState,
    last_used: u64,
}

/// Which lane a commit runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKey {
    Shared,
    /// The origin session's own.
    Own(u32),
}

fn has_temporary_tables(state: &SessionState) -> bool {
    state
        .statements
        .iter()
        .any(|sql| router::creates_temporary_table(&sql.to_bytes()))
}

fn makes_temporary_tables(entry: &Entry) -> bool {
    match &entry.statement {
        Statement::Text { sql } => router::text_creates_temporary_table(&sql.to_bytes()),
        Statement::Prepared { .. } | Statement::LocalInfile { .. } => false,
    }
}

pub struct Lanes {
    node: Node,
    shared: Lane,
    own: HashMap<u32, Lane>,
    uses: u64,
    /// Sessions that made temporary tables inside a text of several
    /// statements (`CREATE TEMPORARY TABLE x …; INSERT …`): their state does
    /// not say so, the texts this node applied did.
    made_by_text: HashSet<u32>,
}

impl Lanes {
    /// `shared`: the applier's connection, already set up.
    pub fn new(node: Node, shared: Conn) -> Lanes {
        Lanes {
            node,
            shared: Lane {
                conn: shared,
                state: AppliedState::default(),
                last_used: 0,
            },
            own: HashMap::new(),
            uses: 0,
            made_by_text: HashSet::new(),
        }
    }

    /// The lane of `entry`: its session's own when the session has made
    /// temporary tables (in its state, or in a text, this one included).
    pub fn key_of(&self, entry: &Entry) -> LaneKey {
        let own = has_temporary_tables(&entry.session_state)
            || self.made_by_text.contains(&entry.session)
            || makes_temporary_tables(entry);
        if own {
            LaneKey::Own(entry.session)
        } else {
            LaneKey::Shared
        }
    }

    /// After `entries` were given their lane: the sessions whose texts made
    /// temporary tables keep their own lane from now on.
    pub fn note_texts(&mut self, entries: &[Entry]) {
        for entry in entries.iter().filter(|e| makes_temporary_tables(e)) {
            self.made_by_text.insert(entry.session);
        }
    }

    /// The lane for `key`, connected.
    pub async fn lane(&mut self, key: LaneKey) -> Result<&mut Lane, mysql_async::Error> {
        self.uses += 1;
        let session = match key {
            LaneKey::Shared => {
                self.shared.last_used = self.uses;
                return Ok(&mut self.shared);
            }
            LaneKey::Own(session) => session,
        };
        if !self.own.contains_key(&session) {
            self.make_room();
            let conn = self.node.connect_admin().await?;
            self.own.insert(
                session,
                Lane {
                    conn,
                    state: AppliedState::default(),
                    last_used: 0,
                },
            );
        }
        let uses = self.uses;
        let lane = self
            .own
            .get_mut(&session)
            .ok_or_else(|| mysql_async::Error::Other("a lane just made is gone".into()))?;
        lane.last_used = uses;
        Ok(lane)
    }

    fn make_room(&mut self) {
        if self.own.len() < OWN_LANES {
            return;
        }
        let oldest = self
            .own
            .iter()
            .min_by_key(|(_, lane)| lane.last_used)
            .map(|(session, _)| *session);
        if let Some(session) = oldest {
            warn!(
                session,
                "more sessions with temporary tables than lanes: the least recently used one's \
                 temporary tables are dropped on this node"
            );
            self.own.remove(&session);
        }
    }
}
