//! The synchronous slave's AUTO_INCREMENT value is pinned on the master;
//! when B lacks rows A has, A already holds that value. The client must not
//! get a duplicate-key error MariaDB would not give: A runs the statement
//! again with a value of its own, B leaves its role and catches up from the
//! journal. Every node then holds the master's rows, values drawn from
//! `RAND()` and `NOW(6)` included: A's second run is pinned as its first.

mod support;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, root_sql, runtime, Cluster, Lockstep};

#[test]
fn a_value_the_master_already_has_is_replaced_by_the_masters_own() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE a; CREATE TABLE a.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, \
         r DOUBLE, at DATETIME(6)) ENGINE=InnoDB; \
         INSERT INTO a.t (v) VALUES (1), (2), (3);",
    );
    support::wait_for_tail(&cluster, Duration::from_secs(20));
    // Behind lockstep's back, the master gets the row B would number next.
    root_sql(cluster.master(), "INSERT INTO a.t (id, v) VALUES (4, 40)");
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        assert_eq!(support::role(&mut c, "n1").await, "sync");
        c.query_drop("INSERT INTO a.t (v, r, at) VALUES (5, RAND(), NOW(6))")
            .await
            .expect("no duplicate-key error for a value lockstep chose");
        let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        assert_eq!(id, Some(5), "the master's own value");
        assert_ne!(support::role(&mut c, "n1").await, "sync", "B left its role");
        // Inside a transaction as well, once a caught-up node is B again
        // (it numbers after 5; the master gets 6 behind lockstep's back).
        let deadline = Instant::now() + Duration::from_secs(30);
        while support::role(&mut c, "n2").await != "sync"
            && support::role(&mut c, "n1").await != "sync"
        {
            assert!(
                Instant::now() < deadline,
                "no node took the synchronous role"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        root_sql(cluster.master(), "INSERT INTO a.t (id, v) VALUES (6, 60)");
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO a.t (v, r, at) VALUES (7, RAND(), NOW(6))")
            .await
            .expect("no duplicate-key error inside a transaction either");
        let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        assert_eq!(id, Some(7));
        c.query_drop("COMMIT").await.expect("commit");
    });
    // The client's row reaches every node, with the master's value.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &cluster.nodes {
        while root_rows(node, "SELECT id FROM a.t WHERE v IN (5, 7) ORDER BY id") != ["5", "7"] {
            assert!(
                Instant::now() < deadline,
                "port {}: {:?}",
                node.port,
                root_rows(node, "SELECT * FROM a.t ORDER BY id")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // With the values the master drew.
    let all = "SELECT id, v, r, at FROM a.t WHERE v IN (5, 7) ORDER BY id";
    let master = root_rows(cluster.master(), all);
    for node in &cluster.nodes {
        assert_eq!(root_rows(node, all), master, "port {}", node.port);
    }
}

/// `INSERT …; SELECT LAST_INSERT_ID()` in one text (Dapper's way of
/// inserting a row and reading its id, and any driver's with
/// multi-statements on). B's value was taken from the text's last result
/// (the SELECT's, which carries none), so A chose its own: under
/// concurrent inserts A and B gave the row other ids and the slave and the
/// tail were quarantined. Now the first inserting statement's value is
/// B's, pinned on A. A text with two statements that make AUTO_INCREMENT
/// values is refused (only one can be pinned).
#[test]
fn an_insert_and_its_last_insert_id_in_one_text_get_the_same_id_everywhere() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE mi; \
         CREATE TABLE mi.t (id INT AUTO_INCREMENT PRIMARY KEY, who INT, n INT) ENGINE=InnoDB; \
         CREATE TABLE mi.plain (k INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let ids = rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        // A routine's body is no text of several statements.
        c.query_drop(
            "CREATE PROCEDURE mi.p() BEGIN INSERT INTO mi.t (who) VALUES (0); \
             INSERT INTO mi.t (who) VALUES (0); END",
        )
        .await
        .expect("a procedure whose body inserts twice");
        let refused = c
            .query_drop("INSERT INTO mi.t (who) VALUES (0); INSERT INTO mi.t (who) VALUES (0)")
            .await
            .expect_err("two statements that make AUTO_INCREMENT values");
        assert_eq!(support::server_code(&refused), Some(1235), "{refused}");
        let until = Instant::now() + Duration::from_secs(5);
        let mut clients = Vec::new();
        for who in 1..=5u32 {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                let mut ids = Vec::new();
                let mut n = 0u32;
                while Instant::now() < until {
                    n += 1;
                    let text = format!(
                        "INSERT INTO mi.plain VALUES ({}); \
                         INSERT INTO mi.t (who, n) VALUES ({who}, {n}); SELECT LAST_INSERT_ID()",
                        who * 1_000_000 + n
                    );
                    let mut result = c.query_iter(text).await.expect("text");
                    let mut id = None;
                    while !result.is_empty() {
                        let rows: Vec<u64> = result.collect().await.expect("result");
                        id = id.or(rows.first().copied());
                    }
                    drop(result);
                    ids.push((id.expect("LAST_INSERT_ID()"), who, n));
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for c in clients {
            ids.extend(c.await.expect("client"));
        }
        ids
    });
    println!(
        "{} rows inserted with their ids read in the same text",
        ids.len()
    );
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    let mut expected: Vec<String> = ids
        .iter()
        .map(|(id, who, n)| format!("{id}\t{who}\t{n}"))
        .collect();
    expected.sort_by_key(|row| row.split('\t').next().and_then(|id| id.parse::<u64>().ok()));
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id, who, n FROM mi.t ORDER BY id"),
            expected,
            "every client's LAST_INSERT_ID() names its row, on port {}",
            node.port
        );
    }
}

