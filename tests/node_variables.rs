//! System variables whose value is each server's own (`@@hostname`,
//! `@@server_id`, `@@port`, …) written into rows (issue "Let the server
//! decide"; MariaDB's statement binlog flags such writes, Note 1592). B, A
//! and the tail each ran the write and stored their own port; lockstep now
//! writes the master's values into the statement. Also a value only the
//! master's session has: `FOUND_ROWS()` of the client's last read, which
//! ran on the master alone.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn per_server_variables_in_a_write_store_the_masters_values_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE nv; \
         CREATE TABLE nv.t (id INT PRIMARY KEY, host VARCHAR(64), server BIGINT, port INT) \
           ENGINE=InnoDB; \
         INSERT INTO nv.t VALUES (1, @@hostname, @@server_id, @@port); \
         INSERT INTO nv.t SELECT 2, @@global.hostname, @@global.server_id, @@global.port;",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master_port = cluster.master().port.to_string();
    let query = "SELECT id, port FROM nv.t ORDER BY id";
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, query),
            [format!("1\t{master_port}"), format!("2\t{master_port}")],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT host, server FROM nv.t ORDER BY id"),
            root_rows(
                cluster.master(),
                "SELECT host, server FROM nv.t ORDER BY id"
            )
        );
    }
}

/// `SELECT SQL_CALC_FOUND_ROWS … LIMIT 1` runs on the master alone; a write
/// that then stores `FOUND_ROWS()` stored the master's count there, 1 on B
/// (its session's last statement) and 0 on the tail before. Now the
/// master's count is written into the statement.
#[test]
fn found_rows_of_the_last_read_in_a_write_is_the_masters_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE fr; \
         CREATE TABLE fr.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO fr.t VALUES (1), (2), (3), (4), (5); \
         CREATE TABLE fr.log (k INT PRIMARY KEY, found BIGINT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        for (k, filter) in [(1, ""), (2, "WHERE id > 3"), (3, "WHERE id > 9")] {
            let _: Vec<Row> = c
                .query(format!(
                    "SELECT SQL_CALC_FOUND_ROWS id FROM fr.t {filter} LIMIT 1"
                ))
                .await
                .expect("read");
            c.query_drop(format!("INSERT INTO fr.log VALUES ({k}, FOUND_ROWS())"))
                .await
                .expect("write");
        }
        // Inside a transaction too.
        c.query_drop("BEGIN").await.expect("begin");
        let _: Vec<Row> = c
            .query("SELECT SQL_CALC_FOUND_ROWS id FROM fr.t WHERE id < 5 LIMIT 2")
            .await
            .expect("read");
        c.query_drop("UPDATE fr.log SET found = found + FOUND_ROWS() WHERE k = 1")
            .await
            .expect("write");
        c.query_drop("COMMIT").await.expect("commit");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT k, found FROM fr.log ORDER BY k"),
            ["1\t9", "2\t2", "3\t0"],
            "port {}",
            node.port
        );
    }
}
