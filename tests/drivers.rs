//! Real drivers running their own kind of workload, through lockstep in
//! front of three nodes and directly against MariaDB: PyMySQL with
//! autocommit off (its default: every read opens a transaction the
//! application ends), and mysql-connector-python with server-side prepared
//! statements (the binary protocol, typed parameters and rows). The
//! application sees the same answers both ways, and every node ends with
//! the master's rows. The seed (printed; `LOCKSTEP_SEED` replays one) picks
//! the values and which transactions roll back.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{checksums, root_sql, seed, wait_for_tail, Cluster, Lockstep, PASSWORD, USER};

fn run_workload(driver: &str, port: u16, seed: u64) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/driver_workload.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([driver, &port.to_string(), USER, PASSWORD, &seed.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "driver_workload.py {driver} failed (are PyMySQL and mysql-connector-python installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The workload directly against one fresh server, with lockstep's user.
fn directly(driver: &str, seed: u64) -> String {
    let direct = Cluster::start(1);
    root_sql(
        direct.master(),
        &format!(
            "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO '{USER}'@'127.0.0.1';"
        ),
    );
    run_workload(driver, direct.master().port, seed)
}

fn same_answers_and_same_rows(driver: &str, tables: &[&str]) {
    let seed = seed();
    let direct = directly(driver, seed);
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let through = run_workload(driver, lockstep.port, seed);
    for seen in ["1062", "\"rollback\": true", "\"commit\": true"] {
        assert!(
            direct.contains(seen),
            "the workload had a duplicate key, a rollback and a commit:\n{direct}"
        );
    }
    if through != direct {
        let first = direct
            .lines()
            .zip(through.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let around = |text: &str| {
            text.lines()
                .skip(first.saturating_sub(8))
                .take(16)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{driver} (seed {seed}) saw other answers through lockstep, from line {first}:\n\
             directly:\n{}\nthrough lockstep:\n{}\nlockstep log:\n{}",
            around(&direct),
            around(&through),
            lockstep.log()
        );
    }
    wait_for_tail(&cluster, Duration::from_secs(30));
    let master = checksums(cluster.master(), tables);
    for node in &cluster.nodes {
        if checksums(node, tables) == master {
            continue;
        }
        let rows = |n: &lockstep::mariadb::MariaDb| -> Vec<String> {
            tables
                .iter()
                .flat_map(|t| support::root_rows(n, &format!("SELECT * FROM {t}")))
                .collect()
        };
        let (theirs, masters) = (rows(node), rows(cluster.master()));
        let differ: Vec<_> = theirs.iter().filter(|r| !masters.contains(r)).collect();
        let lack: Vec<_> = masters.iter().filter(|r| !theirs.contains(r)).collect();
        panic!(
            "{driver} (seed {seed}): port {} differs from the master\n             rows the master lacks: {differ:#?}\nrows it lacks: {lack:#?}",
            node.port
        );
    }
    support::assert_check_passes(&lockstep);
}

#[test]
fn pymysql_with_autocommit_off_sees_what_it_sees_directly() {
    same_answers_and_same_rows("pymysql", &["dw.accounts"]);
}

#[test]
fn connector_python_prepared_statements_see_what_they_see_directly() {
    same_answers_and_same_rows("connector", &["dc.items"]);
}
