//! The compare module on real MariaDB nodes made to differ on purpose: each
//! node's result is compared with the master's, and the verdict decides what
//! happens (re-run, undo, quarantine), visible in `SHOW LOCKSTEP …`.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, root_sql, runtime, wait_for_tail, Cluster, Lockstep};

const FAST_RETRIES: &str = "[compare]\nretry_initial_ms = 50\nretry_max_ms = 200\n";

/// A minimal HTTP receiver for `notify_url`: keeps every POST body.
struct Sink {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Sink {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/events", listener.local_addr().expect("addr"));
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    kept.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Sink { url, bodies }
    }

    fn config(&self) -> String {
        format!("{FAST_RETRIES}notify_url = \"{}\"\n", self.url)
    }

    /// Waits for a posted event containing `needle`.
    fn wait_for(&self, needle: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .bodies
                .lock()
                .expect("lock")
                .iter()
                .find(|b| b.contains(needle))
                .cloned();
            if let Some(body) = found {
                return serde_json::from_str(&body).expect("JSON event");
            }
            assert!(
                Instant::now() < deadline,
                "no event with {needle}: {:?}",
                self.bodies.lock()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every row of a lockstep SHOW command, columns as strings.
async fn show(c: &mut Conn, sql: &str) -> Vec<Vec<String>> {
    support::text_rows(c, sql).await
}

async fn last_request_id(c: &mut Conn) -> String {
    let rows = show(c, "SELECT LOCKSTEP_REQUEST_ID()").await;
    rows[0][0].clone()
}

/// The row of `node` in `SHOW LOCKSTEP REQUEST`.
async fn request_row(c: &mut Conn, id: &str, node: &str) -> Vec<String> {
    find_request_row(c, id, node)
        .await
        .unwrap_or_else(|| panic!("no row for {node} in request {id}"))
}

async fn find_request_row(c: &mut Conn, id: &str, node: &str) -> Option<Vec<String>> {
    show(c, &format!("SHOW LOCKSTEP REQUEST '{id}'"))
        .await
        .into_iter()
        .find(|r| r[0] == node)
}

#[test]
fn a_tail_node_that_fails_is_rerun_until_it_passes_and_applies_nothing_after() {
    let cluster = Cluster::start(3);
    let sink = Sink::start();
    let lockstep = Lockstep::start(&cluster, &sink.config());
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.a (id INT PRIMARY KEY); \
         CREATE TABLE f.b (id INT PRIMARY KEY);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    // f.b vanishes on the tail node behind lockstep's back.
    let tail = &cluster.nodes[2];
    root_sql(tail, "DROP TABLE f.b");
    let rt = runtime();
    let failed_id = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO f.b VALUES (1)")
            .await
            .expect("insert b");
        let failed_id = last_request_id(&mut c).await;
        for i in 0..5 {
            c.query_drop(format!("INSERT INTO f.a VALUES ({i})"))
                .await
                .expect("insert a");
        }
        // The tail retries and reports the error; nothing after the entry
        // reaches it meanwhile.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let row = request_row(&mut c, &failed_id, "n2").await;
            if row[1] == "failed where the master passed" && row[3].parse::<u32>().unwrap_or(0) >= 3
            {
                assert!(
                    row[4].contains("1146"),
                    "the last error is the missing table: {row:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "no retries seen: {row:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let nodes = show(&mut c, "SHOW LOCKSTEP NODES").await;
        let n2 = nodes.iter().find(|r| r[0] == "n2").expect("n2 listed");
        assert_eq!(n2[2], "catching-up");
        assert!(n2[5].contains("1146"), "{n2:?}");
        assert!(n2[4].parse::<u64>().expect("lag") >= 6, "{n2:?}");
        failed_id
    });
    assert_eq!(
        root_rows(tail, "SELECT COUNT(*) FROM f.a"),
        ["0"],
        "nothing after the failed entry"
    );

    // The cause is removed: the entry passes and the rest follows in order.
    root_sql(tail, "CREATE TABLE f.b (id INT PRIMARY KEY)");
    wait_for_tail(&cluster, Duration::from_secs(20));
    assert_eq!(root_rows(tail, "SELECT COUNT(*) FROM f.a"), ["5"]);
    assert_eq!(root_rows(tail, "SELECT id FROM f.b"), ["1"]);
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let row = request_row(&mut c, &failed_id, "n2").await;
        assert_eq!(row[1], "passed after retry", "{row:?}");
        assert!(row[3].parse::<u32>().expect("attempts") > 1);
        let nodes = show(&mut c, "SHOW LOCKSTEP NODES").await;
        let n2 = nodes.iter().find(|r| r[0] == "n2").expect("n2 listed");
        assert_eq!((n2[2].as_str(), n2[4].as_str()), ("tail", "0"), "{n2:?}");
    });
    let event = sink.wait_for("passed_after_retry");
    assert_eq!(event["request_id"], failed_id.as_str());
    assert_eq!(event["node"], "n2");
    assert!(event["attempts"].as_u64().expect("attempts") > 1);
}

/// Waits until `node` has tried `id` at least `attempts` times.
async fn wait_for_attempts(c: &mut Conn, id: &str, node: &str, attempts: u32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = find_request_row(c, id, node).await.unwrap_or_default();
        if row.get(3).and_then(|a| a.parse::<u32>().ok()).unwrap_or(0) >= attempts {
            return row;
        }
        assert!(Instant::now() < deadline, "not retried: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tail that is behind applies many commits in one node transaction; a
/// statement failing in the middle of them undoes the whole batch, and the
/// applier goes again one commit at a time: everything before the failing
/// commit is applied once (one attempt each), nothing after it.
#[test]
fn a_failure_inside_a_batch_of_commits_on_the_tail_applies_everything_before_it_once() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST_RETRIES);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (v INT PRIMARY KEY);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let tail = &cluster.nodes[2];
    support::refuse_on(tail, "f.t", 1, "held back");
    support::refuse_on(tail, "f.t", 30, "in the middle");
    let rt = runtime();
    let (first, tenth, thirtieth) = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO f.t VALUES (1)")
            .await
            .expect("insert 1");
        let first = last_request_id(&mut c).await;
        // The tail holds at v = 1 while the rest arrives behind it.
        wait_for_attempts(&mut c, &first, "n2", 1).await;
        let mut ids = Vec::new();
        for v in 2..=60 {
            c.query_drop(format!("INSERT INTO f.t VALUES ({v})"))
                .await
                .expect("insert");
            ids.push(last_request_id(&mut c).await);
        }
        (first, ids[8].clone(), ids[28].clone())
    });
    root_sql(tail, "DROP TRIGGER f.refuse_t_1");
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let row = wait_for_attempts(&mut c, &thirtieth, "n2", 2).await;
        assert_eq!(row[1], "failed where the master passed", "{row:?}");
        let row = request_row(&mut c, &first, "n2").await;
        assert_eq!(row[1], "passed after retry", "{row:?}");
        let row = request_row(&mut c, &tenth, "n2").await;
        assert_eq!(
            (row[1].as_str(), row[3].as_str()),
            ("passed", "1"),
            "{row:?}"
        );
    });
    assert_eq!(
        root_rows(tail, "SELECT COUNT(*), MAX(v) FROM f.t"),
        ["29\t29"],
        "everything before the failing commit, nothing after"
    );
    root_sql(tail, "DROP TRIGGER f.refuse_t_30");
    wait_for_tail(&cluster, Duration::from_secs(20));
    assert_eq!(root_rows(tail, "SELECT COUNT(*) FROM f.t"), ["60"]);
    assert_eq!(
        support::checksums(tail, &["f.t", "lockstep.commits"]),
        support::checksums(cluster.master(), &["f.t", "lockstep.commits"])
    );
}

