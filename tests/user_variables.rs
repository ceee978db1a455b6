//! User variables made from values that differ at each call (issue "Let
//! the server decide", session values): `SET @u = UUID()`, `@t = NOW(6)`,
//! `@r = RAND()`, `SELECT @x := UUID()`, then writes that use them. Every
//! node, the tail included (which replays the session's state long after),
//! holds the master's rows.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{checksums, root_rows, runtime, wait_for_tail, Cluster, Lockstep};

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
            "CREATE TRIGGER g.tc BEFORE UPDATE ON g.t FOR EACH ROW SET NEW.u = CONNECTION_ID()",
        ] {
            match c.query_drop(definition).await {
                Ok(()) if definition.starts_with("CREATE TABLE g.t ") => {}
                Ok(()) => panic!("accepted: {definition}"),
                Err(mysql_async::Error::Server(e)) => {
                    assert_eq!(e.code, 1235, "{definition}: {e:?}");
                    let message = e.message.to_uppercase();
                    assert!(
                        message.contains("UUID") || message.contains("CONNECTION_ID"),
                        "{e:?}"
                    );
                }
                Err(e) => panic!("{definition}: {e}"),
            }
        }
        c.query_drop("INSERT INTO g.t VALUES (1, UUID()), (2, UUID())")
            .await
            .expect("insert");
        // Inside the string of EXECUTE IMMEDIATE too.
        c.query_drop("EXECUTE IMMEDIATE 'INSERT INTO g.t VALUES (3, UUID())'")
            .await
            .expect("execute immediate");
        c.query_drop("CREATE TABLE g.c AS SELECT id, UUID() AS w FROM g.t")
            .await
            .expect("create … select");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master_t = root_rows(cluster.master(), "SELECT * FROM g.t ORDER BY id");
    let master_c = root_rows(cluster.master(), "SELECT * FROM g.c ORDER BY id");
    assert_eq!(master_t.len(), 3);
    // One literal per call in the text: every row a statement writes gets
    // the same value (a documented difference from MariaDB).
    assert_eq!(master_c.len(), 3);
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

