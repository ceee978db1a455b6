//! PyMySQL, a pure-Python driver, through lockstep: what it sees (values,
//! descriptions, multi-results, errors, warnings) is what it sees directly.

mod support;

use std::process::Command;

use support::{load_types_fixture, root_sql, Cluster, Lockstep, PASSWORD, USER};

fn run_check(port: u16, user: &str, password: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pymysql_check.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(user)
        .arg(password)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pymysql_check.py failed (is PyMySQL installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pymysql_sees_the_same_as_direct() {
    let cluster = Cluster::start(1);
    let master = cluster.master();
    load_types_fixture(master);
    // Directly, the same user and password as lockstep's, so that even the
    // access-denied message can be compared.
    root_sql(
        master,
        &format!(
            "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'127.0.0.1';"
        ),
    );
    // An interactive client's session takes this as its wait_timeout.
    root_sql(master, "SET GLOBAL interactive_timeout = 1234");
    let lockstep = Lockstep::start(&cluster, "");
    let direct = run_check(master.port, USER, PASSWORD);
    assert!(direct.contains("1234"), "{direct}");
    let via = run_check(lockstep.port, USER, PASSWORD);
    assert!(direct.contains("\"rows\""), "{direct}");
    assert_eq!(via, direct, "lockstep log:\n{}", lockstep.log());
}
