//! A COMMIT that fails on the synchronous slave after the client already
//! has the master's OK (issue "Same data everywhere", item 4): the client's
//! answer stands, nothing of that session stays open on B, and B leaves its
//! role instead of serving on with a commit missing.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, root_sql, runtime, wait_for_tail, Cluster, Lockstep};

#[test]
fn a_commit_refused_by_b_leaves_nothing_open_there_and_b_leaves_its_role() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    // Behind lockstep's back, B already holds the next commit number: its
    // row for the next commit is refused (duplicate seq).
    let last = root_rows(&cluster.nodes[1], "SELECT MAX(seq) FROM lockstep.commits");
    let next: u64 = last[0].parse::<u64>().expect("a number") + 1;
    root_sql(
        &cluster.nodes[1],
        &format!(
            "INSERT INTO lockstep.commits VALUES (x'ffffffffffffffffffffffffffffffff', {next})"
        ),
    );
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut c, "n1").await, "sync");
        c.query_drop("INSERT INTO s.t VALUES (1)")
            .await
            .expect("the master's answer stands");
        let deadline = Instant::now() + Duration::from_secs(10);
        while support::role(&mut c, "n1").await == "sync" {
            assert!(
                Instant::now() < deadline,
                "B kept its role with a commit missing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(root_rows(cluster.master(), "SELECT id FROM s.t"), ["1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = root_rows(
            &cluster.nodes[1],
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX",
        );
        if open == ["0"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a transaction stays open on B: {open:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
