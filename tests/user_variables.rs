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

/// A stored definition that calls UUID() runs later on each node by itself
/// (a column default, a trigger, a routine): lockstep refuses it with 1235
/// and names the call, rather than baking one literal into the schema (the
/// second INSERT then failed with 1062) or letting every node compute its
/// own values. UUID() in the writing statement itself, and in `CREATE TABLE
/// … SELECT`, is data and stays pinned.
#[test]
fn stored_definitions_calling_uuid_are_refused_and_data_stays_pinned() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("CREATE DATABASE g").await.expect("db");
        for definition in [
            "CREATE TABLE g.d (id INT PRIMARY KEY, u CHAR(36) DEFAULT (UUID()))",
            "CREATE TABLE g.t (id INT PRIMARY KEY, u CHAR(36))",
            "CREATE TRIGGER g.tr BEFORE INSERT ON g.t FOR EACH ROW SET NEW.u = UUID()",
            "CREATE PROCEDURE g.p() INSERT INTO g.t VALUES (9, uuid())",
            "ALTER TABLE g.t ADD v BIGINT DEFAULT (UUID_SHORT())",
        ] {
            match c.query_drop(definition).await {
                Ok(()) if definition.starts_with("CREATE TABLE g.t ") => {}
                Ok(()) => panic!("accepted: {definition}"),
                Err(mysql_async::Error::Server(e)) => {
                    assert_eq!(e.code, 1235, "{definition}: {e:?}");
                    assert!(e.message.to_uppercase().contains("UUID"), "{e:?}");
                }
                Err(e) => panic!("{definition}: {e}"),
            }
        }
        c.query_drop("INSERT INTO g.t VALUES (1, UUID()), (2, UUID())")
            .await
            .expect("insert");
        c.query_drop("CREATE TABLE g.c AS SELECT id, UUID() AS w FROM g.t")
            .await
            .expect("create … select");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master_t = root_rows(cluster.master(), "SELECT * FROM g.t ORDER BY id");
    let master_c = root_rows(cluster.master(), "SELECT * FROM g.c ORDER BY id");
    assert_eq!(master_t.len(), 2);
    // One literal per call in the text: every row a statement writes gets
    // the same value (a documented difference from MariaDB).
    assert_eq!(master_c.len(), 2);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, "SELECT * FROM g.t ORDER BY id"), master_t);
        assert_eq!(root_rows(node, "SELECT * FROM g.c ORDER BY id"), master_c);
        assert_eq!(
            root_rows(
                node,
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'g'"
            ),
            ["2"],
            "port {}",
            node.port
        );
    }
}
