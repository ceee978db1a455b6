//! The `mariadb` command-line client, unchanged, through lockstep: its output
//! (values, column metadata, warnings, errors) is identical to the same client
//! against the master directly.

mod support;

use support::{load_types_fixture, mariadb_cli, root_sql, Cluster, Lockstep, PASSWORD, USER};

fn setup() -> (Cluster, Lockstep) {
    let cluster = Cluster::start(1);
    let master = cluster.master();
    load_types_fixture(master);
    root_sql(
        master,
        "CREATE TABLE fx.chk (v INT CHECK (v > 0));
         CREATE TABLE fx.uniq (id INT PRIMARY KEY);
         INSERT INTO fx.uniq VALUES (1);
         DELIMITER //
         CREATE PROCEDURE fx.two_sets() BEGIN SELECT 1 AS one; SELECT t_varchar FROM fx.types WHERE id = 1; END//",
    );
    let lockstep = Lockstep::start(&cluster, "");
    (cluster, lockstep)
}

/// Elapsed times ("(0.001 sec)") are the one thing allowed to differ.
fn without_timings(out: &[u8]) -> Vec<u8> {
    let re = regex::bytes::Regex::new(r"\(\d+\.\d+ sec\)").expect("regex");
    re.replace_all(out, &b"(T sec)"[..]).into_owned()
}

/// Runs the same client invocation directly and through lockstep and
/// asserts that stdout, stderr and the exit code are the same.
fn assert_same(cluster: &Cluster, lockstep: &Lockstep, args: &[&str], sql: &str) {
    let mut direct = mariadb_cli(cluster.master().port, "root", "", args, sql);
    let mut via = mariadb_cli(lockstep.port, USER, PASSWORD, args, sql);
    direct.stdout = without_timings(&direct.stdout);
    via.stdout = without_timings(&via.stdout);
    assert_eq!(
        String::from_utf8_lossy(&via.stderr),
        String::from_utf8_lossy(&direct.stderr),
        "stderr differs for {args:?} {sql}\nlockstep log:\n{}",
        lockstep.log()
    );
    assert!(
        via.stdout == direct.stdout,
        "stdout differs for {args:?} {sql}\n--- direct\n{}\n--- lockstep\n{}",
        String::from_utf8_lossy(&direct.stdout),
        String::from_utf8_lossy(&via.stdout)
    );
    assert_eq!(
        via.status.code(),
        direct.status.code(),
        "exit code for {sql}"
    );
}

#[test]
fn cli_results_are_identical_to_direct() {
    let (cluster, lockstep) = setup();
    let all = "SELECT * FROM types ORDER BY id";
    for args in [
        &["--table", "fx"][..],
        &["--batch", "fx"],
        &["--batch", "--raw", "fx"],
        &["--xml", "fx"],
        &["--html", "fx"],
        &["--vertical", "fx"],
        &["--table", "--skip-column-names", "fx"],
        // Without --table the batch mode prints no column information:
        // with it, MariaDB's extended metadata too (`BLOB (format=json)`,
        // `STRING (type=inet6)`).
        &["--column-type-info", "--table", "fx"],
        &["--binary-as-hex", "--table", "fx"],
        &["--default-character-set=latin1", "--table", "fx"],
        &[
            "--default-character-set=latin1",
            "--column-type-info",
            "--table",
            "fx",
        ],
    ] {
        assert_same(&cluster, &lockstep, args, all);
    }
    // Multi-statement input, warnings, a CALL with two result sets.
    assert_same(
        &cluster,
        &lockstep,
        &["--table", "--show-warnings", "fx"],
        "SELECT 1/0, CAST('12x' AS INT); SELECT t_json FROM types WHERE id = 1;\nCALL two_sets();\nSHOW WARNINGS;",
    );
    assert_same(
        &cluster,
        &lockstep,
        &["--column-type-info", "--table", "fx"],
        "CALL two_sets()",
    );
    // Statements without rows report affected rows and info.
    assert_same(
        &cluster,
        &lockstep,
        &["-vvv", "fx"],
        "CREATE TEMPORARY TABLE tmp (a INT); INSERT INTO tmp VALUES (1),(2),(3); UPDATE tmp SET a = a + 1 WHERE a > 1; SELECT * FROM tmp;",
    );
}

#[test]
fn cli_errors_are_identical_to_direct() {
    let (cluster, lockstep) = setup();
    for sql in [
        "SELECT * FROM nosuch",                     // 1146
        "SELEC 1",                                  // 1064
        "INSERT INTO uniq VALUES (1)",              // 1062
        "INSERT INTO chk VALUES (-1)",              // 4025, unknown to opensrv's enum
        "SELECT 1; SELECT * FROM nosuch; SELECT 2", // an error after a result set
        "CALL nosuch()",
    ] {
        assert_same(&cluster, &lockstep, &["--table", "fx"], sql);
    }
    // --force goes on after errors: every statement's answer matches.
    assert_same(
        &cluster,
        &lockstep,
        &["--table", "--force", "fx"],
        "SELECT 1;\nSELECT * FROM nosuch;\nINSERT INTO chk VALUES (-1);\nSELECT 2;\n",
    );
}

#[test]
fn wrong_password_and_unknown_user_get_1045() {
    let (_cluster, lockstep) = setup();
    let out = mariadb_cli(lockstep.port, USER, "wrong", &[], "SELECT 1");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)"
    );
    let out = mariadb_cli(lockstep.port, "nobody", "", &[], "SELECT 1");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ERROR 1045 (28000): Access denied for user 'nobody'@'127.0.0.1' (using password: NO)"
    );
    // The right password still works afterwards.
    let out = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--batch", "-N"],
        "SELECT 41 + 1",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn unknown_database_at_connect_is_relayed() {
    let (cluster, lockstep) = setup();
    assert_same(&cluster, &lockstep, &["nosuchdb"], "SELECT 1");
}
