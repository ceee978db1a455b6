//! MariaDB's own test suite through lockstep (issue "Clients unchanged").
//!
//! `mysql-test-run` (Debian package `mariadb-test`) runs a slice of its
//! `main` suite (`fixtures/mtr/slice.txt`) with `--extern` twice: directly
//! against a server configured as mtr configures its own, and through
//! lockstep in front of three nodes configured the same way. Every test
//! that passes directly must pass through lockstep, except those listed
//! with their reason in `fixtures/mtr/exceptions.txt`. Afterwards every
//! node has caught up with the master and `lockstep check` exits 0.
//!
//! CI runs the first `LOCKSTEP_MTR_QUICK` tests of the slice (default 40);
//! `LOCKSTEP_MTR=full` runs all of it (about 4 minutes on 2 cores);
//! `LOCKSTEP_MTR_TESTS="name …"` runs the tests named.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lockstep::mariadb::ServerOptions;
use support::{lockstep_bin, mariadb_cli, wait_for_tail, Cluster, Lockstep};

const MTR_DIR: &str = "/usr/share/mysql/mysql-test";

/// What mtr's `include/default_mysqld.cnf` sets that changes results.
const MTR_SERVER_OPTIONS: &[&str] = &[
    "--character-set-server=latin1",
    "--default-storage-engine=myisam",
    "--log-bin-trust-function-creators=1",
    "--local-infile",
    "--secure-file-priv=",
    "--key-buffer-size=1M",
    "--sort-buffer-size=256K",
    "--max-heap-table-size=1M",
    "--use-stat-tables=preferably",
    "--histogram-type=json_hb",
    "--binlog-direct-non-transactional-updates",
    "--open-files-limit=1024",
    "--connect-timeout=60",
];

fn server_options() -> ServerOptions {
    ServerOptions {
        args: MTR_SERVER_OPTIONS.iter().map(|s| s.to_string()).collect(),
    }
}

