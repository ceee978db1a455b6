//! No wait MariaDB itself would not make (issue "Same data everywhere",
//! items 2 and 3): a session that only read holds nothing, a DDL waits for
//! open transactions on its own tables only, at most `lock_wait_timeout`,
//! and then gets MariaDB's 1205, writes on other tables pass a waiting DDL,
//! a timing error on the synchronous slave goes back to the client
//! without reaching the master and without costing B its role, and KILL
//! QUERY stops a statement waiting on B as fast as directly.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use support::{roles, root_rows, runtime, server_code, wait_for_tail, Cluster, Lockstep};

const SCHEMA: &str = "CREATE DATABASE w; \
    CREATE TABLE w.t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
    INSERT INTO w.t VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0);";

/// A root connection straight to node `i` (behind lockstep's back).
async fn direct(cluster: &Cluster, i: usize) -> Conn {
    let opts = mysql_async::Opts::from_url(&cluster.nodes[i].url()).expect("url");
    Conn::new(opts).await.expect("direct connection")
}

#[test]
fn a_session_that_only_read_holds_nothing_and_ddl_waits_at_most_lock_wait_timeout() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        // PyMySQL's default: autocommit off, and a read.
        let mut reader = Conn::new(lockstep.client_opts()).await.expect("connect");
        reader
            .query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
        let _: Option<u8> = reader.query_first("SELECT 1").await.expect("read");
        let _: Vec<Row> = reader.query("SELECT * FROM w.t").await.expect("read");

        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        let created = tokio::time::timeout(
            Duration::from_secs(10),
            ddl.query_drop("CREATE TABLE w.other (id INT PRIMARY KEY) ENGINE=InnoDB"),
        )
        .await;
        assert!(
            matches!(created, Ok(Ok(()))),
            "a DDL waited for a session that only read: {created:?}"
        );
        reader.query_drop("COMMIT").await.expect("commit");

        // A session with a write open: the DDL waits lock_wait_timeout, then 1205.
        let mut writer = Conn::new(lockstep.client_opts()).await.expect("connect");
        writer.query_drop("BEGIN").await.expect("begin");
        writer
            .query_drop("UPDATE w.t SET v = 1 WHERE id = 1")
            .await
            .expect("update");
        ddl.query_drop("SET SESSION lock_wait_timeout = 1")
            .await
            .expect("set");
        let started = Instant::now();
        let refused = ddl
            .query_drop("ALTER TABLE w.t ADD COLUMN c INT")
            .await
            .expect_err("the DDL waits for the open transaction, then gives up");
        let waited = started.elapsed();
        assert_eq!(server_code(&refused), Some(1205), "{refused}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "waited {waited:?} for lock_wait_timeout = 1"
        );
        println!("DDL behind an open transaction: 1205 after {waited:?}");
        // Nothing was done anywhere, and the transaction goes on.
        writer.query_drop("COMMIT").await.expect("commit");
        ddl.query_drop("ALTER TABLE w.t ADD COLUMN c INT")
            .await
            .expect("the DDL runs once the transaction ended");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't'"),
            ["3"],
            "the ALTER ran exactly once on port {}",
            node.port
        );
        assert_eq!(root_rows(node, "SELECT v FROM w.t WHERE id = 1"), ["1"]);
    }
}

/// Three nodes behind lockstep with `w.t` and a second table, `w.other`.
fn start_with_two_tables() -> (Cluster, Lockstep) {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        &format!(
            "{SCHEMA} CREATE TABLE w.other (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
             INSERT INTO w.other VALUES (1, 0);"
        ),
    );
    (cluster, lockstep)
}

