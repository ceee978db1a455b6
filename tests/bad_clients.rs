//! Clients that misbehave: malformed packets before and after login, random
//! bytes, a client that disappears in the middle of a result. lockstep must
//! answer with errors or close that one connection, never panic, and keep
//! serving everyone else.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::raw::Raw;
use support::{mariadb_cli, root_sql, Cluster, Lockstep, PASSWORD, USER};

fn still_serves(lockstep: &Lockstep) {
    let out = mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &["--batch", "-N"],
        "SELECT 6 * 7",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42",
        "lockstep stopped serving: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lockstep.log()
    );
}

#[test]
fn malformed_packets_get_errors_not_panics() {
    let cluster = Cluster::start(1);
    let lockstep = Lockstep::start(&cluster, "");

    // Garbage instead of a handshake response: that connection is closed.
    let mut raw = Raw::connect(lockstep.port);
    raw.recv().expect("greeting");
    raw.send(1, &[0xde, 0xad]);
    assert!(
        raw.recv().is_none(),
        "a bad handshake must close the connection"
    );
    still_serves(&lockstep);

    let mut raw = Raw::login(lockstep.port, USER, PASSWORD);
    assert_eq!(
        raw.command_error(&[0x17, 1, 0]),
        Some(1835),
        "truncated COM_STMT_EXECUTE"
    );
    assert_eq!(
        raw.command_error(&[0x17, 99, 0, 0, 0, 0, 1, 0, 0, 0]),
        Some(1243),
        "unknown statement"
    );
    assert_eq!(
        raw.command_error(&[0x1a, 99, 0, 0, 0]),
        Some(1243),
        "COM_STMT_RESET unknown statement"
    );
    assert_eq!(
        raw.command_error(&[0xee, 1, 2, 3]),
        Some(1047),
        "unknown command"
    );
    assert_eq!(
        raw.command_error(&[0x03, 0xff, 0xfe, 0x00]),
        Some(1064),
        "binary garbage as SQL"
    );
    assert_eq!(raw.command_error(&[]), Some(1835), "empty packet");
    // A prepared statement executed with parameters that do not decode.
    raw.send(0, b"\x16DO ?");
    let prepare_ok = raw.recv().expect("prepare ok");
    assert_eq!(prepare_ok[0], 0x00);
    let stmt = prepare_ok[1..5].to_vec();
    raw.recv().expect("param definition");
    let mut execute = vec![0x17];
    execute.extend_from_slice(&stmt);
    execute.extend_from_slice(&[0, 1, 0, 0, 0, 0x00, 0x01, 0x99, 0x00]);
    assert_eq!(
        raw.command_error(&execute),
        Some(1210),
        "undecodable parameter type"
    );
    // The session is still fine.
    assert_eq!(raw.command_error(b"\x03SELECT 1"), None);
    still_serves(&lockstep);

    // Random packets after login, from a fixed seed so a failure reproduces.
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20 {
        let mut raw = Raw::login(lockstep.port, USER, PASSWORD);
        for _ in 0..20 {
            let len = (next() % 40) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Keep clear of COM_QUIT and of commands that have no answer.
            if let Some(first) = payload.first_mut() {
                if matches!(*first, 0x01 | 0x18 | 0x19) {
                    *first = 0xee;
                }
            }
            raw.send(0, &payload);
            if payload.is_empty() || raw.recv().is_none() {
                break;
            }
        }
    }
    still_serves(&lockstep);
    // A length prefix promising more than ever comes, then a hang-up.
    let mut raw = Raw::login(lockstep.port, USER, PASSWORD);
    raw.stream
        .write_all(&[0xff, 0xff, 0x7f, 0, 0x03, b'S'])
        .expect("send");
    drop(raw);
    still_serves(&lockstep);
    assert!(!lockstep.log().contains("panicked"), "{}", lockstep.log());
}

#[test]
fn client_leaving_mid_result_frees_the_backend() {
    let cluster = Cluster::start(1);
    let lockstep = Lockstep::start(&cluster, "");
    // A long result, read slowly: the client goes away after the first packets.
    let mut child = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "--quick", "--batch"])
        .arg(format!("-P{}", lockstep.port))
        .arg(format!("-u{USER}"))
        .arg(format!("-p{PASSWORD}"))
        .arg("-e")
        .arg("SELECT seq, SLEEP(0.01) FROM seq_1_to_100000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    std::thread::sleep(Duration::from_secs(2));
    child.kill().expect("kill the client");
    child.wait().expect("reap");
    // The master stops working on it: lockstep kills the orphaned statement.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let running = root_sql(
            cluster.master(),
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%seq_1_to_100000%' AND INFO NOT LIKE '%PROCESSLIST%'",
        );
        if running.lines().nth(1) == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the master still runs the abandoned query"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    still_serves(&lockstep);
}

