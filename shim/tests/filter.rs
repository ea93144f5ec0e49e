//! The container's packet filter: rules from `--filter` and `netcell filter`
//! act on the container's traffic with a kernel peer on its TAP, on its own
//! loopback, and on connections through the host uplink; a malformed rule set is
//! refused with its line and column and the old one stays.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Servers on 8080, 8081 and 8082 of every address, accepting and closing.
const SERVERS: &str = r#"
import socket, threading, time
ls = []
for p in (8080, 8081, 8082):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('0.0.0.0', p)); l.listen(64); ls.append(l)
def serve(l):
    while True:
        c, _ = l.accept(); c.close()
for l in ls:
    threading.Thread(target=serve, args=(l,), daemon=True).start()
time.sleep(120)
"#;

/// Connects from the kernel side to the container's port: "ok", "timeout" or
/// the errno's name, and how long it took.
fn probe(ns: &NetNs, port: u16) -> (String, Duration) {
    probe_at(ns, CONTAINER, port)
}

/// `probe` to address `addr` of the container (IPv4 or IPv6).
fn probe_at(ns: &NetNs, addr: &str, port: u16) -> (String, Duration) {
    let t0 = Instant::now();
    let family = if addr.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let o = ns.sh(&format!(
        "python3 -c \"
import socket, errno
s = socket.socket(socket.{family}); s.settimeout(1.5)
try:
    s.connect(('{addr}', {port})); print('ok')
except socket.timeout:
    print('timeout')
except OSError as e:
    print(errno.errorcode[e.errno])
\""
    ));
    (
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        t0.elapsed(),
    )
}

