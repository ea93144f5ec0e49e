"""A bad wire, in the kernel: every packet nftables queues (NFQUEUE 0) is
dropped, duplicated, corrupted or held back with the given percentages, the
others pass as they came. netem does this where the kernel has it; this kernel
has nfnetlink_queue instead.

    impair.py LOSS DUP CORRUPT REORDER

Prints "ready" once bound, then on SIGTERM "seen N dropped N duplicated N
corrupted N reordered N". Duplicates are sent again through a raw socket
marked 7 (the test's rules let mark 7 pass unqueued); a corrupted packet has a
byte of its payload flipped (its checksum no longer holds); a held-back packet
goes out after the next one (or after 2 ms).
"""
import os
import random
import select
import signal
import socket
import struct
import sys

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
CFG_CMD, CFG_PARAMS = 1, 2
CMD_BIND = 1
ATTR_PACKET_HDR, ATTR_VERDICT_HDR, ATTR_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
QUEUE = 0

loss, dup, corrupt, reorder = (float(a) / 100 for a in sys.argv[1:5])
rng = random.Random(7)
counts = dict(seen=0, dropped=0, duplicated=0, corrupted=0, reordered=0)

nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
nl.bind((0, 0))
nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 7)
seq = 0


def attr(kind, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def send(msg_type, attrs, flags=0):
    global seq
    seq += 1
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, QUEUE) + b"".join(attrs)
    hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, 1 | flags, seq, 0)
    nl.send(hdr + body)


def verdict(pid, v, payload=None):
    attrs = [attr(ATTR_VERDICT_HDR, struct.pack("!II", v, pid))]
    if payload is not None:
        attrs.append(attr(ATTR_PAYLOAD, payload))
    send(MSG_VERDICT, attrs)


send(MSG_CONFIG, [attr(CFG_CMD, struct.pack("!BBH", CMD_BIND, 0, 0))])
send(MSG_CONFIG, [attr(CFG_PARAMS, struct.pack("!IB", 0xFFFF, 2))])


def stop(*_):
    print(" ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
held = None
while True:
    r, _, _ = select.select([nl], [], [], 0.002)
    if not r:
        if held is not None:
            verdict(held, NF_ACCEPT)
            held = None
        continue
    data = nl.recv(1 << 20)
    off = 0
    while off + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        msg = data[off:off + length]
        off += (length + 3) & ~3
        if mtype != (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
            continue
        pid, payload = None, None
        a = 20
        while a + 4 <= len(msg):
            alen, akind = struct.unpack_from("=HH", msg, a)
            if alen < 4:
                break
            akind &= 0x7FFF
            if akind == ATTR_PACKET_HDR:
                pid = struct.unpack_from("!I", msg, a + 4)[0]
            elif akind == ATTR_PAYLOAD:
                payload = msg[a + 4:a + alen]
            a += (alen + 3) & ~3
        if pid is None or payload is None:
            continue
        counts["seen"] += 1
        x = rng.random()
        if x < loss:
            counts["dropped"] += 1
            verdict(pid, NF_DROP)
        elif loss <= x < loss + corrupt:
            counts["corrupted"] += 1
            b = bytearray(payload)
            i = rng.randrange(min(40, len(b) - 1), len(b))
            b[i] ^= 1 << rng.randrange(8)
            verdict(pid, NF_ACCEPT, bytes(b))
        elif x < loss + corrupt + dup:
            counts["duplicated"] += 1
            verdict(pid, NF_ACCEPT)
            dst = socket.inet_ntoa(payload[16:20])
            try:
                raw.sendto(payload, (dst, 0))
            except OSError:
                pass
        elif x < loss + corrupt + dup + reorder and held is None:
            counts["reordered"] += 1
            held = pid
            continue
        else:
            verdict(pid, NF_ACCEPT)
        if held is not None:
            verdict(held, NF_ACCEPT)
            held = None
