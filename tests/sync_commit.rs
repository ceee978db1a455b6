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

/// Whether a statement of lockstep's on B waits for a table lock on
/// `lockstep.commits` right now (its commit there is held up).
fn commit_on_b_is_held(cluster: &Cluster) -> bool {
    root_rows(
        &cluster.nodes[1],
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE STATE LIKE 'Waiting for table metadata lock' AND INFO LIKE '%lockstep.commits%'",
    ) != ["0"]
}

/// The client's answer is A's, and B commits after A: the client must not
/// wait for B's commit too. B's commit is held up by a table lock taken
/// behind lockstep's back; the client's autocommit INSERT, its prepared
/// COMMIT (as sysbench sends it) and its text COMMIT each get their OK
/// while B's commit still waits (before, the answer sat in a buffer until
/// B had committed: the client waited for both). Once the lock is gone B
/// commits, keeps its role, and every node holds the master's rows.
#[test]
fn the_answer_does_not_wait_for_the_commit_on_b() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let rt = runtime();
    rt.block_on(async {
        let b_url = mysql_async::Opts::from_url(&cluster.nodes[1].url()).expect("url");
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let commit = c.prep("COMMIT").await.expect("prepare COMMIT");
        for (id, how) in [
            (1, "autocommit"),
            (2, "prepared COMMIT"),
            (3, "text COMMIT"),
        ] {
            let mut b = Conn::new(b_url.clone()).await.expect("direct to B");
            b.query_drop("LOCK TABLES lockstep.commits WRITE")
                .await
                .expect("lock B's commit table");
            let answered = async {
                match how {
                    "autocommit" => c.query_drop(format!("INSERT INTO s.t VALUES ({id})")).await,
                    _ => {
                        c.query_drop("BEGIN").await?;
                        c.query_drop(format!("INSERT INTO s.t VALUES ({id})"))
                            .await?;
                        match how {
                            "prepared COMMIT" => c.exec_drop(&commit, ()).await,
                            _ => c.query_drop("COMMIT").await,
                        }
                    }
                }
            };
            // Without the answer sent at once, the client waits as long
            // as the lock is held: the timeout is what fails then.
            tokio::time::timeout(Duration::from_secs(30), answered)
                .await
                .unwrap_or_else(|_| panic!("{how}: no answer while B's commit is held up"))
                .unwrap_or_else(|e| panic!("{how}: {e}"));
            assert!(
                commit_on_b_is_held(&cluster),
                "{how}: B's commit was not pending when the client had its answer"
            );
            b.query_drop("UNLOCK TABLES").await.expect("unlock");
            drop(b);
        }
        assert_eq!(support::role(&mut c, "n1").await, "sync");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    support::assert_nodes_equal_master(&cluster, &["s.t"], "after commits held up on B");
    assert_eq!(
        root_rows(&cluster.nodes[1], "SELECT id FROM s.t"),
        ["1", "2", "3"]
    );
}