#[test]
fn a_ddl_waits_only_for_transactions_on_its_tables_and_other_writes_pass_it() {
    let (cluster, lockstep) = start_with_two_tables();
    let rt = runtime();
    rt.block_on(async {
        // A transaction that wrote w.t stays open throughout.
        let mut writer = Conn::new(lockstep.client_opts()).await.expect("connect");
        writer.query_drop("BEGIN").await.expect("begin");
        writer
            .query_drop("UPDATE w.t SET v = 1 WHERE id = 1")
            .await
            .expect("update");

        // A DDL on another table does not wait for it (MariaDB's does not).
        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        let started = Instant::now();
        let altered = tokio::time::timeout(
            Duration::from_secs(10),
            ddl.query_drop("ALTER TABLE w.other ADD COLUMN c INT"),
        )
        .await;
        assert!(
            matches!(altered, Ok(Ok(()))),
            "a DDL on w.other waited for a transaction on w.t: {altered:?}"
        );
        println!("DDL on another table: done in {:?}", started.elapsed());

        // A DDL on w.t waits for the transaction (3 s, then 1205) ...
        ddl.query_drop("SET SESSION lock_wait_timeout = 3")
            .await
            .expect("set");
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            let result = ddl.query_drop("ALTER TABLE w.t ADD COLUMN c INT").await;
            (result, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // ... and meanwhile a write on another table passes it.
        let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
        let started = Instant::now();
        other
            .query_drop("UPDATE w.other SET v = v + 1 WHERE id = 1")
            .await
            .expect("update on another table");
        let passed = started.elapsed();
        assert!(
            passed < Duration::from_millis(1500),
            "a write on w.other waited {passed:?} behind a DDL waiting on w.t"
        );
        println!("write on another table while the DDL waits: {passed:?}");
        let (result, waited) = waiting.await.expect("ddl task");
        let refused = result.expect_err("the DDL waits for the open transaction, then gives up");
        assert_eq!(server_code(&refused), Some(1205), "{refused}");
        assert!(
            waited >= Duration::from_millis(2800) && waited < Duration::from_secs(8),
            "waited {waited:?} for lock_wait_timeout = 3"
        );
        writer.query_drop("COMMIT").await.expect("commit");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = support::checksums(&cluster.nodes[0], &["w.t", "w.other"]);
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 'other'"),
            ["3"],
            "the ALTER of w.other ran exactly once on port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't'"),
            ["2"],
            "the refused ALTER of w.t ran nowhere (port {})",
            node.port
        );
        assert_eq!(support::checksums(node, &["w.t", "w.other"]), master);
    }
}

/// Reads go to the master alone, so a transaction that read a table holds
/// a metadata lock there that B never saw: a DDL on that table passes B
/// and waits for it on the master. The transaction's writes must not wait
/// for the DDL in turn: on another table they pass, on the DDL's table they
/// get MariaDB's own deadlock error (as directly), and the DDL then runs.
#[test]
fn a_transaction_that_read_the_ddls_table_and_writes_does_not_wait_for_it() {
    let (cluster, lockstep) = start_with_two_tables();
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Conn::new(lockstep.client_opts()).await.expect("connect");
        reader.query_drop("BEGIN").await.expect("begin");
        let _: Vec<Row> = reader.query("SELECT * FROM w.t").await.expect("read");

        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        ddl.query_drop("SET SESSION lock_wait_timeout = 20")
            .await
            .expect("set");
        let altering = tokio::spawn(async move {
            let started = Instant::now();
            let result = ddl.query_drop("ALTER TABLE w.t ADD COLUMN c INT").await;
            (result, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(700)).await;

        let started = Instant::now();
        reader
            .query_drop("UPDATE w.other SET v = v + 1 WHERE id = 1")
            .await
            .expect("a write on another table passes");
        let passed = started.elapsed();
        assert!(
            passed < Duration::from_secs(2),
            "a write on another table waited {passed:?} for the DDL"
        );
        let started = Instant::now();
        let refused = reader
            .query_drop("UPDATE w.t SET v = v + 1 WHERE id = 1")
            .await
            .expect_err("MariaDB's deadlock between the reader and the DDL");
        assert_eq!(server_code(&refused), Some(1213), "{refused}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let (result, waited) = altering.await.expect("ddl task");
        result.expect("the DDL runs once the reader's transaction is gone");
        println!("write on another table: {passed:?}; DDL done after {waited:?}");
        // The deadlock rolled the whole transaction back, as MariaDB does.
        reader.query_drop("COMMIT").await.expect("commit");
        assert_eq!(roles(&lockstep)[1].1, "sync", "B keeps its role");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't'"),
            ["3"],
            "the ALTER ran exactly once on port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT v FROM w.other WHERE id = 1"),
            ["0"],
            "the rolled-back update is nowhere (port {})",
            node.port
        );
    }
}

