#!/usr/bin/env python3
"""Turns scale.json into the scale-out section of docs/benchmarks.md and a plot.

    report.py --results scale.json --plot scale.png --markdown scale.md

The markdown is a section (it starts at a level-2 heading) for
docs/benchmarks.md; the plot is referenced as benchmarks/<plot name>.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AFTER_TARGET = 1.2


def runs(res, mode, kill=False):
    return sorted((r for r in res["runs"] if r["mode"] == mode and r["kill"] == kill), key=lambda r: r["edges"])


def plot(res, path):
    before, after = runs(res, "before"), runs(res, "after")
    killed = runs(res, "after", kill=True)
    fig, axes = plt.subplots(1, 2 if killed else 1, figsize=(11 if killed else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    for rows, label, style in ((before, "before: per-pod caches", "o-"), (after, "after: keyed routing + worker cache",
                                                                          "s-")):
        if rows:
            ax.plot([r["edges"] for r in rows], [r["ssm_calls_per_second"] for r in rows], style, label=label)
    ref = after or before
    ax.plot([r["edges"] for r in ref], [r["ideal_per_second"] for r in ref], "k--", label="ideal: distinct keys / TTL")
    ax.plot([r["edges"] for r in ref], [r["ideal_per_second"] * AFTER_TARGET for r in ref], ":", color="grey",
            label=f"target: {AFTER_TARGET}× ideal")
    ax.set_xscale("log", base=2)
    ax.set_xticks([r["edges"] for r in ref])
    ax.set_xticklabels([str(r["edges"]) for r in ref])
    ax.set_xlabel("edge pods (E), W = 4 workers")
    ax.set_ylabel("SSM GetParameter calls per second")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("SSM calls against the number of edge pods", fontsize=9)
    if killed:
        k = killed[0]
        base = next((r for r in after if r["edges"] == k["edges"]), None)
        ax = axes[0][1]
        for row, label in ((base, "no worker killed"), (k, "one worker SIGKILLed")):
            if row and len(row["timeline"]) > 1:
                t = [p[0] for p in row["timeline"]]
                c = [p[1] for p in row["timeline"]]
                ax.plot(t, c, label=label)
        if k.get("killed_at_seconds") is not None:
            ax.axvline(k["killed_at_seconds"], color="red", linestyle=":", label="kill")
        ax.set_xlabel("seconds")
        ax.set_ylabel("cumulative SSM GetParameter calls")
        ax.set_title(f"E = {k['edges']}, after: a worker killed half-way", fontsize=9)
        ax.legend(fontsize=7)
    m, p = res["machine"], res["params"]
    fig.suptitle(f"{p['keys']} parameters, Zipf s={p['zipf_s']}, {p['rate']:g} req/s, TTL {p['ttl']} s, "
                 f"{p['seconds']:g} s per run; {m['date']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--plot", required=True)
    ap.add_argument("--markdown", required=True)
    a = ap.parse_args()
    with open(a.results, encoding="utf-8") as f:
        res = json.load(f)
    plot(res, a.plot)
    m, p = res["machine"], res["params"]
    before = {r["edges"]: r for r in runs(res, "before")}
    after = {r["edges"]: r for r in runs(res, "after")}
    killed = runs(res, "after", kill=True)
    edges = sorted(set(before) | set(after))

    rows = []
    for e in edges:
        b, f = before.get(e), after.get(e)
        ref = f or b
        ratio_after = f["ratio_to_ideal"] if f else None
        ok = ratio_after is not None and ratio_after <= AFTER_TARGET
        rows.append(
            f"| {e} | {p['workers']} | {b['ssm_calls_per_second'] if b else 'n/a'} "
            f"({b['ratio_to_ideal']}×) | **{f['ssm_calls_per_second'] if f else 'n/a'}** "
            f"({ratio_after}×) | {ref['ideal_per_second']} ({ref['ideal_calls']} in {ref['ideal_windows']} windows) | "
            f"{'**met**' if ok else '**missed**'} | {b['client_errors'] if b else 'n/a'} / "
            f"{f['client_errors'] if f else 'n/a'} |")
    before_rates = [before[e]["ssm_calls_per_second"] for e in edges if e in before]
    grows = len(before_rates) > 1 and all(x < y for x, y in zip(before_rates, before_rates[1:]))
    after_ok = bool(after) and all(r["ratio_to_ideal"] is not None and r["ratio_to_ideal"] <= AFTER_TARGET
                                   for r in after.values())

    kill_text = "No worker-killed run in this measurement."
    if killed:
        k = killed[0]
        base = after.get(k["edges"])
        errors = k["client_errors"]
        err_verdict = "(target: none, **met**)" if errors == 0 else \
            f"(target: none, **missed**: {', '.join(k['client_error_kinds'])})"
        kill_text = (f"With E = {k['edges']} (after), one of the four workers was SIGKILLed "
                     f"{k['killed_at_seconds']} s into the {p['seconds']:g} s run (half a TTL after the hot keys were "
                     "refreshed, so the loss is not hidden by a refresh that was due anyway): "
                     f"{k['ssm_get_parameter_calls']} GetParameter calls")
        if base:
            extra = k["ssm_get_parameter_calls"] - base["ssm_get_parameter_calls"]
            pct = f" ({extra / base['ssm_get_parameter_calls'] * 100:+.0f} %)" if base["ssm_get_parameter_calls"] else ""
            kill_text += (f" against {base['ssm_get_parameter_calls']} in the same run without the kill, "
                          f"**{extra:+d} extra SSM calls**{pct} (the killed worker's keys move to the next address on "
                          "the ring, whose cache does not hold them; the edges' own copies stay fresh until the "
                          "moment the killed worker's would have expired, so only a key an edge did not hold yet "
                          "costs an extra call)")
        kill_text += (f"; keyed-routing fallbacks at the edges: {k['keyed_fallbacks']:.0f}; "
                      f"**client errors: {errors}** {err_verdict}.")

    md = f"""<!-- The scale-out section of docs/benchmarks.md, written by `make scale`; links are relative to docs/. -->
