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

/// `tcpdump` inside a container (packet sockets, served by the mirror): `-i any`
/// with a BPF filter shows the container's handshakes on `lo` and `eth0`, in
/// their directions, and never another container's or the host's traffic; a
/// frame sent on a packet socket leaves the container's device (the kernel peer
/// receives it); without `CAP_NET_RAW` a packet socket is refused.
fn tcpdump_inside_sees_the_container_s_own_traffic(mode: Mode) {
    require_root!();
    need("tcpdump");
    let ns = tap_ns();
    let _srv = kernel_http_server(&ns);
    let name = unique("snif");
    let _a = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &name])
        .exec(["python3", "-m", "http.server", "8080"])
        .quiet()
        .spawn();
    // Another container and the host make SYNs on their own loopback all along.
    let syns = "import socket, time\n\
                l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                l.bind(('127.0.0.1', PORT)); l.listen(64)\n\
                while True:\n    \
                    c = socket.create_connection(('127.0.0.1', PORT)); a, _ = l.accept(); a.close(); c.close(); time.sleep(0.05)\n";
    let _b = Container::new(mode)
        .exec(["python3", "-c", &syns.replace("PORT", "7777")])
        .quiet()
        .spawn();
    let mut host = std::process::Command::new("python3");
    host.args(["-c", &syns.replace("PORT", "7778")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _host = Proc::spawn(&mut host);
    wait_for(T, "the container's server", || {
        ns.sh(&format!("curl -sf http://{CONTAINER}:8080/ -o /dev/null"))
            .status
            .success()
            .then_some(())
    });
    // Four SYN-flagged packets: lo's SYN and SYN-ACK, eth0's SYN out and
    // SYN-ACK in (the filter is compiled by libpcap and run by the kernel).
    let script = format!(
        "tcpdump -i any -n -l -c 4 'tcp[tcpflags] & tcp-syn != 0' > /tmp/td-$$ 2>/dev/null & \
         sleep 2; curl -s http://127.0.0.1:8080/ -o /dev/null; \
         curl -s http://{KERNEL}:8099/ -o /dev/null; wait; cat /tmp/td-$$; rm -f /tmp/td-$$"
    );
    let (code, out, err) = nc(&["exec", &name, "--", "sh", "-c", &script]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    // By address and port (sequence numbers and times may hold the digits).
    assert!(
        !out.contains("127.0.0.1.7777") && !out.contains("127.0.0.1.7778"),
        "another's traffic: {out}"
    );
    let has = |dev_dir: &str, what: &str| {
        lines
            .iter()
            .any(|l| l.contains(dev_dir) && l.contains(what))
    };
    assert!(has("lo    In", "127.0.0.1.8080: Flags [S]"), "{out}");
    assert!(has("lo    In", "127.0.0.1.8080 > "), "{out}");
    assert!(has("eth0  Out", &format!("{CONTAINER}.")), "{out}");
    assert!(
        has("eth0  In", &format!("{KERNEL}.8099 > {CONTAINER}.")),
        "{out}"
    );
    // One interface each: `-i eth0` and `-i lo` at once.
    let script = format!(
        "tcpdump -i eth0 -n -l -c 2 'tcp port 8099' > /tmp/te-$$ 2>/dev/null & \
         tcpdump -i lo -n -l -c 2 'tcp port 8080' > /tmp/tl-$$ 2>/dev/null & \
         sleep 2; curl -s http://127.0.0.1:8080/ -o /dev/null; \
         curl -s http://{KERNEL}:8099/ -o /dev/null; wait; \
         cat /tmp/te-$$; echo ==; cat /tmp/tl-$$; rm -f /tmp/te-$$ /tmp/tl-$$"
    );
    let (code, out, err) = nc(&["exec", &name, "--", "sh", "-c", &script]);
    assert_eq!(code, Some(0), "{err}");
    let (eth, lo) = out.split_once("==\n").expect(&out);
    assert_eq!(eth.lines().count(), 2, "{out}");
    assert!(
        eth.lines().all(|l| l.contains(&format!("{KERNEL}.8099"))),
        "{out}"
    );
    assert_eq!(lo.lines().count(), 2, "{out}");
    assert!(lo.lines().all(|l| l.contains("127.0.0.1.8080")), "{out}");
    // A frame sent on a packet socket reaches the kernel peer.
    let mut rx = ns.cmd("python3");
    rx.args([
        "-c",
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))\n\
         s.bind(('tap0', 0x88b5)); s.settimeout(20)\n\
         print(s.recv(2000)[14:33].decode())\n",
    ]);
    let rx = Proc::spawn(rx.stdout(Stdio::piped()).stderr(Stdio::piped()));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let send = "import socket\n\
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
                s.bind(('eth0', 0))\n\
                s.send(b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x99' + b'\\x88\\xb5' + b'netcell-packet-send' + bytes(27))\n";
    let (code, _, err) = nc(&["exec", &name, "--", "python3", "-c", send]);
    assert_eq!(code, Some(0), "{err}");
    let (st, got, err) = rx.wait_output(T);
    assert!(st.success(), "{err}");
    assert_eq!(got.trim(), "netcell-packet-send");
    // Linux asks for CAP_NET_RAW.
    let (code, _, err) = nc(&[
        "exec",
        &name,
        "--",
        "setpriv",
        "--bounding-set=-all",
        "python3",
        "-c",
        "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("PermissionError: [Errno 1]"), "{err}");
}

in_both_modes!(tcpdump_inside_sees_the_container_s_own_traffic);
