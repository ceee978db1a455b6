//! System variables whose value is each server's own (`@@hostname`,
//! `@@server_id`, `@@port`, …) written into rows (issue "Let the server
//! decide"; MariaDB's statement binlog flags such writes, Note 1592). B, A
//! and the tail each ran the write and stored their own port; lockstep now
//! writes the master's values into the statement.

mod support;

use std::time::Duration;

use support::{root_rows, wait_for_tail, Cluster, Lockstep};

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
