//! Clients that misbehave: malformed packets before and after login, random
//! bytes, a client that disappears in the middle of a result. lockstep must
//! answer with errors or close that one connection, never panic, and keep
//! serving everyone else.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lockstep::frontend::auth::scramble;
use support::{mariadb_cli, root_sql, Cluster, Lockstep, PASSWORD, USER};

/// A minimal raw protocol client, to send what no real driver would.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw { stream }
    }

    fn send(&mut self, seq: u8, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut packet = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        packet.extend_from_slice(payload);
        self.stream.write_all(&packet).expect("send");
    }

    /// The next packet's payload, or None when the server closed.
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).ok()?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    /// Logs in with mysql_native_password; returns the OK payload.
    fn login(port: u16) -> Raw {
        let mut raw = Raw::connect(port);
        let greeting = raw.recv().expect("greeting");
        let version_end = greeting[1..].iter().position(|&b| b == 0).expect("version") + 1;
        let after = &greeting[version_end + 1..];
        let mut salt = after[4..12].to_vec();
        salt.extend_from_slice(&after[31..43]);
        // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | DEPRECATE_EOF | TRANSACTIONS | MULTI_RESULTS
        let caps: u32 = 0x200 | 0x8000 | 0x80000 | 0x100_0000 | 0x2000 | 0x20000;
        let mut response = caps.to_le_bytes().to_vec();
        response.extend_from_slice(&(16u32 << 20).to_le_bytes());
        response.push(45);
        response.extend_from_slice(&[0; 23]);
        response.extend_from_slice(USER.as_bytes());
        response.push(0);
        let auth = scramble(PASSWORD.as_bytes(), &salt);
        response.push(auth.len() as u8);
        response.extend_from_slice(&auth);
        response.extend_from_slice(b"mysql_native_password\0");
        raw.send(1, &response);
        let ok = raw.recv().expect("login answer");
        assert_eq!(
            ok[0],
            0x00,
            "login failed: {}",
            String::from_utf8_lossy(&ok)
        );
        raw
    }

    /// Sends a command and returns the error code of the answer, if it is an ERR packet.
    fn command_error(&mut self, payload: &[u8]) -> Option<u16> {
        self.send(0, payload);
        let answer = self.recv().expect("an answer");
        (answer[0] == 0xff).then(|| u16::from_le_bytes([answer[1], answer[2]]))
    }
}

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

    let mut raw = Raw::login(lockstep.port);
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
        let mut raw = Raw::login(lockstep.port);
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
    let mut raw = Raw::login(lockstep.port);
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
    let mut raw = Raw::login(lockstep.port);
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
