//! Isolation levels (issue "Let the server decide", isolation). Under
//! READ COMMITTED InnoDB reads the source rows of `INSERT … SELECT` without
//! locks, so a change that commits between the statement's run on B and
//! its run on A gives the two nodes different rows; under REPEATABLE READ a
//! routine's plain SELECT reads a snapshot. An autocommit write runs in
//! lockstep's own transaction on A and B, opened at SERIALIZABLE; B's side
//! of a client transaction runs at SERIALIZABLE too. There the rows a write
//! reads are read under shared locks, as the statement binlog requires, and
//! a change to them waits on B or goes first on every node alike.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

const SECONDS: u64 = 8;

#[test]
fn autocommit_copies_under_read_committed_are_identical_on_every_node() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE rc; \
         CREATE TABLE rc.src (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO rc.src VALUES (1, 0), (2, 0), (3, 0), (4, 0); \
         CREATE TABLE rc.dst (n INT AUTO_INCREMENT PRIMARY KEY, total INT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let (copies, updates) = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let copier = {
            let opts = lockstep.client_opts();
            tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .expect("read committed");
                let mut copies = 0;
                while Instant::now() < until {
                    c.query_drop("INSERT INTO rc.dst (total) SELECT SUM(v) FROM rc.src")
                        .await
                        .expect("copy");
                    copies += 1;
                }
                copies
            })
        };
        let mut updaters = Vec::new();
        for id in 1..=4 {
            let opts = lockstep.client_opts();
            updaters.push(tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .expect("read committed");
                let mut updates = 0;
                while Instant::now() < until {
                    let updated = c
                        .query_drop(format!("UPDATE rc.src SET v = v + 1 WHERE id = {id}"))
                        .await;
                    match updated {
                        Ok(()) => updates += 1,
                        // MariaDB's own answers to contention.
                        Err(mysql_async::Error::Server(e)) if [1205, 1213].contains(&e.code) => {}
                        Err(e) => panic!("update: {e}"),
                    }
                }
                updates
            }));
        }
        let copies = copier.await.expect("copier");
        let mut updates = 0;
        for u in updaters {
            updates += u.await.expect("updater");
        }
        (copies, updates)
    });
    println!("{copies} copies under {updates} updates in {SECONDS} s");
    wait_for_tail(&cluster, Duration::from_secs(30));
    let master =
        assert_every_node_has_the_masters(&cluster, "SELECT n, total FROM rc.dst ORDER BY n");
    assert_eq!(master.len(), copies);
}

/// Every node's rows for `query` equal the master's, counted; returns the
/// master's rows.
fn assert_every_node_has_the_masters(cluster: &Cluster, query: &str) -> Vec<String> {
    let master = root_rows(cluster.master(), query);
    for node in &cluster.nodes[1..] {
        let rows = root_rows(node, query);
        let differing = rows.iter().zip(&master).filter(|(a, b)| a != b).count();
        assert_eq!(
            (rows.len(), differing),
            (master.len(), 0),
            "port {}: {differing} of {} rows of `{query}` differ from the master's",
            node.port,
            master.len()
        );
    }
    master
}

/// A procedure that counts rows with a plain `SELECT … INTO` and stores
/// the count, called while other sessions insert rows: under REPEATABLE
/// READ the count was read from each node's snapshot, taken later on A
/// than on B, and B and the tail stored other counts (359 and 393 of 600
/// calls, silently). lockstep's own transaction now runs at SERIALIZABLE,
/// where the count is read under locks an insert must wait for on B.
#[test]
fn a_procedure_that_computes_from_rows_others_change_stores_the_same_values_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE pc;
         CREATE TABLE pc.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
         CREATE TABLE pc.log (k INT PRIMARY KEY, n INT, total INT) ENGINE=InnoDB;
         DELIMITER //
         CREATE PROCEDURE pc.p(kk INT) BEGIN
           DECLARE n, total INT;
           SELECT COUNT(*), COALESCE(SUM(v), 0) INTO n, total FROM pc.t;
           INSERT INTO pc.log VALUES (kk, n, total);
         END//
         DELIMITER ;",
    );
    let rt = runtime();
    let calls = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let mut clients = Vec::new();
        for client in 0..6u32 {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                let mut calls = 0;
                let mut n = 0u32;
                while Instant::now() < until {
                    let key = client * 1_000_000 + n;
                    n += 1;
                    let sql = if client % 2 == 0 {
                        format!("CALL pc.p({key})")
                    } else {
                        format!("INSERT INTO pc.t VALUES ({key}, {})", n % 7)
                    };
                    match c.query_drop(&sql).await {
                        Ok(()) => calls += u32::from(client % 2 == 0),
                        Err(mysql_async::Error::Server(e)) if [1205, 1213].contains(&e.code) => {}
                        Err(e) => panic!("{sql}: {e}"),
                    }
                }
                calls
            }));
        }
        let mut calls = 0;
        for client in clients {
            calls += client.await.expect("client");
        }
        calls
    });
    println!("{calls} calls of the procedure in {SECONDS} s");
    assert!(calls > 0);
    wait_for_tail(&cluster, Duration::from_secs(30));
    assert_every_node_has_the_masters(&cluster, "SELECT k, n, total FROM pc.log ORDER BY k");
}

