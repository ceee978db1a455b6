//! The write path of one session: the session's side of the write
//! protocol (docs/write-protocol.md, which explains every ordering rule).
//!
//! Per write-path statement, with A = master and B = synchronous slave:
//! 1. a requestId (UUID v7), a pinned context (timestamp, RAND seeds) and
//!    unpinnable functions rewritten into literals (`work`);
//! 2. its journal entry, made durable by its commit number's sync (`entries`);
//! 3. **run on B** inside a transaction that stays open (`START TRANSACTION` for an
//!    autocommit statement, `SAVEPOINT` inside a client transaction); an
//!    error that depends on timing goes back to the client and A never sees
//!    the statement (`sync`);
//! 4. **run on A** with the same context, `insert_id` = B's first
//!    AUTO_INCREMENT value (for an upsert, asked of B:
//!    `protocol::insert_id`) and A's `lockstep.commits` row ahead of it; its
//!    response is relayed to the client, the final OK held back
//!    (`statement`);
//! 5. **number**, **commit on A**, answer, **commit on B** (`commit`, the
//!    one driver of every commit; for a client transaction at its COMMIT,
//!    `transaction`). When A refuses the statement, B takes it back.
//!
//! Also here: the session's connections, opened and moved with the roles
//! (`nodes`), reads and the reads that turn out to write (`read`), session
//! statements (`session_state`), serialized statements (`serialized`), a
//! lost answer to COMMIT (`in_doubt`), the diagnostics lockstep's commit row
//! would clear (`kept_warnings`), the `retry-master` policy
//! (`retry_master`).
//!
//! `Driver` is all of a session's state on the nodes; the client-facing
//! `frontend::session::Session` holds one and calls it.

mod binlog_marks;
mod commit;
pub mod deadlocks;
mod entries;
mod in_doubt;
pub(crate) mod kept_warnings;
mod nodes;
mod phase;
mod read;
pub(crate) mod retry_master;
mod serialized;
mod server_file;
mod session_state;
mod statement;
mod sync;
mod transaction;
mod work;

use std::io;

use mysql_async::prelude::Queryable;

use crate::chain::gate::WriteHold;
use opensrv_mysql::{QueryResultWriter, StatusFlags};
use tokio::io::AsyncWrite;

use crate::error::ClientError;
use crate::wire::relay::Shown;
use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::SessionParams;
use crate::journal::SessionState;
use crate::journal::{Entry, EntryKind};
use crate::metrics;
use crate::protocol::control;
use crate::protocol::insert_id::LastInsertId;
use crate::router::{self, Route, SetTarget};
use crate::shared::Shared;
use crate::sql::intercept::Renames;
use crate::sql::limit_order;
use crate::sql::node_variables;
use crate::sql::sequences;
use crate::sql::unpinnable;
use mysql_async::{Conn, Statement};

use work::assignments;
pub(crate) use work::Work;

#[derive(Clone)]
pub(crate) struct PreparedStatement {
    /// The statement on the master.
    pub backend: Statement,
    /// The same statement on the synchronous slave.
    pub sync: Option<Statement>,
    pub sql: Vec<u8>,
    pub route: Route,
    pub renames: Renames,
    /// Unpinnable calls the text reads from `@lockstep_pin_N` variables.
    pub pins: Vec<crate::sql::unpinnable::Pin>,
    /// The sequences of the `NEXTVAL` calls the text reads from
    /// `@lockstep_seq_call_N` variables (`sql::sequences`).
    pub sequences: Vec<String>,
}

/// What `EXECUTE name` must set for a `PREPARE name FROM '…'` whose string
/// calls unpinnable functions.
pub(crate) struct PrepareStringPins {
    pub pins: Vec<crate::sql::unpinnable::Pin>,
    /// Result column names the pin variables changed, for the client.
    pub renames: Renames,
}

