//! A server's global settings shape what its statements do: `SET GLOBAL`
//! through lockstep reaches every node in commit order, the tail included
//! (issue "Let the server decide": SET GLOBAL never reached the tail; MariaDB's
//! own `almost_full` test stopped the tail on a MyISAM table that was full on
//! the master and not on the tail).

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

/// The answers a client gets for filling a MyISAM table whose rows are
/// addressed with two bytes: how many inserts passed, then the error codes
/// of the next three.
async fn fill_small_myisam(c: &mut Conn) -> (usize, Vec<u16>) {
    // A setting MariaDB refuses to change inside a transaction (1192):
    // lockstep runs it outside one too.
    for sql in ["SET GLOBAL read_only = 1", "SET GLOBAL read_only = 0"] {
        c.query_drop(sql).await.expect(sql);
    }
    c.query_drop("SET GLOBAL myisam_data_pointer_size = 2")
        .await
        .expect("set global");
    c.query_drop("CREATE DATABASE s").await.expect("db");
    c.query_drop("CREATE TABLE s.t (a INT AUTO_INCREMENT PRIMARY KEY, b LONGTEXT) ENGINE=MyISAM")
        .await
        .expect("table");
    let mut passed = 0;
    let mut refused = Vec::new();
    while refused.len() < 3 && passed < 2000 {
        match c
            .query_drop("INSERT INTO s.t SET b = REPEAT('a', 200)")
            .await
        {
            Ok(()) => passed += 1,
            Err(mysql_async::Error::Server(e)) => refused.push(e.code),
            Err(e) => panic!("insert: {e}"),
        }
    }
    c.query_drop("SET GLOBAL myisam_data_pointer_size = DEFAULT")
        .await
        .expect("set global back");
    (passed, refused)
}

#[test]
fn set_global_reaches_every_node_in_commit_order() {
    let rt = runtime();

    let direct = Cluster::start(1);
    let direct_answers = rt.block_on(async {
        let mut c = Conn::new(mysql_async::Opts::from_url(&direct.nodes[0].url()).expect("url"))
            .await
            .expect("connect");
        fill_small_myisam(&mut c).await
    });
    drop(direct);
    assert_eq!(
        direct_answers.1,
        [1114, 1114, 1114],
        "MariaDB directly: the table fills up"
    );

    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let through_answers = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let answers = fill_small_myisam(&mut c).await;
        // A new session takes the global time zone on every node: the tail
        // applies its statements in it too.
        c.query_drop("SET GLOBAL time_zone = '+05:00'")
            .await
            .expect("time zone");
        c.query_drop("CREATE TABLE s.z (id INT PRIMARY KEY, at DATETIME) ENGINE=InnoDB")
            .await
            .expect("table");
        let mut fresh = Conn::new(lockstep.client_opts()).await.expect("connect");
        fresh
            .query_drop("INSERT INTO s.z VALUES (1, NOW())")
            .await
            .expect("insert");
        fresh.disconnect().await.expect("disconnect");
        c.query_drop("SET GLOBAL time_zone = SYSTEM")
            .await
            .expect("time zone back");
        answers
    });
    assert_eq!(
        through_answers, direct_answers,
        "a client's answers through lockstep are MariaDB's"
    );

    wait_for_tail(&cluster, Duration::from_secs(30));
    let master_rows = root_rows(cluster.master(), "SELECT a, LENGTH(b) FROM s.t ORDER BY a");
    let master_time = root_rows(cluster.master(), "SELECT at FROM s.z");
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT a, LENGTH(b) FROM s.t ORDER BY a"),
            master_rows,
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SELECT at FROM s.z"),
            master_time,
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(
                node,
                "SELECT @@global.myisam_data_pointer_size, @@global.time_zone"
            ),
            ["6\tSYSTEM"],
            "port {}: the settings were put back everywhere",
            node.port
        );
    }
    support::assert_check_passes(&lockstep);
}

/// A prepared `SET time_zone = ?` (and `SET @v = ?`): the parameters are not
/// in the session's state, so the values the SET gave are, as the master
/// holds them; the session's later writes store the same on the tail.
#[test]
fn prepared_session_settings_reach_the_tail() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE p; CREATE TABLE p.t (n INT AUTO_INCREMENT PRIMARY KEY, at DATETIME, \
         v VARCHAR(10)) ENGINE=InnoDB;",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut one = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut two = Conn::new(lockstep.client_opts()).await.expect("connect");
        two.query_drop("SET @two = 2").await.expect("set");
        one.exec_drop("SET time_zone = ?, @v = ?", ("+05:00", "seven"))
            .await
            .expect("prepared set");
        two.query_drop("INSERT INTO p.t (v) VALUES ('two')")
            .await
            .expect("another session");
        one.query_drop("INSERT INTO p.t (at, v) VALUES (FROM_UNIXTIME(1000000000), @v)")
            .await
            .expect("insert");
        // A SET of the session's zone inside a writing text holds later too.
        one.query_drop("SET time_zone = '+03:00'; INSERT INTO p.t (v) VALUES ('three')")
            .await
            .expect("set and insert");
        two.query_drop("INSERT INTO p.t (v) VALUES ('two')")
            .await
            .expect("another session");
        one.query_drop("INSERT INTO p.t (at, v) VALUES (FROM_UNIXTIME(1000000000), 'later')")
            .await
            .expect("insert");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    let query = "SELECT n, at, v FROM p.t ORDER BY n";
    let master = root_rows(cluster.master(), query);
    assert_eq!(master[1], "2\t2001-09-09 06:46:40\tseven", "{master:?}");
    assert_eq!(master[4], "5\t2001-09-09 04:46:40\tlater", "{master:?}");
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
}
