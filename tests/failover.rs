//! Nodes dying under lockstep: what keeps working, and how a node that comes
//! back rejoins.

mod support;

use std::time::{Duration, Instant};

use lockstep::mariadb::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

async fn wait_for_role(c: &mut Conn, node: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = support::role(c, node).await;
        if now == want {
            return;
        }
        if Instant::now() > deadline {
            let rows: Vec<Row> = c.query("SHOW LOCKSTEP NODES").await.expect("show nodes");
            let rows: Vec<Vec<Option<String>>> = rows
                .into_iter()
                .map(|r| (0..6).map(|i| r.get_opt(i).and_then(Result::ok)).collect())
                .collect();
            panic!("{node} is {now:?}, not {want:?}: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn writes_go_on_when_the_first_slave_dies_the_next_node_takes_its_role_and_it_rejoins() {
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
        // Transactions begun on A alone: B's side opens with their first
        // write, which comes after B died (`deferred`), or once the tail
        // node has taken B's role (`late`).
        let mut deferred = Conn::new(lockstep.client_opts()).await.expect("connect");
        deferred.query_drop("BEGIN").await.expect("begin");
        let _: Vec<i64> = deferred
            .query("SELECT id FROM f.t")
            .await
            .expect("read in txn");
        let mut late = Conn::new(lockstep.client_opts()).await.expect("connect");
        late.query_drop("START TRANSACTION").await.expect("begin");

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
        deferred
            .query_drop("INSERT INTO f.t VALUES (12)")
            .await
            .expect("first write of a transaction begun before B died");
        deferred
            .query_drop("COMMIT")
            .await
            .expect("commit without B");
        let mut fresh = Conn::new(lockstep.client_opts())
            .await
            .expect("a new session without B");
        fresh
            .query_drop("INSERT INTO f.t VALUES (4)")
            .await
            .expect("insert");
        wait_for_role(&mut c, "n1", "catching-up").await;
        // The tail node, caught up, is the synchronous slave now.
        wait_for_role(&mut c, "n2", "sync").await;
        late.query_drop("INSERT INTO f.t VALUES (13)")
            .await
            .expect("first write on the new synchronous slave");
        late.query_drop("COMMIT")
            .await
            .expect("commit with the new synchronous slave");

        cluster.nodes[1] = MariaDb::start(&dir, port, &Default::default()).expect("B restarts");
        wait_for_role(&mut c, "n1", "tail").await;
        c.exec_drop(&prepared, (5,))
            .await
            .expect("prepared with the new synchronous slave");
        fresh
            .query_drop("INSERT INTO f.t VALUES (6)")
            .await
            .expect("insert with the new synchronous slave");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t ORDER BY id"),
            ["1", "2", "3", "4", "5", "6", "10", "11", "12", "13"],
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
        assert_eq!(support::role(&mut c, "n1").await, "catching-up");
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

const FAST: &str = "health_interval_ms = 200\nhealth_timeout_ms = 500\n\
    [compare]\nretry_initial_ms = 50\nretry_max_ms = 500\n";

/// Writes unique ids through lockstep until `stop`, reconnecting after
/// errors; returns the ids it got an OK for and the longest time it went
/// without one.
async fn writer(
    opts: mysql_async::OptsBuilder,
    first_id: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<u64>, Duration) {
    let mut acknowledged = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut last_ok = Instant::now();
    let mut longest = Duration::ZERO;
    let mut id = first_id;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if conn.is_none() {
            conn = Conn::new(opts.clone()).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        id += 1;
        match c.query_drop(format!("INSERT INTO f.t VALUES ({id})")).await {
            Ok(()) => {
                acknowledged.push(id);
                longest = longest.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Err(_) => conn = None,
        }
    }
    (acknowledged, longest)
}

/// Waits until every node in `nodes` has `master`'s last commit.
fn wait_for_nodes(cluster: &Cluster, master: usize, nodes: &[usize]) {
    let last = |i: usize| support::commits_of(&cluster.nodes[i]);
    let deadline = Instant::now() + Duration::from_secs(30);
    for &i in nodes {
        while last(i) != last(master) {
            assert!(Instant::now() < deadline, "node {i} did not catch up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_synchronous_slave_takes_over_when_the_master_dies_and_no_acknowledged_write_is_lost() {
    let mut cluster = Cluster::start(3);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, FAST, Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (id BIGINT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let (dir, port) = (cluster.nodes[0].dir.clone(), cluster.nodes[0].port);
    let (acknowledged, longest) = rt.block_on(async {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                tokio::spawn(writer(
                    lockstep.client_opts(),
                    (w + 1) * 1_000_000,
                    stop.clone(),
                ))
            })
            .collect();
        let mut idle = Conn::new(lockstep.client_opts()).await.expect("connect");
        idle.query_drop("SET @kept = 42").await.expect("set");
        let prepared = idle
            .prep("INSERT INTO f.t VALUES (?)")
            .await
            .expect("prepare");
        let mut open = Conn::new(lockstep.client_opts()).await.expect("connect");
        open.query_drop("BEGIN").await.expect("begin");
        open.query_drop("INSERT INTO f.t VALUES (900)")
            .await
            .expect("in txn");
        tokio::time::sleep(Duration::from_millis(1500)).await;

        cluster.nodes[0].kill();
        // The open transaction died with the master: its client sees a lost
        // connection, as from a MariaDB server that died.
        let lost = open.query_drop("INSERT INTO f.t VALUES (901)").await;
        assert!(lost.is_err(), "the transaction survived its master");
        wait_for_role(&mut idle, "n1", "master").await;
        assert_eq!(support::role(&mut idle, "n0").await, "down");
        // A session that was idle moves to the new master with its state.
        let kept: Option<u64> = idle.query_first("SELECT @kept").await.expect("select");
        assert_eq!(kept, Some(42));
        idle.exec_drop(&prepared, (902,))
            .await
            .expect("prepared statement on the new master");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acknowledged = vec![902];
        let mut longest = Duration::ZERO;
        for w in writers {
            let (ids, gap) = w.await.expect("writer");
            assert!(!ids.is_empty(), "a writer never succeeded");
            acknowledged.extend(ids);
            longest = longest.max(gap);
        }
        // The tail node takes the synchronous role once it caught up (one
        // applier falls behind four unthrottled writers in a debug build).
        wait_for_role(&mut idle, "n2", "sync").await;

        // The old master comes back: it catches up as a tail node.
        cluster.nodes[0] = MariaDb::start(&dir, port, &Default::default()).expect("A restarts");
        wait_for_role(&mut idle, "n0", "tail").await;
        idle.exec_drop(&prepared, (903,))
            .await
            .expect("a write with the new synchronous slave");
        acknowledged.push(903);
        (acknowledged, longest)
    });
    println!(
        "{} acknowledged writes; longest write outage seen by a client: {} ms",
        acknowledged.len(),
        longest.as_millis()
    );
    wait_for_nodes(&cluster, 1, &[0, 2]);
    for node in &cluster.nodes {
        let present: std::collections::HashSet<u64> = root_rows(node, "SELECT id FROM f.t")
            .iter()
            .map(|r| r.parse().expect("id"))
            .collect();
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !present.contains(id))
            .collect();
        assert!(missing.is_empty(), "port {}: lost {missing:?}", node.port);
        assert!(
            !present.contains(&900) && !present.contains(&901),
            "port {}",
            node.port
        );
    }
    let sums: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| support::checksums(n, &["f.t"]))
        .collect();
    assert!(sums.windows(2).all(|w| w[0] == w[1]), "{sums:?}");

    // A restart keeps the new master: the old one is not handed the role back.
    lockstep.stop();
    let lockstep = Lockstep::start_with_journal(&cluster, FAST, Some(journal.path()));
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut c, "n1").await, "master");
        c.query_drop("INSERT INTO f.t VALUES (904)")
            .await
            .expect("insert after restart");
    });
    wait_for_nodes(&cluster, 1, &[0, 2]);
    assert_eq!(
        root_rows(&cluster.nodes[0], "SELECT id FROM f.t WHERE id = 904"),
        ["904"]
    );
}

