//! Embedding netcell's stack: two containers' stacks in one process, joined by an
//! in-memory Ethernet segment, exchange an HTTP request and response.
//!
//! No TAP, no shim, no root: the sandbox drives the stacks itself, through the same
//! socket layer the shims use (ports, backlog, errno values and all).
//!
//!     cargo run -p netcell-examples --example embed_http

use netcell_stack::device::PipeDevice;
use netcell_stack::socket::{ConnectError, Domain, IoError};
use netcell_stack::{EthConfig, SocketConfig, SocketId, Stack};
use std::time::{Duration, Instant};

fn stack(dev: PipeDevice, addr: &str) -> Stack<PipeDevice> {
    let eth = EthConfig {
        name: "eth0".into(),
        addrs: vec![addr.parse().unwrap()],
        gateways: vec![],
        mac: None,
        dhcp: false,
        slaac: false,
    };
    Stack::new(Some((dev, eth)), SocketConfig::default()).expect("valid configuration")
}

/// Polls both stacks until `step` says done (or 5 s pass).
fn drive<T>(
    a: &mut Stack<PipeDevice>,
    b: &mut Stack<PipeDevice>,
    mut step: impl FnMut(&mut Stack<PipeDevice>, &mut Stack<PipeDevice>) -> Option<T>,
) -> T {
    let t0 = Instant::now();
    loop {
        a.poll();
        b.poll();
        if let Some(v) = step(a, b) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "timed out");
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Reads until the peer closes.
fn read_all(s: &mut Stack<PipeDevice>, id: SocketId, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.recv(id, &mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(IoError::WouldBlock) => return false,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn main() {
    env_logger::init();
    let (dev_client, dev_server) = PipeDevice::pair(1500);
    let mut client = stack(dev_client, "192.168.50.2/24");
    let mut server = stack(dev_server, "192.168.50.1/24");

    // The server listens on every interface, port 80.
    let listener = server.tcp_socket(Domain::Inet).unwrap();
    server
        .bind(listener, "0.0.0.0:80".parse().unwrap())
        .unwrap();
    server.listen(listener, 16).unwrap();

    // The client connects: EINPROGRESS, then the handshake runs as the stacks poll.
    let conn = client.tcp_socket(Domain::Inet).unwrap();
    assert_eq!(
        client.connect(conn, "192.168.50.1:80".parse().unwrap()),
        Err(ConnectError::InProgress)
    );
    drive(&mut client, &mut server, |c, _| {
        c.is_connected(conn).then_some(())
    });
    let request = b"GET /hello HTTP/1.0\r\nHost: 192.168.50.1\r\n\r\n";
    client.send(conn, request).unwrap();
    client.shutdown(conn, libc::SHUT_WR).unwrap();

    // The server accepts, reads the request, answers and closes.
    let (srv_conn, peer) = drive(&mut client, &mut server, |_, s| s.accept(listener).ok());
    let mut got = Vec::new();
    drive(&mut client, &mut server, |_, s| {
        read_all(s, srv_conn, &mut got).then_some(())
    });
    let first_line = String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    println!(
        "server: {first_line:?} from {peer} (local {})",
        server.local_addr(srv_conn).unwrap()
    );
    let body = format!("hello, {peer}\n");
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    server.send(srv_conn, response.as_bytes()).unwrap();
    server.close(srv_conn);

    let mut resp = Vec::new();
    drive(&mut client, &mut server, |c, _| {
        read_all(c, conn, &mut resp).then_some(())
    });
    let text = String::from_utf8_lossy(&resp);
    println!("client: {}", text.replace("\r\n", "\n  "));
    assert!(text.starts_with("HTTP/1.0 200 OK") && text.ends_with(&body));
    client.close(conn);
}
