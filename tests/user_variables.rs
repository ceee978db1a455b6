//! User variables made from values that differ at each call (issue "Let
//! the server decide", session values): `SET @u = UUID()`, `@t = NOW(6)`,
//! `@r = RAND()`, `SELECT @x := UUID()`, then writes that use them. Every
//! node, the tail included (which replays the session's state long after),
//! holds the master's rows.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn writes_using_user_variables_are_identical_on_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE v; CREATE TABLE v.t (id INT AUTO_INCREMENT PRIMARY KEY, \
         u VARCHAR(36), at DATETIME(6), r DOUBLE, x VARCHAR(36)) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("SET @u = UUID(), @t = NOW(6), @r = RAND()")
            .await
            .expect("set");
        let shown: Option<String> = c.query_first("SELECT @x := UUID()").await.expect("assign");
        // Time passes between the assignment and the writes that use it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.query_drop("INSERT INTO v.t (u, at, r, x) VALUES (@u, @t, @r, @x)")
            .await
            .expect("insert");
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("SET @r2 = RAND() * 1000")
            .await
            .expect("set in a transaction");
        c.query_drop("INSERT INTO v.t (u, at, r, x) VALUES (@u, NOW(6), @r2, UUID())")
            .await
            .expect("insert");
        c.query_drop("COMMIT").await.expect("commit");
        let x: Option<String> = c
            .query_first("SELECT x FROM v.t WHERE id = 1")
            .await
            .expect("read");
        assert_eq!(x, shown, "the client saw the value that was stored");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = root_rows(cluster.master(), "SELECT * FROM v.t ORDER BY id");
    assert_eq!(master.len(), 2);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            root_rows(node, "SELECT * FROM v.t ORDER BY id"),
            master,
            "port {}",
            node.port
        );
    }
}
