//! `UPDATE … LIMIT n`, `DELETE … LIMIT n` and copies of rows chosen by
//! LIMIT (`INSERT … SELECT`, `CREATE TABLE … SELECT`, also from joins and
//! unions) without `ORDER BY` (issue "Let the server decide": MariaDB's
//! statement binlog flags them, Note 1592). Which rows they change depends on the order a node reads them
//! in; in a table without a primary key that is the order its rows were
//! inserted, which concurrent inserts make different on B, A and the tail.
//! lockstep orders such a statement by the table's key (every column
//! without one), a copy from several tables by every column it copies, so
//! every node changes the same rows.
//!
//! Oracle, for a seeded concurrent workload (`LOCKSTEP_SEED` replays one):
//! a job queue without a primary key (claims with `UPDATE … LIMIT 1`,
//! clean-ups with `DELETE … LIMIT 2`, a prepared `UPDATE … LIMIT ?` and a
//! prepared copy `… UNION … LIMIT ?`), a
//! keyed table changed the same way, and copies (joined, united, into new
//! tables) of rows every node holds in its own order, by LIMIT and, where
//! the order decides what they write, without (into AUTO_INCREMENT tables,
//! `INSERT IGNORE`, `REPLACE`, `ON DUPLICATE KEY UPDATE`): every node
//! equals the master and `lockstep check` passes.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::{checksums, is_timing_error, runtime, seed, wait_for_tail, Cluster, Lockstep};

const CLIENTS: u64 = 6;
const ROWS: u64 = 80;
const OPERATIONS: u64 = 80;

const SCHEMA: &str = "CREATE DATABASE l; \
    CREATE TABLE l.q (job INT NOT NULL, owner INT NULL, note VARCHAR(20) NULL) ENGINE=InnoDB; \
    CREATE TABLE l.k (id INT PRIMARY KEY, grp INT NOT NULL, owner INT NULL, KEY (grp)) ENGINE=InnoDB; \
    CREATE TABLE l.e (grp INT NOT NULL, tag INT NOT NULL) ENGINE=InnoDB; \
    CREATE TABLE l.copy (job INT NOT NULL, copier INT NOT NULL) ENGINE=InnoDB; \
    CREATE TABLE l.src (grp INT NOT NULL, tag INT NOT NULL) ENGINE=InnoDB; \
    CREATE TABLE l.one (x INT) ENGINE=InnoDB; INSERT INTO l.one VALUES (1); \
    CREATE TABLE l.numbered (n INT AUTO_INCREMENT PRIMARY KEY, grp INT, tag INT) ENGINE=InnoDB; \
    CREATE TABLE l.lasts (grp INT PRIMARY KEY, tag INT) ENGINE=InnoDB; \
    CREATE TABLE l.firsts (grp INT PRIMARY KEY, tag INT) ENGINE=InnoDB;";

/// Rows in `l.src`, stored on each node in its own order.
const SOURCE_ROWS: u64 = 60;

/// Fills `l.src` on every node directly with the same rows, each node in
/// an order of its own (as a node restored from a dump or rebuilt holds
/// them): a statement that copies them in the order it reads them copies
/// other rows on each node.
fn fill_source_in_each_nodes_own_order(cluster: &Cluster, seed: u64) {
    for (n, node) in cluster.nodes.iter().enumerate() {
        let mut rows: Vec<u64> = (0..SOURCE_ROWS).collect();
        rows.shuffle(&mut StdRng::seed_from_u64(seed ^ (n as u64 + 1)));
        let values: Vec<String> = rows.iter().map(|t| format!("({}, {t})", t % 3)).collect();
        support::root_sql(
            node,
            &format!("INSERT INTO l.src VALUES {}", values.join(", ")),
        );
    }
}

/// The tables each client's `CREATE OR REPLACE TABLE … SELECT … LIMIT`
/// makes again and again.
fn snapshot_tables() -> Vec<String> {
    (0..CLIENTS).map(|c| format!("l.snap{c}")).collect()
}