/// A commit that writes a table without transactions (MyISAM) goes alone
/// on the tail: when a statement fails in the middle of a batch, the batch
/// is rolled back and run again, and a MyISAM insert in it would have
/// stayed from the first run and failed (or doubled) on the second.
#[test]
fn a_myisam_write_in_a_batch_that_fails_on_the_tail_is_applied_once() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST_RETRIES);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE m; CREATE TABLE m.t (v INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE m.log (id INT PRIMARY KEY, v INT) ENGINE=MyISAM;",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let tail = &cluster.nodes[2];
    support::refuse_on(tail, "m.t", 1, "held back");
    support::refuse_on(tail, "m.t", 30, "in the middle");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO m.t VALUES (1)")
            .await
            .expect("insert 1");
        let first = last_request_id(&mut c).await;
        // The tail holds at v = 1 while the rest arrives behind it.
        wait_for_attempts(&mut c, &first, "n2", 1).await;
        for v in 2..=40 {
            c.query_drop(format!("INSERT INTO m.log VALUES ({v}, {v})"))
                .await
                .expect("log insert");
            c.query_drop(format!("INSERT INTO m.t VALUES ({v})"))
                .await
                .expect("insert");
        }
    });
    root_sql(tail, "DROP TRIGGER m.refuse_t_1");
    std::thread::sleep(Duration::from_secs(2));
    root_sql(tail, "DROP TRIGGER m.refuse_t_30");
    wait_for_tail(&cluster, Duration::from_secs(30));
    assert_eq!(
        root_rows(tail, "SELECT COUNT(*), SUM(v) FROM m.log"),
        ["39\t819"]
    );
    support::assert_nodes_equal_master(
        &cluster,
        &["m.t", "m.log", "lockstep.commits"],
        "after the failing commit passed",
    );
}

