#!/usr/bin/env python3
"""Summarise bench-scale-out.sh results.jsonl (markdown): every run's value and the median
per setup, the CPU split between a server's arbiter threads, and for three instances the
per-instance figures, the origin's relay overhead and the total against one instance."""
import json
import statistics
import sys

from bench_summary import fmt  # same number formatting as the nginx comparison

ARBITER = "actix-rt|system"


def med(vals):
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(nums) if nums else None


def cell(vals):
    return f"{' / '.join(fmt(v) for v in vals)} (median {fmt(med(vals))})"


def arbiters(fig, n):
    """CPU % of the n busiest arbiter threads of the (first) server, busiest first."""
    pid = (fig.get("servers") or [{}])[0].get("pid")
    ts = [t["cpu_pct"] for t in fig.get("server_threads", [])
          if t["name"] == ARBITER and t["pid"] == pid]
    return sorted(ts, reverse=True)[:n]


def split(fig, n):
    a = arbiters(fig, n)
    total = sum(a)
    if not a or total <= 0:
        return "-"
    return " + ".join(f"{x:.0f} %" for x in a) + " (" + \
        " / ".join(f"{100 * x / total:.0f}" for x in a) + " % of the arbiters' CPU)"


def last_ok(res):
    """The last step that met the SLO and the step after it (max mode)."""
    steps = res.get("steps", [])
    ok = [s for s in steps if s.get("slo_ok")]
    after = steps[len(ok)] if len(ok) < len(steps) else None
    return (ok[-1] if ok else None), after


def why(step):
    if step is None:
        return "search ended (max players)"
    if step.get("tool_saturated"):
        return f"tool saturated at {step['players']}"
    return (f"SLO broken at {step['players']}: delivery {step['delivery_pct']:.2f} %, "
            f"p99 {step['p99_ms']:.0f} ms")


def main(path):
    runs = {}
    order = []
    for line in open(path):
        r = json.loads(line)
        key = (r["scenario"], r["test"])
        if key not in order:
            order.append(key)
        runs.setdefault(key, {}).setdefault(r["setup"], []).append(r)
    for key in order:
        scenario, test = key
        print(f"\n### {scenario}, {test}\n")
        setups = runs[key]
        if test == "fixed":
            fixed(scenario, setups)
        else:
            maxed(scenario, setups)


def fixed(scenario, setups):
    figs = ["delivered_gbps", "delivery_pct", "p50_ms", "p99_ms", "server_cpu_pct",
            "server_cpu_pct_per_gbps", "server_runq_wait_pct", "tool_cpu_pct",
            "tool_runq_wait_pct"]
    names = list(setups)
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print("| load average | " + " | ".join(
        " / ".join(r["loadavg"].split()[0] for r in setups[n]) for n in names) + " |")
    print("| players | " + " | ".join(
        fmt(setups[n][0]["result"]["players"]) for n in names) + " |")
    for f in figs:
        print(f"| {f} | " + " | ".join(
            cell([r["result"].get(f) for r in setups[n]]) for n in names) + " |")
    if scenario == "workers":
        print("| arbiter threads' CPU | " + " | ".join(
            "<br>".join(split(r["result"], int(n[-1])) for r in setups[n]) for n in names)
            + " |")
    if scenario == "instances" and "three" in setups:
        instances(setups)


def instances(setups):
    three = setups["three"]
    print("\nPer instance (three instances; A has the publisher, B and C pull from A):\n")
    print("| instance | players | Gbit/s | CPU % | CPU % per Gbit/s | p99 ms | run-queue wait % |")
    print("|---|---|---|---|---|---|---|")
    for i, name in enumerate("ABC"):
        def col(k, src="servers"):
            return cell([r["result"][src][i].get(k) for r in three if len(r["result"][src]) > i])
        print(f"| {name} | {col('players', 'play_urls')} | {col('delivered_gbps')} | "
              f"{col('cpu_pct')} | {col('cpu_pct_per_gbps')} | {col('p99_ms', 'play_urls')} | "
              f"{col('runq_wait_pct')} |")
    extra = []
    for r in three:
        c = [s.get("cpu_pct") for s in r["result"]["servers"]]
        if len(c) == 3 and None not in c:
            extra.append(c[0] - (c[1] + c[2]) / 2)
    # A serves its publisher and the pull connections; B and C their pull ingest: positive
    # means the origin's relay work outweighs whatever the pulling side costs more.
    print(f"\nOrigin minus a pulling instance (A - mean(B, C)): {cell(extra)} % of a core")
    if "one" in setups:
        one = med([r["result"].get("server_cpu_pct") for r in setups["one"]])
        tot = med([r["result"].get("server_cpu_pct") for r in three])
        eff1 = med([r["result"].get("server_cpu_pct_per_gbps") for r in setups["one"]])
        eff3 = med([s.get("cpu_pct_per_gbps") for r in three for s in r["result"]["servers"]])
        if one is not None and tot is not None:
            print(f"Total CPU: three instances {fmt(tot)} % vs one {fmt(one)} % "
                  f"(+{fmt(tot - one)} %, x{fmt(tot / one if one else None)})")
        print(f"CPU % per delivered Gbit/s: one instance {fmt(eff1)}, an instance of three "
              f"(median over A, B, C and the runs) {fmt(eff3)}")


def maxed(scenario, setups):
    names = list(setups)
    print("| setup | load average | players at SLO (runs) | at that step: p99 ms / server CPU % / "
          "CPU % per Gbit/s / tool CPU % | stopped because | CPU split at that step (arbiters; or instances A / B / C) |")
    print("|---|---|---|---|---|---|")
    for n in names:
        oks, at, stops, arb = [], [], [], []
        for r in setups[n]:
            ok, after = last_ok(r["result"])
            oks.append(r["result"].get("max_players_ok"))
            at.append("-" if ok is None else
                      f"{ok['p99_ms']:.0f} / {fmt(ok.get('server_cpu_pct'))} / "
                      f"{fmt(ok.get('server_cpu_pct_per_gbps'))} / {ok['tool_cpu_pct']:.0f}")
            stops.append(why(after))
            if scenario == "workers" and ok is not None:
                arb.append(split(ok, int(n[-1])))
            elif ok is not None and len(ok.get("servers", [])) > 1:
                arb.append(" / ".join(f"{fmt(s.get('cpu_pct'))} %" for s in ok["servers"]))
        loads = " / ".join(r["loadavg"].split()[0] for r in setups[n])
        print(f"| {n} | {loads} | {cell(oks)} | {'<br>'.join(at)} | {'<br>'.join(stops)} "
              f"| {'<br>'.join(arb) or '-'} |")


if __name__ == "__main__":
    main(sys.argv[1])