#[test]
fn with_min_sync_slaves_1_writes_are_refused_while_no_slave_is_synchronous() {
    let mut cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, &format!("min_sync_slaves = 1\n{FAST}"));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO f.t VALUES (1);",
    );
    let (dir, port) = (cluster.nodes[1].dir.clone(), cluster.nodes[1].port);
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut open = Conn::new(lockstep.client_opts()).await.expect("connect");
        open.query_drop("BEGIN").await.expect("begin");
        open.query_drop("INSERT INTO f.t VALUES (10)")
            .await
            .expect("in txn");
        cluster.nodes[1].kill();
        // The write that finds B gone, and every one after, is refused.
        for id in [2, 3] {
            let err = c
                .query_drop(format!("INSERT INTO f.t VALUES ({id})"))
                .await
                .expect_err("write without a synchronous slave");
            let mysql_async::Error::Server(e) = err else {
                panic!("not a server error: {err:?}");
            };
            assert_eq!(e.code, 1290, "{e:?}");
            assert!(e.message.contains("min_sync_slaves"), "{e:?}");
        }
        let err = open.query_drop("COMMIT").await.expect_err("commit refused");
        assert!(
            matches!(&err, mysql_async::Error::Server(e) if e.code == 1290),
            "{err:?}"
        );
        // Reads go on.
        let n: Option<u64> = c
            .query_first("SELECT COUNT(*) FROM f.t")
            .await
            .expect("read");
        assert_eq!(n, Some(1));
        cluster.nodes[1] = MariaDb::start(&dir, port, &Default::default()).expect("B restarts");
        wait_for_role(&mut c, "n1", "sync").await;
        c.query_drop("INSERT INTO f.t VALUES (4)")
            .await
            .expect("write with B back");
    });
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t ORDER BY id"),
            ["1", "4"]
        );
    }
}