/// A transaction that used a stored function holds the function's
/// metadata lock on B (and on A) until it ends, and `DROP FUNCTION` waits
/// there for it, as MariaDB makes it wait; the transaction's next writes
/// pass the waiting DROP, as they do directly. lockstep took only a
/// table's metadata lock for a DDL waiting on B, so the write waited for
/// the DROP's number and the DROP for the write's transaction, each up to
/// `lock_wait_timeout` (a day).
#[test]
fn a_drop_function_waiting_for_a_transaction_that_used_it_lets_its_writes_pass() {
    let (cluster, lockstep) = start_with_two_tables();
    support::lockstep_sql(
        &lockstep,
        "CREATE FUNCTION w.f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut writer = Conn::new(lockstep.client_opts()).await.expect("connect");
        writer.query_drop("BEGIN").await.expect("begin");
        writer
            .query_drop("UPDATE w.t SET v = w.f(v) WHERE id = 1")
            .await
            .expect("a write using the function");
        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        let dropping = tokio::spawn(async move {
            let dropped = ddl.query_drop("DROP FUNCTION w.f");
            tokio::time::timeout(Duration::from_secs(20), dropped).await
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = Instant::now();
        let next = writer.query_drop("UPDATE w.other SET v = v + 1 WHERE id = 1");
        let passed = tokio::time::timeout(Duration::from_secs(10), next).await;
        assert!(
            matches!(passed, Ok(Ok(()))),
            "the transaction's next write behind the waiting DROP: {passed:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(2),
            "the next write waited {waited:?} for the DROP"
        );
        writer.query_drop("COMMIT").await.expect("commit");
        let dropped = dropping.await.expect("join");
        assert!(
            matches!(dropped, Ok(Ok(()))),
            "the DROP, once the transaction ended: {dropped:?}"
        );
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = support::checksums(&cluster.nodes[0], &["w.t", "w.other"]);
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(
                node,
                "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'w'"
            ),
            ["0"],
            "the function is gone on port {}",
            node.port
        );
        assert_eq!(support::checksums(node, &["w.t", "w.other"]), master);
    }
}

/// A transaction that only read a table holds it on the master alone. A
/// DDL on that table waits for it there as directly, at most
/// `lock_wait_timeout` (or its own `NOWAIT`), and then gets MariaDB's
/// 1205 before any node ran it: B keeps its role and no node has the
/// change. (Before: B ran the DDL, the master refused it, and B left its
/// role holding a column the master lacked.)
#[test]
fn a_ddl_behind_a_transaction_that_only_read_its_table_fails_on_no_node_but_the_master() {
    let (cluster, lockstep) = start_with_two_tables();
    let rt = runtime();
    rt.block_on(async {
        let mut reader = Conn::new(lockstep.client_opts()).await.expect("connect");
        reader.query_drop("SET autocommit = 0").await.expect("set");
        let _: Vec<Row> = reader.query("SELECT * FROM w.t").await.expect("read");

        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        ddl.query_drop("SET SESSION lock_wait_timeout = 1")
            .await
            .expect("set");
        for statement in [
            "ALTER TABLE w.t ADD COLUMN c INT",
            "ALTER TABLE w.t NOWAIT ADD COLUMN c INT",
            "TRUNCATE TABLE w.t",
            "DROP TABLE w.other, w.t",
            // A missing table named first: the metadata locks are taken
            // before any table is opened, so the wait still covers w.t.
            "DROP TABLE IF EXISTS w.missing, w.t",
            "RENAME TABLE w.t TO w.renamed",
            "CREATE INDEX v ON w.t (v)",
        ] {
            let started = Instant::now();
            let refused = ddl
                .query_drop(statement)
                .await
                .expect_err("the DDL waits for the reader, then gives up");
            let waited = started.elapsed();
            assert_eq!(server_code(&refused), Some(1205), "{statement}: {refused}");
            assert!(
                waited < Duration::from_secs(5),
                "{statement}: waited {waited:?} for lock_wait_timeout = 1"
            );
            println!("{statement}: 1205 after {waited:?}");
        }
        assert_eq!(roles(&lockstep)[1].1, "sync", "B keeps its role");
        // The reader's transaction goes on, and once it ended the DDL runs.
        let _: Vec<Row> = reader.query("SELECT * FROM w.t").await.expect("read");
        reader.query_drop("COMMIT").await.expect("commit");
        ddl.query_drop("ALTER TABLE w.t ADD COLUMN c INT")
            .await
            .expect("the DDL runs once the reader's transaction ended");
        ddl.query_drop("UPDATE w.t SET c = v + id")
            .await
            .expect("update");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = support::checksums(&cluster.nodes[0], &["w.t", "w.other"]);
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't'"),
            ["3"],
            "the refused DDLs ran nowhere, the last ALTER once (port {})",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't' AND INDEX_NAME = 'v'"),
            ["0"],
            "port {}",
            node.port
        );
        assert_eq!(support::checksums(node, &["w.t", "w.other"]), master);
    }
    support::assert_check_passes(&lockstep);
}

/// `CREATE TABLE … SELECT` runs with no write in flight. Waiting for one
/// (a session idle after a write with autocommit off), it used to queue
/// for the whole wait, and every write of every session queued behind it
/// up to `lock_wait_timeout`. Now it holds new writes up at most 200 ms at
/// a time, and gets 1205 itself when no moment without writes in flight
/// comes (MariaDB would run it: README, limits).
#[test]
fn create_table_select_waiting_for_an_idle_transaction_does_not_stall_other_writes() {
    let (cluster, lockstep) = start_with_two_tables();
    let rt = runtime();
    rt.block_on(async {
        let mut idle = Conn::new(lockstep.client_opts()).await.expect("connect");
        idle.query_drop("SET autocommit = 0").await.expect("set");
        idle.query_drop("UPDATE w.other SET v = v + 1 WHERE id = 1")
            .await
            .expect("write, then idle");

        let mut ddl = Conn::new(lockstep.client_opts()).await.expect("connect");
        ddl.query_drop("SET SESSION lock_wait_timeout = 3")
            .await
            .expect("set");
        let copying = tokio::spawn(async move {
            let started = Instant::now();
            let result = ddl
                .query_drop("CREATE TABLE w.copy AS SELECT * FROM w.t")
                .await;
            (ddl, result, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut writer = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        let mut writes = 0;
        while started.elapsed() < Duration::from_millis(2500) {
            let one = Instant::now();
            writer
                .query_drop("UPDATE w.t SET v = v + 1 WHERE id = 2")
                .await
                .expect("write");
            slowest = slowest.max(one.elapsed());
            writes += 1;
        }
        println!("{writes} writes while the copy waited; the slowest took {slowest:?}");
        assert!(
            slowest < Duration::from_millis(1000),
            "a write waited {slowest:?} behind a CREATE TABLE … SELECT"
        );
        let (mut ddl, result, waited) = copying.await.expect("copy task");
        let refused = result.expect_err("no moment without a write in flight came");
        assert_eq!(server_code(&refused), Some(1205), "{refused}");
        assert!(waited < Duration::from_secs(6), "waited {waited:?}");
        idle.query_drop("COMMIT").await.expect("commit");
        ddl.query_drop("CREATE TABLE w.copy AS SELECT * FROM w.t")
            .await
            .expect("the copy runs once the transaction ended");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = support::checksums(&cluster.nodes[0], &["w.t", "w.other", "w.copy"]);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            support::checksums(node, &["w.t", "w.other", "w.copy"]),
            master,
            "port {}",
            node.port
        );
    }
}

#[test]
fn a_timing_error_on_the_synchronous_slave_goes_to_the_client_and_b_keeps_its_role() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    wait_for_tail(&cluster, Duration::from_secs(20));
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut c, "n1").await, "sync");
        // Behind lockstep's back, B holds a row lock the client will need.
        let mut on_b = direct(&cluster, 1).await;
        on_b.query_drop("BEGIN").await.expect("begin on B");
        let _: Vec<Row> = on_b
            .query("SELECT * FROM w.t WHERE id = 5 FOR UPDATE")
            .await
            .expect("lock on B");
        c.query_drop("SET SESSION innodb_lock_wait_timeout = 1")
            .await
            .expect("set");
        for in_transaction in [false, true] {
            if in_transaction {
                c.query_drop("BEGIN").await.expect("begin");
                c.query_drop("UPDATE w.t SET v = v + 1 WHERE id = 4")
                    .await
                    .expect("first statement");
            }
            let refused = c
                .query_drop("UPDATE w.t SET v = v + 100 WHERE id = 5")
                .await
                .expect_err("B times out");
            assert_eq!(server_code(&refused), Some(1205), "{refused}");
            if in_transaction {
                // The timeout undid the statement only, as in MariaDB.
                c.query_drop("COMMIT").await.expect("commit");
            }
            assert_eq!(support::role(&mut c, "n1").await, "sync", "B kept its role");
        }
        on_b.query_drop("ROLLBACK").await.expect("release");
        c.query_drop("UPDATE w.t SET v = v + 1 WHERE id = 5")
            .await
            .expect("passes once B's lock is gone");
        assert_eq!(support::role(&mut c, "n1").await, "sync");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id, v FROM w.t WHERE id IN (4, 5) ORDER BY id"),
            ["4\t1", "5\t1"],
            "the master never ran what B refused (port {})",
            node.port
        );
    }
}