/// One client session's side of the write protocol: its connections to the
/// master (A) and the synchronous slave (B), its open transaction, and what
/// the tail must reproduce of it. The client-facing session
/// (`frontend::session`) holds one and calls it for every statement; it
/// answers through the client's result writer.
pub struct Driver {
    /// The client connection's id, as lockstep gives it.
    pub(crate) id: u32,
    pub(crate) shared: Arc<Shared>,
    /// The client's account name, journaled with each write.
    pub(crate) user: String,
    /// How the session's connections to the nodes are opened: the client's
    /// collation, schema and capabilities.
    pub(crate) params: SessionParams,
    pub(crate) master: Option<Conn>,
    /// The node `master` is a connection to.
    pub(crate) master_name: String,
    /// The session's connection to the synchronous slave, when there is one.
    pub(crate) sync: Option<Conn>,
    /// The node `sync` is a connection to.
    pub(crate) sync_name: Option<String>,
    /// The client's open transaction, as lockstep tracks it on B.
    pub(crate) txn: Option<OpenTransaction>,
    /// What the tail must reproduce of this session (journaled with each write).
    pub(crate) state: SessionState,
    pub(crate) last_request_id: Option<uuid::Uuid>,
    /// What LAST_INSERT_ID() returns in this session (journaled for replays).
    pub(crate) last_insert_id: LastInsertId,
    /// The time the client fixed with `SET timestamp = …`, as A reports it.
    pub(crate) fixed_timestamp: Option<String>,
    /// What ROW_COUNT() gives after the client's last statement, when that
    /// statement ran on A through the write path (lockstep's own COMMIT and
    /// SET ran after it there, so A's session has lost the value): the next
    /// text's `ROW_COUNT()` calls become this literal.
    pub(crate) row_count: Option<i64>,
    pub(crate) statements: HashMap<u32, PreparedStatement>,
    /// The unpinnable calls of the client's `PREPARE name FROM '…'`
    /// statements, by name: each `EXECUTE name` sets their pin variables.
    pub(crate) sql_prepared_pins: HashMap<String, PrepareStringPins>,
    /// The status flags of the last response: what PING and other answers
    /// lockstep makes up itself report (autocommit, in transaction).
    pub(crate) status: StatusFlags,
    /// A statement is running on the master for this session: if the
    /// session ends now (client gone), that statement must be killed.
    pub(crate) busy: bool,
    /// Close the client connection after the current answer.
    pub(crate) closing: bool,
    /// The client holds `LOCK TABLES` on A and B: lockstep must not send
    /// `BEGIN` (it releases them); see `control::Wrap`.
    pub(crate) holds_table_locks: bool,
    /// The content of the client's file for the `LOAD DATA LOCAL INFILE`
    /// being run: given to B and A, and journaled with the statement.
    pub(crate) client_file: Option<bytes::Bytes>,
    /// For a load of a file on the master's machine: the statement as the
    /// client wrote it, which the master runs reading its own file while
    /// the others load its bytes (`server_file`).
    pub(crate) master_text: Option<Vec<u8>>,
    /// The commands sent on the master and sync connections already
    /// counted in the metrics, with each connection's id.
    pub(crate) round_trips_counted: [Option<(u32, u64)>; 2],
    /// The diagnostics of a committed transaction's last statement, for
    /// the client's next `SHOW WARNINGS` (`kept_warnings`).
    pub(crate) kept_warnings: Option<kept_warnings::KeptWarnings>,
    /// A command since the last COMMIT or ROLLBACK answered with warnings
    /// on the master: they may still be its diagnostics at the COMMIT.
    pub(crate) warned_since_commit: bool,
}

