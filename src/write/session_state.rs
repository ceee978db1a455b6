//! Session-state statements (SET, USE, PREPARE, temporary tables): B's
//! session, then A's, and what the tail must reproduce of them.

use std::io;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use opensrv_mysql::{QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;
use tracing::warn;

use super::statement::MasterEnd;
use super::work::{Pinning, Work};
use super::{Driver, PrepareStringPins};
use crate::journal::{Context, Outcome, SqlText};
use crate::protocol::control::{self, UserValue, Variable};
use crate::router::{self, SessionChange, SetTarget, TableLocks};
use crate::sql::intercept::Renames;
use crate::sql::unpinnable;
use crate::wire::relay;

impl Driver {
    /// SET, USE, PREPARE, temporary tables: B's session, then A's.
    pub(super) async fn session_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        change: SessionChange,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let table_locks = router::table_locks(work.sql());
        // UNLOCK TABLES commits the open transaction when the session held
        // table locks, as in MariaDB.
        let unlocks = table_locks == Some(TableLocks::Released) && self.holds_table_locks;
        if router::commits_open_transaction(work.sql()) || unlocks {
            if let Err(err) = self.commit_implicitly().await {
                return self.answer(w, Err(err)).await;
            }
        }
        if let Err(err) = self.set_pin_variables(&work, true).await {
            return self.answer(w, Err(err)).await;
        }
        let work = match work {
            Work::Text(sql) => Work::Text(self.prepare_from_variable_as_string(sql).await),
            prepared => prepared,
        };
        if let (SessionChange::Lasting, Work::Text(sql)) = (change, &work) {
            if router::names_user_variable(sql) {
                let sql = sql.clone();
                return self.user_variable_statement(sql, renames, w).await;
            }
        }
        let work = match (table_locks, work) {
            // The session's commits write their rows under its table locks.
            (Some(TableLocks::Writing), Work::Text(sql)) => {
                Work::Text(control::lock_tables_with_commits(&sql))
            }
            (_, Work::Text(sql)) => Work::Text(self.pin_prepare_string(sql)),
            (_, work) => work,
        };
        let sync = match self.sync.as_mut() {
            Some(conn) => Some(work.run_on_sync(conn).await),
            None => None,
        };
        let sync = match sync {
            Some(Outcome::Lost { reason }) => {
                self.sync_lost(&reason);
                None
            }
            other => other,
        };
        let passed = self.relay_on_master(&work, renames, w).await?;
        warn_if_outcomes_differ(work.sql(), passed, sync.as_ref());
        if passed {
            if let Some(locks) = table_locks {
                self.holds_table_locks = locks != TableLocks::Released;
            }
            self.note_fixed_timestamp(work.sql()).await;
        }
        // A statement that failed can have done part of its work first: a
        // `CREATE TEMPORARY TABLE t2 AS SELECT f2()` that fails because
        // f2() created t2 leaves t2 in the session. Refused everywhere, it
        // is remembered all the same, and the tail's replay of it fails
        // after the same work.
        let refused_everywhere = !passed && sync.as_ref().is_none_or(|o| !o.is_ok());
        if passed || refused_everywhere {
            self.remember_session_change(&work, change, refused_everywhere)
                .await;
        }
        Ok(())
    }

    /// After a `DROP TABLE t` the master passed: when the session holds
    /// temporary tables, t may have been one of them (MariaDB drops the
    /// temporary table of a name first), and a replay of the session's state
    /// must not create it again, where it would hide a table t created
    /// later. Remembered as `DROP TEMPORARY TABLE IF EXISTS t`, which does
    /// nothing where t was not temporary.
    pub(super) fn remember_temporary_drop(&mut self, sql: &[u8]) {
        if !self.holds_temporary_tables() {
            return;
        }
        if let Some(drop) = router::as_temporary_drop(sql) {
            self.state.remember(SqlText::from_bytes(&drop), false);
        }
    }

    /// The session made temporary tables (as far as its state says: one
    /// made inside a text of several statements is not recorded there).
    pub(super) fn holds_temporary_tables(&self) -> bool {
        self.state
            .statements
            .iter()
            .any(|statement| router::creates_temporary_table(&statement.to_bytes()))
    }

    /// `PREPARE s FROM @q` whose variable holds a statement that calls
    /// `UUID()` or the like: prepared from the variable's value as a string,
    /// so that its calls are pinned as in `PREPARE s FROM '…'` (and the tail
    /// prepares the same text without needing `@q`). Left as written when
    /// the value needs escapes, or calls nothing to pin.
    async fn prepare_from_variable_as_string(&mut self, sql: Vec<u8>) -> Vec<u8> {
        let Some(variable) = router::prepared_from_variable(&sql) else {
            return sql;
        };
        let Some(conn) = self.master.as_mut() else {
            return sql;
        };
        let value: Option<Option<Vec<u8>>> = conn
            .query_first(format!("SELECT {variable}"))
            .await
            .ok()
            .flatten();
        let Some(Some(value)) = value else {
            return sql;
        };
        if value.contains(&b'\'') || value.contains(&b'\\') || unpinnable::rewrite(&value).is_none()
        {
            return sql;
        }
        let Some(at) = sql
            .windows(variable.len())
            .position(|w| w == variable.as_bytes())
        else {
            return sql;
        };
        [&sql[..at], b"'", &value, b"'", &sql[at + variable.len()..]].concat()
    }

    /// `PREPARE s FROM '… UUID() …'`: the string's unpinnable calls read
    /// pin variables that each `EXECUTE s` sets to the values the journal
    /// keeps (`Session::pinned`); before, every node computed its own.
    fn pin_prepare_string(&mut self, sql: Vec<u8>) -> Vec<u8> {
        let Some(name) = router::prepared_statement_name(&sql) else {
            return sql;
        };
        match unpinnable::rewrite_sql_prepare(&sql) {
            Some(pinned) => {
                let pins = PrepareStringPins {
                    pins: pinned.variables,
                    renames: pinned.renames,
                };
                self.sql_prepared_pins.insert(name, pins);
                pinned.sql
            }
            None => {
                self.sql_prepared_pins.remove(&name);
                sql
            }
        }
    }

    /// `SET @u = UUID()`, `SET @t = NOW(6)`, `SELECT @r := RAND()`: user
    /// variables feed later writes, so they must hold the same values on B,
    /// on A and on the tail, as the statement binlog gives them. Unpinnable
    /// calls become literals and the statement runs under one pinned context
    /// (time, RAND seeds) on B and A; the tail replays it exactly as run.
    /// (A variable read from the data, `SELECT … INTO @v`, is not pinned by
    /// this: see README, limits.)
    async fn user_variable_statement<W: AsyncWrite + Send + Unpin>(
        &mut self,
        sql: Vec<u8>,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let (work, renames, _) = Work::Text(sql).pinned(renames);
        let pin = Pinning::of(&Context::now());
        let sync = match self.sync.as_mut() {
            Some(conn) => Some(work.run_on_sync_after(conn, Some(&pin)).await),
            None => None,
        };
        if let Some(Outcome::Lost { reason }) = &sync {
            let reason = reason.clone();
            self.sync_lost(&reason);
        }
        let passed = match self
            .run_on_master_relayed(&work, Some(&pin), &renames, w, StatusFlags::empty())
            .await?
        {
            MasterEnd::Done { w, end, .. } => {
                relay::finish_with(w, end, &mut self.status).await?;
                true
            }
            MasterEnd::Failed(err) => {
                self.note_failure(&err);
                false
            }
        };
        if passed {
            // Before the unpinning lets it go.
            self.note_fixed_timestamp(work.sql()).await;
        }
        // A's values, read back: B takes them, and the tail sets them rather
        // than computing them again on its own data.
        let taken = match passed {
            true => self.master_user_variables(work.sql()).await,
            false => None,
        };
        // The context stays pinned for this statement only.
        let sync_end = match &taken {
            Some(set) => control::then(set, control::UNPIN),
            None => control::UNPIN.to_string(),
        };
        self.sync_finish(&sync_end).await;
        let _ = self.run_on_master(control::UNPIN.as_bytes()).await;
        warn_if_outcomes_differ(work.sql(), passed, sync.as_ref());
        match (passed, taken) {
            (true, Some(set)) => self
                .state
                .remember(SqlText::from_bytes(set.as_bytes()), false),
            (true, None) => {
                let as_run = [
                    pin.sql.as_bytes(),
                    b"; ",
                    work.sql(),
                    b"; ",
                    control::UNPIN.as_bytes(),
                ]
                .concat();
                self.state.remember(SqlText::from_bytes(&as_run), false);
            }
            (false, _) => {}
        }
        Ok(())
    }

    /// After `CALL p(@out)` or `SET …; INSERT …`: the text set the variables
    /// on each node by itself (and the tail's replay of it sets them only
    /// for that moment). B's session takes A's values, and the tail's
    /// session state gets them, as after `SELECT … INTO @v`.
    pub(super) async fn take_master_variables(&mut self, targets: Vec<SetTarget>) {
        let variables = variables_of(targets);
        let Some(set) = self.read_master_variables(&variables).await else {
            return;
        };
        if let Err(err) = self.sync_control(&set).await {
            warn!(error = %err, "the synchronous slave could not take the master's variables");
        }
        self.state
            .remember(SqlText::from_bytes(set.as_bytes()), false);
    }

    /// The user variables `sql` assigned, as A now holds them: the SET that
    /// gives another session the same values (`None` when the statement
    /// also does something else, or a value cannot be spelled).
    async fn master_user_variables(&mut self, sql: &[u8]) -> Option<String> {
        let names = router::assigned_user_variables(sql)?;
        self.read_master_user_variables(&names).await
    }

    /// `names` as A holds them, as the SET that gives them to another session.
    async fn read_master_user_variables(&mut self, names: &[String]) -> Option<String> {
        let variables: Vec<Variable> = names.iter().cloned().map(Variable::User).collect();
        self.read_master_variables(&variables).await
    }

    /// `variables` as A holds them, as the SET that gives them to another
    /// session.
    async fn read_master_variables(&mut self, variables: &[Variable]) -> Option<String> {
        let query = control::read_variables(variables)?;
        let conn = self.master.as_mut()?;
        let row: Row = match conn.exec_first(query, ()).await {
            Ok(Some(row)) => row,
            other => {
                warn!(?other, "cannot read the variables back from the master");
                return None;
            }
        };
        let values: Option<Vec<(Variable, UserValue)>> = variables
            .iter()
            .enumerate()
            .map(|(i, variable)| Some((variable.clone(), user_value(&row, 3 * i)?)))
            .collect();
        control::set_variables(&values?)
    }

    /// After a client's SET that names `timestamp`: the value the client
    /// fixed, as A holds it, or none (`DEFAULT`, 0). Statements then take
    /// it as their time (`new_entry`), as MariaDB's NOW() does.
    async fn note_fixed_timestamp(&mut self, sql: &[u8]) {
        let Some(assigned) = router::assigned_timestamp(sql) else {
            return;
        };
        if assigned.releases() {
            self.fixed_timestamp = None;
            return;
        }
        let Some(conn) = self.master.as_mut() else {
            return;
        };
        let value: Result<Option<String>, _> =
            conn.query_first("SELECT CAST(@@timestamp AS CHAR)").await;
        match value {
            Ok(Some(value)) if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                self.fixed_timestamp = Some(value);
            }
            other => warn!(?other, "cannot read the timestamp the client fixed"),
        }
    }

    pub(super) async fn remember_session_change(
        &mut self,
        work: &Work,
        change: SessionChange,
        refused: bool,
    ) {
        match (change, work) {
            (SessionChange::Lasting, Work::Text(sql)) => {
                self.state.remember(SqlText::from_bytes(sql), refused);
            }
            (SessionChange::Lasting, Work::Prepared { sql, .. }) => {
                // `SET time_zone = ?`: its parameters are not in the
                // session's state, so the values it set are, as A has them.
                let set = match router::set_targets(sql) {
                    Some(targets) if !refused => {
                        self.read_master_variables(&variables_of(targets)).await
                    }
                    _ => None,
                };
                match set {
                    Some(set) => self
                        .state
                        .remember(SqlText::from_bytes(set.as_bytes()), false),
                    None if refused => {}
                    None => warn!(
                        sql = %String::from_utf8_lossy(sql),
                        "a prepared session statement is not reproduced on the tail nodes"
                    ),
                }
            }
            (SessionChange::Schema, _) => self.refresh_schema().await,
            (SessionChange::Passing, _) => {}
        }
    }

    /// The session's schema, as the master now has it.
    pub(crate) async fn refresh_schema(&mut self) {
        let Some(conn) = self.master.as_mut() else {
            return;
        };
        // In hex of utf8mb4: the name itself would come back in the
        // session's character_set_results, which need not be UTF-8.
        let query = "SELECT HEX(CONVERT(DATABASE() USING utf8mb4))";
        if let Ok(Some(row)) = conn.query_first::<Row, _>(query).await {
            let schema = row
                .get_opt::<Option<String>, usize>(0)
                .and_then(Result::ok)
                .flatten()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            self.params.db = schema.clone();
            self.state.schema = schema;
        }
    }
}