/// One statement changing rows chosen by LIMIT, or None for a prepared one.
fn operation(rng: &mut StdRng, client: u64) -> Option<String> {
    Some(match rng.gen_range(0..13) {
        // Copies of rows each node stores in its own order, from a join, a
        // union and into a new table: no one table's key orders them.
        7 => format!(
            "INSERT INTO l.copy SELECT s.tag, {client} FROM l.src AS s, l.one \
             WHERE s.grp = {} LIMIT 2",
            rng.gen_range(0..3)
        ),
        8 => format!(
            "INSERT INTO l.copy SELECT tag, {client} FROM l.src WHERE grp = 0 \
             UNION ALL SELECT tag, {client} FROM l.src WHERE grp = 1 LIMIT 3"
        ),
        9 if rng.gen_bool(0.5) => format!(
            "CREATE OR REPLACE TABLE l.snap{client} \
             SELECT DISTINCT s.grp, s.tag FROM l.src AS s, l.one LIMIT 3"
        ),
        // Copies without LIMIT whose read order decides what they write:
        // AUTO_INCREMENT numbers the rows in it, and the first or last row
        // of a key wins.
        9 => format!(
            "CREATE OR REPLACE TABLE l.snap{client} (n INT AUTO_INCREMENT PRIMARY KEY) \
             SELECT grp, tag FROM l.src WHERE grp = {}",
            rng.gen_range(0..3)
        ),
        10 if rng.gen_bool(0.5) => format!(
            "INSERT INTO l.numbered (grp, tag) SELECT grp, tag FROM l.src WHERE grp = {}",
            rng.gen_range(0..3)
        ),
        10 => format!(
            "INSERT INTO l.numbered (grp, tag) SELECT s.grp, s.tag FROM l.src AS s, l.one \
             WHERE s.grp = {}",
            rng.gen_range(0..3)
        ),
        11 if rng.gen_bool(0.5) => "REPLACE INTO l.lasts SELECT grp, tag FROM l.src".to_string(),
        11 => "INSERT INTO l.lasts SELECT grp, tag FROM l.src \
               ON DUPLICATE KEY UPDATE tag = VALUES(tag)"
            .to_string(),
        12 => format!("INSERT IGNORE INTO l.firsts SELECT {client} * 10 + grp, tag FROM l.src"),
        0 | 1 => format!("UPDATE l.q SET owner = {client} WHERE owner IS NULL LIMIT 1"),
        2 if rng.gen_bool(0.5) => "DELETE FROM l.q WHERE owner IS NOT NULL LIMIT 2".to_string(),
        // An order whose ties (a third of the rows share each grp) the key
        // must break.
        2 => "DELETE FROM l.e ORDER BY grp LIMIT 1".to_string(),
        3 => format!(
            "UPDATE l.k SET owner = {client} WHERE grp = {} AND owner IS NULL LIMIT 2",
            rng.gen_range(0..4)
        ),
        4 => format!(
            "DELETE FROM l.k WHERE grp = {} LIMIT 1",
            rng.gen_range(0..4)
        ),
        _ => return None,
    })
}

#[test]
fn updates_and_deletes_with_an_unordered_limit_change_the_same_rows_everywhere() {
    let seed = seed();
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    fill_source_in_each_nodes_own_order(&cluster, seed);
    for table in snapshot_tables() {
        support::lockstep_sql(
            &lockstep,
            &format!("CREATE TABLE {table} (job INT, grp INT)"),
        );
    }
    let rt = runtime();
    rt.block_on(async {
        // Concurrent inserts: each node stores the rows in its own order.
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                for n in 0..ROWS {
                    let key = client * 1_000 + n;
                    c.query_drop(format!(
                        "INSERT INTO l.q (job) VALUES ({key}); \
                         INSERT INTO l.k (id, grp) VALUES ({key}, {}); \
                         INSERT INTO l.e VALUES ({}, {key})",
                        key % 4,
                        key % 3
                    ))
                    .await
                    .expect("insert");
                }
            }));
        }
        for client in clients {
            client.await.expect("inserting client");
        }
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client));
                let mut c = Conn::new(opts).await.expect("connect");
                let prepared = c
                    .prep("UPDATE l.q SET note = ? WHERE note IS NULL LIMIT ?")
                    .await
                    .expect("prepare");
                let prepared_copy = c
                    .prep(
                        "INSERT INTO l.copy SELECT tag, ? FROM l.src WHERE grp = 2 \
                         UNION ALL SELECT tag, ? FROM l.src WHERE grp = 0 LIMIT ?",
                    )
                    .await
                    .expect("prepare a copy");
                for n in 0..OPERATIONS {
                    let in_transaction = rng.gen_bool(0.2);
                    if in_transaction {
                        c.query_drop("BEGIN").await.expect("begin");
                    }
                    let done = match operation(&mut rng, client) {
                        Some(sql) => c.query_drop(&sql).await,
                        None => {
                            let note = format!("c{client} n{n}");
                            if rng.gen_bool(0.5) {
                                c.exec_drop(&prepared, (note, rng.gen_range(1..4u32))).await
                            } else {
                                let limit = rng.gen_range(1..4u32);
                                c.exec_drop(&prepared_copy, (client, client, limit)).await
                            }
                        }
                    };
                    match done {
                        Ok(()) => {}
                        Err(e) if is_timing_error(&e) => {}
                        Err(e) => panic!("{e} (seed {seed})"),
                    }
                    if in_transaction {
                        match c.query_drop("COMMIT").await {
                            Ok(()) => {}
                            Err(e) if is_timing_error(&e) => {}
                            Err(e) => panic!("COMMIT: {e} (seed {seed})"),
                        }
                    }
                }
            }));
        }
        for client in clients {
            client.await.expect("client");
        }
    });
    wait_for_tail(&cluster, Duration::from_secs(60));
    let snapshots = snapshot_tables();
    let mut tables = vec![
        "l.q",
        "l.k",
        "l.e",
        "l.copy",
        "l.src",
        "l.numbered",
        "l.lasts",
        "l.firsts",
        "lockstep.commits",
    ];
    tables.extend(snapshots.iter().map(String::as_str));
    let master = checksums(cluster.master(), &tables);
    for node in &cluster.nodes {
        assert_eq!(
            checksums(node, &tables),
            master,
            "port {} changed other rows than the master (seed {seed})",
            node.port
        );
    }
    support::assert_check_passes(&lockstep);
}