impl Driver {
    pub fn new(shared: Arc<Shared>, id: u32) -> Driver {
        Driver {
            id,
            shared,
            user: String::new(),
            params: SessionParams::default(),
            master: None,
            master_name: String::new(),
            sync: None,
            sync_name: None,
            txn: None,
            state: SessionState::default(),
            last_request_id: None,
            last_insert_id: LastInsertId::known(0),
            row_count: None,
            fixed_timestamp: None,
            statements: HashMap::new(),
            sql_prepared_pins: HashMap::new(),
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            busy: false,
            client_file: None,
            master_text: None,
            round_trips_counted: [None, None],
            kept_warnings: None,
            warned_since_commit: false,
            closing: false,
            holds_table_locks: false,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Runs one text as a client's COM_QUERY reaches the write protocol:
    /// routed, then run where its route says, answered through `w`. The
    /// client-facing session first answers what lockstep answers itself
    /// (`SHOW LOCKSTEP`, `KILL`, kept warnings) and rewrites what names the
    /// client (`USER()`, `CONNECTION_ID()`); this takes the text as it is.
    pub async fn run_text<W: AsyncWrite + Send + Unpin>(
        &mut self,
        sql: &[u8],
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        let route = router::route(sql);
        self.dispatch(Work::Text(sql.to_vec()), route, &Vec::new(), w)
            .await
    }
}

/// What a table's key makes of a statement that chooses rows by LIMIT
/// (`Driver::ordered_by_key`).
enum KeyOrder {
    /// The text with `ORDER BY` the key.
    Ordered(Vec<u8>),
    /// The table is read in the same order on every node (not InnoDB).
    NotOrdered,
    /// The key is not known here: the master orders the copy's columns.
    Unknown,
}

/// What lockstep knows of a table's key (`Driver::key_of`).
enum TableKey {
    /// An InnoDB table: its primary key, or every column without one.
    Columns(Vec<String>),
    /// MyISAM, Aria, …: read in data-file order.
    NotInnoDb,
    /// Not a base table the master shows (a temporary table, a view), or
    /// the master could not say.
    Unknown,
}

/// A client transaction open on A and B.
pub struct OpenTransaction {
    /// Keeps serialized statements (DDL) and role changes out while it is
    /// open; a handover of the synchronous role only once B holds part of
    /// it (`chain::gate`).
    gate: WriteHold,
    /// The data-changing statements A accepted, in order: what its commit
    /// record lists for the tail.
    entries: Vec<Entry>,
    /// What opens B's side, while it is not open yet: the transaction's
    /// first statement that runs on B sends it in its own round trip
    /// (`control::opening_on_sync`, ahead of its pin), rather than BEGIN
    /// (or, with autocommit off, the first write) costing B a round trip
    /// of its own. A transaction that only reads never reaches B. None
    /// once sent, and under LOCK TABLES, where B's BEGIN is sent at once
    /// or never (it releases B's table locks).
    opening_on_sync: Option<&'static str>,
    /// A statement kept changed data (not only savepoints): the COMMIT
    /// then takes a commit number and writes lockstep's row on A and B.
    changes_data: bool,
    /// Tells the registry (failover ends such sessions) while it is open.
    _mark: TransactionMark,
}

impl OpenTransaction {
    fn new(
        session: &Driver,
        gate: WriteHold,
        opening_on_sync: Option<&'static str>,
    ) -> OpenTransaction {
        session.shared.registry.set_in_transaction(session.id, true);
        OpenTransaction {
            gate,
            entries: Vec::new(),
            opening_on_sync,
            changes_data: false,
            _mark: TransactionMark {
                shared: session.shared.clone(),
                id: session.id,
            },
        }
    }
}

struct TransactionMark {
    shared: std::sync::Arc<crate::shared::Shared>,
    id: u32,
}

impl Drop for TransactionMark {
    fn drop(&mut self) {
        self.shared.registry.set_in_transaction(self.id, false);
    }
}

impl Driver {
    /// Routes a statement: the master alone, every session connection, or
    /// the write path.
    pub(crate) async fn dispatch<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        route: Route,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        metrics::count_statement(route.name());
        // Set again by the write path when this statement runs there.
        self.row_count = None;
        let unpins = !matches!(route, Route::Read | Route::Unsupported(_));
        let changes_schema = matches!(&work, Work::Text(sql) if router::text_changes_schema(sql));
        let answered = self.dispatch_route(work, route, renames, w).await;
        if changes_schema {
            // `USE db2; INSERT …`: the session's later statements are
            // journaled with the schema A's session has now.
            self.refresh_schema().await;
        }
        if unpins {
            self.restore_fixed_timestamp().await;
        }
        answered
    }

    async fn dispatch_route<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: Work,
        route: Route,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<()> {
        if let Some(err) = self.runs_unrepeatable_body(&work, &route) {
            return self.answer(w, Err(err)).await;
        }
        // A serialized text pins each of its inserts
        // (`write::serialized`, "pin the text's inserts").
        if matches!(work, Work::Text(_))
            && route != Route::Serialized
            && self
                .shared
                .unrepeatable_bodies
                .auto_increment_inserts(work.sql())
                > 1
        {
            return self
                .answer(w, Err(ClientError::several_auto_increment_inserts()))
                .await;
        }
        // A serialized text pins its inserts by pairing its statements with
        // their results, which a CALL among them makes impossible.
        if matches!(work, Work::Text(_))
            && route == Route::Serialized
            && router::calls_a_routine_among_several(work.sql())
            && self
                .shared
                .unrepeatable_bodies
                .auto_increment_inserts(work.sql())
                > 0
        {
            return self
                .answer(w, Err(ClientError::call_among_pinned_inserts()))
                .await;
        }
        if router::writes_skipped_rows(work.sql()) {
            return self
                .answer(w, Err(ClientError::writes_skipped_rows()))
                .await;
        }
        if router::changes_own_account(work.sql()) {
            return self.answer(w, Err(ClientError::own_account_change())).await;
        }
        if router::enables_event_scheduler(work.sql()) {
            let err = ClientError::NotSupported(
                "the event scheduler: every node would run the events by itself, writing \
                 behind lockstep's back (run scheduled work from a client instead)"
                    .into(),
            );
            return self.answer(w, Err(err)).await;
        }
        let route = self.writing_assignment_as_write(&work, route);
        match route {
            Route::Unsupported(what) => {
                self.answer(w, Err(ClientError::NotSupported(what.into())))
                    .await
            }
            // A plain read goes to A alone, inside a transaction too: it
            // holds nothing of lockstep's (no gate, no transaction on B), as
            // it holds nothing on MariaDB but a snapshot. Writes read
            // current rows under locks, so B's later snapshot changes none.
            Route::Read => {
                // ANALYZE, CHECK, FLUSH, …: MariaDB commits the open
                // transaction first; so does lockstep, through the protocol.
                if router::commits_open_transaction(work.sql()) {
                    if let Err(err) = self.commit_implicitly().await {
                        return self.answer(w, Err(err)).await;
                    }
                }
                if let Err(err) = self.set_pin_variables(&work, false).await {
                    return self.answer(w, Err(err)).await;
                }
                self.read(work, renames, w).await
            }
            // Outside a transaction a SET GLOBAL runs outside one on the
            // nodes too, as the client sent it: some settings refuse to
            // change inside a transaction (`read_only`: 1192), and lockstep's
            // own transaction around a write would be one.
            Route::Write if self.txn.is_none() && router::sets_global(work.sql()) => {
                self.run_serialized(work, renames, w).await
            }
            Route::Write => {
                // Variables a CALL's OUT parameters or a SET inside the text
                // assign: read back from A after it (see `session_state`).
                let assigned = match &work {
                    Work::Text(sql) => router::call_user_variables(sql)
                        .map(|names| names.into_iter().map(SetTarget::User).collect())
                        .or_else(|| router::text_set_targets(sql))
                        .or_else(|| router::assigned_targets(sql)),
                    Work::Prepared { .. } => None,
                };
                let answered = self
                    .write_statement(work, EntryKind::Write, renames, w)
                    .await;
                if let Some(targets) = assigned {
                    self.take_master_variables(targets).await;
                }
                answered
            }
            Route::Session(change) => self.session_statement(work, change, renames, w).await,
            Route::Begin => self.begin(work, renames, w).await,
            Route::Commit => self.commit(work, w).await,
            Route::Rollback => self.rollback(work, w).await,
            Route::Serialized => self.run_serialized(work, renames, w).await,
        }
    }

    /// `SET @x = f()`, `SELECT f() INTO @x`, `SET @x = NEXTVAL(s)`: a
    /// statement that assigns variables from a stored function (which may
    /// write) or a sequence is a write: it is
    /// journaled and replayed on the tail, where the function's writes must
    /// happen too, and the values it assigned are then read back from A
    /// like a `CALL`'s (before, the tail got the values but not the
    /// function's writes). Outside a transaction, too: a session statement
    /// runs without the read-only guard that sends reads that write down
    /// the write path.
    fn writing_assignment_as_write(&self, work: &Work, route: Route) -> Route {
        match (route, work) {
            (Route::Session(router::SessionChange::Lasting), Work::Text(sql))
                if (self.shared.stored_functions.named_in(sql)
                    && router::may_call_functions(sql)
                    || sequences::calls(sql).is_some())
                    && router::assigned_targets(sql).is_some() =>
            {
                Route::Write
            }
            _ => route,
        }
    }

    /// A statement that would run a trigger or routine each node would run
    /// with its own values is refused before any node runs it.
    fn runs_unrepeatable_body(&self, work: &Work, route: &Route) -> Option<ClientError> {
        if !matches!(route, Route::Read | Route::Write | Route::Serialized) {
            return None;
        }
        self.shared
            .unrepeatable_bodies
            .run_by(work.sql())
            .map(|definition| ClientError::unrepeatable_body(&definition))
    }

    /// The client fixed its session's time (`SET timestamp = …`): lockstep's
    /// unpinning after a statement (`SET timestamp = DEFAULT`) let it go on
    /// A, so it is set again there for the session's next reads.
    async fn restore_fixed_timestamp(&mut self) {
        if let Some(fixed) = self.fixed_timestamp.clone() {
            if let Err(err) = self
                .run_on_master(control::fix_timestamp(&fixed).as_bytes())
                .await
            {
                tracing::warn!(error = %err, "cannot set the session's fixed timestamp again on the master");
            }
        }
    }

    /// Outside the write path (which pins them with the context), a prepared
    /// statement's pin variables are set right before it runs.
    async fn set_pin_variables(&mut self, work: &Work, on_sync: bool) -> Result<(), ClientError> {
        let variables = work.variable_values();
        if variables.is_empty() {
            return Ok(());
        }
        let set = format!("SET {}", assignments(&variables));
        if on_sync {
            self.sync_control(&set).await?;
        }
        self.run_on_master(set.as_bytes()).await.map(|_| ())
    }

    /// `Work::pinned`; for `EXECUTE name` of a `PREPARE name FROM '…'`
    /// whose string calls unpinnable functions, also fresh values for its
    /// pin variables (journaled with the statement's context).
    pub(crate) fn pinned_work(
        &self,
        work: Work,
        renames: &Renames,
    ) -> (Work, Renames, Vec<(String, String)>) {
        // Every write passes here: read the text only when the session
        // has such a statement at all.
        let executed = match &work {
            Work::Text(sql) if !self.sql_prepared_pins.is_empty() => {
                router::executed_statement_name(sql)
                    .and_then(|name| self.sql_prepared_pins.get(&name))
            }
            _ => None,
        };
        let (work, mut renames, mut variables) = work.pinned(renames);
        if let Some(executed) = executed {
            variables.extend(unpinnable::fresh_values(&executed.pins));
            renames.extend(executed.renames.iter().cloned());
        }
        (work, renames, variables)
    }

    /// A statement whose LIMIT chooses rows without an order every node
    /// follows, given one: `UPDATE`/`DELETE … LIMIT` and a copy of one
    /// table's rows get its key, other copies (`INSERT … SELECT`, `CREATE
    /// TABLE … SELECT` from joins, unions, groupings) every column they copy
    /// (`sql::limit_order`); so does a copy without LIMIT whose order
    /// decides what it writes. Left as written when the master cannot say.
    pub(crate) async fn ordered_limit(&mut self, sql: Vec<u8>) -> Vec<u8> {
        let every_copy = self.copy_order_matters(&sql);
        let sql = match limit_order::unordered_limit(&sql, every_copy) {
            Some(found) => match self.ordered_by_key(&sql, &found).await {
                KeyOrder::Ordered(ordered) => return ordered,
                // MyISAM, Aria: read in data-file order, the same on every
                // node (`chain::table_keys`).
                KeyOrder::NotOrdered => return sql,
                KeyOrder::Unknown => sql,
            },
            None => sql,
        };
        match limit_order::unordered_copy(&sql, every_copy) {
            Some(copy) => self.ordered_by_every_column(sql, &copy).await,
            None => sql,
        }
    }

    /// Whether a copy (`INSERT … SELECT`, `CREATE TABLE … SELECT`) writes
    /// other rows when it reads its rows in another order, LIMIT or not: it
    /// numbers them (its target has an AUTO_INCREMENT column), or the first
    /// or last row of a key wins (`sql::limit_order::copy_order_matters`).
    fn copy_order_matters(&self, sql: &[u8]) -> bool {
        let copies = sql.windows(6).any(|w| w.eq_ignore_ascii_case(b"select"));
        copies
            && (limit_order::copy_order_matters(sql)
                || self
                    .shared
                    .unrepeatable_bodies
                    .inserts_into_auto_increment_table(sql))
    }

    /// `found`'s text ordered by its table's key; not for a table that is
    /// not InnoDB; unknown when the table may be one of the session's
    /// temporary tables or the master cannot say.
    async fn ordered_by_key(
        &mut self,
        sql: &[u8],
        found: &limit_order::UnorderedLimit,
    ) -> KeyOrder {
        if self.holds_temporary_tables() {
            return KeyOrder::Unknown;
        }
        let Some(schema) = found.schema.clone().or_else(|| self.state.schema.clone()) else {
            return KeyOrder::Unknown;
        };
        match self.key_of(&schema, &found.table).await {
            TableKey::Columns(columns) => KeyOrder::Ordered(found.ordered_by(sql, &columns)),
            TableKey::NotInnoDb => KeyOrder::NotOrdered,
            TableKey::Unknown => KeyOrder::Unknown,
        }
    }

    /// A table's key as `chain::table_keys` knows it, asked of the master
    /// the first time.
    async fn key_of(&self, schema: &str, table: &str) -> TableKey {
        let keys = &self.shared.table_keys;
        let columns = match keys.get(schema, table) {
            Some(known) => known,
            None => {
                let fetched = match self.shared.master_node().connect_admin().await {
                    Ok(mut conn) => {
                        let fetched = keys.fetch(&mut conn, schema, table).await;
                        let _ = conn.disconnect().await;
                        fetched
                    }
                    Err(e) => Err(e),
                };
                match fetched {
                    Ok(known) => known,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a table's key; its statement goes as written");
                        return TableKey::Unknown;
                    }
                }
            }
        };
        match columns {
            Some(columns) => TableKey::Columns(columns),
            // Fetched and remembered as not ordered: not InnoDB.
            None if keys.get(schema, table) == Some(None) => TableKey::NotInnoDb,
            None => TableKey::Unknown,
        }
    }

