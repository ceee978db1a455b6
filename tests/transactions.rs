//! Transactions of every shape a client opens, through lockstep and on a
//! MariaDB of its own, must answer alike and leave the same rows on every
//! node and in the replayed journal. B's side of a transaction opens only
//! with its first statement that reaches B (in that statement's round
//! trip), so this runs the shapes that could tell: transactions that only
//! read, `READ ONLY` ones that try to write, savepoints before the first
//! write, a ROLLBACK before any write, BEGIN inside a transaction (an
//! implicit commit), autocommit off (a transaction opened by the first
//! statement), and LOCK TABLES around them (where B's BEGIN is sent at once).
//! Seeded: `LOCKSTEP_SEED` replays a run.

mod support;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use rand::{Rng, SeedableRng};
use support::{runtime, Cluster, Lockstep};

const TABLES: [&str; 2] = ["tx.t", "tx.u"];

const SETUP: &str = "CREATE DATABASE tx; \
    CREATE TABLE tx.t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB; \
    CREATE TABLE tx.u (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20)) ENGINE=InnoDB; \
    INSERT INTO tx.t VALUES (1, 0), (2, 0), (3, 0), (4, 0)";

/// How a transaction is opened.
const OPENINGS: [&str; 6] = [
    "BEGIN",
    "START TRANSACTION",
    "START TRANSACTION READ ONLY",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    "SET autocommit = 0",
    "LOCK TABLES tx.t WRITE, tx.u WRITE",
];

/// A statement inside a transaction.
fn statement(rng: &mut impl Rng, next_id: &mut i32) -> String {
    let id = rng.gen_range(1..=6);
    match rng.gen_range(0..11) {
        0 => format!("SELECT v FROM tx.t WHERE id = {id}"),
        1 => format!("SELECT v FROM tx.t WHERE id = {id} FOR UPDATE"),
        2 | 3 => format!("UPDATE tx.t SET v = v + 1 WHERE id = {id}"),
        4 => {
            *next_id += 1;
            format!("INSERT INTO tx.t VALUES ({}, 7)", *next_id)
        }
        // A duplicate key: refused on both, the transaction goes on.
        5 => "INSERT INTO tx.t VALUES (1, 9)".to_string(),
        6 => "INSERT INTO tx.u (note) VALUES ('row')".to_string(),
        7 => "SAVEPOINT s".to_string(),
        8 => "ROLLBACK TO SAVEPOINT s".to_string(),
        9 => "RELEASE SAVEPOINT s".to_string(),
        _ => "SELECT COUNT(*), SUM(v) FROM tx.t".to_string(),
    }
}

/// How a transaction ends (after LOCK TABLES, UNLOCK TABLES follows).
const ENDINGS: [&str; 4] = ["COMMIT", "ROLLBACK", "BEGIN", "COMMIT"];

/// A seeded script of transactions, each with its statements and its end.
fn script(seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut next_id = 100;
    let mut script = Vec::new();
    for _ in 0..40 {
        let opening = OPENINGS[rng.gen_range(0..OPENINGS.len())];
        script.push(opening.to_string());
        for _ in 0..rng.gen_range(0..5) {
            script.push(statement(&mut rng, &mut next_id));
        }
        script.push(ENDINGS[rng.gen_range(0..ENDINGS.len())].to_string());
        match opening {
            "SET autocommit = 0" => script.push("SET autocommit = 1".to_string()),
            "LOCK TABLES tx.t WRITE, tx.u WRITE" => script.push("UNLOCK TABLES".to_string()),
            _ => {}
        }
        // A transaction left open by a closing BEGIN ends here.
        script.push("COMMIT".to_string());
    }
    script
}

/// What a client sees of each statement: its rows, or its OK's counts, or
/// its error code.
async fn answers(mut c: Conn, script: &[String]) -> Vec<String> {
    c.query_drop(SETUP).await.expect("setup");
    let mut answers = Vec::new();
    for sql in script {
        let answer = match c.query_iter(sql.as_str()).await {
            Ok(mut result) => {
                let rows: Vec<Row> = result.collect().await.unwrap_or_default();
                let rows: Vec<String> = rows
                    .into_iter()
                    .map(|row| format!("{:?}", row.unwrap()))
                    .collect();
                format!("ok {} {rows:?}", c.affected_rows())
            }
            Err(e) => format!("error {:?}", support::server_code(&e)),
        };
        answers.push(format!("{sql}: {answer}"));
    }
    answers
}

#[test]
fn every_shape_of_transaction_answers_and_ends_as_directly() {
    let seed = support::seed();
    println!("seed {seed} (LOCKSTEP_SEED={seed} replays it)");
    let script = script(seed);
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let direct = Cluster::start(1);
    let rt = runtime();
    let through = rt.block_on(async {
        let c = Conn::new(lockstep.client_opts()).await.expect("connect");
        answers(c, &script).await
    });
    let directly = rt.block_on(async {
        let opts = mysql_async::Opts::from_url(&direct.nodes[0].url()).expect("url");
        let c = Conn::new(opts).await.expect("connect directly");
        answers(c, &script).await
    });
    support::assert_same_as_direct(
        seed,
        (&through, &directly),
        &cluster,
        &lockstep,
        &direct.nodes[0],
        &TABLES,
    );
    println!(
        "seed {seed}: {} statements in 40 transactions, the same answers and rows everywhere",
        script.len()
    );
}