/// The tail writes a group's statements back to back before it reads their
/// answers (vendored mysql_async, patch 5), so the node runs every one of
/// them whatever became of the ones before. Here an error on the tail
/// rolls its whole transaction back (`innodb_rollback_on_timeout`, a row
/// held by a session of the node's own): the statements written behind it
/// must not commit one by one. When the row is free the tail applies the
/// transaction once and equals the master (with autocommit left on during
/// the pipeline, the INSERT and the last UPDATE committed by themselves,
/// and the retry then failed on the duplicate key).
#[test]
fn statements_written_behind_one_that_rolled_the_tail_transaction_back_commit_nothing() {
    let mut cluster = Cluster::start(3);
    let (dir, port) = (cluster.nodes[2].dir.clone(), cluster.nodes[2].port);
    cluster.nodes[2].stop();
    let rolls_back_on_timeout = lockstep::mariadb::ServerOptions {
        args: vec![
            "--innodb-rollback-on-timeout=1".into(),
            "--innodb-lock-wait-timeout=1".into(),
        ],
    };
    cluster.nodes[2] = lockstep::mariadb::MariaDb::start(&dir, port, &rolls_back_on_timeout)
        .expect("tail restarts");
    let lockstep = Lockstep::start(&cluster, FAST_RETRIES);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO p.t VALUES (1, 0), (2, 0), (3, 0);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let tables = ["p.t", "lockstep.commits"];
    let rt = runtime();
    rt.block_on(async {
        let mut holder =
            Conn::new(mysql_async::Opts::from_url(&cluster.nodes[2].url()).expect("tail url"))
                .await
                .expect("connect to the tail");
        holder
            .query_drop("BEGIN; SELECT v FROM p.t WHERE id = 2 FOR UPDATE")
            .await
            .expect("hold row 2 on the tail");
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        for sql in [
            "BEGIN",
            "UPDATE p.t SET v = v + 1 WHERE id = 1",
            "UPDATE p.t SET v = v + 1 WHERE id = 2",
            "INSERT INTO p.t VALUES (10, 0)",
            "UPDATE p.t SET v = v + 1 WHERE id = 3",
            "COMMIT",
        ] {
            c.query_drop(sql).await.expect(sql);
        }
        // The tail's UPDATE of row 2 times out (1 s) and is retried while
        // the row is held.
        tokio::time::sleep(Duration::from_secs(3)).await;
        holder.query_drop("COMMIT").await.expect("free row 2");
    });
    wait_for_tail(&cluster, Duration::from_secs(30));
    assert_eq!(
        root_rows(&cluster.nodes[2], "SELECT id, v FROM p.t ORDER BY id"),
        ["1\t1", "2\t1", "3\t1", "10\t0"]
    );
    support::assert_nodes_equal_master(&cluster, &tables, "after the held row was freed");
}