/// The counter of the rule whose text contains `what`, from `netcell filter
/// NAME list`: (handle, packets).
fn rule_of(list: &str, what: &str) -> Option<(u32, u64)> {
    let l = list.lines().find(|l| l.contains(what))?;
    let num = |key: &str| -> Option<u64> {
        let rest = &l[l.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((num("handle ")? as u32, num("packets ")?))
}

/// Rules from `--filter` drop and reject the kernel peer's connections per
/// port and count them; `netcell filter` deletes and adds rules live; a
/// malformed file is refused and the old set stays; with `policy input drop`
/// and `ct state established,related accept` the container's own connections
/// work while incoming ones are blocked.
fn rules_act_on_the_tap_and_change_live(mode: Mode) {
    require_root!();
    let ns = tap_ns();
    let dir = Scratch::new();
    let rules = dir.path("rules");
    std::fs::write(
        &rules,
        "# the kernel peer may reach 8081 only\n\
         input tcp dport 8080 drop\n\
         input tcp dport 8082 reject with tcp reset\n",
    )
    .unwrap();
    let name = unique("flt");
    let _c = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &name])
        .args(["--filter", rules.to_str().unwrap()])
        .exec(["/usr/bin/python3", "-c", SERVERS])
        .quiet()
        .spawn();
    wait_for(T, "the container's servers", || {
        (probe(&ns, 8081).0 == "ok").then_some(())
    });
    let (r, took) = probe(&ns, 8080);
    assert_eq!(r, "timeout", "8080 is dropped");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    let (r, took) = probe(&ns, 8082);
    assert_eq!(r, "ECONNREFUSED", "8082 is rejected");
    assert!(
        took < Duration::from_millis(1000),
        "a reject fails fast: {took:?}"
    );
    let (code, list, err) = nc(&["filter", &name, "list"]);
    assert_eq!(code, Some(0), "{err}");
    let (h8080, n8080) = rule_of(&list, "dport 8080").expect(&list);
    let (_, n8082) = rule_of(&list, "dport 8082").expect(&list);
    assert!(n8080 >= 1 && n8082 >= 1, "{list}");
    // Live: the drop rule goes, 8080 answers; a new rule drops 8081.
    let (code, _, err) = nc(&["filter", &name, "del", &h8080.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(probe(&ns, 8080).0, "ok");
    let (code, out, err) = nc(&[
        "filter", &name, "add", "input", "tcp", "dport", "8081", "drop",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("handle "), "{out}");
    assert_eq!(probe(&ns, 8081).0, "timeout");
    // A malformed file is refused with its line and column; the set stays.
    let bad = dir.path("bad");
    std::fs::write(&bad, "input tcp dport 80 accept\ninput tcp dport 8x drop\n").unwrap();
    let (code, _, err) = nc(&["filter", &name, "load", bad.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("line 2, column 17") && err.contains("'8x'"),
        "{err}"
    );
    assert_eq!(probe(&ns, 8081).0, "timeout", "the old set stays");
    // Stateful: nothing comes in, but what the container starts gets its answers.
    let state = dir.path("state");
    std::fs::write(
        &state,
        "policy input drop\ninput ct state established,related accept\n",
    )
    .unwrap();
    let (code, out, err) = nc(&["filter", &name, "load", state.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 rules loaded"), "{out}");
    assert_eq!(probe(&ns, 8081).0, "timeout");
    let mut kernel_server = ns.cmd("python3");
    kernel_server
        .args(["-m", "http.server", "8099", "--bind", KERNEL])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ks = Proc::spawn(&mut kernel_server);
    let out = wait_for(T, "the container's connection out", || {
        let (code, out, _) = nc(&[
            "exec",
            &name,
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "3",
            &format!("http://{KERNEL}:8099/"),
        ]);
        (code == Some(0)).then_some(out)
    });
    assert_eq!(out, "200");
    let (_, list, _) = nc(&["filter", &name, "list"]);
    assert!(list.contains("policy input drop"), "{list}");
    let (_, est) = rule_of(&list, "ct state established,related").expect(&list);
    assert!(est >= 2, "the answers were counted: {list}");
    let (_, stats, _) = nc(&["stats", &name, "--json"]);
    assert!(stats.contains("\"filter\":{\"rules\":1,"), "{stats}");
    let (code, saved, _) = nc(&["filter", &name, "save"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        saved,
        "policy input drop\npolicy forward accept\npolicy output accept\ninput ct state established,related accept\n"
    );
}

/// Rules on `lo` apply to the container's own loopback traffic: a reject on
/// output makes the connect fail with ECONNREFUSED, a drop with EPERM (as
/// Linux reports them), an input drop on `lo` makes it time out; other ports
/// work.
fn rules_on_lo_apply_to_the_container_s_loopback(mode: Mode) {
    let dir = Scratch::new();
    let rules = dir.path("rules");
    std::fs::write(
        &rules,
        "output oif lo tcp dport 9000 reject\n\
         output ip daddr 127.0.0.5 drop\n\
         input iif lo tcp dport 9002 drop\n\
         output oif eth0 tcp dport 9001 drop\n",
    )
    .unwrap();
    let script = r#"
import socket, errno
ls = []
for p in (9000, 9001, 9002):
    l = socket.socket(); l.bind(('0.0.0.0', p)); l.listen(8); ls.append(l)
def attempt(a, p):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((a, p)); return 'ok'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode[e.errno]
for a, p in (('127.0.0.1', 9000), ('127.0.0.1', 9001), ('127.0.0.5', 9001), ('127.0.0.1', 9002)):
    print(a, p, attempt(a, p))
"#;
    let (st, out, err) = Container::new(mode)
        .args(["--filter", rules.to_str().unwrap()])
        .exec(["/usr/bin/python3", "-c", script])
        .run();
    assert!(st.success(), "{out}\n{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "127.0.0.1 9000 ECONNREFUSED",
            "127.0.0.1 9001 ok",
            "127.0.0.5 9001 EPERM",
            "127.0.0.1 9002 timeout",
        ],
        "{err}"
    );
}

/// Rules loaded under iperf3 load — a stateful set with `policy input drop`,
/// then 100 rules that do not concern it — leave the established connection
/// running: every one-second interval moves data, and the transfer completes.
fn rules_loaded_under_load_leave_the_connection_running(mode: Mode) {
    require_root!();
    need("iperf3");
    let ns = tap_ns();
    let mut srv = ns.cmd("iperf3");
    srv.args(["-s", "-B", KERNEL, "-p", "5288"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _srv = Proc::spawn(&mut srv);
    wait_for(T, "iperf3", || {
        ns.sh(&format!("bash -c 'echo > /dev/tcp/{KERNEL}/5288'"))
            .status
            .success()
            .then_some(())
    });
    let name = unique("fload");
    let client = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &name])
        .exec([
            "iperf3", "-c", KERNEL, "-p", "5288", "-t", "5", "-i", "1", "-J",
        ])
        .spawn();
    let dir = Scratch::new();
    let stateful = dir.path("stateful");
    std::fs::write(
        &stateful,
        "policy input drop\ninput ct state established,related accept\n",
    )
    .unwrap();
    let mut many = String::from("policy input drop\ninput ct state established,related accept\n");
    for p in 0..100 {
        many.push_str(&format!("input tcp dport {} drop\n", 10000 + p));
    }
    let many_file = dir.path("many");
    std::fs::write(&many_file, many).unwrap();
    wait_for(T, "the container in netcell ls", || {
        nc(&["ls"]).1.contains(&name).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (code, _, err) = nc(&["filter", &name, "load", stateful.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, _, err) = nc(&["filter", &name, "load", many_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (st, out, err) = client.wait_output(T);
    assert!(st.success(), "{out}\n{err}");
    // Each interval's bytes: the "sum" of each interval (the end section's
    // totals are "sum_sent" and "sum_received").
    let from = out.find("\"intervals\"").unwrap_or(0);
    let to = out.find("\"sum_sent\"").unwrap_or(out.len());
    let intervals = &out[from..to.max(from)];
    let per_second: Vec<u64> = intervals
        .split("\"sum\":")
        .skip(1)
        .filter_map(|s| {
            let rest = &s[s.find("\"bytes\":")? + 8..];
            rest[..rest.find(',')?].trim().parse().ok()
        })
        .collect();
    assert!(per_second.len() >= 5, "{per_second:?} {out}");
    assert!(
        per_second.iter().all(|&b| b > 100_000),
        "an interval stalled: {per_second:?}"
    );
}

in_both_modes!(
    rules_loaded_under_load_leave_the_connection_running,
    rules_act_on_the_tap_and_change_live,
    rules_on_lo_apply_to_the_container_s_loopback,
);

/// A malformed `--filter` file stops the start with its line and column.
#[test]
fn a_malformed_filter_file_is_refused_with_line_and_column() {
    let dir = Scratch::new();
    let rules = dir.path("rules");
    std::fs::write(&rules, "policy input drop\n\ninput tcp dport 80 acept\n").unwrap();
    let (st, _, err) = Container::nobody()
        .args(["--filter", rules.to_str().unwrap()])
        .exec(["true"])
        .run();
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("{}: line 3, column 20:", rules.display()))
            && err.contains("'acept'"),
        "{err}"
    );
}

/// Runs a shell command inside container `name` (`netcell exec`): exit code,
/// stdout, stderr.
fn inside(name: &str, cmd: &str) -> (Option<i32>, String, String) {
    nc(&["exec", name, "--", "sh", "-c", cmd])
}

/// The packet counter of the first rule in `iptables -L -n -v -x` output whose
/// line contains `what`.
fn ipt_packets(list: &str, what: &str) -> Option<u64> {
    let l = list
        .lines()
        .find(|l| l.contains(what) && !l.starts_with("Chain"))?;
    l.split_whitespace().next()?.parse().ok()
}

/// `iptables` inside the container, as `iptables-legacy` talks to a kernel:
/// `-A ... -j DROP` makes the kernel peer's connects time out while another
/// port works, `-j REJECT` makes them fail fast, `-L -n -v -x` counts exactly
/// the packets that matched (and keeps counting over later changes of the
/// table), `-D` by rule text, `iptables-save | iptables-restore` round-trips,
/// `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT` with `-P INPUT DROP`
/// lets the container's own connections work and blocks incoming ones; without
/// `CAP_NET_ADMIN` iptables is refused, and a match the filter lacks gets
/// iptables' message for a missing kernel module.
fn iptables_inside_filters_and_counts(mode: Mode) {
    require_root!();
    need("iptables-legacy");
    let ns = tap_ns();
    let name = unique("ipt");
    let _c = Container::new(mode)
        .on_tap_ns(&ns)
        .args(["--name", &name])
        .exec(["/usr/bin/python3", "-c", SERVERS])
        .quiet()
        .spawn();
    wait_for(T, "the container's servers", || {
        (probe(&ns, 8081).0 == "ok").then_some(())
    });
    let ipt = |args: &str| {
        let (code, out, err) = inside(&name, &format!("iptables-legacy {args}"));
        assert_eq!(code, Some(0), "iptables {args}: {out}{err}");
        out
    };
    ipt("-A INPUT -p tcp --dport 8080 -j DROP");
    ipt("-A INPUT -p tcp --dport 8082 -j REJECT --reject-with tcp-reset");
    let (r, took) = probe(&ns, 8080);
    assert_eq!(r, "timeout", "8080 is dropped");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    let (r, took) = probe(&ns, 8082);
    assert_eq!(r, "ECONNREFUSED", "8082 is rejected");
    assert!(took < Duration::from_millis(1000), "fails fast: {took:?}");
    assert_eq!(probe(&ns, 8081).0, "ok", "8081 is not filtered");
    let list = ipt("-L INPUT -n -v -x");
    assert!(ipt_packets(&list, "dpt:8080").unwrap_or(0) >= 1, "{list}");
    assert_eq!(ipt_packets(&list, "dpt:8082"), Some(1), "one SYN: {list}");
    // Counters are kept over a change of the table (iptables adds the old
    // counters back after its replace) and grow by one SYN per connect.
    ipt("-I INPUT -p udp --dport 53 -j ACCEPT");
    for _ in 0..2 {
        assert_eq!(probe(&ns, 8082).0, "ECONNREFUSED");
    }
    let list = ipt("-L INPUT -n -v -x");
    assert_eq!(ipt_packets(&list, "dpt:8082"), Some(3), "{list}");
    // Delete by rule text; save, flush, restore.
    ipt("-D INPUT -p udp --dport 53 -j ACCEPT");
    let saved = ipt("-S");
    assert_eq!(
        saved,
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n\
         -A INPUT -p tcp -m tcp --dport 8080 -j DROP\n\
         -A INPUT -p tcp -m tcp --dport 8082 -j REJECT --reject-with tcp-reset\n"
    );
    ipt("-F");
    assert_eq!(probe(&ns, 8080).0, "ok", "flushed");
    let (code, out, err) = inside(
        &name,
        "iptables-legacy-save -t filter > /tmp/ipt-$$ && iptables-legacy -F && \
         iptables-legacy -A INPUT -p tcp --dport 8080 -j DROP && iptables-legacy-save -t filter > /tmp/ipt-$$ && \
         iptables-legacy -F && iptables-legacy-restore < /tmp/ipt-$$ && iptables-legacy-save -t filter | diff - /tmp/ipt-$$ | grep -v '^[<>] #' | grep '^[<>]'; rm -f /tmp/ipt-$$; true",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "", "the restored table differs: {out}{err}");
    assert_eq!(probe(&ns, 8080).0, "timeout", "restored");
    // Stateful: nothing comes in, the container's own connections work.
    ipt("-F");
    ipt("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT");
    ipt("-P INPUT DROP");
    assert_eq!(probe(&ns, 8081).0, "timeout", "incoming blocked");
    let mut kernel_server = ns.cmd("python3");
    kernel_server
        .args(["-m", "http.server", "8099", "--bind", KERNEL])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ks = Proc::spawn(&mut kernel_server);
    let out = wait_for(T, "the container's connection out", || {
        let (code, out, _) = inside(
            &name,
            &format!("curl -s -o /dev/null -w %{{http_code}} --max-time 3 http://{KERNEL}:8099/"),
        );
        (code == Some(0)).then_some(out)
    });
    assert_eq!(out, "200");
    let list = ipt("-L INPUT -n -v -x");
    assert!(list.contains("policy DROP"), "{list}");
    assert!(ipt_packets(&list, "ctstate").unwrap_or(0) >= 2, "{list}");
    // The same rules are `netcell filter`'s.
    let (_, listed, _) = nc(&["filter", &name, "list"]);
    assert!(listed.contains("policy ip input drop"), "{listed}");
    assert!(listed.contains("ct state established,related"), "{listed}");
    // Without CAP_NET_ADMIN: refused, as Linux does.
    let (code, _, err) = inside(&name, "setpriv --bounding-set=-all iptables-legacy -L -n");
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Permission denied (you must be root)"),
        "{err}"
    );
    // A match the filter lacks: iptables' message for a missing module; the
    // table stays.
    let (code, _, err) = inside(
        &name,
        "iptables-legacy -A INPUT -m limit --limit 1/s -j ACCEPT",
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("limit revision 0 not supported"), "{err}");
    assert!(ipt("-S").contains("-P INPUT DROP"));
}

in_both_modes!(iptables_inside_filters_and_counts);

/// `ip6tables` writes IPv6's table and `iptables` IPv4's, as on Linux: a drop
/// for IPv4 leaves IPv6 connects working, ip6tables' reject fails them fast
/// and counts them, and `iptables -P INPUT DROP` does not block IPv6.
fn ip6tables_is_ipv6_s_own_table(mode: Mode) {
    require_root!();
    need("ip6tables-legacy");
    let ns = dual_stack_tap_ns();
    let name = unique("ip6t");
    let servers = r#"
import socket, threading, time
ls = []
for p in (8080, 8081):
    l = socket.socket(socket.AF_INET6); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    l.bind(('::', p)); l.listen(64); ls.append(l)
def serve(l):
    while True:
        c, _ = l.accept(); c.close()
for l in ls:
    threading.Thread(target=serve, args=(l,), daemon=True).start()
time.sleep(120)
"#;
    let _c = Container::new(mode)
        .tap(&ns, "tap0", &[CONTAINER_CIDR, "fd00::2/64"])
        .args(["--name", &name])
        .exec(["/usr/bin/python3", "-c", servers])
        .quiet()
        .spawn();
    wait_for(T, "the container's servers", || {
        (probe_at(&ns, "fd00::2", 8081).0 == "ok" && probe(&ns, 8081).0 == "ok").then_some(())
    });
    let run = |tool: &str, args: &str| {
        let (code, out, err) = inside(&name, &format!("{tool}-legacy {args}"));
        assert_eq!(code, Some(0), "{tool} {args}: {out}{err}");
        out
    };
    run("iptables", "-A INPUT -p tcp --dport 8080 -j DROP");
    assert_eq!(probe(&ns, 8080).0, "timeout", "IPv4 dropped");
    assert_eq!(
        probe_at(&ns, "fd00::2", 8080).0,
        "ok",
        "IPv6 is not iptables'"
    );
    run(
        "ip6tables",
        "-A INPUT -p tcp --dport 8080 -j REJECT --reject-with tcp-reset",
    );
    let (r, took) = probe_at(&ns, "fd00::2", 8080);
    assert_eq!(r, "ECONNREFUSED", "IPv6 rejected");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    run("iptables", "-P INPUT DROP");
    assert_eq!(probe(&ns, 8081).0, "timeout", "IPv4's policy");
    assert_eq!(probe_at(&ns, "fd00::2", 8081).0, "ok", "not IPv6's");
    let list = run("ip6tables", "-L INPUT -n -v -x");
    assert_eq!(ipt_packets(&list, "tcp dpt:8080"), Some(1), "{list}");
    assert!(list.contains("policy ACCEPT"), "{list}");
    assert_eq!(
        run("iptables", "-S INPUT"),
        "-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport 8080 -j DROP\n"
    );
    assert_eq!(
        run("ip6tables", "-S INPUT"),
        "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset\n"
    );
    // Both as the owner sees them.
    let (_, listed, _) = nc(&["filter", &name, "list"]);
    assert!(listed.contains("policy ip input drop"), "{listed}");
    assert!(listed.contains("policy ip6 input accept"), "{listed}");
}

in_both_modes!(ip6tables_is_ipv6_s_own_table);
