#!/usr/bin/env python3
"""How an RTMP player reads, from `strace -f -tt -xx -s 256 -e trace=%network,read,readv,write`
output: read sizes, reads per second, bursts, and the RTMP control messages it sends
(Acknowledgement spacing, Window Acknowledgement Size, SetBufferLength).

Usage: scripts/player_reads.py NAME TRACE [NAME TRACE...]   (see docs/benchmarks.md)
The socket is the fd that carries the most received bytes."""
import re
import statistics
import sys

CALL = re.compile(r'^(\d+)\s+(\d+):(\d+):([\d.]+)\s+(\w+)\((\d+),\s*(?:"([^"]*)"(?:\.\.\.)?|0x[0-9a-f]+|\[.*?\])?,?\s*(\d+)?.*\)\s+=\s+(-?\d+)')
RECV = {"read", "recvfrom", "recv", "recvmsg", "readv"}
SEND = {"write", "sendto", "send", "sendmsg", "writev"}


def unhex(s):
    return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", s or ""))


def control_messages(sends):
    """(time, type, payload) of every message the client sent: its writes joined into one
    byte stream (a player may write a chunk header and its body separately), the handshake
    (C0+C1+C2, 3073 bytes) skipped, then chunks decoded (section 5.3 of the RTMP spec)."""
    stream, times = bytearray(), []
    for t, data, n in sends:
        times.append((len(stream), t))
        # strace shows at most -s bytes of each write: pad the rest (handshake bytes).
        stream += data[:n] + bytes(max(0, n - len(data)))
    i, size, heads, partial, out = 3073, 128, {}, {}, []

    def time_at(pos):
        t = times[0][1]
        for p, tt in times:
            if p > pos:
                break
            t = tt
        return t

    while i < len(stream):
        at = i
        fmt, csid = stream[i] >> 6, stream[i] & 0x3F
        i += 1
        if csid == 0:
            csid, i = stream[i] + 64, i + 1
        elif csid == 1:
            csid, i = stream[i] + stream[i + 1] * 256 + 64, i + 2
        h = dict(heads.get(csid, {"len": 0, "type": 0}))
        if fmt <= 2:
            ts, i = int.from_bytes(stream[i:i + 3], "big"), i + 3
        if fmt <= 1:
            h["len"], h["type"], i = int.from_bytes(stream[i:i + 3], "big"), stream[i + 3], i + 4
        if fmt == 0:
            i += 4
        if fmt <= 2 and ts == 0xFFFFFF:
            i += 4
        heads[csid] = h
        body = partial.get(csid, bytearray())
        take = min(size, h["len"] - len(body))
        body += stream[i:i + take]
        i += take
        if len(body) >= h["len"]:
            partial.pop(csid, None)
            if h["type"] == 1 and len(body) >= 4:
                size = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
            out.append((time_at(at), h["type"], bytes(body)))
        else:
            partial[csid] = body
    return out


def analyse(name, path):
    calls = []
    for line in open(path, errors="replace"):
        m = CALL.match(line)
        if not m:
            continue
        _pid, h, mi, s, sc, fd, data, asked, ret = m.groups()
        t = int(h) * 3600 + int(mi) * 60 + float(s)
        calls.append((t, sc, int(fd), data, int(asked or 0), int(ret)))
    got = {}
    for t, sc, fd, _d, _a, ret in calls:
        if sc in RECV and ret > 0:
            got[fd] = got.get(fd, 0) + ret
    if not got:
        print(f"{name}: no reads found")
        return
    sock = max(got, key=got.get)
    reads = [(t, a, r) for t, sc, fd, _d, a, r in calls if fd == sock and sc in RECV]
    sends = [(t, unhex(d), r) for t, sc, fd, d, _a, r in calls if fd == sock and sc in SEND and r > 0]
    ok = [(t, a, r) for t, a, r in reads if r > 0]
    # Steady state: from the first read of 1000+ bytes (media) on.
    start = next((t for t, _a, r in ok if r >= 1000), ok[0][0])
    steady = [(t, a, r) for t, a, r in ok if t >= start]
    span = max(steady[-1][0] - start, 1e-3)
    sizes = [r for _t, _a, r in steady]
    asked = [a for _t, a, _r in steady if a]
    full = sum(1 for _t, a, r in steady if a and r == a)
    eagain = sum(1 for t, _a, r in reads if r < 0 and t >= start)
    # A burst: reads less than 1 ms apart.
    bursts, last = [], None
    for t, _a, r in steady:
        if last is None or t - last > 0.001:
            bursts.append([0, 0])
        bursts[-1][0] += 1
        bursts[-1][1] += r
        last = t
    acks, win, sbl = [], [], []
    for t, ty, p in control_messages(sends):
        if True:
            if ty == 3 and len(p) >= 4:
                acks.append((t, int.from_bytes(p[:4], "big")))
            elif ty == 5 and len(p) >= 4:
                win.append(int.from_bytes(p[:4], "big"))
            elif ty == 4 and len(p) >= 10 and int.from_bytes(p[:2], "big") == 3:
                sbl.append((int.from_bytes(p[2:6], "big"), int.from_bytes(p[6:10], "big")))
    steps = [b - a for (_t, a), (_u, b) in zip(acks, acks[1:])]
    print(f"{name}: socket fd {sock}, {sum(sizes) * 8 / span / 1e6:.2f} Mbit/s over {span:.1f} s")
    print(f"  reads/s {len(sizes) / span:.0f}, bytes/read p50 {statistics.median(sizes):.0f} "
          f"mean {statistics.mean(sizes):.0f} max {max(sizes)}; asked p50 "
          f"{statistics.median(asked) if asked else 0:.0f}; full reads {full * 100 / len(sizes):.0f} %; "
          f"EAGAIN {eagain}")
    print(f"  bursts/s {len(bursts) / span:.1f}, reads/burst {statistics.mean(b[0] for b in bursts):.1f}, "
          f"bytes/burst {statistics.mean(b[1] for b in bursts):.0f}")
    print(f"  sends on the socket {len(sends)}; Window Ack Size sent {win or '-'}; "
          f"SetBufferLength (stream, ms) {sbl or '-'}; pings answered "
          f"{sum(1 for _t, ty, p in control_messages(sends) if ty == 4 and p[:2] == bytes([0, 7]))}")
    print(f"  Acknowledgements {len(acks)}, every {statistics.median(steps) if steps else '-'} bytes"
          f" (sequence numbers {[a for _t, a in acks[:4]]}...)")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    for n, p in zip(args[::2], args[1::2]):
        analyse(n, p)
