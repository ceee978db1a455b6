//! Triggers, stored functions and procedures whose effects each node would
//! compute by itself (issue "Let the server decide", pins that miss):
//! AUTO_INCREMENT values made inside them, `UUID()` or `CONNECTION_ID()`
//! called there, and procedures that commit or roll back themselves (which
//! end lockstep's own transaction on B and A and the tail's batch: the
//! tail stored 591 rows where the master had 400, silently). lockstep pins the client statement's own
//! values only. Before, an audit trigger or a procedure inserting rows under
//! six clients gave clients 1062 errors MariaDB never gives, took B out of
//! its role and stopped both tails for good within a second; a trigger
//! calling UUID() (made before lockstep, or behind its back) left every
//! node with its own values, silently. Such statements are now refused
//! (1235) before any node runs them, and everything else goes on.
//!
//! Oracle, for a seeded concurrent workload (`LOCKSTEP_SEED` replays one):
//! every statement that runs such a body gets 1235 and leaves no trace;
//! every other statement succeeds (or gets a deadlock, as directly); every
//! acknowledged row is on every node exactly once, every node equals the
//! master, and `lockstep check` passes.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{
    checksums, is_timing_error, root_rows, root_sql, runtime, seed, wait_for_tail, Cluster,
    Lockstep,
};

const CLIENTS: u64 = 6;
const OPERATIONS: u64 = 150;