#[test]
fn a_client_that_disconnects_mid_transaction_leaves_nothing_anywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO f.t VALUES (1)")
            .await
            .expect("insert");
        // Gone without COMMIT or QUIT: the socket just closes.
        drop(c);
        let mut other = Conn::new(lockstep.client_opts()).await.expect("connect");
        other
            .query_drop("INSERT INTO f.t VALUES (2)")
            .await
            .expect("the row is not locked any more");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t"),
            ["2"],
            "port {}",
            node.port
        );
    }
}

#[test]
fn sigterm_rolls_back_open_transactions_finishes_and_syncs_the_journal() {
    let cluster = Cluster::start(2);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, FAST, Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE f; CREATE TABLE f.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    runtime().block_on(async {
        let mut open = Conn::new(lockstep.client_opts()).await.expect("connect");
        open.query_drop("BEGIN").await.expect("begin");
        open.query_drop("INSERT INTO f.t VALUES (1)")
            .await
            .expect("insert");
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO f.t VALUES (2)")
            .await
            .expect("insert");
        let started = Instant::now();
        lockstep.stop();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGTERM took {:?}",
            started.elapsed()
        );
        assert!(
            open.query_drop("COMMIT").await.is_err(),
            "the open transaction outlived lockstep"
        );
    });
    let log = lockstep.log();
    assert!(log.contains("writes in flight finished"), "{log}");
    assert!(log.contains("journal synced and closed"), "{log}");
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t"),
            ["2"],
            "port {}",
            node.port
        );
    }
    // The journal reopens with everything: a restart serves at once.
    lockstep.respawn();
    support::lockstep_sql(&lockstep, "INSERT INTO f.t VALUES (3)");
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM f.t ORDER BY id"),
            ["2", "3"]
        );
    }
}

