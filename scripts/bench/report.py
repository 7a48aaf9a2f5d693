#!/usr/bin/env python3
"""Turns docs/benchmarks/results.json into docs/benchmarks.md and a plot.

    report.py --results results.json --plot throughput.png --markdown benchmarks.md

Refuses (exit status 3) to write a report from a run made on a busy machine
unless that run was started with BENCH_ALLOW_BUSY=1; such a report marks
every figure as unreliable, in bold.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXIT_BUSY = 3
UNRELIABLE = False


def U(text):
    """A figure as printed: in bold and marked when the machine was busy."""
    return f"**{text} (unreliable)**" if UNRELIABLE and text not in ("n/a", "") else text


def bold(text):
    return text if text.startswith("**") else f"**{text}**"


def run(results, scenario, prefix):
    for r in results["runs"]:
        if r["scenario"] == scenario and r["server"].startswith(prefix):
            return r
    return None


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if not a or not b or not b.get("rps") or not a.get("rps"):
        return None
    return a["rps"] / b["rps"]


def verdict(ok):
    word = "met" if ok else "missed"
    return f"**{word} (unreliable)**" if UNRELIABLE else f"**{word}**"


def at_least(value, target):
    """(verdict, margin) for `value ≥ target`."""
    if value is None:
        return "—", "—"
    margin = (value / target - 1) * 100
    word = "above" if margin >= 0 else "short"
    return verdict(value >= target), U(f"{abs(margin):.1f} % {word}")


def at_most(value, target):
    if value is None:
        return "—", "—"
    margin = (1 - value / target) * 100
    word = "under" if margin >= 0 else "over"
    return verdict(value <= target), U(f"{abs(margin):.1f} % {word}")


LABELS = {"cache-hit": "1. cache hit", "cache-hit-logs": "1c. cache hit, access logs on",
          "proxied": "2. proxied, worker on canned S3", "proxied-canned": "2b. proxied, canned worker",
          "moto": "3. uncached through moto"}


def plot(results, path):
    groups = [(k, t, [r for r in results["runs"] if r["scenario"] == k]) for k, t in LABELS.items()]
    groups = [g for g in groups if g[2]]
    mem = results.get("memory") or []
    panels = len(groups) + (1 if mem else 0)
    if not panels:
        return False
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.4), squeeze=False)
    for ax, (key, title, rows) in zip(axes[0], groups):
        labels = [r["server"].replace(" (", "\n(").replace(", ", ",\n").replace(" /", "\n/").replace(" -> ", "\n-> ")
                  for r in rows]
        colours = ["#4c72b0" if r["server"].startswith("edge") else "#999999" for r in rows]
        bars = ax.bar(range(len(rows)), [r["rps"] for r in rows], color=colours)
        for b, r in zip(bars, rows):
            ax.annotate(f"{r['rps']:,.0f}\np99 {fmt(r['p99_ms'], 1)} ms", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=6)
        ax.set_title(f"{title} (req/s)", fontsize=9)
        ax.margins(y=0.25)
    if mem:
        ax = axes[0][-1]
        labels = [f"{m['server']}\n{m['transport']}" for m in mem]
        colours = ["#4c72b0" if m["server"] == "edge" else "#999999" for m in mem]
        bars = ax.bar(range(len(mem)), [m["per_connection_kib"] for m in mem], color=colours)
        for b, m in zip(bars, mem):
            ax.annotate(f"{m['per_connection_kib']:.1f}", (b.get_x() + b.get_width() / 2, max(b.get_height(), 0)),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(mem)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(f"KiB per idle keep-alive connection ({mem[0]['connections']:,})", fontsize=9)
        ax.margins(y=0.25)
    m = results["machine"]
    title = f"servers on CPU 0, wrk on CPU 1; {m['date']}, {m['cpu']}; edge in blue"
    if UNRELIABLE:
        title = f"UNRELIABLE: load average {m['loadavg_before']} at the start (busy machine). " + title
    fig.suptitle(title, fontsize=8, color="red" if UNRELIABLE else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def with_scale_section(md, scale_md):
    """The scale-out section `make scale` wrote beside the results (scale.md),
    placed before "Robustness"; the report unchanged when there is none."""
    if not os.path.exists(scale_md):
        return md
    with open(scale_md, encoding="utf-8") as f:
        section = "".join(line for line in f if not line.startswith("<!--")).strip()
    head, sep, tail = md.partition("## Robustness: where it is tested")
    return f"{head}{section}\n\n{sep}{tail}" if sep else f"{md}\n{section}\n"


def main():
    global UNRELIABLE
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--plot", required=True)
    ap.add_argument("--markdown", required=True)
    a = ap.parse_args()
    with open(a.results, encoding="utf-8") as f:
        res = json.load(f)
    m, rs = res["machine"], res.get("resources", {})
    if m.get("busy") and not m.get("allow_busy"):
        print(f"[bench] REFUSED: {a.results} comes from a busy machine (load average {m['loadavg_before']} > "
              f"{m['max_load']}) and was not allowed (BENCH_ALLOW_BUSY=1); no report written", file=sys.stderr)
        return EXIT_BUSY
    UNRELIABLE = bool(m.get("busy"))
    plotted = plot(res, a.plot)
    wrk_version = (m.get("wrk") or "wrk").split(" Copyright")[0]
    nginx_version = (m.get("nginx") or "nginx").replace("nginx version: ", "")
    seconds = m["seconds"]

    edge_hit, nginx_hit = run(res, "cache-hit", "edge (cache hit)"), run(res, "cache-hit", "nginx proxy_cache")
    musl_hit = run(res, "cache-hit", "edge, static musl")
    ceiling = run(res, "cache-hit", "nginx return")
    edge_log, nginx_log = run(res, "cache-hit-logs", "edge"), run(res, "cache-hit-logs", "nginx")
    edge_px, nginx_px = run(res, "proxied", "edge"), run(res, "proxied", "nginx proxy_pass")
    worker_px = run(res, "proxied", "worker alone")
    edge_pc, nginx_pc = run(res, "proxied-canned", "edge"), run(res, "proxied-canned", "nginx proxy_pass")
    moto_alone, moto_through = run(res, "moto", "moto alone"), run(res, "moto", "edge")
    memory = {(r["server"], r["transport"]): r for r in res.get("memory", [])}
    ins = res.get("instructions") or {}
    subjects = ins.get("subjects", {})

    def cpu_ratio(x, y):
        if x and y and x.get("cpu_us_per_request") and y.get("cpu_us_per_request"):
            return U(f"{x['cpu_us_per_request']:.1f} µs vs {y['cpu_us_per_request']:.1f} µs") + " of CPU per request"
        return "see the CPU column"

    def calls(r):
        v = r.get("worker_calls_per_request") if r else None
        return U(f"{v:.3f}") if v is not None else "n/a"

    # ----------------------------------------------------------- targets
    targets, notes = [], []

    def row(figure, measured, target, verdict_margin):
        targets.append(f"| {figure} | {measured} | {target} | {verdict_margin[0]} | {verdict_margin[1]} |")

    r1, r1c, r3 = ratio(edge_hit, nginx_hit), ratio(edge_hit, ceiling), ratio(musl_hit, nginx_hit)
    r4, r5 = ratio(edge_log, nginx_log), ratio(edge_pc, nginx_pc)

    def measured_ratio(value, x, y):
        if value is None:
            return "not measured"
        return f"{U(f'{value:.2f}×')} ({U(fmt(x['rps']))} vs {U(fmt(y['rps']))} req/s)"

    row("1. cache hit: edge vs nginx `proxy_cache` hit, req/s", measured_ratio(r1, edge_hit, nginx_hit), "≥ 1.2×",
        at_least(r1, 1.2))
    if edge_hit and nginx_hit and edge_hit.get("p99_ms") is not None and nginx_hit.get("p99_ms") is not None:
        row("1. cache hit: edge p99 vs nginx `proxy_cache` p99",
            f"{U(fmt(edge_hit['p99_ms'], 2))} ms vs {U(fmt(nginx_hit['p99_ms'], 2))} ms", "no worse",
            at_most(edge_hit["p99_ms"], nginx_hit["p99_ms"]))
    else:
        row("1. cache hit: edge p99 vs nginx `proxy_cache` p99", "not measured", "no worse", at_most(None, 1))
    row("1. cache hit: edge vs nginx `return 200` of the same body (one-core ceiling)",
        measured_ratio(r1c, edge_hit, ceiling), "≥ 0.85×", at_least(r1c, 0.85))
    row("1b. cache hit, the shipped binary (static musl) vs nginx `proxy_cache`", measured_ratio(r3, musl_hit, nginx_hit),
        "≥ 1.0×", at_least(r3, 1.0))
    row("1c. cache hit with access logs on in both", measured_ratio(r4, edge_log, nginx_log), "≥ 1.0×",
        at_least(r4, 1.0))
    row("2b. proxied to a canned worker: edge vs nginx `proxy_pass`", measured_ratio(r5, edge_pc, nginx_pc), "≥ 1.0×",
        at_least(r5, 1.0))
    for transport, target in (("plain", 8.0), ("TLS", 32.0)):
        mrow = memory.get(("edge", transport))
        v = mrow["per_connection_kib"] if mrow else None
        row(f"memory per idle keep-alive connection, edge, {'plain HTTP' if transport == 'plain' else 'TLS'}",
            U(f"{v:.1f} KiB") if v is not None else "not measured", f"≤ {target:g} KiB", at_most(v, target))
    for name, label in (("edge", "edge"), ("edge-musl", "edge, static musl")):
        s, v = subjects.get(name), ins.get("verdicts", {}).get(name)
        if not s:
            targets.append(f"| instructions per cache hit, {label} | not measured | the recorded budget | — | — |")
            continue
        budget = f"{v['budget']:,} ± {ins['tolerance_percent']:g} %" if v and v.get("budget") else "not recorded"
        status = {"within": "**within budget**", "regression": "**REGRESSION**",
                  "no budget": "no budget recorded"}.get(v["status"] if v else "", "—")
        margin = U(f"{v['delta_percent']:+.1f} %") if v and v.get("delta_percent") is not None else "—"
        targets.append(f"| instructions per cache hit, {label} | {U(fmt(s['per_hit']))} | {budget} | {status} | "
                       f"{margin} |")

    # ------------------------------------------------------------- notes
    if r1 is not None and r1 < 1.2:
        notes.append(f"- **Cache hit: missed** ({r1:.2f}× nginx proxy_cache, target 1.2×). With the server pinned "
                     f"to one core, throughput is set by CPU per request: {cpu_ratio(edge_hit, nginx_hit)} "
                     "(edge vs nginx); the instruction counts below say how much of it is the edge's own code.")
    if r3 is not None and r1 is not None:
        notes.append(f"- The shipped static musl binary serves {r3:.2f}× nginx proxy_cache against {r1:.2f}× for the "
                     f"glibc build ({cpu_ratio(musl_hit, edge_hit)}, musl vs glibc).")
    if edge_log and nginx_log:
        dropped = (edge_log.get("counters") or {}).get("dropped_lines")
        notes.append(f"- Access logs (1c): access lines written per request, edge {U(fmt(edge_log.get('log_lines_per_request'), 3))}"
                     f" (lines dropped by the edge's lossy log writer during the measurement: {U(fmt(dropped))}), "
                     f"nginx {U(fmt(nginx_log.get('log_lines_per_request'), 3))}. A figure below 1 means lines "
                     "were not written, and the comparison flatters that server.")
    if edge_pc and nginx_pc:
        notes.append(f"- Worker calls per client request (2b): edge {calls(edge_pc)}, nginx {calls(nginx_pc)} "
                     "(counted at the canned worker, stub_status). The edge shares one in-flight worker call among "
                     "concurrent identical `/s3-buckets` requests (a documented feature); nginx `proxy_pass` makes "
                     "one call per request. A ratio above 1 that comes with far fewer worker calls is partly "
                     "coalescing, not a faster proxy: compare the CPU per request too "
                     f"({cpu_ratio(edge_pc, nginx_pc)}, edge vs nginx).")
    if edge_px and nginx_px:
        wtxt = f" (the worker alone served {U(fmt(worker_px['rps']))} req/s)" if worker_px else ""
        notes.append(f"- Scenario 2 (reference): {U(f'{ratio(edge_px, nginx_px):.2f}×')} nginx proxy_pass, both held "
                     f"to the worker's rate{wtxt}; worker calls per client request: edge {calls(edge_px)}, "
                     f"nginx {calls(nginx_px)}; their own cost is {cpu_ratio(edge_px, nginx_px)} (edge vs nginx).")
    if moto_alone and moto_through:
        change = (moto_through["rps"] / moto_alone["rps"] - 1) * 100
        notes.append(f"- Scenario 3 (reference): through the edge and the worker, {U(f'{abs(change):.1f} %')} "
                     f"{'more' if change >= 0 else 'fewer'} req/s than moto alone (p50 "
                     f"{U(fmt(moto_alone['p50_ms'], 1))} → {U(fmt(moto_through['p50_ms'], 1))} ms), all on CPU 0, "
                     f"with {calls(moto_through)} worker calls (so ListBuckets calls) per client request: "
                     "concurrent identical requests share one call, so this is not a per-request overhead.")

    # ----------------------------------------------------------- results
    rows = []
    for r in res["runs"]:
        rows.append(f"| {r['scenario']} | {r['server']} | `/{r['url']}` | {r['connections']} | {U(fmt(r['rps']))} | "
                    f"{U(fmt(r['p50_ms'], 2))} | {U(fmt(r['p99_ms'], 2))} | {U(fmt(r['cpu_us_per_request'], 1))} | "
                    f"{r['non_2xx']} / {r['socket_errors']} | {fmt(r.get('loadavg_before'), 2)} → "
                    f"{fmt(r.get('loadavg_after'), 2)} |")

    mem_rows = []
    for r in res.get("memory", []):
        target = {("edge", "plain"): "≤ 8 KiB", ("edge", "TLS"): "≤ 32 KiB"}.get((r["server"], r["transport"]),
                                                                              "reported")
        idle, held, each = r["rss_idle_kib"] / 1024, r["rss_with_kib"] / 1024, r["per_connection_kib"]
        mem_rows.append(f"| {r['server']} | {r['transport']} | {U(f'{idle:.1f} MiB')} | {U(f'{held:.1f} MiB')} | "
                        f"{bold(U(f'{each:.2f} KiB'))} | {target} | {r['open_connections_seen']:,} | "
                        f"{fmt(r['loadavg_before'], 2)} → {fmt(r['loadavg_after'], 2)} |")

    def mib_kib(k):
        v = rs.get(k)
        return U(f"{v / 1024:.1f} MiB") if v is not None else "n/a"

    def mib(k, digits=1):
        v = rs.get(k)
        return U(f"{v:.{digits}f} MiB") if v is not None else "n/a"

    ins_rows = []
    for name, s in subjects.items():
        v = ins.get("verdicts", {}).get(name)
        budget = f"{v['budget']:,}" if v and v.get("budget") else "—"
        ins_rows.append(f"| {s['label']} | {bold(U(fmt(s['per_hit'])))} | {U(fmt(s['per_hit_including_fixed']))} | "
                        f"{U(fmt(s['idle_instructions_per_second']))} | {budget} | {v['text'] if v else 'reported'} |")
    recorded = ins.get("recorded") or {}
    budget_line = (f"The budget was recorded on {recorded.get('date')} at commit `{recorded.get('commit')}` "
                   f"({recorded.get('valgrind')})." if recorded else
                   "No budget is recorded yet: `BENCH_RECORD_BUDGET=1 BENCH_ONLY=instructions make bench` on a quiet "
                   "machine writes the counted figures into it.")

    busy = m.get("busy")
    banner = ""
    if busy:
        banner = (f"\n> **UNRELIABLE: the one-minute load average was {m['loadavg_before']} when the measurements "
                  f"started (above {m['max_load']}): other work was using the machine. This run was allowed with "
                  f"BENCH_ALLOW_BUSY=1, and every figure below is marked unreliable. Do not quote it.**\n")
    if m.get("load_gated", True):
        gate = (f"The bench refuses to write this report when the first figure is above {m['max_load']} "
                "(unless BENCH_ALLOW_BUSY=1, which marks every figure as unreliable)"
                + (": **this run was busy**." if busy else ": this run started on a quiet machine."))
    else:
        gate = "This run counted instructions only, which do not depend on the load: it was not gated."
    load_line = (f"Load average (1, 5, 15 min) when the measurements started: {m['loadavg_before']}, "
                 f"{m.get('loadavg_before_5')}, {m.get('loadavg_before_15')}; when they ended: "
                 f"{m.get('loadavg_after')}, {m.get('loadavg_after_5')}, {m.get('loadavg_after_15')}. " + gate)
    only = m.get("only") or []
    partial = ""
    if only and set(only) != set(LABELS) | {"memory", "instructions"}:
        partial = f"\nThis run measured only: {', '.join(only)}.\n"

    md = f"""# Benchmarks
{banner}
Measured by `make bench` (`scripts/bench.sh`, harness in `scripts/bench/`) on
{m['date']} at commit `{m['commit']}`. Machine-readable results:
[results.json](benchmarks/results.json), [results.csv](benchmarks/results.csv).
{partial}
## Targets