#[test]
fn kill_query_stops_a_statement_waiting_on_the_synchronous_slave() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        let mut on_b = direct(&cluster, 1).await;
        on_b.query_drop("BEGIN").await.expect("begin on B");
        let _: Vec<Row> = on_b
            .query("SELECT * FROM w.t WHERE id = 6 FOR UPDATE")
            .await
            .expect("lock on B");
        let mut victim = Conn::new(lockstep.client_opts()).await.expect("connect");
        let id: u64 = victim
            .query_first("SELECT CONNECTION_ID()")
            .await
            .expect("id")
            .expect("a row");
        let started = Instant::now();
        let blocked = tokio::spawn(async move {
            let r = victim
                .query_drop("UPDATE w.t SET v = v + 1 WHERE id = 6")
                .await;
            (r, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut killer = Conn::new(lockstep.client_opts()).await.expect("connect");
        killer
            .query_drop(format!("KILL QUERY {id}"))
            .await
            .expect("kill query");
        let (result, took) = tokio::time::timeout(Duration::from_secs(10), blocked)
            .await
            .expect("the statement stopped")
            .expect("task");
        let err = result.expect_err("killed");
        assert_eq!(server_code(&err), Some(1317), "{err}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        println!("KILL QUERY stopped a statement waiting on B after {took:?}");
        on_b.query_drop("ROLLBACK").await.expect("release");
    });
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, "SELECT v FROM w.t WHERE id = 6"), ["0"]);
    }
}

