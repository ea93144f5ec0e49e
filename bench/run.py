"""netcell's benchmark: netcell in both shim modes against the kernel and
slirp4netns, measured in one run on this machine. Started by `bench/run.sh`,
which builds netcell and the C helpers first; see it for the options.

The peers, each with a client side and a server side:

  kernel           two network namespaces joined by a veth pair; for loopback
                   figures, one namespace's own `lo`
  netcell-seccomp  the client in a netcell container (seccomp shim) whose TAP
  netcell-preload  lies in a namespace where the servers run (the kernel there
                   is the peer, as in real use); loopback figures inside the
                   container, both ends under netcell
  slirp            the client in a user and network namespace of slirp4netns,
                   the servers on the host's 127.0.0.1 (reached as 10.0.2.2)

Every figure is a line `peer metric value unit` in `raw.txt`; the summary
(`<date>.json`, `<date>.md`, PNG plots) is made from them by `report.py`.
All traffic stays on 127.0.0.1 or inside the namespaces made here, which are
removed at the end, also when a measurement fails.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "ncb%d" % os.getpid()
KA, KB = TAG + "a", TAG + "b"  # the kernel peer's namespaces (server, client)
TN = TAG + "t"  # the namespace of netcell's TAP (servers)
KERNEL_SRV, KERNEL_CLI = "10.240.0.1", "10.240.0.2"
TAP_SRV, TAP_CLI = "10.250.0.1", "10.250.0.2"
SLIRP_SRV = "10.0.2.2"  # the host's 127.0.0.1 seen from slirp4netns
PORTS = dict(iperf=42201, sockperf=42211, conn=42221, redis=42231, echo=42241)

procs = []  # everything started in the background, stopped at the end
out_lines = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, timeout=300, check=True, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %s: %s" % (" ".join(cmd), r.returncode, r.stderr[-2000:]))
    return r.stdout


def bg(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def ns(name, *cmd):
    return ["ip", "netns", "exec", name, *cmd]


def record(peer, metric, value, unit):
    line = "%s %s %s %s" % (peer, metric, value, unit)
    out_lines.append(line)
    print(line, flush=True)


class Peer:
    """A place to run clients, and where their servers live."""

    name = ""
    srv_ns = None  # namespace of the servers (None: the host)
    srv_bind = ""  # the servers' address, as they bind it
    srv_addr = ""  # the servers' address, as clients reach it

    def client(self, cmd, mtu):
        raise NotImplementedError

    def srv(self, *cmd):
        return ns(self.srv_ns, *cmd) if self.srv_ns else list(cmd)


class Kernel(Peer):
    name = "kernel"
    srv_ns, srv_bind, srv_addr = KA, KERNEL_SRV, KERNEL_SRV

    def set_mtu(self, mtu):
        run(["ip", "-n", KA, "link", "set", "va", "mtu", str(mtu)])
        run(["ip", "-n", KB, "link", "set", "vb", "mtu", str(mtu)])

    def client(self, cmd, mtu):
        self.set_mtu(mtu)
        return ns(KB, *cmd)

    def local(self, cmd):
        """A command with its own loopback (the client namespace's)."""
        return ns(KB, *cmd)


class Netcell(Peer):
    srv_ns, srv_bind, srv_addr = TN, TAP_SRV, TAP_SRV

    def __init__(self, netcell, shim):
        self.netcell, self.shim = netcell, shim
        self.name = "netcell-" + shim
        self.conn_offset = 0 if shim == "seccomp" else 1

    def client(self, cmd, mtu, extra=()):
        run(["ip", "-n", TN, "link", "set", "tap0", "mtu", str(mtu)])
        return ns(TN, self.netcell, "run", "--shim", self.shim, "--tap", "tap0",
                  "--addr", TAP_CLI + "/24", "--gateway", TAP_SRV, "--mtu", str(mtu),
                  *extra, "--", *cmd)

    def local(self, cmd, extra=()):
        return [self.netcell, "run", "--shim", self.shim, *extra, "--", *cmd]


class Slirp(Peer):
    name = "slirp"
    srv_ns, srv_bind, srv_addr = None, "127.0.0.1", SLIRP_SRV

    def __init__(self):
        self.mtu = None
        self.holder = self.slirp = None

    def client(self, cmd, mtu):
        if self.mtu != mtu:
            for p in (self.slirp, self.holder):
                if p:
                    stop(p)
            self.holder = bg(["unshare", "-Urn", "sleep", "100000"])
            time.sleep(0.3)
            self.slirp = bg(["slirp4netns", "--configure", "--mtu=%d" % mtu,
                             str(self.holder.pid), "tap0"])
            time.sleep(1)
            self.mtu = mtu
        return ["nsenter", "--preserve-credentials", "-U", "-n", "-t",
                str(self.holder.pid), *cmd]


def setup_namespaces():
    for n in (KA, KB, TN):
        run(["ip", "netns", "add", n])
        run(["ip", "-n", n, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "va", "netns", KA, "type", "veth", "peer", "name", "vb",
         "netns", KB])
    run(["ip", "-n", KA, "addr", "add", KERNEL_SRV + "/24", "dev", "va"])
    run(["ip", "-n", KB, "addr", "add", KERNEL_CLI + "/24", "dev", "vb"])
    run(["ip", "-n", KA, "link", "set", "va", "up"])
    run(["ip", "-n", KB, "link", "set", "vb", "up"])
    run(["ip", "-n", TN, "tuntap", "add", "dev", "tap0", "mode", "tap"])
    run(["ip", "-n", TN, "addr", "add", TAP_SRV + "/24", "dev", "tap0"])
    run(["ip", "-n", TN, "link", "set", "tap0", "up"])


def cleanup():
    for p in reversed(procs):
        stop(p)
    for n in (KA, KB, TN):
        subprocess.run(["ip", "netns", "del", n], capture_output=True)


def start_servers(peer, bins):
    b, a, P = peer.srv_bind, peer.srv, PORTS
    bg(a("iperf3", "-s", "-B", b, "-p", str(P["iperf"])))
    bg(a("sockperf", "server", "--tcp", "-i", b, "-p", str(P["sockperf"])))
    # A connection server per peer sharing the namespace: a port netcell used
    # in one run sits in the kernel's TIME_WAIT when the next run starts, and
    # each container counts its ephemeral ports from the same place.
    for i in range(2):
        bg(a(bins["connrate"], "serve", b, str(P["conn"] + i)))
    bg(a("redis-server", "--port", str(P["redis"]), "--bind", b, "--save", "",
         "--appendonly", "no", "--protected-mode", "no"))
    bg(a(sys.executable, os.path.join(HERE, "conns.py"), "serve", b, str(P["echo"])))
    time.sleep(0.5)


def gbps(js):
    return round(json.loads(js)["end"]["sum_received"]["bits_per_second"] / 1e9, 3)


def udp_pps(js):
    """Datagrams per second the receiving side counted (iperf3's packets less
    those it counted lost)."""
    d = json.loads(js)["end"]
    d = d.get("sum_received", d["sum"])
    return round((d["packets"] - d["lost_packets"]) / d["seconds"])


PCTS = re.compile(r"percentile (\d+\.\d+) = +([0-9.]+)")


def latencies(text):
    """sockperf's percentiles: {"50.000": us, ...}."""
    return {m.group(1): float(m.group(2)) for m in PCTS.finditer(text)}


def measure(what, fn):
    """Runs one measurement; a failure is reported and the run goes on."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (report and go on: one figure is missing)
        log("FAILED %s: %s" % (what, e))
        record("error", what.replace(" ", "_"), 1, "failure")


def over_the_wire(peer, a, secs, mtus, sizes):
    P = PORTS
    for mtu in mtus:
        for rev, d in (([], "up"), (["-R"], "down")):
            measure("%s stream %s %d" % (peer.name, d, mtu), lambda: record(
                peer.name, "tcp_stream_%s_mtu%d" % (d, mtu),
                gbps(run(peer.client(["iperf3", "-c", peer.srv_addr, "-p", str(P["iperf"]),
                                      "-t", str(secs), "-J", *rev], mtu))), "Gbit/s"))
    mtu = 1500
    for size in sizes:
        for rev, d in (([], "up"), (["-R"], "down")):
            measure("%s udp %s %d" % (peer.name, d, size), lambda: record(
                peer.name, "udp_pps_%s_%d" % (d, size),
                udp_pps(run(peer.client(["iperf3", "-c", peer.srv_addr, "-p", str(P["iperf"]),
                                         "-u", "-b", "0", "-l", str(size), "-t", str(secs),
                                         "-J", *rev], mtu))), "pkt/s"))

    def rr():
        lat = latencies(run(peer.client(["sockperf", "ping-pong", "--tcp", "-i", peer.srv_addr,
                                         "-p", str(P["sockperf"]), "-t", str(secs), "-m", "64"],
                                        mtu)))
        for pct, v in sorted(lat.items()):
            record(peer.name, "tcp_rr_p%s" % pct.rstrip("0").rstrip("."), v, "us")
    measure("%s rr" % peer.name, rr)

    def conns():
        port = P["conn"] + getattr(peer, "conn_offset", 0)
        o = run(peer.client([a["connrate"], "connect", peer.srv_addr, str(port),
                             str(a["n_conn"])], mtu))
        record(peer.name, "tcp_connect_close", o.split()[1], "per_s")
    measure("%s connection rate" % peer.name, conns)

    def redis():
        o = run(peer.client(["redis-benchmark", "-h", peer.srv_addr, "-p", str(P["redis"]),
                             "-q", "-t", "set,get", "-n", str(a["n_redis"]), "--csv"], mtu))
        for line in o.splitlines():
            f = [x.strip('"') for x in line.split(",")]
            if f and f[0] in ("SET", "GET") and len(f) > 1:
                record(peer.name, "redis_%s" % f[0].lower(), f[1], "req/s")
    measure("%s redis" % peer.name, redis)


def on_loopback(peer, a, secs):
    """Both ends inside the peer (the container's own loopback); netcell also
    with `--loopback-splice` (figures `spliced_*`, compared with the kernel's
    figure of the same name without the prefix)."""
    P = PORTS
    port = P["iperf"] + 1
    variants = [("", ())]
    if isinstance(peer, Netcell):
        variants.append(("spliced_", ("--loopback-splice",)))
    for prefix, extra in variants:
        loopback_tcp(peer, a, secs, port, prefix, extra)

    def dgram():
        # Datagrams with an address (a DNS or QUIC server's calls): unconnected
        # sendto, what of it arrived, and recvfrom + sendto round trips.
        o = run(peer.local([a["dgrambench"], str(a["n_dgram"])]))
        for line in o.splitlines():
            k, v, _ = line.split()
            record(peer.name, "loopback_udp_" + k, v, "per_s")
    measure("%s loopback datagrams" % peer.name, dgram)


def loopback_tcp(peer, a, secs, port, prefix, extra):
    """TCP on the peer's loopback: stream, request/response, connections."""
    def local(cmd):
        return peer.local(cmd, extra) if extra else peer.local(cmd)

    def stream():
        o = run(local(["sh", "-c", "iperf3 -s -1 -B 127.0.0.1 -p %d >/dev/null 2>&1 & "
                       "sleep 0.5; iperf3 -c 127.0.0.1 -p %d -t %d -J" % (port, port, secs)]))
        record(peer.name, prefix + "loopback_stream", gbps(o), "Gbit/s")
    measure("%s %sloopback stream" % (peer.name, prefix), stream)

    def rr():
        rport = port + 1
        o = run(local(["sh", "-c", "sockperf server --tcp -i 127.0.0.1 -p %d >/dev/null 2>&1 "
                       "& s=$!; sleep 0.5; sockperf ping-pong --tcp -i 127.0.0.1 -p %d -t %d "
                       "-m 64; kill $s" % (rport, rport, secs)]))
        lat = latencies(o)
        for pct in ("50.000", "99.000"):
            if pct in lat:
                record(peer.name, prefix + "loopback_rr_p%s" % pct[:2], lat[pct], "us")
    measure("%s %sloopback rr" % (peer.name, prefix), rr)

    def ctl():
        o = run(local([a["ctlbench"], str(a["n_conn"])]))
        for line in o.splitlines():
            k, v, _ = line.split()
            record(peer.name, prefix + "loopback_" + k, v, "per_s")
    measure("%s %sloopback connections" % (peer.name, prefix), ctl)


def proc_kib(pid, path, key):
    """A `key: N kB` figure of /proc/PID/PATH (0 when the process is gone)."""
    try:
        with open("/proc/%d/%s" % (pid, path)) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return proc_kib(pid, "status", "VmRSS")


def pss_kib(pid):
    return proc_kib(pid, "smaps_rollup", "Pss")


def cpu_secs(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scale(netcell_peers, a, tmp):
    nc = netcell_peers[0]
    # An idle container: the netcell process's resident memory.
    for peer in netcell_peers:
        def idle(peer=peer):
            p = bg(peer.local(["sleep", "30"]))
            time.sleep(2)
            record(peer.name, "idle_rss", rss_kib(p.pid), "KiB")
            record(peer.name, "idle_pss", pss_kib(p.pid), "KiB")
            stop(p)
        measure("%s idle rss" % peer.name, idle)

    # Many containers alive at once.
    def many():
        k = a["containers"]
        ready = os.path.join(tmp, "up")
        os.makedirs(ready, exist_ok=True)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        started = []
        t0 = time.monotonic()
        for i in range(k):
            started.append(bg(nc.local(["sh", "-c", ": > %s/%d; exec sleep 100000" % (ready, i)])))
        while len(os.listdir(ready)) < k:
            if time.monotonic() - t0 > 60 + k:
                raise RuntimeError("only %d of %d containers started" % (len(os.listdir(ready)), k))
            time.sleep(0.05)
        dt = time.monotonic() - t0
        alive = sum(p.poll() is None for p in started)
        rss = sum(rss_kib(p.pid) for p in started)
        pss = sum(pss_kib(p.pid) for p in started)
        record(nc.name, "containers", alive, "alive")
        record(nc.name, "container_start", round(dt * 1000 / k, 2), "ms")
        record(nc.name, "containers_rss", rss // 1024, "MiB")
        record(nc.name, "containers_pss", pss // 1024, "MiB")
        for p in started:
            stop(p)
        procs[:] = [p for p in procs if p not in started]
    measure("containers", many)

    # Many established connections in one container: the cost of an echo per
    # connection at K against at 10, and the event loop's CPU while they idle.
    for k in (10, a["connections"]):
        for peer in (Kernel(), nc):
            def conns(peer=peer, k=k):
                go = os.path.join(tmp, "go%d%s" % (k, peer.name))
                extra = {} if peer.name == "kernel" else dict(extra=(
                    "--max-sockets", str(k + 1000), "--max-buffer-memory", "8G",
                    "--max-pending", "4096"))
                # 20 000 echoes at least: 20 rounds of 10 took milliseconds, and
                # a single slow wake-up of this VM moved the figure 2-3x.
                rounds = max(20, 20000 // k)
                cmd = peer.client([sys.executable, os.path.join(HERE, "conns.py"), "client",
                                   peer.srv_addr, str(PORTS["echo"]), str(k), str(rounds)],
                                  1500, **extra)
                env = dict(os.environ, CONNS_GO=go)
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
                procs.append(p)
                opened = p.stdout.readline().split()
                if len(opened) < 3:
                    raise RuntimeError("the client did not open its connections")
                p.stdout.readline()  # idle
                if peer.name != "kernel":
                    # `ip netns exec` execs netcell: the pid is netcell's.
                    pid = p.pid
                    c0 = cpu_secs(pid)
                    time.sleep(2)
                    record(peer.name, "idle_cpu_%d_conns" % k,
                           round((cpu_secs(pid) - c0) / 2 * 100, 2), "percent")
                    record(peer.name, "rss_%d_conns" % k, rss_kib(pid) // 1024, "MiB")
                open(go, "w").close()
                line = p.stdout.readline().split()
                p.wait(120)
                record(peer.name, "conns_open_%d" % k, opened[2], "s")
                record(peer.name, "echo_us_per_conn_%d" % k, line[3], "us")
            measure("%s %d connections" % (peer.name, k), conns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bins", required=True)
    ap.add_argument("--netcell", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    quick = a.quick
    cfg = dict(
        secs=1 if quick else 5,
        mtus=[1500] if quick else [1500, 65520],
        sizes=[64] if quick else [64, 1400],
        n_conn=2000 if quick else 10000,
        n_redis=2000 if quick else 50000,
        containers=10 if quick else 1000,
        connections=200 if quick else 10000,
        connrate=os.path.join(a.bins, "connrate"),
        ctlbench=os.path.join(a.bins, "ctlbench"),
        dgrambench=os.path.join(a.bins, "dgrambench"),
        n_dgram=20000 if quick else 200000,
    )
    peers = [Kernel(), Netcell(a.netcell, "seccomp"), Netcell(a.netcell, "preload")]
    if shutil.which("slirp4netns") and not quick:
        peers.append(Slirp())
    else:
        log("slirp4netns: %s" % ("skipped in quick mode" if quick else "not installed"))
    log("pasta: not measured (its host-loopback mapping differs between versions)")
    tmp = tempfile.mkdtemp(prefix="netcell-bench-")
    try:
        setup_namespaces()
        started = set()
        for peer in peers:
            key = peer.srv_ns
            if key not in started:
                start_servers(peer, cfg)
                started.add(key)
            log("== %s over the wire" % peer.name)
            over_the_wire(peer, cfg, cfg["secs"], cfg["mtus"], cfg["sizes"])
        for peer in peers:
            if hasattr(peer, "local"):
                log("== %s on its loopback" % peer.name)
                on_loopback(peer, cfg, cfg["secs"])
        log("== scale")
        scale(peers[1:3], cfg, tmp)
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(a.out, "raw.txt"), "w") as f:
        f.write("\n".join(out_lines) + "\n")


if __name__ == "__main__":
    main()