    /// `copy`'s text ordered by every column its SELECT gives: the master
    /// prepares the SELECT in the session (its temporary tables, its
    /// schema) to count them, without running it.
    async fn ordered_by_every_column(
        &mut self,
        sql: Vec<u8>,
        copy: &limit_order::UnorderedCopy,
    ) -> Vec<u8> {
        if !copy.has_limit() && !self.reads_an_innodb_table(copy).await {
            // Its rows come in the same order on every node: MyISAM and
            // Aria files, the session's own temporary tables.
            return sql;
        }
        let Some(conn) = self.master.as_mut() else {
            return sql;
        };
        let columns = match conn.prep(copy.select(&sql)).await {
            Ok(statement) => {
                let columns = statement.num_columns();
                let _ = conn.close(statement).await;
                columns
            }
            Err(e) => {
                // The statement fails the same way on every node.
                tracing::debug!(error = %e, "the master cannot prepare a copy's SELECT; it goes as written");
                return sql;
            }
        };
        if columns == 0 {
            return sql;
        }
        copy.ordered_by_positions(&sql, usize::from(columns))
    }

    /// Whether a copy reads an InnoDB table, whose rows may come in
    /// another order on each node (no primary key: each node's own order
    /// of concurrent inserts; otherwise each node's plan). A table the
    /// master's catalog does not show (the session's temporary table) or
    /// shows as MyISAM or Aria does not count; a derived table does.
    async fn reads_an_innodb_table(&mut self, copy: &limit_order::UnorderedCopy) -> bool {
        let Some(sources) = copy.sources() else {
            return true;
        };
        for (schema, table) in sources {
            let Some(schema) = schema.clone().or_else(|| self.state.schema.clone()) else {
                return true;
            };
            if matches!(self.key_of(&schema, table).await, TableKey::Columns(_)) {
                return true;
            }
        }
        false
    }