/// SIGSTOP / SIGCONT: a server that hangs instead of dying (no connection
/// is closed, nothing is refused).
fn signal(node: &MariaDb, signal: i32) {
    if let Some(pid) = node.pid().and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill(2) on a mariadbd this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

#[test]
fn servers_that_hang_are_replaced_by_their_health_checks() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE h; CREATE TABLE h.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO h.t VALUES (1);",
    );
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        // The synchronous slave hangs: it leaves the role, writes go on.
        signal(&cluster.nodes[1], libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while support::role(&mut c, "n1").await == "sync" {
            assert!(Instant::now() < deadline, "a hung slave kept its role");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::timeout(
            Duration::from_secs(5),
            c.query_drop("INSERT INTO h.t VALUES (2)"),
        )
        .await
        .expect("a write does not wait for the hung slave")
        .expect("insert");
        signal(&cluster.nodes[1], libc::SIGCONT);
        wait_for_role(&mut c, "n1", "tail").await;

        // The master hangs: it is replaced, writes go on.
        signal(&cluster.nodes[0], libc::SIGSTOP);
        let mut fresh = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while fresh.is_none() {
            assert!(Instant::now() < deadline, "no failover from a hung master");
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let mut conn = Conn::new(lockstep.client_opts()).await?;
                conn.query_drop("INSERT INTO h.t VALUES (3)").await?;
                Ok::<_, mysql_async::Error>(conn)
            })
            .await;
            if let Ok(Ok(conn)) = attempt {
                fresh = Some(conn);
            }
        }
        let mut fresh = fresh.expect("a session after the failover");
        assert_ne!(support::role(&mut fresh, "n0").await, "master");
        signal(&cluster.nodes[0], libc::SIGCONT);
        wait_for_role(&mut fresh, "n0", "tail").await;
    });
    for node in &cluster.nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        while root_rows(node, "SELECT id FROM h.t ORDER BY id") != ["1", "2", "3"] {
            assert!(
                Instant::now() < deadline,
                "port {}: {:?}",
                node.port,
                root_rows(node, "SELECT id FROM h.t ORDER BY id")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A client session whose connection to the master was killed while it
/// sat idle (as a master restarted before any failover leaves it): its
/// thread there is the one holding a transaction on `table` (InnoDB),
/// found before the session commits it.
async fn session_whose_master_connection_died(
    cluster: &Cluster,
    lockstep: &Lockstep,
    table: &str,
) -> Conn {
    let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop(format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");
    // MariaDB answers INNODB_TRX from a cache it refreshes only after
    // 100 ms without a read of it (`trx_i_s_cache_end_read` sets
    // `last_read`): lockstep's deadlock watcher had read it just before,
    // under load, and a poll more often than every 100 ms would keep the
    // stale answer for good (measured: 50 ms polls never saw a new
    // transaction in 2.5 s; 200 ms polls saw it at once).
    let deadline = Instant::now() + Duration::from_secs(10);
    let thread = loop {
        let thread = root_rows(
            &cluster.nodes[0],
            "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX",
        );
        if thread.len() == 1 || Instant::now() > deadline {
            break thread;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(thread.len(), 1, "one transaction on the master: {thread:?}");
    c.query_drop("COMMIT").await.expect("commit");
    support::root_sql(&cluster.nodes[0], &format!("KILL CONNECTION {}", thread[0]));
    c
}

/// A session's connection to the master dies while the session is idle
/// (the master restarted before any failover, or killed it) and its next
/// statement is a DDL, which nothing can undo: no node may run it, since
/// the master cannot. Before, B ran the DDL and then found A's connection
/// closed; the master answered its health check, so B was quarantined as
/// holding a change the master refused (found by `tests/ha.rs`' chaos: the
/// chain was left with one copy).
#[test]
fn a_ddl_on_a_session_whose_master_connection_died_idle_runs_nowhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    runtime().block_on(async {
        let mut c = session_whose_master_connection_died(&cluster, &lockstep, "g.t").await;

        let ddl = c.query_drop("CREATE TABLE g.u (id INT PRIMARY KEY)").await;
        assert!(ddl.is_err(), "the DDL cannot have run on the master");
        drop(c);

        let mut admin = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut admin, "n1").await, "sync");
        admin
            .query_drop("INSERT INTO g.t VALUES (2)")
            .await
            .expect("writes go on");
        admin
            .query_drop("CREATE TABLE g.u (id INT PRIMARY KEY)")
            .await
            .expect("the DDL runs once asked again");
        assert_eq!(support::role(&mut admin, "n1").await, "sync");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM g.t"),
            ["1", "2"],
            "port {}",
            node.port
        );
        assert_eq!(
            root_rows(node, "SHOW TABLES FROM g"),
            ["t", "u"],
            "port {}",
            node.port
        );
    }
}

/// The same for a write to a MyISAM table, which B cannot undo either:
/// with the master's connection dead, no node keeps the row.
#[test]
fn a_myisam_write_on_a_session_whose_master_connection_died_idle_runs_nowhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE h; CREATE TABLE h.t (id INT PRIMARY KEY) ENGINE=InnoDB; \
         CREATE TABLE h.m (id INT PRIMARY KEY) ENGINE=MyISAM;",
    );
    runtime().block_on(async {
        let mut c = session_whose_master_connection_died(&cluster, &lockstep, "h.t").await;

        let write = c.query_drop("INSERT INTO h.m VALUES (7)").await;
        assert!(write.is_err(), "the write cannot have run on the master");
        drop(c);

        let mut admin = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut admin, "n1").await, "sync");
        admin
            .query_drop("INSERT INTO h.m VALUES (8)")
            .await
            .expect("writes go on");
        assert_eq!(support::role(&mut admin, "n1").await, "sync");
    });
    wait_for_tail(&cluster, Duration::from_secs(20));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM h.m"),
            ["8"],
            "port {}",
            node.port
        );
    }
}