const SCHEMA: &str = "
CREATE DATABASE h;
CREATE TABLE h.log (id INT AUTO_INCREMENT PRIMARY KEY, k INT, what VARCHAR(10)) ENGINE=InnoDB;
CREATE TABLE h.t (k INT PRIMARY KEY, v INT) ENGINE=InnoDB;
CREATE TABLE h.u (k INT PRIMARY KEY, v INT) ENGINE=InnoDB;
CREATE TABLE h.w (k INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE h.x (k INT PRIMARY KEY, u VARCHAR(36)) ENGINE=InnoDB;
CREATE TRIGGER h.t_ai AFTER INSERT ON h.t FOR EACH ROW
  INSERT INTO h.log (k, what) VALUES (NEW.k, 'trigger');
CREATE TRIGGER h.u_bu BEFORE UPDATE ON h.u FOR EACH ROW SET NEW.v = NEW.v + 1;
DELIMITER //
CREATE PROCEDURE h.p(kk INT) BEGIN
  INSERT INTO h.log (k, what) VALUES (kk, 'p1'); INSERT INTO h.log (k, what) VALUES (kk, 'p2');
END //
CREATE PROCEDURE h.q(kk INT) BEGIN CALL h.p(kk); END //
CREATE PROCEDURE h.plain(kk INT) BEGIN UPDATE h.u SET v = v + kk WHERE k = kk % 10; END //
CREATE PROCEDURE h.txp(kk INT) BEGIN
  START TRANSACTION; UPDATE h.u SET v = v + 1 WHERE k = kk % 10; COMMIT;
END //
CREATE FUNCTION h.f(kk INT) RETURNS INT MODIFIES SQL DATA BEGIN
  INSERT INTO h.log (k, what) VALUES (kk, 'f'); RETURN kk;
END //
DELIMITER ;
INSERT INTO h.u VALUES (0,0),(1,0),(2,0),(3,0),(4,0),(5,0),(6,0),(7,0),(8,0),(9,0);
";

/// One statement of the workload and whether lockstep must refuse it.
fn operation(rng: &mut StdRng, key: i64) -> (String, bool) {
    match rng.gen_range(0..11) {
        10 => (format!("CALL h.txp({key})"), true),
        0 => (format!("INSERT INTO h.t VALUES ({key}, 0)"), true),
        1 => (format!("CALL h.p({key})"), true),
        2 => (format!("CALL h.q({key})"), true),
        3 => (format!("SELECT h.f({key})"), true),
        4 if key % 2 == 0 => (format!("INSERT INTO h.w VALUES ({key})"), true),
        4 => (format!("INSERT INTO h.x (k) VALUES ({key})"), true),
        5 => (format!("CALL h.plain({})", key % 10), false),
        6 => (
            format!("UPDATE h.u SET v = v + 1 WHERE k = {}", key % 10),
            false,
        ),
        7 => (
            format!("UPDATE h.t SET v = v + 1 WHERE k = {}", key % 50),
            false,
        ),
        _ => (
            format!("INSERT INTO h.log (k, what) VALUES ({key}, 'client')"),
            false,
        ),
    }
}

#[test]
fn statements_running_bodies_each_node_would_compute_alone_are_refused_and_nodes_stay_equal() {
    let seed = seed();
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    // The master has rows in t (from before the trigger), so UPDATE t
    // finds some: inserted behind lockstep's back on every node alike.
    let rows: Vec<String> = (0..50).map(|k| format!("({k}, 0)")).collect();
    let rows = rows.join(", ");
    for node in &cluster.nodes {
        root_sql(
            node,
            &format!(
                "DROP TRIGGER h.t_ai; INSERT INTO h.t VALUES {rows}; \
             CREATE TRIGGER h.t_ai AFTER INSERT ON h.t FOR EACH ROW \
               INSERT INTO h.log (k, what) VALUES (NEW.k, 'trigger'); \
             CREATE TRIGGER h.w_ai AFTER INSERT ON h.w FOR EACH ROW \
               INSERT INTO h.log (k, what) VALUES (NEW.k, 'behind'); \
             CREATE TRIGGER h.x_bi BEFORE INSERT ON h.x FOR EACH ROW SET NEW.u = UUID();"
            ),
        );
    }
    // A trigger made behind lockstep's back counts from its next DDL.
    support::lockstep_sql(&lockstep, "CREATE TABLE h.after_ddl (x INT)");

    let rt = runtime();
    let (acknowledged, refused) = rt.block_on(async {
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client));
                let mut c = Conn::new(opts).await.expect("connect");
                let mut logged = Vec::new();
                let mut refused = 0u64;
                for n in 0..OPERATIONS {
                    let key = (1_000 + client * 1_000 + n) as i64;
                    let in_transaction = rng.gen_bool(0.2);
                    if in_transaction {
                        c.query_drop("BEGIN").await.expect("begin");
                    }
                    let (sql, must_refuse) = operation(&mut rng, key);
                    let outcome = c.query_drop(&sql).await;
                    match outcome {
                        Err(mysql_async::Error::Server(e)) if must_refuse => {
                            assert_eq!(e.code, 1235, "{sql}: {}", e.message);
                            assert!(
                                e.message.contains("cannot replay it alike on every node"),
                                "{}",
                                e.message
                            );
                            refused += 1;
                        }
                        Ok(()) if must_refuse => panic!("{sql} ran (seed {seed})"),
                        Ok(()) => {
                            if sql.contains("'client'") {
                                logged.push(key);
                            }
                        }
                        Err(e) if is_timing_error(&e) => {}
                        Err(e) => panic!("{sql}: {e} (seed {seed})"),
                    }
                    if in_transaction {
                        let end = if rng.gen_bool(0.7) {
                            "COMMIT"
                        } else {
                            "ROLLBACK"
                        };
                        match c.query_drop(end).await {
                            Ok(()) if end == "ROLLBACK" => {
                                logged.retain(|k| *k != key);
                            }
                            Ok(()) => {}
                            Err(e) if is_timing_error(&e) => logged.retain(|k| *k != key),
                            Err(e) => panic!("{end}: {e} (seed {seed})"),
                        }
                    }
                }
                (logged, refused)
            }));
        }
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        for client in clients {
            let (logged, r) = client.await.expect("client");
            acknowledged.extend(logged);
            refused += r;
        }
        (acknowledged, refused)
    });
    println!(
        "{} rows acknowledged into h.log, {refused} statements refused",
        acknowledged.len()
    );
    assert!(refused > 0, "the workload ran no refused statement");

    wait_for_tail(&cluster, Duration::from_secs(60));
    let tables = ["h.log", "h.t", "h.u", "h.w", "h.x", "lockstep.commits"];
    let master = checksums(cluster.master(), &tables);
    for node in &cluster.nodes {
        assert_eq!(
            checksums(node, &tables),
            master,
            "port {} differs from the master (seed {seed})",
            node.port
        );
        // Every acknowledged row exactly once; no row of a refused body.
        let rows = root_rows(node, "SELECT k FROM h.log WHERE what = 'client' ORDER BY k");
        let mut expected: Vec<String> = acknowledged.iter().map(|k| k.to_string()).collect();
        expected.sort_by_key(|k| k.parse::<i64>().unwrap_or(0));
        assert_eq!(rows, expected, "port {} (seed {seed})", node.port);
        assert_eq!(
            root_rows(
                node,
                "SELECT (SELECT COUNT(*) FROM h.log WHERE what <> 'client') + \
                 (SELECT COUNT(*) FROM h.x)"
            ),
            ["0"],
            "a refused statement left rows (seed {seed})"
        );
    }
    support::assert_check_passes(&lockstep);
}

/// The event scheduler would run every event on every node by itself,
/// writing behind lockstep's back: turning it on is refused, and it stays
/// off everywhere.
#[test]
fn the_event_scheduler_is_not_turned_on_behind_the_nodes() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        for sql in [
            "SET GLOBAL event_scheduler = ON",
            "SET @@global.event_scheduler = 1",
        ] {
            match c.query_drop(sql).await {
                Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{sql}"),
                other => panic!("{sql}: {other:?}"),
            }
        }
        c.query_drop("SET GLOBAL event_scheduler = OFF")
            .await
            .expect("off is fine");
    });
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, "SELECT @@global.event_scheduler"), ["OFF"]);
    }
}