| figure | measured | target | | margin |
|---|---|---|---|---|
{chr(10).join(targets)}

{chr(10).join(notes) if notes else ""}

## Machine and method

- {m['cpu']}, {m['cpus']} CPUs, {m['memory_mib']:,} MiB RAM, Linux {m['kernel']}; {m.get('rustc') or 'rustc'}.
- {load_line} Each measurement records the load average just before and just
  after it (the "load" columns). The bench itself keeps both CPUs busy (the
  server on one, wrk on the other), so those figures climb towards 2 during a
  run; the figure at the start is the one that says whether other work was
  using the machine.
- Servers under test run pinned to **CPU 0** (`taskset -c 0`): the edge (all its
  threads), nginx (`worker_processes 1`), and for scenario 3 moto, the worker
  and the edge together. The load generator, {wrk_version}, runs one thread
  pinned to **CPU 1**, as do the helpers that are not under test (the worker
  behind nginx and the edge, the canned S3 and the canned worker).
- Each measurement is {seconds} s of `wrk -t1 -c{m['connections']} --latency`
  after a {m.get('warmup', 2)} s warm-up run (scenario 3: `-c{m['moto_connections']}`), HTTP/1.1
  keep-alive. Ratios compare measurements of one run, taken one after the
  other.
- Binaries: the release build (`cargo build --release`, thin LTO, glibc) and,
  for 1b, the edge built exactly as `edge/Dockerfile` builds the image's
  binary (`cargo build --release --locked --target x86_64-unknown-linux-musl
  --package edge`, static). {nginx_version}: Debian's `nginx` package.
