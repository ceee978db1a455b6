//! The write protocol driven with no client connection (issue "A house a
//! newcomer can read": the protocol in a room of its own, which tests can
//! drive without a client socket). lockstep is assembled in-process over
//! three real nodes (`app::assemble`, as `serve` does), and one
//! `write::Driver` runs a seeded sequence of autocommit writes, updates,
//! duplicate keys and transactions that commit or roll back, each answer
//! written to memory instead of a socket.
//!
//! Oracle: every answer is the one MariaDB gives for that statement (an OK
//! with the rows it changed, or 1062 for a duplicate key), computed from a
//! model of the table; afterwards the master holds the model's rows and
//! every node, the tail replaying the journal included, equals the master.
//! `LOCKSTEP_SEED` replays a sequence.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use lockstep::backend::SessionParams;
use lockstep::config::Config;
use lockstep::write::Driver;
use opensrv_mysql::{CapabilityFlags, PacketWriter, QueryResultWriter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{root_rows, runtime, seed, wait_for_tail, Cluster};

const STEPS: u32 = 80;

/// The first packet of an answer, as a client reads it.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok { affected: u64 },
    Error { code: u16 },
    Rows,
}

/// Runs `sql` through `driver`, its answer written to memory.
async fn run(driver: &mut Driver, sql: &str) -> Answer {
    let mut out = PacketWriter::new(Vec::new());
    let client = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_RESULTS;
    let w = QueryResultWriter::new(&mut out, false, client);
    driver
        .run_text(sql.as_bytes(), w)
        .await
        .expect("the answer is written");
    out.flush_all().await.expect("flushed");
    first_answer(out.get_ref()).unwrap_or_else(|| panic!("no answer to {sql}"))
}

/// Reads the first packet: 3 bytes of length, 1 of sequence, the payload.
fn first_answer(bytes: &[u8]) -> Option<Answer> {
    let payload = bytes.get(4..)?;
    Some(match *payload.first()? {
        0x00 => Answer::Ok {
            affected: length_encoded(payload.get(1..)?)?,
        },
        0xFF => Answer::Error {
            code: u16::from_le_bytes([*payload.get(1)?, *payload.get(2)?]),
        },
        _ => Answer::Rows,
    })
}

fn length_encoded(b: &[u8]) -> Option<u64> {
    Some(match *b.first()? {
        n @ 0..=0xfa => u64::from(n),
        0xfc => u64::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?])),
        0xfd => u64::from(u32::from_le_bytes([*b.get(1)?, *b.get(2)?, *b.get(3)?, 0])),
        _ => u64::from_le_bytes(b.get(1..9)?.try_into().ok()?),
    })
}

/// lockstep's configuration for `cluster`, as `serve` would read it.
fn config_for(cluster: &Cluster, dir: &std::path::Path) -> Config {
    let free = || lockstep::mariadb::free_port().expect("free port");
    let mut text = format!(
        "listen = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\njournal_dir = \"{}\"\n\n\
         [[users]]\nname = \"app\"\npassword = \"secret\"\n",
        free(),
        free(),
        dir.join("journal").display()
    );
    for (i, node) in cluster.nodes.iter().enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"n{i}\"\nurl = \"{}\"\n",
            node.url()
        ));
    }
    let path = dir.join("lockstep.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).expect("config")
}

