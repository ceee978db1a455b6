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