- Edge settings: `CLIENT_MISS_RATE_PER_SECOND=0` (all load comes from one
  client address), `MAX_CONNECTIONS=100000`, `KEEPALIVE_TIMEOUT_SECONDS=3600`,
  `CACHE_TTL_SECONDS=3600`; the worker behind it `CACHE_TTL_SECONDS=3600` (its
  `max-age` bounds the edge's freshness).
- Logging: off in both (edge `RUST_LOG=warn`, nginx `access_log off`) except in
  1c, where the edge runs `LOG_FORMAT=json RUST_LOG=info` with its output
  redirected to a file (one JSON access line per request, written by its
  log thread) and nginx has `access_log FILE` (combined format, no buffer).
- "CPU µs/req" is the CPU time (user + system) the server(s) under test used
  during the measurement divided by the requests served: the cost of a request
  regardless of which process was the bottleneck.
- Scenario 1 compares the edge's cache (warmed, `x-cache: HIT`) with nginx
  `proxy_cache` in front of the worker (warmed, `HIT`) and with nginx
  `return 200` of the edge's exact body (the ceiling of one core). Bodies:
  edge {res.get('bodies', {}).get('edge', 'n/a')} bytes, nginx cache {res.get('bodies', {}).get('nginx_cache', 'n/a')} bytes
  (the worker's answer, without `main_api_version`).
- Scenario 2 (reference) compares the edge's `/s3-buckets` with nginx
  `proxy_pass` to the same worker, whose S3 is an nginx returning a fixed
  ListBuckets XML; 2b replaces the worker by an nginx returning its exact
  answer, so the proxies are the bottleneck. Worker calls are counted (the
  worker's `aux_http_requests_total`, the canned worker's stub_status).
- Scenario 3 (reference) puts the whole path (edge → worker → moto) beside moto
  alone answering the same ListBuckets, all on CPU 0.
- Memory: {m.get('memory_connections', 2000):,} connections are opened one after the other, each
  makes one request on the cached key `/parameter/param1` (every answer must
  be a `HIT`) and stays open and idle; RSS (the process and its children) is
  read once they are all established, and the count of open connections is
  checked at the server (edge `edge_client_connections`, nginx stub_status).
  Per connection = (RSS with N − RSS idle) / N. TLS uses a generated
  self-signed P-256 pair.
- Instructions: the server runs under `valgrind --tool=callgrind` (nginx with
  `master_process off`, one process); after warming, one keep-alive
  connection sends N1 then N2 hit requests, the counters zeroed before and
  dumped after each batch (`callgrind_control`); per hit = (I(N2) − I(N1)) /
  (N2 − N1) with N1, N2 = {', '.join(str(x) for x in m.get('callgrind_requests', []))}. Counts are user-space
  instructions (no kernel time) and repeat closely run to run even on a busy
  machine.

## Results

![throughput](benchmarks/throughput.png)

| scenario | server | path | conns | req/s | p50 ms | p99 ms | CPU µs/req | non-2xx / socket errors | load before → after |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows) if rows else "| (no throughput scenario in this run) | | | | | | | | | |"}

