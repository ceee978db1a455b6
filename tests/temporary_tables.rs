//! Temporary tables belong to the session that made them. The tail replays
//! many sessions; one that has temporary tables keeps a connection of its
//! own there, so that its tables and their rows survive the other sessions'
//! commits in between, as a replica keeps temporary tables per origin
//! thread. A report job that fills a temporary table and then copies it
//! into a real one leaves the same rows on every node.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn a_sessions_temporary_rows_survive_other_sessions_on_the_tail() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE tt; \
         CREATE TABLE tt.src (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         CREATE TABLE tt.report (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO tt.src VALUES (1, 10), (2, 20), (3, 30);",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut jobs = Vec::new();
        for _ in 0..2 {
            jobs.push(Conn::new(lockstep.client_opts()).await.expect("connect"));
        }
        let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
        other.query_drop("SET @other = 1").await.expect("set");
        for (i, job) in jobs.iter_mut().enumerate() {
            job.query_drop("USE tt").await.expect("use");
            job.query_drop("CREATE TEMPORARY TABLE tmp (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
                .await
                .expect("temporary table");
            job.query_drop(format!(
                "INSERT INTO tmp SELECT id + {}, v * 2 FROM tt.src",
                100 * (i + 1)
            ))
            .await
            .expect("fill");
        }
        // Other sessions' commits between the fill and the copy.
        for (i, job) in jobs.iter_mut().enumerate() {
            other
                .query_drop(format!("INSERT INTO tt.src VALUES ({}, 0)", 10 + i))
                .await
                .expect("another session");
            job.query_drop("UPDATE tmp SET v = v + 1")
                .await
                .expect("update");
            other
                .query_drop(format!("UPDATE tt.src SET v = v + 1 WHERE id = {}", 10 + i))
                .await
                .expect("another session");
        }
        for job in jobs.iter_mut() {
            job.query_drop("INSERT INTO tt.report SELECT * FROM tmp")
                .await
                .expect("copy");
            job.query_drop("DROP TEMPORARY TABLE tmp")
                .await
                .expect("drop");
        }
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT id, v FROM tt.report ORDER BY id";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master.len(), 6, "{master:?}");
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// `DROP TABLE t` (without TEMPORARY) drops the session's temporary table
/// t, and a real table t created afterwards receives the session's rows.
/// A replay that rebuilds the session's state from scratch (here: the
/// tail's and the replay's connection for the session is evicted by more
/// sessions with temporary tables than they keep connections for) must not
/// create the temporary t again, where it would hide the real one and
/// swallow the rows.
#[test]
fn a_temporary_table_dropped_without_temporary_stays_dropped_in_replays() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, "CREATE DATABASE td;");
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        one.query_drop("CREATE TEMPORARY TABLE td.t (a INT)")
            .await
            .expect("create temporary");
        one.query_drop("INSERT INTO td.t VALUES (1)")
            .await
            .expect("insert into the temporary table");
        one.query_drop("DROP TABLE td.t").await.expect("drop it");
        one.query_drop("CREATE TABLE td.t (a INT PRIMARY KEY) ENGINE=InnoDB")
            .await
            .expect("create the real table");
        two.query_drop("CREATE TABLE td.other (a INT) ENGINE=InnoDB")
            .await
            .expect("another session's DDL");
        // More sessions with temporary tables than the tail keeps
        // connections for.
        for i in 0..40 {
            let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
            for sql in [
                "CREATE TEMPORARY TABLE td.x (a INT)".to_string(),
                format!("INSERT INTO td.x VALUES ({i})"),
                "INSERT INTO td.other SELECT a FROM td.x".to_string(),
            ] {
                other
                    .query_drop(sql)
                    .await
                    .expect("a session with a temporary table");
            }
            other.disconnect().await.expect("disconnect");
        }
        one.query_drop("INSERT INTO td.t VALUES (2)")
            .await
            .expect("insert into the real table");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT a FROM td.t ORDER BY a";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master, ["2"]);
    let fresh = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&fresh.nodes[0], query),
        master,
        "the replayed journal"
    );
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// Temporary tables made inside a text of several statements (`CREATE
/// TEMPORARY TABLE x …; INSERT …`): the session's state does not hold
/// them, the text does. Each such session gets a connection of its own on
/// the tail and in a replay, as when its state holds them, so that the
/// next session's same text does not fail there with "already exists",
/// and the session's later statements still find its table.
#[test]
fn temporary_tables_made_inside_texts_belong_to_their_session_on_the_tail() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE tx; CREATE TABLE tx.out (a INT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut sessions = Vec::new();
        for i in 0..5 {
            let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
            c.query_drop(format!(
                "CREATE TEMPORARY TABLE tx.x (a INT); INSERT INTO tx.x VALUES ({i}); \
                 INSERT INTO tx.out SELECT a FROM tx.x"
            ))
            .await
            .expect("a text making a temporary table");
            sessions.push(c);
        }
        for c in sessions.iter_mut() {
            c.query_drop("INSERT INTO tx.out SELECT a + 100 FROM tx.x")
                .await
                .expect("the session's table, later");
        }
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT a FROM tx.out ORDER BY a";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master.len(), 10);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
    let fresh = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&fresh.nodes[0], query),
        master,
        "the replayed journal"
    );
}
