//! Statements that commit the open transaction on MariaDB although the
//! router sends them to the master alone (ANALYZE, CHECK, FLUSH), and
//! `SET STATEMENT … FOR <statement>`, which is that statement and no
//! session state (issue "Let the server decide": writes routed as reads,
//! and the tail re-running a DDL in every session set-up).

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn analyze_commits_through_lockstep_and_set_statement_runs_once() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE i; CREATE TABLE i.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO i.t VALUES (1)")
            .await
            .expect("insert");
        // Commits the transaction first, as in MariaDB.
        let _: Vec<Row> = c.query("ANALYZE TABLE i.t").await.expect("analyze");
        // Nothing left to roll back.
        c.query_drop("ROLLBACK").await.expect("rollback");
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
        c.query_drop("INSERT INTO i.t VALUES (2)")
            .await
            .expect("insert");
        let _: Vec<Row> = c.query("CHECK TABLE i.t").await.expect("check");
        c.query_drop("ROLLBACK").await.expect("rollback");
        c.query_drop("SET autocommit = 1")
            .await
            .expect("autocommit on");

        // A DDL under SET STATEMENT, then writes in the same session: the
        // tail sets that session up before replaying them.
        c.query_drop(
            "SET STATEMENT max_statement_time = 100 FOR CREATE TABLE i.u (a INT) ENGINE=InnoDB",
        )
        .await
        .expect("ddl");
        c.query_drop("SET STATEMENT foreign_key_checks = 0 FOR INSERT INTO i.u VALUES (7)")
            .await
            .expect("write");
        c.query_drop("INSERT INTO i.u VALUES (8)")
            .await
            .expect("write");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM i.t ORDER BY id"),
            ["1", "2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT a FROM i.u ORDER BY a"),
            ["7", "8"],
            "port {}",
            node.port
        );
    }
}

/// A statement that fails after changing what cannot be rolled back keeps
/// those changes on MariaDB: a multi-row INSERT into a MyISAM table that
/// stops at a duplicate key keeps the rows before it, and a CALL whose
/// procedure ran a DDL (an implicit commit) before it failed keeps what
/// came before the DDL. Every node, the tail included, keeps the same.
#[test]
fn a_failed_statement_keeps_on_every_node_what_mariadb_keeps() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; \
         CREATE TABLE f.m (a INT PRIMARY KEY) ENGINE=MyISAM; \
         CREATE TABLE f.k (a INT) ENGINE=InnoDB;",
    );
    support::lockstep_sql(
        &lockstep,
        "DELIMITER //\n\
         CREATE PROCEDURE f.p() BEGIN \
           INSERT INTO f.k VALUES (1); CREATE TABLE f.k2 (a INT) ENGINE=InnoDB; \
           INSERT INTO f.nosuch VALUES (1); END//\n",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused = c
            .query_drop("INSERT INTO f.m VALUES (1), (2), (1), (3)")
            .await
            .expect_err("duplicate key at the third row");
        assert!(refused.to_string().contains("1062"), "{refused}");
        let refused = c
            .query_drop("CALL f.p()")
            .await
            .expect_err("the procedure's last INSERT fails");
        assert!(refused.to_string().contains("1146"), "{refused}");
        // The session goes on writing.
        c.query_drop("INSERT INTO f.k VALUES (2)")
            .await
            .expect("insert");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT a FROM f.m ORDER BY a"),
            ["1", "2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT a FROM f.k ORDER BY a"),
            ["1", "2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(
                node,
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'k2'"
            ),
            ["1"],
            "port {}",
            node.port
        );
    }
}