/// Client transactions under READ COMMITTED and READ UNCOMMITTED (and
/// with autocommit off, PyMySQL's default): the level is the client's, so
/// on A an `INSERT … SELECT` reads its source without locks, and an update
/// or an insert that commits between the copy's run on B and its run on A
/// made A copy other rows than B. B's side of every client transaction now
/// runs at SERIALIZABLE: there the copy reads its source under shared
/// locks (gaps included), so a change to those rows waits on B until the
/// copy committed, or committed everywhere before it.
#[test]
fn copies_in_client_transactions_under_read_committed_are_identical_on_every_node() {
    use rand::{Rng, SeedableRng};
    let seed = support::seed();
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE rt; \
         CREATE TABLE rt.src (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO rt.src (v) VALUES (0), (0), (0), (0); \
         CREATE TABLE rt.dst (n INT AUTO_INCREMENT PRIMARY KEY, total INT, rows_seen INT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let (copies, changes) = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let mut copiers = Vec::new();
        for (client, level, explicit) in [
            (0u64, "READ COMMITTED", true),
            (1, "READ UNCOMMITTED", false),
            (2, "READ COMMITTED", false),
        ] {
            let opts = lockstep.client_opts();
            copiers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ client);
                let mut c = Conn::new(opts).await.expect("connect");
                c.query_drop(format!("SET SESSION TRANSACTION ISOLATION LEVEL {level}"))
                    .await
                    .expect("level");
                if !explicit {
                    c.query_drop("SET autocommit = 0")
                        .await
                        .expect("autocommit");
                }
                let mut copies = 0;
                while Instant::now() < until {
                    let mut steps = vec![
                        "INSERT INTO rt.dst (total, rows_seen) SELECT SUM(v), COUNT(*) FROM rt.src",
                        "UPDATE rt.dst SET total = (SELECT MAX(v) FROM rt.src) \
                         WHERE n = LAST_INSERT_ID()",
                    ];
                    if explicit {
                        steps.insert(0, "BEGIN");
                    }
                    let end = if rng.gen_ratio(1, 4) {
                        "ROLLBACK"
                    } else {
                        "COMMIT"
                    };
                    steps.push(end);
                    for step in steps {
                        match c.query_drop(step).await {
                            Ok(()) => {}
                            // MariaDB's own answers to contention: the
                            // transaction is over (1213) or goes on (1205).
                            Err(mysql_async::Error::Server(e))
                                if [1205, 1213].contains(&e.code) =>
                            {
                                c.query_drop("ROLLBACK").await.expect("rollback");
                                break;
                            }
                            Err(e) => panic!("{step}: {e}"),
                        }
                        if step == "COMMIT" {
                            copies += 1;
                        }
                    }
                }
                copies
            }));
        }
        let mut changers = Vec::new();
        for client in 10..13u64 {
            let opts = lockstep.client_opts();
            changers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ client);
                let mut c = Conn::new(opts).await.expect("connect");
                c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await
                    .expect("read committed");
                let mut changes = 0;
                while Instant::now() < until {
                    let sql = if rng.gen_ratio(1, 5) {
                        "INSERT INTO rt.src (v) VALUES (1)".to_string()
                    } else {
                        format!(
                            "UPDATE rt.src SET v = v + 1 WHERE id = {}",
                            rng.gen_range(1..=4)
                        )
                    };
                    match c.query_drop(&sql).await {
                        Ok(()) => changes += 1,
                        Err(mysql_async::Error::Server(e)) if [1205, 1213].contains(&e.code) => {}
                        Err(e) => panic!("{sql}: {e}"),
                    }
                }
                changes
            }));
        }
        let mut copies = 0;
        for c in copiers {
            copies += c.await.expect("copier");
        }
        let mut changes = 0;
        for c in changers {
            changes += c.await.expect("changer");
        }
        (copies, changes)
    });
    println!("{copies} committed copies under {changes} changes in {SECONDS} s");
    assert!(copies > 0 && changes > 0);
    wait_for_tail(&cluster, Duration::from_secs(30));
    for query in [
        "SELECT n, total, rows_seen FROM rt.dst ORDER BY n",
        "SELECT id, v FROM rt.src ORDER BY id",
    ] {
        assert_every_node_has_the_masters(&cluster, query);
    }
}