/// The slice, in order; comments (`#`) and blank lines skipped.
fn slice() -> Vec<String> {
    support::fixture("mtr/slice.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Test name → why it cannot pass through lockstep.
fn exceptions() -> BTreeMap<String, String> {
    support::fixture("mtr/exceptions.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, reason) = l.trim().split_once(char::is_whitespace)?;
            Some((name.to_string(), reason.trim().to_string()))
        })
        .collect()
}

/// mtr's own bootstrap additions: the time zone test data, the `test`
/// database in latin1, the `mtr` database with its suppression procedures.
fn mtr_setup_sql() -> String {
    let mut sql = std::fs::read_to_string("/usr/share/mysql/mysql_test_data_timezone.sql")
        .expect("mysql_test_data_timezone.sql (is mariadb-server installed?)");
    sql.insert_str(0, "USE mysql;\n");
    sql.push_str(
        "\nCREATE DATABASE IF NOT EXISTS test CHARACTER SET latin1 COLLATE latin1_swedish_ci;\n\
         CREATE DATABASE mtr CHARSET=latin1;\nUSE mtr;\n",
    );
    for file in ["include/mtr_warnings.sql", "include/mtr_check.sql"] {
        let text = std::fs::read_to_string(Path::new(MTR_DIR).join(file))
            .expect("mtr's include files (is mariadb-test installed?)");
        sql.push_str(&for_the_cli(&text));
        sql.push_str("\nDELIMITER ;\n");
    }
    sql
}

/// mtr's `delimiter X;` lines as the `mariadb` client's `DELIMITER X`, and
/// without comment lines (mtr's `sql_to_bootstrap` drops them too).
fn for_the_cli(text: &str) -> String {
    let mut delimiter = ";".to_string();
    let mut out = String::new();
    for line in text.lines() {
        if let Some(new) = line.strip_prefix("delimiter ") {
            let new = new.strip_suffix(delimiter.as_str()).unwrap_or(new);
            delimiter = new.to_string();
            out.push_str(&format!("DELIMITER {new}\n"));
        } else if !line.trim_start().starts_with("--") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn set_up(node: &lockstep::mariadb::MariaDb, setup: &str) {
    let out = mariadb_cli(node.port, "root", "", &[], setup);
    assert!(
        out.status.success(),
        "mtr set-up on port {}: {}",
        node.port,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tests` with `mysql-test-run --extern` against 127.0.0.1:`port`;
/// returns each test's result (`pass`, `fail`, `skipped`) and the log.
fn run_mtr(port: u16, tests: &[String], dir: &Path) -> (BTreeMap<String, String>, String) {
    let vardir = dir.join("var");
    let out = Command::new("perl")
        .current_dir(MTR_DIR)
        .arg("./mariadb-test-run.pl")
        .args(["--extern", "host=127.0.0.1"])
        .args(["--extern", &format!("port={port}")])
        .args(["--extern", "user=root"])
        .arg(format!("--vardir={}", vardir.display()))
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .args(["--force", "--max-test-fail=0", "--testcase-timeout=3"])
        .args(tests.iter().map(|t| format!("main.{t}")))
        .output()
        .expect("run mariadb-test-run (is mariadb-test installed?)");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (results_of(&log), log)
}

/// `main.name  [ pass ]  12` lines (also `main.name 'innodb' [ fail ]`).
fn results_of(log: &str) -> BTreeMap<String, String> {
    let mut results = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("main.") else {
            continue;
        };
        let Some(name) = rest.split_whitespace().next() else {
            continue;
        };
        for outcome in ["pass", "fail", "skipped"] {
            if line.contains(&format!("[ {outcome} ]")) {
                results.insert(name.to_string(), outcome.to_string());
            }
        }
    }
    results
}

/// What mtr printed about `test` (from its result line to the next test).
fn excerpt(log: &str, test: &str) -> String {
    let start = format!("main.{test} ");
    let mut lines = log.lines().skip_while(|l| !l.starts_with(&start));
    let first = lines.next().unwrap_or("(no result line)").to_string();
    let rest: Vec<&str> = lines
        .take_while(|l| !l.starts_with("main."))
        .take(25)
        .collect();
    format!("{first}\n{}", rest.join("\n"))
}

fn which_tests() -> Vec<String> {
    let slice = slice();
    if let Ok(named) = std::env::var("LOCKSTEP_MTR_TESTS") {
        return named.split_whitespace().map(str::to_string).collect();
    }
    if std::env::var("LOCKSTEP_MTR").as_deref() == Ok("full") {
        return slice;
    }
    let quick = std::env::var("LOCKSTEP_MTR_QUICK")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    slice.into_iter().take(quick).collect()
}

#[test]
fn mariadbs_own_test_suite_passes_through_lockstep_as_directly() {
    let tests = which_tests();
    let exceptions = exceptions();
    let full = tests.len() == slice().len();
    assert!(
        slice().len() >= 200,
        "the slice has {} tests, fewer than 200",
        slice().len()
    );
    let setup = mtr_setup_sql();
    let work = tempfile::Builder::new()
        .prefix("lockstep-mtr")
        .tempdir()
        .expect("temp dir");

    let direct = Cluster::start_with(1, &server_options());
    set_up(&direct.nodes[0], &setup);
    let (direct_results, direct_log) = run_mtr(direct.nodes[0].port, &tests, &dir(&work, "direct"));
    drop(direct);

    let cluster = Cluster::start_with(3, &server_options());
    for node in &cluster.nodes {
        set_up(node, &setup);
    }
    let lockstep = Lockstep::start(&cluster, "\n[[users]]\nname = \"root\"\npassword = \"\"\n");
    let (through_results, through_log) = run_mtr(lockstep.port, &tests, &dir(&work, "lockstep"));

    let passed = |results: &BTreeMap<String, String>, t: &str| {
        results.get(t).map(String::as_str) == Some("pass")
    };
    let passed_directly: Vec<&String> = tests
        .iter()
        .filter(|t| passed(&direct_results, t))
        .collect();
    let passed_through: BTreeSet<&String> = tests
        .iter()
        .filter(|t| passed(&through_results, t))
        .collect();
    let mut differences = Vec::new();
    let mut excepted = Vec::new();
    for test in &passed_directly {
        if passed_through.contains(test) {
            continue;
        }
        match exceptions.get(test.as_str()) {
            Some(reason) => excepted.push(format!("{test}: {reason}")),
            None => differences.push(excerpt(&through_log, test)),
        }
    }
    let not_direct: Vec<&String> = tests
        .iter()
        .filter(|t| !passed(&direct_results, t))
        .collect();
    println!(
        "mtr main slice: {} tests, {} pass directly, {} pass through lockstep (three nodes), \
         {} documented exceptions failed as expected",
        tests.len(),
        passed_directly.len(),
        passed_through.len(),
        excepted.len()
    );
    for line in &excepted {
        println!("  exception {line}");
    }
    for test in &not_direct {
        println!(
            "  not passing directly (left out of the comparison): {}",
            excerpt(&direct_log, test)
        );
    }
    for test in tests.iter().filter(|t| exceptions.contains_key(*t)) {
        if passed_through.contains(test) {
            println!("  exception {test} passes through lockstep now: take it off the list");
        }
    }
    assert!(
        differences.is_empty(),
        "{} tests pass directly but not through lockstep:\n{}",
        differences.len(),
        differences.join("\n\n")
    );
    if full {
        assert!(
            passed_directly.len() >= 200,
            "only {} tests of the slice pass directly",
            passed_directly.len()
        );
    }

    // Every node caught up, and the chain agrees with itself.
    if let Err(behind) = std::panic::catch_unwind(|| {
        wait_for_tail(&cluster, Duration::from_secs(120));
    }) {
        eprintln!("{}", why_a_node_is_behind(&lockstep));
        for node in &cluster.nodes[1..] {
            eprintln!("{}", commits_a_node_lacks(&cluster, node, &lockstep));
        }
        std::panic::resume_unwind(behind);
    }
    support::assert_check_passes(&lockstep);
}

fn dir(work: &tempfile::TempDir, name: &str) -> PathBuf {
    let dir = work.path().join(name);
    std::fs::create_dir_all(&dir).expect("mtr dir");
    dir
}

/// The first commits the master has and `node` lacks, each shown from the
/// journal.
fn commits_a_node_lacks(
    cluster: &Cluster,
    node: &lockstep::mariadb::MariaDb,
    lockstep: &Lockstep,
) -> String {
    let ids = "SELECT HEX(request_id) FROM lockstep.commits ORDER BY 1";
    let has: BTreeSet<String> = support::root_rows(node, ids).into_iter().collect();
    let lacks: Vec<String> = support::root_rows(cluster.master(), ids)
        .into_iter()
        .filter(|id| !has.contains(id))
        .collect();
    let shown: Vec<String> = lacks
        .iter()
        .take(2)
        .map(|id| {
            let uuid = uuid::Uuid::parse_str(id)
                .map(|u| u.to_string())
                .unwrap_or(id.clone());
            journal_show(lockstep, &uuid)
        })
        .collect();
    format!(
        "port {} lacks {} of the master's commits; the first:\n{}",
        node.port,
        lacks.len(),
        shown.join("\n")
    )
}

fn journal_show(lockstep: &Lockstep, id: &str) -> String {
    let show = Command::new(lockstep_bin())
        .args(["journal", "show", id, "--config"])
        .arg(&lockstep.config_path)
        .output()
        .expect("lockstep journal show");
    format!("{id}:\n{}", String::from_utf8_lossy(&show.stdout))
}

/// The statements a node stopped or diverged at, as lockstep's log names
/// them, each shown from the journal: what a failing run needs to be
/// understood without running it again.
fn why_a_node_is_behind(lockstep: &Lockstep) -> String {
    let log = lockstep.log();
    let mut ids: Vec<String> = Vec::new();
    for line in log
        .lines()
        .filter(|l| l.contains("applier stopped") || l.contains("node quarantined"))
    {
        let Some(after) = line.split("statement ").nth(1) else {
            continue;
        };
        if let Some(id) = after.split_whitespace().next() {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    let shown: Vec<String> = ids
        .iter()
        .take(4)
        .map(|id| journal_show(lockstep, id))
        .collect();
    format!(
        "statements a node stopped or diverged at:\n{}",
        shown.join("\n")
    )
}
