#!/usr/bin/env python3
"""Summarise bench-vs-nginx.sh results.jsonl: per scenario and figure, every run's value
for each server, the median, and the ratio reflector/nginx of the medians (markdown)."""
import json
import statistics
import sys

FIGS = {
    "fixed1000": ["delivery_pct", "p50_ms", "p99_ms", "audio_p50_ms", "audio_p99_ms",
                  "delivered_gbps", "server_cpu_pct", "server_cpu_pct_per_gbps",
                  "machine_cpu_pct_per_gbps", "tcp_segments_per_s", "rss_per_player_kb",
                  "server_rss_peak_kb", "tool_cpu_pct", "server_runq_wait_pct",
                  "tool_runq_wait_pct"],
    "fixed200": ["delivery_pct", "p99_ms", "server_cpu_pct", "server_cpu_pct_per_gbps",
                 "tool_cpu_pct"],
    "idle1000": ["rss_per_player_kb", "server_rss_kb", "connect_failures"],
    "max": ["max_players_ok", "p99_ms", "delivery_pct", "server_cpu_pct_per_gbps",
            "tool_cpu_pct"],
    "blast1": ["delivered_gbps", "server_cpu_pct", "p99_ms", "delivery_pct", "tool_cpu_pct"],
    "blast8": ["delivered_gbps", "server_cpu_pct", "p99_ms", "delivery_pct", "tool_cpu_pct"],
    "churn": ["churn_joins", "churn_failed", "connect_failures", "p99_ms", "delivery_pct",
              "server_cpu_pct"],
    "stalled": ["p99_ms", "delivery_pct", "server_rss_peak_kb", "player_errors"],
    "join": ["ttff_p50_ms", "ttff_p90_ms", "ttff_keyframe_first", "connect_failures"],
}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def main(path):
    runs = {}
    order = []
    for line in open(path):
        r = json.loads(line)
        key = r["scenario"]
        if key not in order:
            order.append(key)
        runs.setdefault((key, r["server"]), []).append(r["result"])
    print("| scenario | figure | reflector (runs) | reflector median | nginx-rtmp (runs) "
          "| nginx median | ratio R/N |")
    print("|---|---|---|---|---|---|---|")
    for sc in order:
        for fig in FIGS.get(sc, ["delivery_pct", "p99_ms"]):
            cells = []
            meds = []
            for srv in ("reflector", "nginx"):
                vals = [x.get(fig) for x in runs.get((sc, srv), [])]
                nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
                med = statistics.median(nums) if nums else None
                meds.append(med)
                cells += [" / ".join(fmt(v) for v in vals), fmt(med)]
            ratio = (meds[0] / meds[1]) if meds[0] is not None and meds[1] else None
            print(f"| {sc} | {fig} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} "
                  f"| {fmt(ratio)} |")
        # Other servers (SERVERS="reflector:N ..."): their medians against nginx-rtmp's.
        for srv in sorted({k[1] for k in runs if k[0] == sc} - {"reflector", "nginx"}):
            for fig in FIGS.get(sc, ["delivery_pct", "p99_ms"]):
                vals = [x.get(fig) for x in runs.get((sc, srv), [])]
                nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
                med = statistics.median(nums) if nums else None
                ref = [x.get(fig) for x in runs.get((sc, "nginx"), [])]
                ref = [v for v in ref if isinstance(v, (int, float)) and not isinstance(v, bool)]
                rmed = statistics.median(ref) if ref else None
                ratio = (med / rmed) if med is not None and rmed else None
                print(f"| {sc} | {fig} [{srv}] | {' / '.join(fmt(v) for v in vals)} | {fmt(med)} "
                      f"| | {fmt(rmed)} | {fmt(ratio)} |")
        sat = [x.get("tool_saturated") for k, v in runs.items() if k[0] == sc for x in v]
        if any(sat):
            print(f"| {sc} | NOTE | load tool above 90 % of its core in some runs | | | | |")


if __name__ == "__main__":
    main(sys.argv[1])