    /// `NEXTVAL(s)` in a write: each call's value taken once, on the first
    /// node (B, or A without B), written into the text, and every node's
    /// sequence brought to it by `SETVAL` in the pinned context
    /// (`sql::sequences`). A call that runs once per row is refused.
    pub(crate) async fn pinned_sequences(
        &mut self,
        work: Work,
        renames: &Renames,
    ) -> Result<(Work, Renames, Vec<(String, String)>), ClientError> {
        match &work {
            Work::Text(sql) => {
                let calls = match sequences::calls(sql) {
                    None => return Ok((work, renames.clone(), Vec::new())),
                    Some(sequences::Calls::PerRow) => return Err(per_row_sequence()),
                    Some(sequences::Calls::Once(calls)) => calls,
                };
                let names: Vec<String> = calls.iter().map(|c| c.sequence.clone()).collect();
                let values = self.take_sequence_values(&names).await?;
                let (text, sequence_renames) = sequences::with_values(sql, &calls, &values);
                let mut renames = renames.clone();
                renames.extend(sequence_renames);
                Ok((Work::Text(text), renames, setval_pins(&names, &values)))
            }
            Work::Prepared {
                sequences: names, ..
            } if !names.is_empty() => {
                let names = names.clone();
                let values = self.take_sequence_values(&names).await?;
                let mut pins: Vec<(String, String)> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (sequences::call_variable(i), v.to_string()))
                    .collect();
                pins.extend(setval_pins(&names, &values));
                Ok((work, renames.clone(), pins))
            }
            Work::Prepared { .. } => Ok((work, renames.clone(), Vec::new())),
        }
    }

    /// `@@hostname`, `@@server_id` and the other variables whose value is
    /// each server's own, in a write: the master's values, as literals
    /// (`sql::node_variables`). Left as written when the master cannot say.
    pub(crate) async fn pinned_node_variables(
        &mut self,
        work: Work,
        renames: Renames,
    ) -> (Work, Renames) {
        let Work::Text(sql) = &work else {
            return (work, renames);
        };
        let uses = node_variables::uses(sql);
        if uses.is_empty() {
            return (work, renames);
        }
        let query = format!(
            "SELECT {}",
            uses.iter()
                .map(|u| format!("@@global.{}", u.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let node = self.shared.master_node();
        let row: Option<mysql_async::Row> = match node.connect_admin().await {
            Ok(mut conn) => {
                let row = conn.query_first(query).await.ok().flatten();
                let _ = conn.disconnect().await;
                row
            }
            Err(_) => None,
        };
        let values: Option<Vec<String>> = row.and_then(|row| {
            uses.iter()
                .enumerate()
                .map(|(i, u)| {
                    let value: Option<String> = row.get_opt::<Option<String>, usize>(i)?.ok()?;
                    node_variables::literal(&value?, node_variables::is_numeric(&u.name))
                })
                .collect()
        });
        let Some(values) = values else {
            tracing::warn!(
                "cannot read the master's per-server variables; the write goes as written"
            );
            return (work, renames);
        };
        let (text, more) = node_variables::with_values(sql, &uses, &values);
        let mut renames = renames;
        renames.extend(more);
        (Work::Text(text), renames)
    }

    /// One value of each sequence named, in order, taken on the first node
    /// (B, or A without B).
    async fn take_sequence_values(&mut self, names: &[String]) -> Result<Vec<i64>, ClientError> {
        let take = format!(
            "SELECT {}",
            names
                .iter()
                .map(|s| format!("NEXTVAL({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let (node, conn) = match (self.sync.as_mut(), self.master.as_mut()) {
            (Some(conn), _) => (self.sync_name.clone().unwrap_or_default(), conn),
            (None, Some(conn)) => (self.master_name.clone(), conn),
            (None, None) => return Err(self.lost_master()),
        };
        let row: Option<mysql_async::Row> = conn
            .query_first(take)
            .await
            .map_err(|e| ClientError::from_backend(&node, e))?;
        let values: Vec<i64> = row
            .map(|row| {
                (0..row.len())
                    .filter_map(|i| row.get_opt::<i64, usize>(i).and_then(Result::ok))
                    .collect()
            })
            .unwrap_or_default();
        if values.len() != names.len() {
            return Err(ClientError::internal("a sequence gave no value"));
        }
        Ok(values)
    }

    /// Follows the roles after waiting for the gate (a failover or a new
    /// synchronous slave may have happened meanwhile); a prepared
    /// statement's handles are then those of the new connections.
    pub(crate) async fn follow_roles_with(&mut self, work: &mut Work) {
        self.follow_roles().await;
        if let Work::Prepared {
            id, master, sync, ..
        } = work
        {
            if let Some(prepared) = self.statements.get(id) {
                *master = prepared.backend.clone();
                *sync = prepared.sync.clone();
            }
        }
    }

    /// How an autocommit statement gets a transaction of its own on A and B.
    pub(crate) fn wrap(&self) -> control::Wrap {
        if self.holds_table_locks {
            control::Wrap::AutocommitOff
        } else {
            control::Wrap::Begin
        }
    }

    /// A transaction is open (or autocommit is off, so the next statement opens one).
    /// What opens B's side of the open transaction, once: the caller sends
    /// it to B ahead of the statement it runs there.
    pub(super) fn take_opening_on_sync(&mut self) -> Option<&'static str> {
        self.txn.as_mut()?.opening_on_sync.take()
    }

    /// Whether the open transaction was begun on A alone and B holds
    /// nothing of it yet (its opening there is not sent): the session may
    /// move to another synchronous slave.
    pub(super) fn begun_on_master_alone(&self) -> bool {
        self.txn
            .as_ref()
            .is_some_and(|t| t.opening_on_sync.is_some())
    }

    /// Whether B may hold something of the open transaction (or of one
    /// lockstep does not know about): what ends it must be sent to B too.
    pub(super) fn open_on_sync(&self) -> bool {
        self.txn
            .as_ref()
            .is_none_or(|t| t.opening_on_sync.is_none())
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.txn.is_some()
            || self.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
            || !self.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
    }

    /// Relays a statement's whole response from the master; true when it succeeded.
    pub(crate) async fn relay_on_master<W: AsyncWrite + Send + Unpin>(
        &mut self,
        work: &Work,
        renames: &Renames,
        w: QueryResultWriter<'_, W>,
    ) -> io::Result<bool> {
        let node = self.master_name.clone();
        let Some(conn) = self.master.as_mut() else {
            let err = self.lost_master();
            self.answer(w, Err(err)).await?;
            return Ok(false);
        };
        self.busy = true;
        let end = work
            .relay_on_master(&node, conn, w, renames, &mut self.status, Shown::default())
            .await?;
        self.end_response(end).await
    }
}

/// A call of `NEXTVAL` that runs once per row cannot be pinned.
pub(crate) fn per_row_sequence() -> ClientError {
    ClientError::NotSupported(
        "NEXTVAL or NEXT VALUE FOR once per row (INSERT … SELECT, UPDATE, a SELECT with \
         FROM): each node would hand out its own values"
            .into(),
    )
}

/// `@lockstep_seq_N = SETVAL(s, v)` for each sequence with the highest
/// value taken of it: brings every other node's sequence there (a no-op
/// where it is already: SETVAL only moves a sequence forward).
fn setval_pins(names: &[String], values: &[i64]) -> Vec<(String, String)> {
    let mut highest: Vec<(&String, i64)> = Vec::new();
    for (name, value) in names.iter().zip(values) {
        match highest.iter_mut().find(|(s, _)| *s == name) {
            Some((_, v)) => *v = (*v).max(*value),
            None => highest.push((name, *value)),
        }
    }
    highest
        .into_iter()
        .enumerate()
        .map(|(i, (name, value))| {
            (
                format!("@lockstep_seq_{i}"),
                format!("SETVAL({name}, {value})"),
            )
        })
        .collect()
}