/// `INSERT … ON DUPLICATE KEY UPDATE` that inserts no row reports the id
/// of the row it updated. lockstep pinned that id as `insert_id` on the
/// master: the statement's first row took it as its candidate, met that
/// row on the primary key and updated *it*, so the master's counts went to
/// the wrong rows (every client got its OK). Unpinned, the master's own
/// candidate came from its counter, which lags B's, and could be the id
/// another statement in flight had just been given: the same wrong-row
/// update, or 1062 for what MariaDB passes. Seeded: many clients mixing
/// multi-row upserts, REPLACE and the `id = LAST_INSERT_ID(id)` idiom.
/// Oracles: each key's count on the master is the number of acknowledged
/// statements that named it, less its insert; every node and the journal
/// replayed equal the master; no error MariaDB would not give; and
/// LAST_INSERT_ID() after an upsert that inserted nothing is the value
/// from before, as MariaDB keeps it.
#[test]
fn upserts_update_their_own_rows_on_every_node() {
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    let seed = support::seed();
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE up; \
         CREATE TABLE up.t (id INT AUTO_INCREMENT PRIMARY KEY, uid INT, tag CHAR(1), \
         n INT NOT NULL DEFAULT 0, UNIQUE (uid, tag)) ENGINE=InnoDB; \
         CREATE TABLE up.log (k INT AUTO_INCREMENT PRIMARY KEY, ref BIGINT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let named = rt.block_on(async {
        // One client first: LAST_INSERT_ID() survives an upsert that
        // inserted nothing, on the master and in what the nodes replay
        // (MariaDB's OK packet reports 2 here, the last row updated).
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        c.query_drop("INSERT INTO up.t (uid, tag) VALUES (0, 'a'), (0, 'b')")
            .await
            .expect("insert");
        let first: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        c.query_drop(
            "INSERT INTO up.t (uid, tag) VALUES (0, 'a'), (0, 'b') ON DUPLICATE KEY UPDATE n = n + 1",
        )
        .await
        .expect("upsert");
        let after: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
        assert_eq!(after, first, "an upsert that inserted nothing keeps LAST_INSERT_ID()");
        c.query_drop("INSERT INTO up.log (ref) VALUES (LAST_INSERT_ID())")
            .await
            .expect("log");

        let until = Instant::now() + Duration::from_secs(6);
        let mut clients = Vec::new();
        for client in 0..6u64 {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ client);
                let mut c = Conn::new(opts).await.expect("connect");
                let mut named: HashMap<(u32, char), u64> = HashMap::new();
                while Instant::now() < until {
                    let choice = rng.gen_range(0..10);
                    let keys: Vec<(u32, char)> = match choice {
                        0..=6 => (0..rng.gen_range(1..8))
                            .map(|_| (rng.gen_range(1..60), ['a', 'b', 'c'][rng.gen_range(0..3)]))
                            .collect(),
                        _ => vec![(rng.gen_range(1..60), 'r')],
                    };
                    let values: Vec<String> =
                        keys.iter().map(|(u, t)| format!("({u}, '{t}')")).collect();
                    let sql = match choice {
                        0..=5 => format!(
                            "INSERT INTO up.t (uid, tag) VALUES {} ON DUPLICATE KEY UPDATE n = n + 1",
                            values.join(", ")
                        ),
                        6 => format!(
                            "INSERT INTO up.t (uid, tag) VALUES {} \
                             ON DUPLICATE KEY UPDATE n = n + 1, id = LAST_INSERT_ID(id)",
                            values[0]
                        ),
                        _ => format!("REPLACE INTO up.t (uid, tag) VALUES {}", values[0]),
                    };
                    let keys = if choice == 6 { vec![keys[0]] } else { keys };
                    match c.query_drop(&sql).await {
                        Ok(()) => {
                            for key in keys {
                                *named.entry(key).or_default() += 1;
                            }
                        }
                        Err(e) if support::is_timing_error(&e) => {}
                        Err(e) => panic!("seed {seed}: {sql}: {e} (MariaDB gives none)"),
                    }
                }
                named
            }));
        }
        let mut named: HashMap<(u32, char), u64> = HashMap::new();
        for c in clients {
            for (key, count) in c.await.expect("client") {
                *named.entry(key).or_default() += count;
            }
        }
        named
    });
    support::wait_for_tail(&cluster, Duration::from_secs(60));
    let master = cluster.master();
    let mut wrong = Vec::new();
    for row in root_rows(master, "SELECT uid, tag, n FROM up.t WHERE uid > 0") {
        let fields: Vec<&str> = row.split('\t').collect();
        let key = (
            fields[0].parse::<u32>().expect("uid"),
            fields[1].chars().next().expect("tag"),
        );
        let n: u64 = fields[2].parse().expect("n");
        let expected = if key.1 == 'r' { 0 } else { named[&key] - 1 };
        if n != expected {
            wrong.push(format!("{key:?}: n = {n}, {expected} expected"));
        }
    }
    assert!(
        wrong.is_empty(),
        "seed {seed}: the master counted upserts on other rows ({} keys), first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let keys = named.keys().filter(|(u, _)| *u > 0).count();
    assert_eq!(
        root_rows(master, "SELECT COUNT(*) FROM up.t WHERE uid > 0"),
        [keys.to_string()],
        "seed {seed}: one row per key named"
    );
    let reference = support::checksums(master, &["up.t", "up.log"]);
    for node in &cluster.nodes {
        assert_eq!(
            support::checksums(node, &["up.t", "up.log"]),
            reference,
            "seed {seed}: port {} differs from the master",
            node.port
        );
    }
    support::assert_check_passes(&lockstep);
    // The journal replayed onto a fresh server gives the master's rows.
    let fresh = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        support::checksums(&fresh.nodes[0], &["up.t", "up.log"]),
        reference,
        "seed {seed}: the journal replayed differs from the master"
    );
    println!(
        "seed {seed}: {keys} keys, every count on its own row, on every node and in the journal"
    );
}