## Scale-out: SSM calls against the number of edge pods

Measured by `make scale` (`scripts/scale.sh`, simulation in `scripts/scale/`)
on {m['date']} at commit `{m['commit']}` (load average {m['loadavg_before']} at the start,
{m.get('loadavg_after')} at the end). Results: [scale.json](benchmarks/scale.json). Design and
the arithmetic at fleet scale: [scale-out.md](scale-out.md).

![SSM calls against edge pods](benchmarks/{os.path.basename(a.plot)})

| edges E | workers W | before: SSM calls/s (× ideal) | after: SSM calls/s (× ideal) | ideal: distinct keys per TTL window / s | after ≤ {AFTER_TARGET}× ideal | client errors before / after |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

- Target "after ≤ {AFTER_TARGET}× the ideal for every E": {'**met**' if after_ok else '**missed**'}.
  Target "before grows with E": {'**met**' if grows else '**missed**'} ({' → '.join(str(x) for x in before_rates)} calls/s).
- {kill_text}
- Load: {p['keys']:,} parameters, Zipf-distributed requests (s = {p['zipf_s']}, the same
  sequence in every run), {p['rate']:g} requests/s in all spread evenly over the
  edges, {p['seconds']:g} s per run, TTL {p['ttl']} s (`CACHE_TTL_SECONDS` of edges and
  workers), every run on fresh processes (cold caches).
- Counting: SSM calls are counted by a proxy in front of moto
  (`scripts/faults/aws_proxy.py`, by `X-Amz-Target`, here
  `AmazonSSM.GetParameter`). The ideal counts the distinct keys requested in
  each TTL window ({p['ttl']} s windows from the start of the load) and divides
  their sum by the duration. A cache entry lives one TTL from the request that
  filled it, not from a window boundary, so a perfect cache can land a little
  under the windowed count (a key asked for at 0.9 T and 1.1 T counts twice
  in the windows, costs one call).
- Topology: {p['workers']} workers on {', '.join(p['worker_addresses'])} (one port) behind
  the one name `{p['name']}`; every edge runs in a private mount namespace
  where `/etc/hosts` is a temporary file giving that name the four addresses
  (`unshare -m`), resolved every second (`UPSTREAM_RESOLVE_INTERVAL_SECONDS=1`);
  `CLIENT_MISS_RATE_PER_SECOND=0`.
- "Before" reproduces the previous release: each edge pod caches on its own
  and the workers neither cache nor share calls (`CACHE_TTL_SECONDS=0` on the
  workers, so their answers carry no freshness and the edge keeps its own
  TTL); each edge is given one worker address, round-robin. Without a worker
  cache, which worker answers a miss does not change the number of SSM calls,
  so this counts exactly the calls of per-pod caches. "After" is keyed routing
  (each key's misses go to one worker, consistent hashing over the four
  addresses) and the worker cache.
- Before grows with E only as fast as each pod's own traffic reaches more
  distinct keys: here every pod sees 1/E of a Zipf stream, so the growth is
  below E×; the bound at fleet scale (every pod asking for every key once per
  TTL) is worked out in [scale-out.md](scale-out.md).
"""
    with open(a.markdown, "w", encoding="utf-8") as f:
        f.write(md)
    print(f"wrote {a.markdown} and {os.path.basename(a.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