/// `EXECUTE` of a prepared DDL commits implicitly before the DDL fails,
/// which commits the master's row for it: every node keeps the same
/// commits. `ANALYZE FORMAT=JSON <write>` runs the write and answers with
/// the node's own plan and timings, which differ on every node and are no
/// divergence; `ANALYZE FORMAT=JSON SELECT` is a read.
#[test]
fn executed_ddl_and_analyzed_writes_keep_every_node_in_step() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE e; CREATE TABLE e.t (a INT PRIMARY KEY, b INT) ENGINE=InnoDB; \
         INSERT INTO e.t VALUES (1, 0), (2, 0), (3, 0);",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("PREPARE s FROM 'CREATE TABLE e.t (a INT)'")
            .await
            .expect("prepare");
        let refused = c.query_drop("EXECUTE s").await.expect_err("e.t exists");
        assert!(refused.to_string().contains("1050"), "{refused}");
        for _ in 0..3 {
            let _: Vec<Row> = c
                .query("ANALYZE FORMAT=JSON UPDATE e.t SET b = b + 1 WHERE a > 1")
                .await
                .expect("analyze update");
        }
        let _: Vec<Row> = c
            .query("ANALYZE FORMAT=JSON SELECT * FROM e.t WHERE a IN (2, 3)")
            .await
            .expect("analyze select");
        c.query_drop("INSERT INTO e.t VALUES (4, 0)")
            .await
            .expect("insert");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    assert!(
        !lockstep.log().contains("quarantined"),
        "no node diverged:\n{}",
        lockstep.log()
    );
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT a, b FROM e.t ORDER BY a"),
            ["1\t0", "2\t3", "3\t3", "4\t0"],
            "port {}",
            node.port
        );
    }
}

/// A text of several statements runs as one unit on each node, and the
/// tail replays it as one: right for a transaction that begins and ends
/// inside the text. One whose transaction reaches beyond it (`BEGIN;
/// INSERT …` then ROLLBACK; `BEGIN` then `INSERT …; ROLLBACK`; with
/// autocommit off, `COMMIT; INSERT …`) is refused with 1235 before any node
/// runs it: B and the tail kept its rows where MariaDB rolled them back.
#[test]
fn texts_whose_transaction_reaches_beyond_them_are_refused() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE x; CREATE TABLE x.t (a INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused = |e: mysql_async::Error| match e {
            mysql_async::Error::Server(e) => e.code,
            other => panic!("{other}"),
        };
        let err = c
            .query_drop("BEGIN; INSERT INTO x.t VALUES (1)")
            .await
            .expect_err("leaves a transaction open");
        assert_eq!(refused(err), 1235);
        c.query_drop("ROLLBACK").await.expect("rollback");
        c.query_drop("BEGIN").await.expect("begin");
        let err = c
            .query_drop("INSERT INTO x.t VALUES (2); ROLLBACK")
            .await
            .expect_err("ends the client's transaction");
        assert_eq!(refused(err), 1235);
        c.query_drop("ROLLBACK").await.expect("rollback");
        c.query_drop("INSERT INTO x.t VALUES (3); BEGIN; INSERT INTO x.t VALUES (4); ROLLBACK")
            .await
            .expect("a transaction inside the text");
        c.query_drop("START TRANSACTION; INSERT INTO x.t VALUES (5); COMMIT")
            .await
            .expect("a transaction inside the text");
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
        c.query_drop("INSERT INTO x.t VALUES (6); COMMIT")
            .await
            .expect("ends what it began");
        let err = c
            .query_drop("COMMIT; INSERT INTO x.t VALUES (7)")
            .await
            .expect_err("leaves the insert's transaction open");
        assert_eq!(refused(err), 1235);
        c.query_drop("ROLLBACK").await.expect("rollback");
        c.query_drop("SET autocommit = 1")
            .await
            .expect("autocommit on");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT a FROM x.t ORDER BY a"),
            ["3", "5", "6"],
            "port {}",
            node.port
        );
    }
}

/// `USE db2; INSERT …` in one text changes the session's schema: the
/// session's later writes run in db2 on every node, the tail included
/// (they were journaled with the old schema, and the tail wrote them into
/// the other database's table of the same name).
#[test]
fn a_use_inside_a_text_moves_the_later_writes_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE s1; CREATE DATABASE s2; \
         CREATE TABLE s1.t (a INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE s2.t (a INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        one.query_drop("USE s1").await.expect("use");
        one.query_drop("USE s2; INSERT INTO t VALUES (1)")
            .await
            .expect("use and insert");
        two.query_drop("INSERT INTO s1.t VALUES (100)")
            .await
            .expect("another session");
        one.query_drop("INSERT INTO t VALUES (2)")
            .await
            .expect("insert in s2");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT a FROM s2.t ORDER BY a"),
            ["1", "2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT a FROM s1.t ORDER BY a"),
            ["100"],
            "port {}",
            node.port
        );
    }
}

