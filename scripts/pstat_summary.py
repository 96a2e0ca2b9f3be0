#!/usr/bin/env python3
"""Summarise bench-vs-nginx.sh PSTAT=1 output: for each fixed* run, the server's CPU from
`perf stat` (task-clock over the sampled seconds) per Gbit/s the load tool measured as
delivered in that run, and its write and read syscalls per second (markdown).

Usage: pstat_summary.py SECONDS OUTDIR"""
import json
import os
import re
import statistics
import sys


def main(seconds, out):
    gbps = {}
    tool = {}
    for line in open(os.path.join(out, "results.jsonl")):
        r = json.loads(line)
        # File names carry the server with '/' as '_' (reflector@PATH variants).
        server = r["server"].replace("/", "_")
        gbps[(r["scenario"], server, str(r["rep"]))] = r["result"].get("delivered_gbps")
        tool[(r["scenario"], server, str(r["rep"]))] = r["result"].get("server_cpu_pct_per_gbps")
    rows = {}
    per_rep = {}
    for name in sorted(os.listdir(out)):
        m = re.match(r"pstat-(\w+)-(.+)-(\d+)\.csv$", name)
        if not m:
            continue
        counts = {}
        for line in open(os.path.join(out, name)):
            f = line.strip().split(",")
            if len(f) >= 3 and f[0] and not line.startswith("#"):
                try:
                    counts[f[2]] = float(f[0])
                except ValueError:
                    pass
        g = gbps.get(m.groups())
        if not g or "task-clock" not in counts:
            continue
        cpu = counts["task-clock"] / 1000 / seconds * 100
        writes = sum(counts.get(f"syscalls:sys_enter_{c}", 0) for c in ("writev", "sendto", "sendmsg"))
        rows.setdefault((m.group(1), m.group(2)), []).append(
            (cpu / g, cpu, writes / seconds, counts.get("context-switches", 0) / seconds,
             counts.get("sched:sched_waking", 0) / seconds))
        per_rep[m.groups()] = cpu / g
    print("| scenario | server | perf stat CPU % per Gbit/s (runs) | median "
          "| writes/s (writev+sendto+sendmsg) | context switches/s | wake-ups/s |")
    print("|---|---|---|---|---|---|---|")
    meds = {}
    for (scenario, srv), r in rows.items():
        meds[(scenario, srv)] = statistics.median(x[0] for x in r)
        print(f"| {scenario} | {srv} | {' / '.join(f'{x[0]:.1f}' for x in r)} "
              f"| {meds[(scenario, srv)]:.1f} | {statistics.median(x[2] for x in r):.0f} "
              f"| {statistics.median(x[3] for x in r):.0f} "
              f"| {statistics.median(x[4] for x in r):.0f} |")
    for (scenario, srv), m in meds.items():
        base = meds.get((scenario, "nginx"))
        if srv != "nginx" and base:
            print(f"\n{scenario}: {srv} / nginx (perf stat CPU per Gbit/s): {m / base:.2f}")
            paired(scenario, srv, "perf stat", per_rep)
            paired(scenario, srv, "load tool", tool)


def paired(scenario, srv, source, figures):
    """The ratio to nginx-rtmp in each repetition that has both runs."""
    ratios = []
    for (sc, server, rep), value in sorted(figures.items(), key=lambda kv: int(kv[0][2])):
        base = figures.get((sc, "nginx", rep))
        if sc == scenario and server == srv and value and base:
            ratios.append(value / base)
    if not ratios:
        return
    at_most = sum(1 for r in ratios if r <= 0.8)
    print(f"{scenario}: {srv} / nginx by repetition ({source}): "
          f"{' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}, at most 0.8 in {at_most} of {len(ratios)}")

if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2])
