//! Nodes dying under lockstep: what keeps working, and how a node that comes
//! back rejoins.

mod support;

use std::time::{Duration, Instant};

use lockstep::mariadb::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

/// The role of `node` in `SHOW LOCKSTEP NODES`.
async fn role(c: &mut Conn, node: &str) -> String {
    let rows: Vec<Row> = c.query("SHOW LOCKSTEP NODES").await.expect("show nodes");
    rows.iter()
        .find(|r| {
            r.get_opt::<String, usize>(0)
                .and_then(Result::ok)
                .as_deref()
                == Some(node)
        })
        .and_then(|r| r.get_opt::<String, usize>(2).and_then(Result::ok))
        .unwrap_or_default()
}

async fn wait_for_role(c: &mut Conn, node: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = role(c, node).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "{node} is {now:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn writes_go_on_when_the_first_slave_dies_and_it_rejoins_when_it_is_back() {
    let mut cluster = Cluster::start(3);
    let lockstep = Lockstep::start(
        &cluster,
        "[compare]\nretry_initial_ms = 50\nretry_max_ms = 500\n",
    );
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let (dir, port) = (cluster.nodes[1].dir.clone(), cluster.nodes[1].port);
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut open = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO f.t VALUES (1)")
            .await
            .expect("insert");
        open.query_drop("BEGIN").await.expect("begin");
        open.query_drop("INSERT INTO f.t VALUES (10)")
            .await
            .expect("in txn");
        let prepared = c.prep("INSERT INTO f.t VALUES (?)").await.expect("prepare");

        cluster.nodes[1].kill();
        // Writes go on: autocommit, prepared, and the transaction open when
        // B died.
        c.query_drop("INSERT INTO f.t VALUES (2)")
            .await
            .expect("insert without B");
        c.exec_drop(&prepared, (3,))
            .await
            .expect("prepared without B");
        open.query_drop("INSERT INTO f.t VALUES (11)")
            .await
            .expect("in txn without B");
        open.query_drop("COMMIT").await.expect("commit without B");
        let mut fresh = Conn::new(lockstep.client_opts())
            .await
            .expect("a new session without B");
        fresh
            .query_drop("INSERT INTO f.t VALUES (4)")
            .await
            .expect("insert");
        wait_for_role(&mut c, "n1", "catching-up").await;

        cluster.nodes[1] = MariaDb::start(&dir, port, &Default::default()).expect("B restarts");
        wait_for_role(&mut c, "n1", "sync").await;
        c.exec_drop(&prepared, (5,))
            .await
            .expect("prepared with B again");
        fresh
            .query_drop("INSERT INTO f.t VALUES (6)")
            .await
            .expect("insert with B again");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t ORDER BY id"),
            ["1", "2", "3", "4", "5", "6", "10", "11"],
            "port {}",
            node.port
        );
    }
}

#[test]
fn lockstep_starts_without_its_first_slave_and_takes_it_in_once_it_is_up() {
    let mut cluster = Cluster::start(2);
    let (dir, port) = (cluster.nodes[1].dir.clone(), cluster.nodes[1].port);
    cluster.nodes[1].stop();
    let lockstep = Lockstep::start(
        &cluster,
        "[compare]\nretry_initial_ms = 50\nretry_max_ms = 500\n",
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts())
            .await
            .expect("connect without B");
        c.query_drop("CREATE DATABASE s")
            .await
            .expect("ddl without B");
        c.query_drop("CREATE TABLE s.t (id INT PRIMARY KEY)")
            .await
            .expect("ddl");
        c.query_drop("INSERT INTO s.t VALUES (1)")
            .await
            .expect("insert");
        assert_eq!(role(&mut c, "n1").await, "catching-up");
        cluster.nodes[1] = MariaDb::start(&dir, port, &Default::default()).expect("B starts");
        wait_for_role(&mut c, "n1", "sync").await;
        c.query_drop("INSERT INTO s.t VALUES (2)")
            .await
            .expect("insert with B");
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        root_rows(&cluster.nodes[1], "SELECT id FROM s.t ORDER BY id"),
        ["1", "2"]
    );
}
