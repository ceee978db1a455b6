//! A statement as the nodes receive it, and the statements lockstep sends
//! ahead of it.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::{AfterQuery, Conn, Params, Statement, Value};
use opensrv_mysql::{QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;

use crate::chain::outcome;
use crate::journal::{Context, Outcome, Param, SqlText};
use crate::sql::intercept::Renames;
use crate::sql::unpinnable::{self, Pin};
use crate::wire::relay::{self, SetsEnd, Shown};

/// A statement as the nodes receive it.
#[derive(Clone)]
pub(crate) enum Work {
    Text(Vec<u8>),
    Prepared {
        /// The client's statement id.
        id: u32,
        sql: Vec<u8>,
        master: Statement,
        sync: Option<Statement>,
        params: Vec<Value>,
        /// The unpinnable calls the text reads from `@lockstep_pin_N`.
        pins: Vec<Pin>,
        /// The sequences of the `NEXTVAL` calls it reads from
        /// `@lockstep_seq_call_N`.
        sequences: Vec<String>,
    },
}

impl Work {
    pub(super) fn sql(&self) -> &[u8] {
        match self {
            Work::Text(sql) | Work::Prepared { sql, .. } => sql,
        }
    }

    /// Fixes the values of unpinnable calls: a text gets literals (and the
    /// column names they change back for the client); a prepared statement,
    /// rewritten at prepare time, gets the values of its variables.
    pub(super) fn pinned(self, renames: &Renames) -> (Work, Renames, Vec<(String, String)>) {
        match self {
            Work::Text(sql) => match unpinnable::rewrite(&sql) {
                Some(pinned) => {
                    let mut all = renames.clone();
                    all.extend(pinned.renames);
                    (Work::Text(pinned.sql), all, Vec::new())
                }
                None => (Work::Text(sql), renames.clone(), Vec::new()),
            },
            prepared => {
                let variables = prepared.variable_values();
                (prepared, renames.clone(), variables)
            }
        }
    }

    /// Fresh values for a prepared statement's pin variables.
    pub(super) fn variable_values(&self) -> Vec<(String, String)> {
        match self {
            Work::Prepared { pins, .. } => unpinnable::fresh_values(pins),
            Work::Text(_) => Vec::new(),
        }
    }

    /// The statement as journaled; `client_file` is the content of the
    /// client's file for a `LOAD DATA LOCAL INFILE`.
    pub(super) fn journal_statement(
        &self,
        client_file: Option<&bytes::Bytes>,
    ) -> crate::journal::Statement {
        match (self, client_file) {
            (Work::Text(sql), Some(content)) => crate::journal::Statement::LocalInfile {
                sql: SqlText::from_bytes(sql),
                content: crate::journal::FileContent(content.clone()),
            },
            (Work::Text(sql), None) => crate::journal::Statement::Text {
                sql: SqlText::from_bytes(sql),
            },
            (Work::Prepared { sql, params, .. }, _) => crate::journal::Statement::Prepared {
                sql: SqlText::from_bytes(sql),
                params: params.iter().map(Param::from).collect(),
            },
        }
    }

    pub(super) fn params(params: &[Value]) -> Params {
        if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params.to_vec())
        }
    }

    /// Runs it on B; the response is read and summarized, not relayed.
    pub(super) async fn run_on_sync(&self, conn: &mut Conn) -> Outcome {
        self.run_on_sync_after(conn, None).await
    }

    /// Runs it on B after `pin` (lockstep's statements pinning the context),
    /// in the same round trip: prefixed to a text, written just ahead of a
    /// prepared statement's execution.
    pub(super) async fn run_on_sync_after(
        &self,
        conn: &mut Conn,
        pin: Option<&Pinning>,
    ) -> Outcome {
        match self {
            Work::Text(sql) => match pin {
                Some(pin) => outcome::run_text(conn, &prefixed(&pin.sql, sql)).await,
                None => outcome::run_text(conn, sql).await,
            },
            Work::Prepared {
                sync: Some(stmt),
                params,
                ..
            } => match pin {
                Some(pin) if pin.own_trip => {
                    if let Err(e) = conn.query_drop(pin.sql.as_str()).await {
                        return outcome::outcome_of_error(e);
                    }
                    outcome::run_prepared(conn, stmt, Self::params(params)).await
                }
                Some(pin) => {
                    outcome::run_prepared_after(conn, &pin.sql, stmt, Self::params(params)).await
                }
                None => outcome::run_prepared(conn, stmt, Self::params(params)).await,
            },
            Work::Prepared { sync: None, .. } => Outcome::Lost {
                reason: "the statement is not prepared on this node".into(),
            },
        }
    }

    /// Runs it on A, relaying the response to the client.
    pub(super) async fn relay_on_master<'w, W: AsyncWrite + Send + Unpin>(
        &self,
        node: &str,
        conn: &mut Conn,
        w: QueryResultWriter<'w, W>,
        renames: &Renames,
        status: &mut StatusFlags,
        shown: Shown<'_>,
    ) -> io::Result<SetsEnd<'w, W>> {
        self.relay_on_master_after(node, conn, None, w, renames, status, shown)
            .await
    }

    /// `relay_on_master`, a prepared statement's execution written just
    /// behind `pin` (a text's pin is prefixed to it by the caller): one
    /// round trip. A failed pin ends the connection's use (the statement
    /// ran unpinned; the connection's end undoes it with its transaction):
    /// the client gets a lost-connection error.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn relay_on_master_after<'w, W: AsyncWrite + Send + Unpin>(
        &self,
        node: &str,
        conn: &mut Conn,
        pin: Option<&str>,
        w: QueryResultWriter<'w, W>,
        renames: &Renames,
        status: &mut StatusFlags,
        shown: Shown<'_>,
    ) -> io::Result<SetsEnd<'w, W>> {
        match (self, pin) {
            (Work::Text(sql), _) => {
                let started = conn.query_iter(sql.as_slice()).await;
                relay::relay_response(node, started, w, renames, status, shown).await
            }
            (Work::Prepared { master, params, .. }, None) => {
                let started = conn.exec_iter(master, Self::params(params)).await;
                relay::relay_response(node, started, w, renames, status, shown).await
            }
            (Work::Prepared { master, params, .. }, Some(pin)) => {
                let started = match conn
                    .exec_iter_after_query(pin.as_bytes(), master, Self::params(params))
                    .await
                {
                    Ok(AfterQuery::Ran(result)) => Ok(result),
                    Ok(AfterQuery::QueryFailed(e)) => Err(pin_failed(e)),
                    Err(e) => Err(e),
                };
                relay::relay_response(node, started, w, renames, status, shown).await
            }
        }
    }
}