/// Whether another session can read `w.t` on node `i` within a second
/// (it cannot while a session holds a WRITE lock on it there).
async fn readable_on(cluster: &Cluster, i: usize) -> bool {
    let mut c = direct(cluster, i).await;
    c.query_drop("SET SESSION lock_wait_timeout = 1")
        .await
        .expect("set");
    let read: Result<Vec<Row>, _> = c.query("SELECT * FROM w.t").await;
    match read {
        Ok(_) => true,
        Err(e) if server_code(&e) == Some(1205) => false,
        Err(e) => panic!("unexpected error reading w.t on n{i}: {e}"),
    }
}

#[test]
fn lock_tables_keeps_its_locks_and_its_writes_reach_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        // Autocommit on: lockstep's own transaction around each write must
        // not release the client's locks (BEGIN would).
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("LOCK TABLES w.t WRITE").await.expect("lock");
        c.query_drop("INSERT INTO w.t VALUES (10, 1)")
            .await
            .expect("insert under LOCK TABLES");
        c.query_drop("UPDATE w.t SET v = 5 WHERE id = 1")
            .await
            .expect("update under LOCK TABLES");
        let autocommit: Option<u8> = c.query_first("SELECT @@autocommit").await.expect("read");
        assert_eq!(autocommit, Some(1), "the client's autocommit is untouched");
        assert!(
            !readable_on(&cluster, 0).await,
            "the lock is still held on the master"
        );
        assert!(
            !readable_on(&cluster, 1).await,
            "the lock is still held on B"
        );
        c.query_drop("UNLOCK TABLES").await.expect("unlock");
        assert!(readable_on(&cluster, 0).await);

        // MariaDB's recommended form for InnoDB: autocommit off, LOCK
        // TABLES, writes, COMMIT, UNLOCK TABLES.
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
        c.query_drop("LOCK TABLES w.t WRITE, w.t AS alias READ")
            .await
            .expect("lock");
        c.query_drop("INSERT INTO w.t VALUES (11, 2)")
            .await
            .expect("insert");
        c.query_drop("COMMIT")
            .await
            .expect("commit under LOCK TABLES");
        assert!(
            !readable_on(&cluster, 1).await,
            "COMMIT keeps the table locks on B"
        );
        c.query_drop("INSERT INTO w.t VALUES (12, 3)")
            .await
            .expect("insert");
        // UNLOCK TABLES commits the open transaction, as in MariaDB.
        c.query_drop("UNLOCK TABLES").await.expect("unlock");
        c.query_drop("SET autocommit = 1")
            .await
            .expect("autocommit on");
        // A session that only locked for reading writes nothing and holds
        // nothing of lockstep's.
        c.query_drop("LOCK TABLES w.t READ")
            .await
            .expect("lock read");
        let _: Vec<Row> = c.query("SELECT * FROM w.t").await.expect("read");
        c.query_drop("UNLOCK TABLES").await.expect("unlock");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(
                node,
                "SELECT id, v FROM w.t WHERE id = 1 OR id >= 10 ORDER BY id"
            ),
            ["1\t5", "10\t1", "11\t2", "12\t3"],
            "port {}",
            node.port
        );
    }
}

