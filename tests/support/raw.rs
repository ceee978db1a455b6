//! A minimal raw protocol client, to send what no real driver would and to
//! see packets exactly as they are.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lockstep::auth::scramble;

/// A minimal raw protocol client, to send what no real driver would.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw { stream }
    }

    pub fn send(&mut self, seq: u8, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut packet = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        packet.extend_from_slice(payload);
        self.stream.write_all(&packet).expect("send");
    }

    /// The next packet's payload, or None when the server closed.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).ok()?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    /// Logs in with mysql_native_password.
    pub fn login(port: u16, user: &str, password: &str) -> Raw {
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
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        let auth = scramble(password.as_bytes(), &salt);
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
    pub fn command_error(&mut self, payload: &[u8]) -> Option<u16> {
        self.send(0, payload);
        let answer = self.recv().expect("an answer");
        (answer[0] == 0xff).then(|| u16::from_le_bytes([answer[1], answer[2]]))
    }
}
