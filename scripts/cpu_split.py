#!/usr/bin/env python3
"""Where the CPU of bench-vs-nginx.sh's fixed1000 runs goes, from the system-wide
`perf record -a -g` taken inside each measured window (PERF=1). Medians per server over the
files given, in % of one core (samples / (seconds x frequency)).

- Server process: user code, kernel, and the kernel's softirq network path (`net_rx_action`:
  on loopback the receiving side's TCP work runs in whichever context sent the segment),
  and the data transmission path (`tcp_write_xmit`).
- Load tool: its total, its reads (`tcp_recvmsg`), and server data transmitted from the
  tool's context (`tcp_write_xmit`: segments held back by Nagle and released by the tool's
  ACK). On this VM the sampling timer misses much of a mostly idle core's short bursts, so
  the tool's figures undercount when it is lightly loaded (compare its /proc figure in the
  load tool's output); the server core is busy and is sampled fully.

Usage: scripts/cpu_split.py PERF_SECONDS FREQ FILE... (files named perf-SCENARIO-SERVER-REP.data)
"""
import collections
import os
import statistics
import subprocess
import sys


def role(comm):
    if comm.startswith("reflector-load"):
        return "tool"
    if comm.startswith(("nginx", "actix-rt", "reflector")):
        return "server"
    return None


def split(path):
    """Samples per (role, part)."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    who, frames = None, []

    def done():
        if who is None or not frames:
            return
        counts[(who, "total")] += 1
        counts[(who, "kernel" if "[kernel.kallsyms]" in frames[0] else "user")] += 1
        for part, symbol in (("softirq", "net_rx_action"), ("transmit", "tcp_write_xmit"),
                             ("recv", "tcp_recvmsg")):
            if any(symbol in f for f in frames):
                counts[(who, part)] += 1

    for line in out.split("\n"):
        if not line.strip():
            done()
            who, frames = None, []
        elif line[0] in " \t":
            frames.append(line)
        else:
            who = role(line.strip())
            frames = []
    done()
    return counts


def main():
    seconds, freq, files = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    figs = collections.defaultdict(lambda: collections.defaultdict(list))
    for path in files:
        server = os.path.basename(path).split("-")[2]
        counts = split(path)
        for who in ("server", "tool"):
            for part in ("total", "user", "kernel", "softirq", "transmit", "recv"):
                figs[server][(who, part)].append(100.0 * counts[(who, part)] / (seconds * freq))

    def med(server, who, part):
        return statistics.median(figs[server][(who, part)])

    print("| server | server user | server kernel | of which softirq | of which tcp_write_xmit "
          "| server total (runs) | tool total | tool tcp_recvmsg | tool tcp_write_xmit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for server in sorted(figs):
        runs = " / ".join(f"{t:.1f}" for t in figs[server][("server", "total")])
        print(f"| {server} | {med(server, 'server', 'user'):.1f} "
              f"| {med(server, 'server', 'kernel'):.1f} | {med(server, 'server', 'softirq'):.1f} "
              f"| {med(server, 'server', 'transmit'):.1f} "
              f"| {med(server, 'server', 'total'):.1f} ({runs}) | {med(server, 'tool', 'total'):.1f} "
              f"| {med(server, 'tool', 'recv'):.1f} | {med(server, 'tool', 'transmit'):.1f} |")


if __name__ == "__main__":
    main()
