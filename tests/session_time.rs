//! A client that fixes its session's time (`SET timestamp = …`, as
//! mysqldump output, replication tools and MariaDB's own tests do) gets
//! that time from NOW() in its reads and its writes, on every node, as
//! directly; `SET timestamp = DEFAULT` gives the clock back.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn a_fixed_session_time_holds_for_reads_and_writes_on_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE ts; \
         CREATE TABLE ts.t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("SET timestamp = UNIX_TIMESTAMP('2011-01-01 01:01:01.5')")
            .await
            .expect("fix the time");
        c.query_drop("INSERT INTO ts.t (at) VALUES (NOW(6))")
            .await
            .expect("insert");
        // After a write (which lockstep pins and unpins), reads still see it.
        let now: Option<String> = c
            .query_first("SELECT CAST(NOW(6) AS CHAR)")
            .await
            .expect("read");
        assert_eq!(now.as_deref(), Some("2011-01-01 01:01:01.500000"));
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO ts.t (at) VALUES (NOW(6))")
            .await
            .expect("insert in a transaction");
        c.query_drop("COMMIT").await.expect("commit");
        let now: Option<String> = c
            .query_first("SELECT CAST(NOW(6) AS CHAR)")
            .await
            .expect("read");
        assert_eq!(now.as_deref(), Some("2011-01-01 01:01:01.500000"));
        c.query_drop("SET timestamp = DEFAULT")
            .await
            .expect("release");
        c.query_drop("INSERT INTO ts.t (at) VALUES (NOW(6))")
            .await
            .expect("insert");
        let recent: Option<u8> = c
            .query_first("SELECT YEAR(NOW()) > 2020")
            .await
            .expect("read");
        assert_eq!(recent, Some(1), "the clock is back after DEFAULT");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT at FROM ts.t ORDER BY id"),
            root_rows(cluster.master(), "SELECT at FROM ts.t ORDER BY id"),
            "port {}",
            node.port
        );
        let rows = root_rows(node, "SELECT at FROM ts.t ORDER BY id");
        assert_eq!(
            &rows[..2],
            ["2011-01-01 01:01:01.500000"; 2],
            "port {}",
            node.port
        );
        assert!(rows[2].as_str() > "2020", "port {}: {rows:?}", node.port);
    }
}