/// One step of the workload: its statements, each with the answer the
/// model expects.
fn step(rng: &mut StdRng, n: u32, rows: &BTreeMap<u32, u32>) -> Vec<(String, Answer)> {
    match rng.gen_range(0..4) {
        0 => {
            let v = rng.gen_range(0..1000);
            vec![(
                format!("INSERT INTO d.t VALUES ({n}, {v})"),
                Answer::Ok { affected: 1 },
            )]
        }
        1 => {
            let below = rng.gen_range(0..=n);
            let changed = rows.range(..below).count() as u64;
            vec![(
                format!("UPDATE d.t SET v = v + 1 WHERE id < {below}"),
                Answer::Ok { affected: changed },
            )]
        }
        2 => match rows.keys().next() {
            Some(id) => vec![(
                format!("INSERT INTO d.t VALUES ({id}, 0)"),
                Answer::Error { code: 1062 },
            )],
            None => Vec::new(),
        },
        _ => {
            let gone = rows.keys().nth(rng.gen_range(0..rows.len().max(1)));
            let mut statements = vec![
                ("BEGIN".to_string(), Answer::Ok { affected: 0 }),
                (
                    format!("INSERT INTO d.t VALUES ({n}, 7)"),
                    Answer::Ok { affected: 1 },
                ),
            ];
            if let Some(id) = gone {
                statements.push((
                    format!("DELETE FROM d.t WHERE id = {id}"),
                    Answer::Ok { affected: 1 },
                ));
            }
            let end = if rng.gen_bool(0.5) {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            statements.push((end.to_string(), Answer::Ok { affected: 0 }));
            statements
        }
    }
}

/// What `sql` does to the model once it is committed.
fn apply(rows: &mut BTreeMap<u32, u32>, sql: &str) {
    let words: Vec<&str> = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '+')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["INSERT", "INTO", "d", "t", "VALUES", id, v] => {
            let id: u32 = id.parse().expect("id");
            rows.entry(id).or_insert(v.parse().expect("v"));
        }
        ["UPDATE", .., below] => {
            let below: u32 = below.parse().expect("bound");
            for (_, v) in rows.range_mut(..below) {
                *v += 1;
            }
        }
        ["DELETE", .., id] => {
            rows.remove(&id.parse::<u32>().expect("id"));
        }
        _ => {}
    }
}

#[test]
fn the_write_protocol_runs_without_a_client_connection() {
    let seed = seed();
    let cluster = Cluster::start(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(&cluster, dir.path());
    let rt = runtime();
    let rows = rt.block_on(async {
        let shared = lockstep::app::assemble(&config)
            .await
            .expect("lockstep assembles over the nodes");
        let mut driver = Driver::new(shared.clone(), shared.registry.register());
        driver
            .open("app".into(), SessionParams::default())
            .await
            .expect("the driver opens its connections");
        for ddl in [
            "CREATE DATABASE d",
            "CREATE TABLE d.t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
        ] {
            assert!(
                matches!(run(&mut driver, ddl).await, Answer::Ok { .. }),
                "{ddl}"
            );
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rows = BTreeMap::new();
        for n in 0..STEPS {
            let statements = step(&mut rng, n, &rows);
            let mut in_transaction = false;
            let mut pending: Vec<String> = Vec::new();
            for (sql, expected) in statements {
                let answer = run(&mut driver, &sql).await;
                assert_eq!(answer, expected, "{sql} (seed {seed})");
                match sql.as_str() {
                    "BEGIN" => in_transaction = true,
                    "COMMIT" => {
                        pending.drain(..).for_each(|s| apply(&mut rows, &s));
                        in_transaction = false;
                    }
                    "ROLLBACK" => {
                        pending.clear();
                        in_transaction = false;
                    }
                    // A refused statement changes nothing.
                    _ if !matches!(answer, Answer::Ok { .. }) => {}
                    _ if in_transaction => pending.push(sql),
                    _ => apply(&mut rows, &sql),
                }
            }
        }
        assert!(
            matches!(
                run(&mut driver, "SELECT COUNT(*) FROM d.t").await,
                Answer::Rows
            ),
            "a read answers with rows"
        );
        rows
    });
    wait_for_tail(&cluster, Duration::from_secs(60));
    let model: Vec<String> = rows.iter().map(|(id, v)| format!("{id}\t{v}")).collect();
    assert_eq!(
        root_rows(cluster.master(), "SELECT id, v FROM d.t ORDER BY id"),
        model,
        "the master holds what the answers said (seed {seed})"
    );
    support::assert_nodes_equal_master(
        &cluster,
        &["d.t", "lockstep.commits"],
        &format!("seed {seed}"),
    );
    drop(rt);
}