/// Reads a binary result with one row of one string column; returns the value.
fn single_binary_string(raw: &mut Raw) -> Vec<u8> {
    let count = raw.recv().expect("column count");
    assert_eq!(count, vec![1], "{}", String::from_utf8_lossy(&count));
    raw.recv().expect("column definition");
    let row = raw.recv().expect("row");
    assert_eq!(row[0], 0x00, "binary row header");
    let len = usize::from(row[2]);
    let value = row[3..3 + len].to_vec();
    let end = raw.recv().expect("terminator");
    assert_eq!(end[0], 0xfe);
    value
}

#[test]
fn long_data_is_sent_in_pieces_and_reset() {
    let cluster = Cluster::start(1);
    let lockstep = Lockstep::start(&cluster, "");
    let mut raw = Raw::login(lockstep.port, USER, PASSWORD);
    raw.send(0, b"\x16SELECT CONCAT(?, '')");
    let prepare_ok = raw.recv().expect("prepare ok");
    assert_eq!(prepare_ok[0], 0x00);
    let stmt = prepare_ok[1..5].to_vec();
    raw.recv().expect("param definition");
    raw.recv().expect("column definition");
    for piece in [&b"hello "[..], b"world"] {
        let mut long_data = vec![0x18];
        long_data.extend_from_slice(&stmt);
        long_data.extend_from_slice(&[0, 0]);
        long_data.extend_from_slice(piece);
        raw.send(0, &long_data); // no answer, as from MariaDB
    }
    // Execute: types bound (VAR_STRING), the value itself came as long data.
    let mut execute = vec![0x17];
    execute.extend_from_slice(&stmt);
    execute.extend_from_slice(&[0, 1, 0, 0, 0, 0x00, 0x01, 0xfd, 0x00]);
    raw.send(0, &execute);
    assert_eq!(single_binary_string(&mut raw), b"hello world");

    // COM_STMT_RESET drops pending long data; the next execute sends its value.
    let mut long_data = vec![0x18];
    long_data.extend_from_slice(&stmt);
    long_data.extend_from_slice(&[0, 0]);
    long_data.extend_from_slice(b"stale");
    raw.send(0, &long_data);
    let mut reset = vec![0x1a];
    reset.extend_from_slice(&stmt);
    assert_eq!(raw.command_error(&reset), None, "COM_STMT_RESET answers OK");
    let mut execute = vec![0x17];
    execute.extend_from_slice(&stmt);
    execute.extend_from_slice(&[0, 1, 0, 0, 0, 0x00, 0x00, 1, b'x']);
    raw.send(0, &execute);
    assert_eq!(single_binary_string(&mut raw), b"x");
}

/// The definition part of a COM_FIELD_LIST packet: six length-encoded
/// strings and the 13 fixed bytes, without the default value after them.
fn definition_part(packet: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    for _ in 0..6 {
        pos += 1 + usize::from(packet[pos]);
    }
    packet[..pos + 13].to_vec()
}

fn field_list(raw: &mut Raw, table_and_wildcard: &[u8]) -> Vec<Vec<u8>> {
    let mut command = vec![0x04];
    command.extend_from_slice(table_and_wildcard);
    raw.send(0, &command);
    let mut definitions = Vec::new();
    loop {
        let packet = raw.recv().expect("field list packet");
        if packet[0] == 0xfe || packet[0] == 0xff {
            return definitions;
        }
        definitions.push(definition_part(&packet));
    }
}

#[test]
fn field_list_statistics_and_ping_answer_like_mariadb() {
    let cluster = Cluster::start(1);
    root_sql(
        cluster.master(),
        "CREATE DATABASE fx; CREATE TABLE fx.t (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1, idx2 BIGINT UNSIGNED, note TEXT);",
    );
    let lockstep = Lockstep::start(&cluster, "");
    let mut direct = Raw::login(cluster.master().port, "root", "");
    let mut via = Raw::login(lockstep.port, USER, PASSWORD);
    for raw in [&mut direct, &mut via] {
        assert_eq!(raw.command_error(b"\x02fx"), None, "COM_INIT_DB");
    }
    for request in [&b"t\0"[..], b"t\0id%", b"t\0_d%"] {
        let expected = field_list(&mut direct, request);
        assert!(!expected.is_empty());
        assert_eq!(
            field_list(&mut via, request),
            expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(field_list(&mut via, b"nosuch\0").len(), 0);
    via.send(0, &[0x09]);
    let statistics = via.recv().expect("statistics");
    assert!(String::from_utf8_lossy(&statistics).starts_with("Uptime: "));
    assert_eq!(via.command_error(&[0x0e]), None, "COM_PING");
}

#[test]
fn named_parameter_syntax_is_an_error_not_a_lost_session() {
    // MariaDB has no `:name` placeholders, but mysql_async (lockstep's backend
    // driver) parses them, and a later execute would cost the session its
    // backend connection. The client gets a syntax error and keeps its session.
    let cluster = Cluster::start(1);
    let lockstep = Lockstep::start(&cluster, "");
    let mut raw = Raw::login(lockstep.port, USER, PASSWORD);
    assert_eq!(raw.command_error(b"\x16SELECT :name"), Some(1064));
    assert_eq!(
        raw.command_error(b"\x03SELECT 1"),
        None,
        "the session survived"
    );
}