#[test]
fn a_tail_node_whose_data_changed_behind_lockstep_is_quarantined() {
    let cluster = Cluster::start(3);
    let sink = Sink::start();
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, &sink.config(), Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE q; CREATE TABLE q.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; \
         INSERT INTO q.t VALUES (1, 1), (2, 2), (3, 3);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let tail = &cluster.nodes[2];
    root_sql(tail, "UPDATE q.t SET v = 100 WHERE id = 3");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("UPDATE q.t SET v = v + 1 WHERE v < 10")
            .await
            .expect("update");
        let id = last_request_id(&mut c).await;
        c.query_drop("INSERT INTO q.t VALUES (4, 4)")
            .await
            .expect("insert");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = show(&mut c, "SHOW LOCKSTEP NODES").await;
            let n2 = nodes.iter().find(|r| r[0] == "n2").expect("n2 listed");
            if n2[2] == "quarantined" {
                assert!(
                    n2[5].contains("affected rows 3 on the master, 2 here"),
                    "{n2:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "not quarantined: {n2:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let row = request_row(&mut c, &id, "n2").await;
        assert!(row[1].starts_with("diverged"), "{row:?}");
        // B agreed with the master.
        assert_eq!(request_row(&mut c, &id, "n1").await[1], "passed");
    });
    // The quarantined node gets nothing more: the diverging statement was
    // rolled back there and later writes are not applied.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(root_rows(tail, "SELECT COUNT(*) FROM q.t"), ["3"]);
    assert!(
        lockstep.log().contains("node quarantined"),
        "{}",
        lockstep.log()
    );
    let event = sink.wait_for("node_quarantined");
    assert_eq!(event["node"], "n2");
    assert!(
        event["reason"]
            .as_str()
            .expect("reason")
            .contains("diverged"),
        "{event}"
    );

    // A restart keeps it out; once re-synced by hand, the operator says so.
    lockstep.stop();
    let mut lockstep = Lockstep::start_with_journal(&cluster, FAST_RETRIES, Some(journal.path()));
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let nodes = show(&mut c, "SHOW LOCKSTEP NODES").await;
        let n2 = nodes.iter().find(|r| r[0] == "n2").expect("n2 listed");
        assert_eq!(n2[2], "quarantined", "still out after a restart: {n2:?}");
    });
    lockstep.stop();
    root_sql(tail, "UPDATE q.t SET v = 3 WHERE id = 3");
    let _lockstep = Lockstep::start_with_args(
        &cluster,
        FAST_RETRIES,
        Some(journal.path()),
        &["--resynced", "n2"],
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    assert_eq!(
        root_rows(tail, "SELECT id, v FROM q.t ORDER BY id"),
        root_rows(cluster.master(), "SELECT id, v FROM q.t ORDER BY id")
    );
}

#[test]
fn the_slave_is_undone_when_only_the_master_fails_and_nothing_changes_when_both_fail() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE u; CREATE TABLE u.t (v INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO u.t VALUES (1);",
    );
    support::refuse_on(cluster.master(), "u.t", 7, "no 7");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert!(c.query_drop("INSERT INTO u.t VALUES (7)").await.is_err());
        let id = last_request_id(&mut c).await;
        let b = request_row(&mut c, &id, "n1").await;
        assert_eq!(b[1], "undone (the master failed it)", "{b:?}");
        let a = request_row(&mut c, &id, "n0").await;
        assert_eq!(
            (a[1].as_str(), a[5].as_str()),
            ("failed", "failed"),
            "{a:?}"
        );
        assert!(a[2].contains("error 1644: no 7"), "{a:?}");

        assert!(c.query_drop("INSERT INTO u.t VALUES (1)").await.is_err());
        let id = last_request_id(&mut c).await;
        let b = request_row(&mut c, &id, "n1").await;
        assert_eq!(b[1], "failed, as on the master", "{b:?}");

        let unknown = c.query_drop("SHOW LOCKSTEP REQUEST 'nope'").await;
        assert!(
            matches!(unknown, Err(mysql_async::Error::Server(ref e)) if e.code == 1105),
            "{unknown:?}"
        );
    });
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT v FROM u.t"),
            ["1"],
            "port {}",
            node.port
        );
    }
}