/// The master's connection breaks while it runs a MyISAM write B already
/// ran (held there by a table lock taken directly, then killed): whether
/// the master has the row cannot be told, and B cannot undo it. B must
/// not stay in its role silently holding a row the master lacks: it
/// leaves it, quarantined, and the others stay equal to the master.
#[test]
fn a_myisam_write_whose_master_connection_breaks_after_b_ran_it_takes_b_out() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, FAST);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE k; CREATE TABLE k.m (id INT PRIMARY KEY) ENGINE=MyISAM; \
         INSERT INTO k.m VALUES (1);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
    runtime().block_on(async {
        let mut holder = Conn::from_url(cluster.nodes[0].url()).await.expect("root");
        holder
            .query_drop("LOCK TABLES k.m WRITE")
            .await
            .expect("lock on the master");
        let opts = lockstep.client_opts();
        let write = tokio::spawn(async move {
            let mut c = Conn::new(opts).await.expect("connect");
            c.query_drop("INSERT INTO k.m VALUES (7)").await
        });
        // The session's statement waits for the lock on the master.
        let deadline = Instant::now() + Duration::from_secs(20);
        let thread = loop {
            let waiting = root_rows(
                &cluster.nodes[0],
                "SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'INSERT INTO k.m VALUES (7)%'",
            );
            if let Some(id) = waiting.first() {
                break id.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the write never reached the master"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        support::root_sql(&cluster.nodes[0], &format!("KILL CONNECTION {thread}"));
        let answered = write.await.expect("task");
        assert!(answered.is_err(), "the client cannot be told it passed");
        holder.query_drop("UNLOCK TABLES").await.expect("unlock");

        let mut admin = Conn::new(lockstep.client_opts()).await.expect("connect");
        wait_for_role(&mut admin, "n1", "quarantined").await;
        admin
            .query_drop("INSERT INTO k.m VALUES (8)")
            .await
            .expect("writes go on");
    });
    // The tail catches up; B, out of the chain, is left as it is.
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::commits_of(&cluster.nodes[2]) != support::commits_of(&cluster.nodes[0]) {
        assert!(Instant::now() < deadline, "the tail did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let master = root_rows(&cluster.nodes[0], "SELECT id FROM k.m ORDER BY id");
    assert_eq!(master, ["1", "8"]);
    assert_eq!(
        root_rows(&cluster.nodes[2], "SELECT id FROM k.m ORDER BY id"),
        master,
        "the node still in the chain"
    );
}

/// `min_sync_slaves = 1`: a write that looked at the roles while B held
/// its role, and reaches B's turn after a health check took B out, is
/// refused like every write after it. The session still held its
/// connection to B, and that counted as a synchronous slave: the write
/// went to A alone and was acknowledged (seen once under load in
/// `with_min_sync_slaves_1_…`; the fail point holds the window open).
#[test]
fn with_min_sync_slaves_1_a_write_that_saw_b_before_it_left_its_role_is_refused() {
    let mut cluster = Cluster::start(2);
    let lockstep = Lockstep::start_with_fail_points(
        &cluster,
        &format!("min_sync_slaves = 1\n{FAST}"),
        None,
        &[],
        "write-roles-followed=return(2500)",
    );
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE m; CREATE TABLE m.t (id INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO m.t VALUES (1)")
            .await
            .expect("with B in its role");
        let writing = tokio::spawn(async move {
            let write = c.query_drop("INSERT INTO m.t VALUES (2)").await;
            (c, write)
        });
        // The write is held after its look at the roles; B dies and its
        // health check takes it out of the role meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.nodes[1].kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while support::roles(&lockstep)[1].1 == "sync" {
            assert!(
                Instant::now() < deadline,
                "the health check did not take B out within 2 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_c, write) = writing.await.expect("join");
        let Err(mysql_async::Error::Server(e)) = write else {
            panic!("a write without a synchronous slave: {write:?}");
        };
        assert_eq!(e.code, 1290, "{e:?}");
    });
    assert_eq!(
        root_rows(&cluster.nodes[0], "SELECT id FROM m.t ORDER BY id"),
        ["1"],
        "the master holds only the write made with B"
    );
}

/// A client prepares a statement while the master fails over: it ran on
/// the master, and by the time lockstep prepares it on the synchronous
/// slave that slave is being promoted and no node holds the synchronous
/// role, so it has no handle there. The session then moves onto its own
/// connection to the promoted slave. It kept the old master's handle for
/// that statement, and the client's execution got 1243 (an unknown
/// statement handler) from the new master, an error MariaDB would not
/// give (seen once in `tests/order.rs`); now it is prepared there as the
/// session moves. The window is held open by the fail point between the
/// two prepares.
#[test]
fn a_statement_prepared_while_the_master_fails_over_runs_on_the_new_master() {
    let mut cluster = Cluster::start(2);
    let lockstep = Lockstep::start_with_fail_points(
        &cluster,
        FAST,
        None,
        &[],
        "prepared-on-master=return(3000)",
    );
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE h; CREATE TABLE h.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;",
    );
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let preparing = tokio::spawn(async move {
            let insert = c.prep("INSERT INTO h.t VALUES (1, 1)").await;
            (c, insert)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.nodes[0].kill();
        let (mut c, insert) = preparing.await.expect("join");
        let insert = insert.expect("the prepare ran on the master before it died");
        let deadline = Instant::now() + Duration::from_secs(30);
        while support::roles(&lockstep)[1].1 != "master" {
            assert!(Instant::now() < deadline, "B never became the master");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ran = c.exec_drop(&insert, ()).await;
        assert!(ran.is_ok(), "the execution on the new master: {ran:?}");
    });
    assert_eq!(
        root_rows(&cluster.nodes[1], "SELECT id, v FROM h.t"),
        ["1\t1"],
        "the new master holds the row"
    );
}