/// Variables read from the data (`SELECT … INTO @v`, `SET @v = (SELECT …)`)
/// hold A's values on every node: B and the tail set them to what A read
/// rather than reading again, on data another session has changed since
/// (issue "Let the server decide": the tail re-ran the SELECT on its data).
#[test]
fn variables_read_from_the_data_hold_the_masters_values_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        one.query_drop(
            "CREATE DATABASE u; \
             CREATE TABLE u.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE TABLE u.log (n INT AUTO_INCREMENT PRIMARY KEY, c BIGINT, d DECIMAL(10,3), \
               s VARCHAR(20) CHARACTER SET utf8mb4, f DOUBLE, b VARBINARY(8)) ENGINE=InnoDB; \
             INSERT INTO u.t VALUES (1), (2), (3);",
        )
        .await
        .expect("schema");
        one.query_drop(
            "SELECT COUNT(*), SUM(id) / 7, CONCAT('ñ', COUNT(*)), COUNT(*) / 3e0, \
             x'00ff' INTO @c, @d, @s, @f, @b FROM u.t",
        )
        .await
        .expect("select into");
        one.query_drop("SET @x = (SELECT MAX(id) FROM u.t), @nothing = NULL")
            .await
            .expect("set from a subquery");
        // Another session changes the data the variables were read from.
        two.query_drop("INSERT INTO u.t VALUES (4), (5), (6), (7), (8)")
            .await
            .expect("insert");
        one.query_drop(
            "INSERT INTO u.log (c, d, s, f, b) VALUES (@c, @d, @s, @f, @b), \
             (@x, @nothing, NULL, NULL, NULL)",
        )
        .await
        .expect("insert the variables");
        two.query_drop("INSERT INTO u.t VALUES (9)")
            .await
            .expect("insert");
        one.query_drop("INSERT INTO u.log (c) VALUES (@c + 100)")
            .await
            .expect("insert again");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT n, c, d, s, f, HEX(b) FROM u.log ORDER BY n";
    let master = root_rows(cluster.master(), query);
    assert_eq!(
        master,
        [
            "1\t3\t0.857\tñ3\t1\t00FF",
            "2\t3\tNULL\tNULL\tNULL\tNULL",
            "3\t103\tNULL\tNULL\tNULL\tNULL"
        ]
    );
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// `CALL p(@o, @io)` sets user variables through OUT and INOUT parameters:
/// writes that use them later hold the master's values on every node, the
/// tail included, after another session wrote in between.
#[test]
fn variables_set_by_a_procedure_hold_the_masters_values_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE o; \
         CREATE TABLE o.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE o.log (n INT AUTO_INCREMENT PRIMARY KEY, c INT, s VARCHAR(20)) ENGINE=InnoDB; \
         INSERT INTO o.t VALUES (1), (2);",
    );
    support::lockstep_sql(
        &lockstep,
        "DELIMITER //\n\
         CREATE PROCEDURE o.p(OUT c INT, INOUT s VARCHAR(20)) BEGIN \
           SELECT COUNT(*) INTO c FROM o.t; SET s = CONCAT(s, '!'); END//\n",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        one.query_drop("SET @s = 'x'").await.expect("set");
        one.query_drop("CALL o.p(@c, @s)").await.expect("call");
        two.query_drop("INSERT INTO o.t VALUES (3), (4), (5)")
            .await
            .expect("insert");
        one.query_drop("INSERT INTO o.log (c, s) VALUES (@c, @s)")
            .await
            .expect("insert the variables");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT n, c, s FROM o.log ORDER BY n";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master, ["1\t2\tx!"]);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// `SET @k = (SELECT …); INSERT … @k` in one text: the variable keeps the
/// master's value for the session's later writes, on the tail too.
#[test]
fn a_set_inside_a_writing_text_holds_the_masters_value_later() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE k; \
         CREATE TABLE k.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE k.log (n INT AUTO_INCREMENT PRIMARY KEY, c INT) ENGINE=InnoDB; \
         INSERT INTO k.t VALUES (1), (2);",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        // A session state of its own: the tail switches sessions between
        // one's writes.
        two.query_drop("SET @two = 2").await.expect("set");
        one.query_drop("SET @k = (SELECT COUNT(*) FROM k.t); INSERT INTO k.log (c) VALUES (@k)")
            .await
            .expect("set and insert");
        two.query_drop("INSERT INTO k.t VALUES (3), (4), (5)")
            .await
            .expect("insert");
        one.query_drop("INSERT INTO k.log (c) VALUES (@k + 10)")
            .await
            .expect("insert the variable");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT n, c FROM k.log ORDER BY n";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master, ["1\t2", "2\t12"]);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// `PREPARE s FROM '… UUID() …'` then `EXECUTE s`: each execution gets
/// fresh values, as directly, and every node stores the master's (before,
/// each node computed its own UUID() and SYSDATE()). The client still sees
/// the column named `UUID()`.
#[test]
fn statements_prepared_from_strings_store_the_masters_values_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE p; CREATE TABLE p.t (id INT AUTO_INCREMENT PRIMARY KEY, \
         u VARCHAR(36), at DATETIME(6), s BIGINT UNSIGNED) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop(
            "PREPARE s FROM 'INSERT INTO p.t (u, at, s) VALUES (UUID(), SYSDATE(6), UUID_SHORT())'",
        )
        .await
        .expect("prepare");
        for _ in 0..3 {
            c.query_drop("EXECUTE s").await.expect("execute");
        }
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("EXECUTE s")
            .await
            .expect("execute in a transaction");
        c.query_drop("COMMIT").await.expect("commit");
        let distinct: Option<i64> = c
            .query_first("SELECT COUNT(DISTINCT u) + COUNT(DISTINCT s) FROM p.t")
            .await
            .expect("count");
        assert_eq!(distinct, Some(8), "each execution has values of its own");

        c.query_drop("PREPARE q FROM 'SELECT UUID()'")
            .await
            .expect("prepare a read");
        let result = c.query_iter("EXECUTE q").await.expect("execute a read");
        let columns: Vec<String> = result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        drop(result);
        assert_eq!(columns, vec!["UUID()".to_string()]);
        // Prepared again under the same name without a call to pin.
        c.query_drop("PREPARE s FROM 'INSERT INTO p.t (u) VALUES (?)'")
            .await
            .expect("prepare again");
        c.query_drop("SET @v = 'plain'").await.expect("set");
        c.query_drop("EXECUTE s USING @v").await.expect("execute");
        // Prepared from a variable: the same pins as from a string.
        c.query_drop(
            "SET @q = 'INSERT INTO p.t (u, at, s) VALUES (UUID(), SYSDATE(6), UUID_SHORT())'",
        )
        .await
        .expect("set the text");
        c.query_drop("PREPARE v FROM @q")
            .await
            .expect("prepare from @q");
        c.query_drop("SET @q = 'no longer a statement'")
            .await
            .expect("set again");
        for _ in 0..2 {
            c.query_drop("EXECUTE v").await.expect("execute v");
        }
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = root_rows(cluster.master(), "SELECT * FROM p.t ORDER BY id");
    assert_eq!(master.len(), 7);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            root_rows(node, "SELECT * FROM p.t ORDER BY id"),
            master,
            "port {}",
            node.port
        );
    }
}