## Memory per idle keep-alive connection

| server | transport | RSS idle | RSS with N | per connection | target | open when read | load before → after |
|---|---|---|---|---|---|---|---|
{chr(10).join(mem_rows) if mem_rows else "| (not measured in this run) | | | | | | | |"}

| | edge | aux-worker |
|---|---|---|
| RSS idle (after warming) | {U(f"{memory[('edge', 'plain')]['rss_idle_kib'] / 1024:.1f} MiB") if ('edge', 'plain') in memory else 'n/a'} | {mib_kib('worker_rss_idle_kib')} |
| start to ready (`/readyz` 200, median of 5) | {U(fmt(rs.get('edge_start_to_ready_ms'), 1))} ms | {U(fmt(rs.get('worker_start_to_ready_ms'), 1))} ms |
| release binary (glibc, this build) | {mib('edge_binary_mib')} | {mib('aux_worker_binary_mib')} |
| static musl binary (as shipped) | {mib('edge_musl_binary_mib')} | |

Image sizes are not measured by the bench (it builds no image); the delivery
README ([.github/README.md](../.github/README.md)) records them.

## Instructions per cache hit

| server | per hit | per hit incl. fixed cost (I(N2) / N2) | idle instructions/s | budget | |
|---|---|---|---|---|---|
{chr(10).join(ins_rows) if ins_rows else "| (not measured in this run) | | | | | |"}