/// A session holding `LOCK TABLES … WRITE` alters its own table while
/// another session's DDL on it waits for that lock. Directly, the holder's
/// ALTER runs and the other DDL waits until UNLOCK TABLES; through
/// lockstep the waiting DDL holds the one-at-a-time turn for serialized
/// statements, so the holder's ALTER must not wait for that turn.
#[test]
fn a_ddl_under_lock_tables_does_not_wait_for_another_ddl_waiting_for_its_lock() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        let mut holder = Conn::new(lockstep.client_opts()).await.expect("connect");
        holder
            .query_drop("LOCK TABLES w.t WRITE")
            .await
            .expect("lock");
        let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
        let waiting = tokio::spawn(async move {
            let ddl = other.query_drop("ALTER TABLE w.t ADD COLUMN c INT");
            tokio::time::timeout(Duration::from_secs(30), ddl).await
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let own = holder.query_drop("ALTER TABLE w.t ADD COLUMN d INT");
        let altered = tokio::time::timeout(Duration::from_secs(10), own).await;
        assert!(
            matches!(altered, Ok(Ok(()))),
            "the lock holder's own ALTER: {altered:?}"
        );
        holder.query_drop("UNLOCK TABLES").await.expect("unlock");
        let other = waiting.await.expect("join");
        assert!(
            matches!(other, Ok(Ok(()))),
            "the other ALTER, once the lock is gone: {other:?}"
        );
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'w' AND TABLE_NAME = 't'"),
            ["4"],
            "both ALTERs ran once on port {}",
            node.port
        );
    }
}