/// A write B refuses and A passes takes B out of its role, and B replays
/// it from the journal. A DDL on its table that ran on B meanwhile, and
/// reached A after the write, would be replayed on B in the other order:
/// here the row would get the DDL's new default on B and the old one on
/// A. The window is forced: a direct `LOCK TABLES … READ` on A holds the
/// write at A's door while the DDL's check for readers on A jumps the
/// queue (MariaDB grants a pending write lock before a pending shared
/// write), and a trigger on A alone makes the write slow once admitted.
#[test]
fn a_ddl_runs_on_b_only_after_a_judged_the_writes_b_refused() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE o; \
         CREATE TABLE o.t (v INT PRIMARY KEY, c INT NOT NULL DEFAULT 1) ENGINE=InnoDB;",
    );
    let (b, master) = (&cluster.nodes[1], cluster.master());
    support::refuse_on(b, "o.t", 13, "not on B");
    support::root_sql(
        master,
        "DELIMITER //\nCREATE TRIGGER o.slow_13 BEFORE INSERT ON o.t FOR EACH ROW \
         IF NEW.v = 13 THEN SET @slept = SLEEP(2); END IF//\n",
    );
    let rt = runtime();
    rt.block_on(async {
        let a = mysql_async::Opts::from_url(&master.url()).expect("url");
        let mut held = Conn::new(a).await.expect("connect A");
        held.query_drop("LOCK TABLES o.t READ").await.expect("lock");
        let mut writer = Conn::new(lockstep.client_opts()).await.expect("connect");
        let write =
            tokio::spawn(async move { writer.query_drop("INSERT INTO o.t (v) VALUES (13)").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut alter = Conn::new(lockstep.client_opts()).await.expect("connect");
        let ddl = tokio::spawn(async move {
            alter
                .query_drop("ALTER TABLE o.t ALTER COLUMN c SET DEFAULT 2")
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.query_drop("UNLOCK TABLES").await.expect("unlock");
        write.await.expect("join").expect("A passes the write");
        ddl.await.expect("join").expect("the DDL");
    });
    // B replays the write once it no longer refuses it.
    support::root_sql(b, "DROP TRIGGER o.refuse_t_13");
    support::root_sql(master, "DROP TRIGGER o.slow_13");
    support::lockstep_sql(&lockstep, "INSERT INTO o.t (v) VALUES (14)");
    wait_for_tail(&cluster, Duration::from_secs(30));
    assert_eq!(
        root_rows(master, "SELECT v, c FROM o.t ORDER BY v"),
        ["13\t1", "14\t2"],
        "the master's order: the write, then the DDL"
    );
    support::assert_nodes_equal_master(&cluster, &["o.t"], "after the DDL");
    let fresh = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&fresh.nodes[0], "SELECT v, c FROM o.t ORDER BY v"),
        ["13\t1", "14\t2"],
        "the journal replayed"
    );
}

/// The other order: the DDL's turn has begun (it shut out new refusals)
/// and it has not reached B yet when B refuses an autocommit write on its
/// table. The write waits for the DDL's number before A judges it; the
/// statement B refused still held the table's metadata lock in lockstep's
/// open transaction around it there, so the DDL waited on B for the write
/// and the write for the DDL, each as long as `lock_wait_timeout` (a day).
/// The adversarial workload (`tests/order.rs`) hung so once. The window is
/// forced: another refused write, on another table that every node refuses,
/// is held at A's door by a direct `LOCK TABLES … READ`, so the DDL's turn
/// waits for A's verdict on it (rule 3) while the second write reaches B.
#[test]
fn a_write_b_refused_just_before_a_ddl_reached_b_does_not_hold_the_ddl_up() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE o; \
         CREATE TABLE o.t (v INT PRIMARY KEY, c INT NOT NULL DEFAULT 1) ENGINE=InnoDB; \
         CREATE TABLE o.u (v INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let (b, master) = (&cluster.nodes[1], cluster.master());
    support::refuse_on(b, "o.t", 13, "not on B");
    support::refuse_on(b, "o.u", 13, "nowhere");
    support::refuse_on(master, "o.u", 13, "nowhere");
    let rt = runtime();
    rt.block_on(async {
        let a = mysql_async::Opts::from_url(&master.url()).expect("url");
        let mut held = Conn::new(a).await.expect("connect A");
        held.query_drop("LOCK TABLES o.u READ").await.expect("lock");
        let mut first = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused_everywhere =
            tokio::spawn(async move { first.query_drop("INSERT INTO o.u (v) VALUES (13)").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut alter = Conn::new(lockstep.client_opts()).await.expect("connect");
        let ddl = tokio::spawn(async move {
            let ddl = alter.query_drop("ALTER TABLE o.t ALTER COLUMN c SET DEFAULT 2");
            tokio::time::timeout(Duration::from_secs(20), ddl).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut second = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused_on_b = tokio::spawn(async move {
            let write = second.query_drop("INSERT INTO o.t (v) VALUES (13)");
            tokio::time::timeout(Duration::from_secs(20), write).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.query_drop("UNLOCK TABLES").await.expect("unlock");
        let first = refused_everywhere.await.expect("join");
        assert_eq!(
            first.as_ref().err().and_then(support::server_code),
            Some(1644),
            "every node refuses the first write: {first:?}"
        );
        let altered = ddl.await.expect("join");
        let written = refused_on_b.await.expect("join");
        assert!(
            matches!(altered, Ok(Ok(()))),
            "the DDL: {altered:?} (the write B refused: {written:?})"
        );
        assert!(
            matches!(written, Ok(Ok(()))),
            "A passes the write B refused: {written:?}"
        );
    });
    support::root_sql(b, "DROP TRIGGER o.refuse_t_13");
    support::lockstep_sql(&lockstep, "INSERT INTO o.t (v) VALUES (14)");
    wait_for_tail(&cluster, Duration::from_secs(30));
    assert_eq!(
        root_rows(master, "SELECT v, c FROM o.t ORDER BY v"),
        ["13\t2", "14\t2"],
        "the master's order: the DDL, then the write"
    );
    support::assert_nodes_equal_master(&cluster, &["o.t", "o.u"], "after the DDL");
    let fresh = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&fresh.nodes[0], "SELECT v, c FROM o.t ORDER BY v"),
        ["13\t2", "14\t2"],
        "the journal replayed"
    );
}

/// A text holding its own transaction runs on each node as it is: its
/// INSERTs would take their AUTO_INCREMENT values from each node's own
/// counter. The counters differ here as after a crash (the master's moved
/// directly); each INSERT takes the first node's value everywhere, and the
/// client gets that value, as MariaDB gives the one it made.
#[test]
fn a_text_holding_its_transaction_makes_the_same_ids_on_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE i; \
         CREATE TABLE i.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT); \
         CREATE TABLE i.u (id INT AUTO_INCREMENT PRIMARY KEY, v INT); \
         CREATE TABLE i.c (n INT PRIMARY KEY)",
    );
    wait_for_tail(&cluster, Duration::from_secs(30));
    // The master's counters ahead of the other nodes'.
    support::root_sql(
        cluster.master(),
        "ALTER TABLE i.t AUTO_INCREMENT = 100; ALTER TABLE i.u AUTO_INCREMENT = 500",
    );
    let rt = runtime();
    let last: Vec<u64> = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop(
            "BEGIN; INSERT INTO i.t (v) VALUES (1), (2); INSERT INTO i.c VALUES (7); \
             INSERT INTO i.u (v) VALUES (3); COMMIT",
        )
        .await
        .expect("text");
        let last: Vec<u64> = c.query("SELECT LAST_INSERT_ID()").await.expect("last id");
        c.disconnect().await.expect("disconnect");
        last
    });
    // The first node's values (its counters start at 1).
    assert_eq!(last, vec![1]);
    wait_for_tail(&cluster, Duration::from_secs(30));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id, v FROM i.t ORDER BY id"),
            vec!["1\t1", "2\t2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT id, v FROM i.u"),
            vec!["1\t3"],
            "port {}",
            node.port
        );
    }
    // With a CALL among them the results do not pair with the statements
    // (the routine's row set adds one): refused before any node runs it.
    support::lockstep_sql(
        &lockstep,
        "CREATE PROCEDURE i.peek() SELECT COUNT(*) FROM i.c",
    );
    let refused = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let err = c
            .query_drop("BEGIN; CALL i.peek(); INSERT INTO i.t (v) VALUES (9); COMMIT")
            .await
            .expect_err("refused");
        c.disconnect().await.expect("disconnect");
        support::server_code(&err)
    });
    assert_eq!(refused, Some(1235));
    wait_for_tail(&cluster, Duration::from_secs(30));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM i.t WHERE v = 9"),
            vec!["0"],
            "port {}",
            node.port
        );
    }
    let roles = support::roles(&lockstep);
    assert!(
        roles.iter().all(|(_, role)| role != "quarantined"),
        "{roles:?}\n{}",
        lockstep.log()
    );
    support::assert_check_passes(&lockstep);
}