/// One session's random mix of generated ids, explicit ids, upserts and
/// statements that read LAST_INSERT_ID() (in their text, in a procedure,
/// in a trigger the text does not name). An insert of explicit ids
/// reports them in its OK packet but leaves LAST_INSERT_ID() as it was:
/// what a later statement reads must be the master's on every node and in
/// the journal. The oracle is MariaDB itself: the same statements on a
/// server of their own give the same answers and the same rows.
#[test]
fn last_insert_id_after_explicit_ids_is_the_masters_everywhere() {
    explicit_ids_then_last_insert_id(3);
}

/// The same without B: the master's own answer to an upsert is judged
/// against the value from before.
#[test]
fn last_insert_id_after_explicit_ids_is_the_masters_without_a_slave() {
    explicit_ids_then_last_insert_id(1);
}

fn explicit_ids_then_last_insert_id(nodes: usize) {
    use rand::{Rng, SeedableRng};
    const TABLES: [&str; 3] = ["li.t", "li.log", "li.seen"];

    let seed = support::seed();
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let setup = "CREATE DATABASE li; \
         CREATE TABLE li.t (id INT AUTO_INCREMENT PRIMARY KEY, k INT, UNIQUE (k)) ENGINE=InnoDB; \
         CREATE TABLE li.log (n INT AUTO_INCREMENT PRIMARY KEY, ref BIGINT) ENGINE=InnoDB; \
         CREATE TABLE li.seen (ref BIGINT) ENGINE=InnoDB; \
         CREATE PROCEDURE li.seen() INSERT INTO li.seen (ref) VALUES (LAST_INSERT_ID()); \
         CREATE TABLE li.noted (k INT) ENGINE=InnoDB; \
         CREATE TRIGGER li.note AFTER INSERT ON li.noted FOR EACH ROW \
           INSERT INTO li.seen (ref) VALUES (LAST_INSERT_ID())";
    let mut explicit = 1_000_000;
    let statements: Vec<String> = (0..120)
        .map(|_| {
            let k = rng.gen_range(0..40);
            match rng.gen_range(0..9) {
                0 => format!("INSERT INTO li.t (k) VALUES ({k})"),
                1 | 2 => {
                    // Far from the values generated after the last one.
                    explicit += 1000;
                    format!("INSERT INTO li.t (id, k) VALUES ({explicit}, {k})")
                }
                3 => format!("INSERT INTO li.t (k) VALUES ({k}) ON DUPLICATE KEY UPDATE k = k"),
                4 => format!(
                    "INSERT INTO li.t (k) VALUES ({k}) \
                     ON DUPLICATE KEY UPDATE k = k + LAST_INSERT_ID() - LAST_INSERT_ID()"
                ),
                5 => "CALL li.seen()".to_string(),
                // A trigger reads it: the text does not say so.
                6 => format!("INSERT INTO li.noted VALUES ({k})"),
                _ => "INSERT INTO li.log (ref) VALUES (LAST_INSERT_ID())".to_string(),
            }
        })
        .collect();
    let cluster = Cluster::start(nodes);
    let lockstep = Lockstep::start(&cluster, "");
    let direct = Cluster::start(1);
    let rt = runtime();
    let answers = |opts: mysql_async::Opts| {
        let statements = statements.clone();
        rt.block_on(async move {
            let mut c = Conn::new(opts).await.expect("connect");
            c.query_drop(setup).await.expect("setup");
            let mut answers = Vec::new();
            for sql in &statements {
                let answer = match c.query_drop(sql).await {
                    Ok(()) => format!("ok {}", c.last_insert_id().unwrap_or(0)),
                    Err(e) => format!("error {:?}", support::server_code(&e)),
                };
                let id: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.expect("id");
                answers.push(format!("{sql}: {answer}, LAST_INSERT_ID() {id:?}"));
            }
            answers
        })
    };
    let through = answers(lockstep.client_opts().into());
    let directly = answers(mysql_async::Opts::from_url(&direct.nodes[0].url()).expect("url"));
    support::assert_same_as_direct(
        seed,
        (&through, &directly),
        &cluster,
        &lockstep,
        &direct.nodes[0],
        &TABLES,
    );
    println!(
        "seed {seed}: {} statements, the same answers and rows everywhere",
        statements.len()
    );
}