/// Waits until `node` has the master's last commit.
fn wait_for_node(cluster: &Cluster, node: usize) {
    let last = |i: usize| support::commits_of(&cluster.nodes[i]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while last(node) != last(0) {
        assert!(Instant::now() < deadline, "node {node} did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_synchronous_slave_that_fails_a_statement_leaves_the_role_to_a_caught_up_node_and_reruns_it() {
    let cluster = Cluster::start(3);
    let sink = Sink::start();
    let lockstep = Lockstep::start(&cluster, &sink.config());
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE s.u (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    let b = &cluster.nodes[1];
    root_sql(b, "DROP TABLE s.u");
    let rt = runtime();
    rt.block_on(async {
        let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
        other.query_drop("BEGIN").await.expect("begin");
        other
            .query_drop("INSERT INTO s.t VALUES (100)")
            .await
            .expect("in txn");

        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO s.u VALUES (1)")
            .await
            .expect("the master passes it");
        let id = last_request_id(&mut c).await;
        let row = request_row(&mut c, &id, "n1").await;
        assert_eq!(row[1], "failed where the master passed", "{row:?}");
        let n1 = wait_for_node_row(&mut c, "n1", |n1| {
            n1[2] == "catching-up" && n1[5].contains(&id)
        })
        .await;
        assert!(n1[5].contains("failed"), "{n1:?}");

        // Writes go on without it, in new and in open transactions.
        for i in 0..3 {
            c.query_drop(format!("INSERT INTO s.t VALUES ({i})"))
                .await
                .expect("insert");
        }
        other
            .query_drop("INSERT INTO s.t VALUES (101)")
            .await
            .expect("in txn");
        other.query_drop("COMMIT").await.expect("commit");
        // The tail node, caught up, takes the synchronous role.
        wait_for_node_row(&mut c, "n2", |n2| n2[2] == "sync").await;
        let mut late = Conn::new(lockstep.client_opts())
            .await
            .expect("new session");
        late.query_drop("INSERT INTO s.t VALUES (200)")
            .await
            .expect("insert");
        let id = last_request_id(&mut late).await;
        let row = request_row(&mut late, &id, "n2").await;
        assert_eq!(row[1], "passed", "n2 runs it synchronously: {row:?}");
        let event = sink.wait_for("node_rejoined");
        assert_eq!(event["node"], "n2", "{event}");
    });
    wait_for_node(&cluster, 2);
    let everything = ["0", "1", "2", "100", "101", "200"];
    for i in [0, 2] {
        assert_eq!(
            root_rows(&cluster.nodes[i], "SELECT id FROM s.t ORDER BY id"),
            everything
        );
        assert_eq!(root_rows(&cluster.nodes[i], "SELECT id FROM s.u"), ["1"]);
    }
    assert_eq!(
        root_rows(b, "SELECT COUNT(*) FROM s.t"),
        ["0"],
        "nothing after the failed entry reaches it, not even the open transaction's writes"
    );

    // The cause is removed: it re-runs the entry and catches up as a tail.
    root_sql(b, "CREATE TABLE s.u (id INT PRIMARY KEY) ENGINE=InnoDB");
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        wait_for_node_row(&mut c, "n1", |n1| n1[2] == "tail").await;
        c.query_drop("INSERT INTO s.t VALUES (300)")
            .await
            .expect("insert");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM s.t ORDER BY id"),
            ["0", "1", "2", "100", "101", "200", "300"],
            "port {}",
            node.port
        );
    }
}

/// Polls `SHOW LOCKSTEP NODES` until `node`'s row satisfies `want`.
async fn wait_for_node_row(
    c: &mut Conn,
    node: &str,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = show(c, "SHOW LOCKSTEP NODES").await;
        let row = nodes
            .into_iter()
            .find(|r| r[0] == node)
            .expect("node listed");
        if want(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "{node}: {row:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_first_slave_that_missed_commits_catches_up_after_a_restart_before_it_is_synchronous() {
    let cluster = Cluster::start(2);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, FAST_RETRIES, Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE m; CREATE TABLE m.t (id INT PRIMARY KEY); INSERT INTO m.t VALUES (1);",
    );
    lockstep.stop();
    // As if lockstep had died between the master's commit and B's.
    root_sql(
        &cluster.nodes[1],
        "DELETE FROM m.t; DELETE FROM lockstep.commits ORDER BY seq DESC LIMIT 1",
    );
    let lockstep = Lockstep::start_with_journal(&cluster, FAST_RETRIES, Some(journal.path()));
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = show(&mut c, "SHOW LOCKSTEP NODES").await;
            let n1 = nodes.iter().find(|r| r[0] == "n1").expect("n1 listed");
            if n1[2] == "sync" {
                break;
            }
            assert!(n1[5].contains("at start"), "{n1:?}");
            assert!(Instant::now() < deadline, "not synchronous again: {n1:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.query_drop("INSERT INTO m.t VALUES (2)")
            .await
            .expect("writes go on");
    });
    assert!(
        lockstep.log().contains("at start it has"),
        "{}",
        lockstep.log()
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM m.t ORDER BY id"),
            ["1", "2"]
        );
    }
}

