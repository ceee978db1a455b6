//! The synchronous slave's AUTO_INCREMENT value is pinned on the master;
//! when B lacks rows A has, A already holds that value. The client must not
//! get a duplicate-key error MariaDB would not give: A runs the statement
//! again with a value of its own, B leaves its role and catches up from the
//! journal.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, root_sql, runtime, Cluster, Lockstep};

#[test]
fn a_value_the_master_already_has_is_replaced_by_the_masters_own() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE a; CREATE TABLE a.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO a.t (v) VALUES (1), (2), (3);",
    );
    support::wait_for_tail(&cluster, Duration::from_secs(20));
    // Behind lockstep's back, the master gets the row B would number next.
    root_sql(cluster.master(), "INSERT INTO a.t VALUES (4, 40)");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut c, "n1").await, "sync");
        c.query_drop("INSERT INTO a.t (v) VALUES (5)")
            .await
            .expect("no duplicate-key error for a value lockstep chose");
        let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        assert_eq!(id, Some(5), "the master's own value");
        assert_ne!(support::role(&mut c, "n1").await, "sync", "B left its role");
        // Inside a transaction as well, once a caught-up node is B again
        // (it numbers after 5; the master gets 6 behind lockstep's back).
        let deadline = Instant::now() + Duration::from_secs(30);
        while support::role(&mut c, "n2").await != "sync"
            && support::role(&mut c, "n1").await != "sync"
        {
            assert!(
                Instant::now() < deadline,
                "no node took the synchronous role"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        root_sql(cluster.master(), "INSERT INTO a.t VALUES (6, 60)");
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO a.t (v) VALUES (7)")
            .await
            .expect("no duplicate-key error inside a transaction either");
        let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        assert_eq!(id, Some(7));
        c.query_drop("COMMIT").await.expect("commit");
    });
    // The client's row reaches every node, with the master's value.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &cluster.nodes {
        while root_rows(node, "SELECT id FROM a.t WHERE v IN (5, 7) ORDER BY id") != ["5", "7"] {
            assert!(
                Instant::now() < deadline,
                "port {}: {:?}",
                node.port,
                root_rows(node, "SELECT * FROM a.t ORDER BY id")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `INSERT …; SELECT LAST_INSERT_ID()` in one text (Dapper's way of
/// inserting a row and reading its id, and any driver's with
/// multi-statements on). B's value was taken from the text's last result
/// (the SELECT's, which carries none), so A chose its own: under
/// concurrent inserts A and B gave the row other ids and the slave and the
/// tail were quarantined. Now the first inserting statement's value is
/// B's, pinned on A. A text with two statements that make AUTO_INCREMENT
/// values is refused (only one can be pinned).
#[test]
fn an_insert_and_its_last_insert_id_in_one_text_get_the_same_id_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE mi; \
         CREATE TABLE mi.t (id INT AUTO_INCREMENT PRIMARY KEY, who INT, n INT) ENGINE=InnoDB; \
         CREATE TABLE mi.plain (k INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let ids = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        // A routine's body is no text of several statements.
        c.query_drop(
            "CREATE PROCEDURE mi.p() BEGIN INSERT INTO mi.t (who) VALUES (0); \
             INSERT INTO mi.t (who) VALUES (0); END",
        )
        .await
        .expect("a procedure whose body inserts twice");
        let refused = c
            .query_drop("INSERT INTO mi.t (who) VALUES (0); INSERT INTO mi.t (who) VALUES (0)")
            .await
            .expect_err("two statements that make AUTO_INCREMENT values");
        assert_eq!(support::server_code(&refused), Some(1235), "{refused}");
        let until = Instant::now() + Duration::from_secs(5);
        let mut clients = Vec::new();
        for who in 1..=5u32 {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                let mut ids = Vec::new();
                let mut n = 0u32;
                while Instant::now() < until {
                    n += 1;
                    let text = format!(
                        "INSERT INTO mi.plain VALUES ({}); \
                         INSERT INTO mi.t (who, n) VALUES ({who}, {n}); SELECT LAST_INSERT_ID()",
                        who * 1_000_000 + n
                    );
                    let mut result = c.query_iter(text).await.expect("text");
                    let mut id = None;
                    while !result.is_empty() {
                        let rows: Vec<u64> = result.collect().await.expect("result");
                        id = id.or(rows.first().copied());
                    }
                    drop(result);
                    ids.push((id.expect("LAST_INSERT_ID()"), who, n));
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for c in clients {
            ids.extend(c.await.expect("client"));
        }
        ids
    });
    println!(
        "{} rows inserted with their ids read in the same text",
        ids.len()
    );
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    let mut expected: Vec<String> = ids
        .iter()
        .map(|(id, who, n)| format!("{id}\t{who}\t{n}"))
        .collect();
    expected.sort_by_key(|row| row.split('\t').next().and_then(|id| id.parse::<u64>().ok()));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id, who, n FROM mi.t ORDER BY id"),
            expected,
            "every client's LAST_INSERT_ID() names its row, on port {}",
            node.port
        );
    }
}