/// lockstep's statements sent ahead of a client's statement: opening B's or
/// A's side of it, pinning its context, recording its commit.
pub(crate) struct Pinning {
    pub sql: String,
    /// How many statements `sql` holds (their results are not the client's).
    pub statements: usize,
    /// A prepared statement's execution waits for the pin's answer (its
    /// own round trip) instead of being written right behind it: for a
    /// statement that cannot be undone (a DDL), which must not run when
    /// its pin failed. Otherwise a failed pin ends the connection, which
    /// undoes the statement with its transaction.
    pub own_trip: bool,
}

impl Pinning {
    pub(super) fn of(context: &Context) -> Pinning {
        Pinning {
            sql: crate::protocol::control::pin(context),
            statements: 1,
            own_trip: false,
        }
    }

    /// `addition` (one more `name = value`) in the pinning `SET`; call it
    /// before `opened_by` and `then`.
    pub(super) fn setting(self, addition: Option<&str>) -> Pinning {
        match addition {
            Some(addition) => Pinning {
                sql: format!("{}, {addition}", self.sql),
                ..self
            },
            None => self,
        }
    }

    pub(super) fn opened_by(self, opening: &str) -> Pinning {
        Pinning {
            sql: format!("{opening}; {}", self.sql),
            // lockstep's own statements hold no `;` but between them.
            statements: self.statements + opening.split(';').count(),
            ..self
        }
    }

    pub(super) fn then(self, statement: &str) -> Pinning {
        Pinning {
            sql: format!("{}; {statement}", self.sql),
            statements: self.statements + 1,
            ..self
        }
    }

    /// See `own_trip`; `yes` sets it.
    pub(super) fn in_its_own_trip(self, yes: bool) -> Pinning {
        Pinning {
            own_trip: self.own_trip || yes,
            ..self
        }
    }
}

/// `pin; sql` as one multi-statement text.
pub(super) fn prefixed(pin: &str, sql: &[u8]) -> Vec<u8> {
    [pin.as_bytes(), b"; ", sql].concat()
}

/// `@a = 'x', @b = 2`
pub fn assignments(variables: &[(String, String)]) -> String {
    variables
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed pin ahead of a prepared statement's execution, as a broken
/// connection: the statement ran without its pins.
fn pin_failed(e: mysql_async::ServerError) -> mysql_async::Error {
    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(format!(
        "lockstep's pinning statements failed ({e}); the statement after them ran unpinned"
    ))))
}