#[test]
fn retry_master_reruns_what_the_master_refused_until_it_passes_across_a_restart() {
    let cluster = Cluster::start(3);
    let sink = Sink::start();
    let journal = tempfile::tempdir().expect("journal dir");
    let config = format!(
        "{}on_master_fail_slave_pass = \"retry-master\"\n",
        sink.config()
    );
    let mut lockstep = Lockstep::start_with_journal(&cluster, &config, Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE r; CREATE TABLE r.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;",
    );
    support::refuse_on(cluster.master(), "r.t", 13, "not now");
    let rt = runtime();
    let id = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused = c.query_drop("INSERT INTO r.t (v) VALUES (13)").await;
        assert!(
            matches!(refused, Err(mysql_async::Error::Server(ref e)) if e.code == 1644),
            "{refused:?}"
        );
        let id = last_request_id(&mut c).await;
        let a = request_row(&mut c, &id, "n0").await;
        assert_eq!(a[5], "retrying on the master", "{a:?}");
        c.query_drop("INSERT INTO r.t (v) VALUES (1)")
            .await
            .expect("other writes go on");
        id
    });
    // Nowhere yet, and lockstep restarts in the middle of the retries.
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT COUNT(*) FROM r.t WHERE v = 13"),
            ["0"]
        );
    }
    lockstep.stop();
    let lockstep = Lockstep::start_with_journal(&cluster, &config, Some(journal.path()));
    root_sql(cluster.master(), "DROP TRIGGER r.refuse_t_13");
    let event = sink.wait_for("passed_after_retry");
    assert_eq!(
        (event["request_id"].as_str(), event["node"].as_str()),
        (Some(id.as_str()), Some("n0"))
    );
    if std::panic::catch_unwind(|| wait_for_tail(&cluster, Duration::from_secs(20))).is_err() {
        panic!("not caught up; lockstep log:\n{}", lockstep.log());
    }
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT v FROM r.t ORDER BY id"),
            ["1", "13"],
            "port {}",
            node.port
        );
    }
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let a = request_row(&mut c, &id, "n0").await;
        assert_eq!(a[1], "passed after retry", "{a:?}");
        assert!(a[5].starts_with("committed"), "{a:?}");
    });
}

/// The tail keeps at most 256 statements prepared on its connection and
/// closes them all when it needs room. Catching up, it prepares a whole
/// group of commits (up to 64) before running it: when the room ran out in
/// the middle of a group, the statements prepared earlier in that group
/// were closed before they ran, the node answered 1243 (unknown prepared
/// statement handler), and the group failed and was run again (seen in
/// `tests/order.rs`' log). Here a tail that was down catches up on 150
/// transactions of three distinct prepared inserts each (groups of 192
/// statements): it must apply them with no failure (`retries` counts the
/// applier's re-runs of an entry the node failed).
#[test]
fn a_tail_catching_up_on_many_distinct_prepared_statements_fails_none() {
    let mut cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST_RETRIES);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE p; CREATE TABLE p.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
    );
    wait_for_tail(&cluster, Duration::from_secs(30));
    let (dir, port) = (cluster.nodes[2].dir.clone(), cluster.nodes[2].port);
    cluster.nodes[2].kill();
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        for txn in 0..150 {
            c.query_drop("BEGIN").await.expect("begin");
            for i in 0..3 {
                let id = txn * 3 + i;
                c.exec_drop(format!("INSERT INTO p.t VALUES ({id}, {txn})"), ())
                    .await
                    .expect("insert");
            }
            c.query_drop("COMMIT").await.expect("commit");
        }
    });
    cluster.nodes[2] =
        lockstep::mariadb::MariaDb::start(&dir, port, &Default::default()).expect("restart");
    wait_for_tail(&cluster, Duration::from_secs(60));
    let text = ureq::get(&format!("http://127.0.0.1:{}/metrics", lockstep.admin_port))
        .call()
        .expect("admin endpoint answers")
        .into_string()
        .expect("text");
    let retries: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("lockstep_retries_total{node=\"n2\"}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    assert_eq!(
        retries, 0.0,
        "the tail failed and re-ran entries while catching up"
    );
    support::assert_nodes_equal_master(&cluster, &["p.t"], "after the catch-up");
}
