//! lockstep's own statements (transaction control, pins, savepoints,
//! `lockstep.commits` rows) parse under any `sql_mode` a client chooses:
//! here every mode at once, ORACLE among them (where `BEGIN` opens a block,
//! not a transaction), through three nodes.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{checksums, runtime, wait_for_tail, Cluster, Lockstep};

const SCHEMA: &str = "CREATE DATABASE m; \
    CREATE TABLE m.t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), r DOUBLE, u VARCHAR(36), \
      s VARCHAR(10)) ENGINE=InnoDB; \
    CREATE TABLE m.proc (at DATETIME(6), r DOUBLE, s VARCHAR(10)) ENGINE=InnoDB; \
    CREATE PROCEDURE m.p() INSERT INTO m.proc (at, r, s) VALUES (NOW(6), RAND(), 'proc');";

#[test]
fn lockstep_statements_parse_under_every_sql_mode() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("SET sql_mode = CAST(POW(2, 35) - 1 AS UNSIGNED)")
            .await
            .expect("every sql_mode");
        let mode: Option<String> = c.query_first("SELECT @@sql_mode").await.expect("read");
        assert!(
            mode.as_deref().is_some_and(|m| m.contains("ORACLE")),
            "{mode:?}"
        );
        let writes = [
            "INSERT INTO m.t (at, r, u, s) VALUES (NOW(6), RAND(), UUID(), 'auto')",
            "CALL m.p()",
            "UPDATE m.t SET s = 'upd' WHERE s = 'auto'",
        ];
        for sql in writes {
            c.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        c.query_drop("START TRANSACTION").await.expect("start");
        c.query_drop("INSERT INTO m.t (at, r, u, s) VALUES (NOW(6), RAND(), UUID(), 'txn')")
            .await
            .expect("insert in a transaction");
        c.query_drop("COMMIT").await.expect("commit");
        c.exec_drop(
            "INSERT INTO m.t (at, r, u, s) VALUES (NOW(6), RAND(), UUID(), ?)",
            ("prep",),
        )
        .await
        .expect("prepared insert");
        c.query_drop("ALTER TABLE m.t ADD COLUMN c INT")
            .await
            .expect("DDL");
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
        c.query_drop("INSERT INTO m.t (at, r, u, s) VALUES (NOW(6), RAND(), UUID(), 'noauto')")
            .await
            .expect("insert with autocommit off");
        c.query_drop("COMMIT").await.expect("commit");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = checksums(cluster.master(), &["m.t", "m.proc"]);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            checksums(node, &["m.t", "m.proc"]),
            master,
            "port {}",
            node.port
        );
    }
    assert_eq!(
        support::root_rows(
            cluster.master(),
            "SELECT (SELECT COUNT(*) FROM m.t), (SELECT COUNT(*) FROM m.proc)"
        ),
        ["4\t1"]
    );
}