The budget lives in [`scripts/bench/budget.json`](../scripts/bench/budget.json)
(tolerance {ins.get('tolerance_percent', 'n/a')} %). {budget_line} A count above the budget by more
than the tolerance is reported as a regression with its size.

## Robustness: where it is tested

Speed is measured here only. Behaviour under faults is asserted by the test
command, black-box over the real binaries, each test printing its figures:

- `scripts/check-faults.sh`: the worker SIGKILLed under load (cached keys keep
  answering `STALE`, others get JSON 502/503 quickly, recovery when it is
  back); the worker hung with SIGSTOP (JSON 504 within
  `UPSTREAM_TIMEOUT_SECONDS`, the edge's connections and descriptors bounded);
  SSM throttling, 500s and hangs behind a fault-injecting proxy in front of moto
  (503 with `Retry-After` or 504, at most `AWS_MAX_ATTEMPTS` SSM calls per
  request, bounded bursts); SIGTERM under load to the edge and to the worker
  (readiness fails first, zero failures among requests started before the
  signal, exit 0 within drain + timeout); slowhttptest slowloris (normal
  requests still answered).
- `scripts/check-api.sh`: schemathesis against [openapi.yaml](openapi.yaml)
  and testssl.sh against the TLS port.
- `common/tests/name_corpus.rs`: the name parser against a committed corpus
  and a mutation property test (a long run:
  `NAME_FUZZ_CASES=1000000 cargo test --release -p service-common --test name_corpus`).

## Reproduce

```bash
make bench                                  # on a quiet machine: about 5 minutes after the release builds
BENCH_SECONDS=2 BENCH_ALLOW_BUSY=1 \\
  BENCH_OUT=/tmp/bench BENCH_MARKDOWN=/tmp/bench.md make bench   # a quick run of the harness (figures unreliable)
BENCH_ONLY=instructions make bench          # only the instruction counts and the budget verdict (report in .run/bench/)
BENCH_RECORD_BUDGET=1 BENCH_ONLY=instructions make bench   # record the budget (scripts/bench/budget.json)
```

The harness refuses to measure (exit status 3) when the one-minute load
average is above `BENCH_MAX_LOAD` (1.5) before the build or, after waiting up
to `BENCH_SETTLE_SECONDS` (180) for it to fall, when the measurements start;
instruction counts alone are not gated. A partial run (`BENCH_ONLY`) writes
into `.run/bench/`, never over this report.
It fetches nginx and wrk as Debian packages into `.tools/bench/` (extracted,
not installed, no service started), builds the release binaries (glibc, and
the static musl edge as the image does), starts everything on 127.0.0.1 on
free ports and stops it afterwards. The scale-out simulation is a command of
its own, `make scale` (see [scale-out.md](scale-out.md)). The fault and abuse
tests, which assert behaviour rather than speed, are part of the test command
(`scripts/check-faults.sh`).
"""
    md = with_scale_section(md, os.path.join(os.path.dirname(a.results), "scale.md"))
    with open(a.markdown, "w", encoding="utf-8") as f:
        f.write(md)
    print(f"wrote {a.markdown}" + (f" and {os.path.basename(a.plot)}" if plotted else " (nothing to plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