/// The variables to read on A for what a SET assigned.
fn variables_of(targets: Vec<SetTarget>) -> Vec<Variable> {
    targets
        .into_iter()
        .map(|target| match target {
            SetTarget::User(name) => Variable::User(name),
            SetTarget::Session(name) => Variable::Session(name),
        })
        .collect()
}

/// Column `at` of `row` (a user variable, then its character set and
/// collation) as the value to set elsewhere.
fn user_value(row: &Row, at: usize) -> Option<UserValue> {
    use mysql_async::consts::ColumnType;
    use mysql_async::Value as V;
    let decimal = row.columns_ref().get(at)?.column_type() == ColumnType::MYSQL_TYPE_NEWDECIMAL;
    Some(match row.as_ref(at)? {
        V::NULL => UserValue::Null,
        V::Int(i) => UserValue::Int(*i),
        V::UInt(u) => UserValue::UInt(*u),
        V::Double(d) => UserValue::Double(*d),
        V::Float(f) => UserValue::Double(f64::from(*f)),
        V::Bytes(digits) if decimal => UserValue::Decimal(String::from_utf8(digits.clone()).ok()?),
        V::Bytes(bytes) => UserValue::Text {
            bytes: bytes.clone(),
            charset: row.get::<Option<String>, usize>(at + 1)??,
            collation: row.get::<Option<String>, usize>(at + 2)??,
        },
        _ => return None,
    })
}

/// A session statement the master and B did not both pass or both refuse:
/// their sessions differ from here on (logged; the next writes' compare
/// step decides).
fn warn_if_outcomes_differ(sql: &[u8], master_passed: bool, sync: Option<&Outcome>) {
    let sync_passed = sync.is_none_or(Outcome::is_ok);
    if master_passed != sync_passed {
        warn!(
            sql = %String::from_utf8_lossy(sql),
            master_passed,
            "a session statement had different outcomes on the master and the synchronous slave"
        );
    }
}
