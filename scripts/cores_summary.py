#!/usr/bin/env python3
"""scripts/bench-cores.sh's figures.

  cores_summary.py --combine WORKERS STREAMS PLAYERS FILE...   one run: the reflector-load
      JSON lines of its processes (one per stream) combined into one line on stdout
  cores_summary.py RESULTS.jsonl [MAX_PLAYERS NOFILE_CAP]      the table: per configuration,
      the most players that met the SLO and the figures of that run
"""
import json
import sys


def combine(workers, streams, players, files):
    tools = []
    for f in files:
        try:
            tools.append(json.loads(open(f).read().strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError) as e:
            print(f"cores_summary: no result in {f}: {e}", file=sys.stderr)
    ok = len(tools) == streams and all(t.get("slo_ok") for t in tools)
    num = lambda k: [t[k] for t in tools if isinstance(t.get(k), (int, float))]
    gbps = sum(num("delivered_gbps"))
    cpu = num("server_cpu_pct")
    server_cpu = sum(cpu) / len(cpu) if cpu else None
    warnings = [t["tool_warning"] for t in tools if t.get("tool_warning")]
    refused = [t["refused"] for t in tools if t.get("refused")]
    return {
        "workers": workers,
        "streams": streams,
        "players": players,
        "measured_players": sum(num("players")),
        "slo_ok": ok,
        "delivery_pct": min(num("delivery_pct"), default=0.0),
        "p99_ms": max(num("p99_ms"), default=None),
        "delivered_gbps": gbps,
        "server_cpu_pct": server_cpu,
        "server_cpu_pct_per_gbps": server_cpu / gbps if server_cpu is not None and gbps > 0 else None,
        "tool_cpu_pct": sum(num("tool_cpu_pct")),
        "tool_warning": "; ".join(warnings + refused) or None,
    }


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(path, max_players=None, cap=None):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    configs = []
    for r in runs:
        key = (r["workers"], r["streams"])
        if key not in configs:
            configs.append(key)
    print()
    print("| workers | streams | players at SLO | p99 ms | delivery % | Gbit/s | server CPU % | "
          "server CPU % per Gbit/s | tool CPU % | runs | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in configs:
        mine = [r for r in runs if (r["workers"], r["streams"]) == key]
        good = [r for r in mine if r["slo_ok"]]
        best = max(good, key=lambda r: r["players"]) if good else None
        notes = []
        if best is None:
            notes.append(f"SLO missed at every count (lowest {min(r['players'] for r in mine)})")
        elif max_players and best["players"] >= int(max_players):
            notes.append("met at the cap: the limit is above it")
        if any(r.get("tool_warning") for r in mine):
            notes.append("tool warning in some run (see results)")
        b = best or {}
        print(f"| {key[0]} | {key[1]} | {b.get('players', 0)} | {fmt(b.get('p99_ms'), '.1f')} | "
              f"{fmt(b.get('delivery_pct'), '.3f')} | {fmt(b.get('delivered_gbps'), '.3f')} | "
              f"{fmt(b.get('server_cpu_pct'), '.1f')} | {fmt(b.get('server_cpu_pct_per_gbps'), '.1f')} | "
              f"{fmt(b.get('tool_cpu_pct'), '.1f')} | {len(mine)} | {'; '.join(notes)} |")
    if cap:
        print(f"\nOpen files are capped at {cap} per process (one per player in the server and in the "
              f"load tool); no search went above {max_players} players.")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["--combine"] and len(a) >= 5:
        print(json.dumps(combine(int(a[1]), int(a[2]), int(a[3]), a[4:])))
    elif a:
        table(*a[:3])
    else:
        sys.exit(__doc__)
