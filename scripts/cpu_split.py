#!/usr/bin/env python3
"""Where the CPU of bench-vs-nginx.sh's fixed1000 runs goes, from the system-wide
`perf record -a -g` taken inside each measured window (PERF=1). Medians per server over the
files given, in % of one core (samples / (seconds x frequency)).

- Server process: user code, kernel, and the kernel's softirq network path (`net_rx_action`:
  on loopback the receiving side's TCP work runs in whichever context sent the segment),
  and the data transmission path (`tcp_write_xmit`).
- Load tool: its total, its reads (`tcp_recvmsg`), and server data transmitted from the
  tool's context (`tcp_write_xmit`: segments held back by Nagle and released by the tool's
  ACK). The tool's threads are `reflector-load` (publisher, sampling) and `load-N` (players).
- The server without the players' receive path (its total less its softirq samples that
  are not its own data released by an ACK): on a network that part runs on the players'
  machines. Plus its data sent from the players' context (Nagle-held segments the players'
  ACKs release, in the tool's thread): the server's own sending work wherever it ran, also
  as a ratio to nginx-rtmp per repetition.
- The server's `tcp_sendmsg` and, inside it, `sock_def_readable`: waking the player's thread.

Usage: scripts/cpu_split.py PERF_SECONDS FREQ FILE... (files named perf-SCENARIO-SERVER-REP.data)
"""
import collections
import os
import statistics
import subprocess
import sys


# (part, a kernel function on the sample's stack)
PARTS = (("softirq", "net_rx_action"), ("transmit", "tcp_write_xmit"), ("recv", "tcp_recvmsg"),
         ("readable", "sock_def_readable"), ("epoll_wait", "do_epoll_wait"),
         ("sched", "__schedule"), ("sendmsg", "tcp_sendmsg"))


def role(comm):
    if comm.startswith(("reflector-load", "load-")):
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
        for part, symbol in PARTS:
            if any(symbol in f for f in frames):
                counts[(who, part)] += 1
        # Frames run leaf first: what the innermost softirq was doing is above its index.
        rx = next((i for i, f in enumerate(frames) if "net_rx_action" in f), None)
        if rx is not None:
            released = any("tcp_write_xmit" in f for f in frames[:rx])
            counts[(who, "released" if released else "receive")] += 1

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
    own_by_rep = {}
    for path in files:
        server = os.path.basename(path).split("-")[2]
        rep = os.path.basename(path).rsplit("-", 1)[-1].split(".")[0]
        counts = split(path)
        for who in ("server", "tool"):
            for part in ("total", "user", "kernel") + tuple(p for p, _ in PARTS):
                figs[server][(who, part)].append(100.0 * counts[(who, part)] / (seconds * freq))
        # The server's own sending work wherever it ran: its total less the players'
        # receive path run in its context (softirq samples that are not its own transmit
        # released by an ACK), plus its data transmitted from the players' context (a
        # Nagle-held segment released by the player's ACK).
        own = (counts[("server", "total")] - counts[("server", "receive")]
               + counts[("tool", "released")])
        figs[server][("server", "own")].append(100.0 * own / (seconds * freq))
        own_by_rep[(server, rep)] = own
        figs[server][("server", "sender")].append(
            100.0 * (counts[("server", "total")] - counts[("server", "receive")])
            / (seconds * freq))

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
    # On loopback the softirq in the server's context is the players' receive path (their
    # TCP input, their wake-ups); on a network it runs on the players' machines.
    print()
    print("| server | server total | without the players' receive path (runs) | ratio "
          "| plus its data sent from the players' context (runs) | ratio |")
    print("|---|---|---|---|---|---|")
    for server in sorted(figs):
        cells = [f"{med(server, 'server', 'total'):.1f}"]
        for part in ("sender", "own"):
            runs = " / ".join(f"{t:.1f}" for t in figs[server][("server", part)])
            ratio = ""
            if "nginx" in figs and server != "nginx":
                ratio = f"{med(server, 'server', part) / med('nginx', 'server', part):.2f}"
            cells += [f"{med(server, 'server', part):.1f} ({runs})", ratio]
        print(f"| {server} | " + " | ".join(cells) + " |")
    for server in sorted(figs):
        ratios = [own / own_by_rep[("nginx", rep)] for (srv, rep), own in sorted(own_by_rep.items())
                  if srv == server and server != "nginx" and own_by_rep.get(("nginx", rep))]
        if ratios:
            print(f"\n{server} / nginx, own sending work by repetition: "
                  f"{' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}")
    # On loopback the sender also pays for waking the reader: sock_def_readable, whose
    # epoll callback and wake-up run with interrupts off (the samples land when they end).
    print()
    print("| server | server in tcp_sendmsg | of which sock_def_readable (waking the player) "
          "| do_epoll_wait | __schedule |")
    print("|---|---|---|---|---|")
    for server in sorted(figs):
        print(f"| {server} | " + " | ".join(
            f"{med(server, 'server', p):.1f}"
            for p in ("sendmsg", "readable", "epoll_wait", "sched")) + " |")


if __name__ == "__main__":
    main()