/// `SET NAMES latin1; INSERT …` in one text: the session's later texts are
/// read in latin1 on the master, and on the tail too (before, the tail
/// replayed them in the connection's first character set and stored other
/// bytes).
#[test]
fn set_names_inside_a_writing_text_holds_for_the_sessions_later_writes() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE cs; \
         CREATE TABLE cs.t (n INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(10)) \
         CHARACTER SET utf8mb4 ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        two.query_drop("SET @two = 2").await.expect("set");
        one.query_drop("SET NAMES latin1; INSERT INTO cs.t (s) VALUES ('é')")
            .await
            .expect("set names and insert");
        two.query_drop("INSERT INTO cs.t (s) VALUES ('é')")
            .await
            .expect("insert");
        one.query_drop("INSERT INTO cs.t (s) VALUES ('é')")
            .await
            .expect("insert in latin1");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT n, HEX(s) FROM cs.t ORDER BY n";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master, ["1\tC383C2A9", "2\tC3A9", "3\tC383C2A9"]);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}

/// `SET @a = f()`, `SELECT f() INTO @b`, `SELECT @c := f()` with a stored
/// function that writes: a write, journaled and replayed, so the
/// function's rows reach every node, the tail included (before, the tail
/// got the variables' values but not the rows); later writes that use the
/// variables hold the master's values everywhere.
#[test]
fn variables_assigned_from_writing_functions_write_on_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE fw;
         CREATE TABLE fw.calls (k INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;
         CREATE TABLE fw.used (v INT PRIMARY KEY) ENGINE=InnoDB;
         DELIMITER //
         CREATE FUNCTION fw.f(x INT) RETURNS INT MODIFIES SQL DATA
         BEGIN INSERT INTO fw.calls VALUES (x, NOW(6)); RETURN x * 10; END//
         DELIMITER ;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("SET @a = fw.f(1)").await.expect("set");
        c.query_drop("SELECT fw.f(2) INTO @b")
            .await
            .expect("select into");
        let assigned: Option<i64> = c.query_first("SELECT @c := fw.f(3)").await.expect("assign");
        assert_eq!(assigned, Some(30));
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("SET @d = fw.f(4)")
            .await
            .expect("set in a transaction");
        c.query_drop("COMMIT").await.expect("commit");
        c.query_drop("INSERT INTO fw.used VALUES (@a + @b + @c + @d)")
            .await
            .expect("use them");
        let values: Option<(i64, i64, i64, i64)> =
            c.query_first("SELECT @a, @b, @c, @d").await.expect("read");
        assert_eq!(values, Some((10, 20, 30, 40)));
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = checksums(cluster.master(), &["fw.calls", "fw.used"]);
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT k FROM fw.calls ORDER BY k"),
            ["1", "2", "3", "4"],
            "the function's rows on port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT v FROM fw.used"),
            ["100"],
            "port {}",
            node.port
        );
        assert_eq!(checksums(node, &["fw.calls", "fw.used"]), master);
    }
}
