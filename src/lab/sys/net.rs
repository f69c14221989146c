//! Whether a host's ssh port answers.

use std::io::Read;
use std::time::{Duration, Instant};

/// Reads the first line a TCP server sends (an SSH banner), with a short timeout.
pub(crate) fn ssh_banner(addr: std::net::IpAddr, port: u16, limit: Duration) -> Option<String> {
    use std::net::{SocketAddr, TcpStream};
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(addr, port), limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    while !got.contains(&b'\n') && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next()?.trim().to_string();
    line.starts_with("SSH-").then_some(line)
}
