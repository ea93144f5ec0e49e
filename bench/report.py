"""Makes the benchmark's summary from its figures (`raw.txt`, lines `peer
metric value unit`): DATE.json, DATE.md (a table: each peer's figure and
netcell's ratio to the kernel and to slirp4netns) and, where matplotlib
imports, PNG plots — throughput by MTU, the request/response latency
distribution, connection rates.

    report.py RAW OUTDIR DATE [--quick]
"""
import json
import os
import platform
import sys

PEERS = ["kernel", "netcell-seccomp", "netcell-preload", "slirp"]
# Figures where less is better (the ratio reads the other way).
LOWER = ("tcp_rr_", "loopback_rr_", "spliced_loopback_rr_", "container_start", "idle_",
         "containers_r", "containers_p", "echo_us", "conns_open", "rss_")
# netcell's figures with `--loopback-splice`: compared with the kernel's figure
# of the same name without this prefix.
SPLICED = "spliced_"


def load(path):
    res = {}
    for line in open(path):
        f = line.split()
        if len(f) != 4:
            continue
        peer, metric, value, unit = f
        try:
            v = float(value)
        except ValueError:
            continue
        res.setdefault(peer, {})[metric] = {"value": v, "unit": unit}
    return res


def lower_better(metric):
    return metric.startswith(LOWER)


def ratios(res):
    """netcell's figure over the kernel's and slirp's, per metric."""
    out = {}
    for shim in ("netcell-seccomp", "netcell-preload"):
        for metric, m in res.get(shim, {}).items():
            base = metric[len(SPLICED):] if metric.startswith(SPLICED) else metric
            for other in ("kernel", "slirp"):
                o = res.get(other, {}).get(base)
                if o and o["value"]:
                    out.setdefault(shim, {}).setdefault(metric, {})[other] = round(
                        m["value"] / o["value"], 3)
    return out


def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return "%.0f" % v
    return "%.3g" % v


def table(res, rat):
    metrics = []
    for p in PEERS:
        for m in res.get(p, {}):
            if m not in metrics:
                metrics.append(m)
    head = ["metric", "unit"] + [p for p in PEERS if p in res] + [
        "seccomp/kernel", "preload/kernel", "seccomp/slirp"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        unit = next(res[p][m]["unit"] for p in PEERS if m in res.get(p, {}))
        cells = [m + (" (lower is better)" if lower_better(m) else ""), unit]
        cells += [fmt(res[p].get(m, {}).get("value")) for p in PEERS if p in res]
        for shim, other in (("netcell-seccomp", "kernel"), ("netcell-preload", "kernel"),
                            ("netcell-seccomp", "slirp")):
            r = rat.get(shim, {}).get(m, {}).get(other)
            cells.append("%.2f×" % r if r is not None else "–")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plots(res, outdir, date):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plots: matplotlib does not import (apt-get install python3-matplotlib)",
              file=sys.stderr)
        return []
    made = []
    peers = [p for p in PEERS if p in res]

    def bars(name, title, metrics, ylabel):
        metrics = [m for m in metrics if any(m in res[p] for p in peers)]
        if not metrics:
            return
        fig, ax = plt.subplots(figsize=(9, 4.5))
        w = 0.8 / len(peers)
        for i, p in enumerate(peers):
            ys = [res[p].get(m, {}).get("value", 0) for m in metrics]
            ax.bar([x + i * w for x in range(len(metrics))], ys, w, label=p)
        ax.set_xticks([x + 0.4 - w / 2 for x in range(len(metrics))])
        ax.set_xticklabels(metrics, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(outdir, "%s-%s.png" % (date, name))
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)

    bars("throughput", "TCP stream by MTU and direction",
         ["tcp_stream_%s_mtu%d" % (d, m) for m in (1500, 65520) for d in ("up", "down")]
         + ["loopback_stream"], "Gbit/s")
    bars("connections", "New connections per second",
         ["tcp_connect_close", "loopback_connect_close_pairs", "loopback_accepts"], "per s")
    bars("udp", "UDP datagrams per second",
         ["udp_pps_%s_%d" % (d, s) for s in (64, 1400) for d in ("up", "down")]
         + ["loopback_udp_sendto", "loopback_udp_sendto_received",
            "loopback_udp_connected_send_received", "loopback_udp_echo_round_trips"], "per s")
    # The latency distribution: sockperf's percentiles, one curve per peer.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    any_curve = False
    for p in peers:
        pts = []
        for m, v in res[p].items():
            if m.startswith("tcp_rr_p"):
                try:
                    pts.append((float(m[len("tcp_rr_p"):]) / 100, v["value"]))
                except ValueError:
                    pass
        if pts:
            pts.sort()
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=p)
            any_curve = True
    if any_curve:
        ax.set_xscale("logit")
        ax.set_xlabel("percentile")
        ax.set_ylabel("round trip, µs (64 bytes, TCP)")
        ax.set_title("Request/response latency distribution")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(outdir, "%s-latency.png" % date)
        fig.savefig(path, dpi=100)
        made.append(path)
    plt.close(fig)
    return made


def main():
    raw, outdir, date = sys.argv[1:4]
    quick = "--quick" in sys.argv
    res = load(raw)
    rat = ratios(res)
    os.makedirs(outdir, exist_ok=True)
    doc = {
        "date": date,
        "quick": quick,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "results": res,
        "ratios": rat,
    }
    with open(os.path.join(outdir, date + ".json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    md = "# netcell benchmark %s%s\n\n%d CPUs, Linux %s. Ratios: netcell's figure over the " \
         "peer's (for the figures marked lower is better, below 1 is better).\n\n%s\n" % (
             date, " (quick)" if quick else "", os.cpu_count(), platform.release(),
             table(res, rat))
    made = plots(res, outdir, date)
    if made:
        md += "\n" + "\n".join("![%s](%s)" % (os.path.basename(p), os.path.basename(p))
                               for p in made) + "\n"
    with open(os.path.join(outdir, date + ".md"), "w") as f:
        f.write(md)
    print(md)
    errors = res.get("error", {})
    if errors:
        print("measurements that failed: %s" % ", ".join(sorted(errors)), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
