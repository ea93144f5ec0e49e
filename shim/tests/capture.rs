//! Sniffing the container's own traffic to a file: `--pcap FILE` records every
//! frame of every interface as pcapng, which tcpdump and tshark read with the
//! interfaces' names.

mod common;

use common::*;
use std::process::Stdio;

/// An HTTP server of the kernel's on port 8099 of the TAP's kernel side, once
/// it answers.
fn kernel_http_server(ns: &NetNs) -> Proc {
    let mut srv = ns.cmd("python3");
    srv.args(["-m", "http.server", "8099", "--bind", KERNEL])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Proc::spawn(&mut srv);
    wait_for(T, "the kernel's server", || {
        ns.sh(&format!("curl -sf http://{KERNEL}:8099/ -o /dev/null"))
            .status
            .success()
            .then_some(())
    });
    p
}

/// A TCP handshake to the kernel peer on eth0 and one on the container's own
/// loopback, read back by tcpdump and tshark with the right interface names.
fn a_pcap_file_shows_the_traffic_with_interface_names(mode: Mode) {
    require_root!();
    need("tcpdump");
    need("tshark");
    let ns = tap_ns();
    let _srv = kernel_http_server(&ns);
    let dir = Scratch::new();
    let pcap = dir.path("c.pcapng");
    let script = format!(
        "curl -s -o /dev/null -w '%{{http_code}}\\n' http://{KERNEL}:8099/ && \
         python3 -c \"import socket; l=socket.socket(); l.bind(('127.0.0.1',7777)); l.listen(1); socket.create_connection(('127.0.0.1',7777)).close()\""
    );
    let (st, out, err) = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--pcap", pcap.to_str().unwrap()])
        .sh(&script)
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(out.trim(), "200");
    let td = std::process::Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&td.stdout);
    assert!(
        td.status.success(),
        "{}",
        String::from_utf8_lossy(&td.stderr)
    );
    let syn = format!("{CONTAINER}.");
    assert!(
        text.lines()
            .any(|l| l.contains(&syn) && l.contains(&format!("> {KERNEL}.8099: Flags [S]"))),
        "the SYN to the kernel: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("{KERNEL}.8099 > {CONTAINER}."))
                && l.contains("Flags [S.]")),
        "the SYN-ACK: {text}"
    );
    assert!(text.contains("127.0.0.1.7777: Flags [S]"), "{text}");
    let ts = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "tcp.dstport",
            "-Y",
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        ])
        .output()
        .unwrap();
    let fields = String::from_utf8_lossy(&ts.stdout);
    let rows: Vec<&str> = fields.lines().collect();
    assert_eq!(
        rows,
        ["eth0\t8099", "lo\t7777"],
        "{fields}{}",
        String::from_utf8_lossy(&ts.stderr)
    );
}

/// `netcell capture NAME -w - EXPR | tcpdump -r - -c N` shows the container's
/// traffic that the expression selects, and nothing else; the capture ends
/// when tcpdump has its N packets.
fn a_live_capture_feeds_tcpdump(mode: Mode) {
    require_root!();
    need("tcpdump");
    let ns = tap_ns();
    let _srv = kernel_http_server(&ns);
    let name = unique("live");
    // Connections to 8099 (served) and to 8098 (refused), over and over.
    let script = format!(
        "for i in $(seq 150); do curl -s -o /dev/null http://{KERNEL}:8099/; curl -s -o /dev/null http://{KERNEL}:8098/; sleep 0.1; done"
    );
    let _c = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &name])
        .sh(&script)
        .quiet()
        .spawn();
    let cmd = format!(
        "{nc} capture {name} -i eth0 -w - tcp dst port 8099 | timeout 30 tcpdump -nn -r - -c 6",
        nc = netcell()
    );
    let o = wait_for(T, "a live capture", || {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        o.status.success().then_some(o)
    });
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for l in &lines {
        assert!(
            l.contains(&format!("{CONTAINER}.")) && l.contains(&format!("> {KERNEL}.8099:")),
            "only what the expression selects: {text}"
        );
    }
    // A malformed expression is refused before anything starts.
    let o = std::process::Command::new(netcell())
        .args(["capture", &name, "-w", "/dev/null", "tcp", "port"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a port expected"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

in_both_modes!(
    a_pcap_file_shows_the_traffic_with_interface_names,
    a_live_capture_feeds_tcpdump,
);
