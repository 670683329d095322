#!/usr/bin/env python3
"""Renders bench/run.sh results (OUT/*.tsv) as a Markdown table (OUT/table.md), an SVG chart
(OUT/chart.svg) that puts our figures beside the peers' from issue 8, and each run's results
against the issue's goals, and the median of each binary's runs against them (OUT/goals.md). Plain text, no network."""
import csv
import glob
import math
import os
import re
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")

# The peers' figures from issue 8 (same machine class, wrk -t2 -c32 -d15s). Ranges use the
# upper end in the chart.
PEERS = [
    ("Flask + gunicorn (UserVault, SQLite)", {"read": 611, "login": 13, "register": 12}, "611 req/s, p99 66 ms", "134 MiB"),
    ("FastAPI full-stack template (PostgreSQL)", {"read": 267, "login": 6, "register": 6}, "222–267 req/s, p99 300 ms", "333 MiB"),
    ("FastAPI seed 003/004 (PostgreSQL)", {"read": 213, "login": 4.8, "register": 4.4}, "197–213 req/s, p99 ~1 s", "230 MiB"),
]

rows, extras = [], []
for path in sorted(glob.glob(os.path.join(out, "*.tsv"))):
    with open(path) as f:
        reader = list(csv.DictReader(f, delimiter="\t"))
    (extras if path.endswith(".extra.tsv") else rows).extend(reader)

labels = []
for r in rows + extras:
    if r["label"] not in labels:
        labels.append(r["label"])

lines = ["| run | backend | scenario | req/s | p50 ms | p99 ms | errors | peak RSS MiB |",
         "|---|---|---|---:|---:|---:|---:|---:|"]
for r in rows:
    lines.append(f"| {r['label']} | {r['backend']} | {r['scenario']} | {float(r['rps']):,.0f} | "
                 f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['peak_rss_mib']} |")
lines += ["", "| run | backend | measure | value |", "|---|---|---|---:|"]
for e in extras:
    lines.append(f"| {e['label']} | {e['backend']} | {e['metric']} | {e['value']} |")
with open(os.path.join(out, "table.md"), "w") as f:
    f.write("\n".join(lines) + "\n")

# Chart: requests per second on a log scale, one group per scenario, ours (every run and
# backend) beside the peers.
def row(label, backend, scenario):
    for r in rows:
        if (r["label"], r["backend"], r["scenario"]) == (label, backend, scenario):
            return r
    return None

def ours(label, backend, scenario):
    r = row(label, backend, scenario)
    return float(r["rps"]) if r else None

series = []
for label in labels:
    for backend in ("sqlite", "postgres"):
        values = {k: ours(label, backend, s) for k, s in (("read", "read_user"), ("login", "login"), ("register", "register"))}
        if any(v for v in values.values()):
            series.append((f"users-api {label} ({backend})", values))
series += [(name, values) for name, values, _, _ in PEERS]

groups = [("read", "authenticated read of one user"), ("login", "login"), ("register", "register")]
palette = ["#1b6ca8", "#4a9fd8", "#0b8457", "#5cc98f", "#7a4ca0", "#b58bd6", "#c0392b", "#e67e22", "#7f8c8d"]
bar_h, gap, left, width = 14, 26, 330, 560
top = 50
height = top + len(groups) * (len(series) * bar_h + gap) + 60
vmax = max([v for _, vals in series for v in vals.values() if v] + [10])
decades = math.ceil(math.log10(vmax))

def x_of(v):
    return left + width * (math.log10(max(v, 1)) / decades)

svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
       'font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="10" y="20" font-size="14" font-weight="bold">users-api vs peers: requests per second '
       '(log scale), wrk -t2 -c32 -d15s, 2 cores, loopback</text>']
for d in range(decades + 1):
    x = left + width * d / decades
    svg.append(f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{height - 50}" stroke="#ddd"/>')
    svg.append(f'<text x="{x:.1f}" y="{height - 36}" text-anchor="middle">{10 ** d:,}</text>')
y = top
for key, title in groups:
    svg.append(f'<text x="10" y="{y + 2}" font-weight="bold">{title}</text>')
    y += 8
    for i, (name, vals) in enumerate(series):
        v = vals.get(key)
        svg.append(f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end">{name}</text>')
        if v:
            svg.append(f'<rect x="{left}" y="{y}" width="{x_of(v) - left:.1f}" height="{bar_h - 2}" '
                       f'fill="{palette[i % len(palette)]}"/>')
            svg.append(f'<text x="{x_of(v) + 4:.1f}" y="{y + bar_h - 3}">{v:,.1f}</text>')
        y += bar_h
    y += gap
svg.append(f'<text x="10" y="{height - 12}" fill="#555">Peers: figures from issue 8. '
           'Ours: bench/run.sh, load generator on the same 2 cores (docs/benchmarks.md gives machine and date).</text>')
svg.append("</svg>")
with open(os.path.join(out, "chart.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")

# Each run against the goals of issue 8, one row per goal and backend: the figures it is judged
# on and whether every one of them passes. Login and register are read against the mean of the
# 5 s hashing rates around them (decision 104); runs from before those rates were recorded fall
# back to the quicker of the two timings (decision 87).
def extra(label, backend, metric):
    for e in extras:
        if (e["label"], e["backend"], e["metric"]) == (label, backend, metric):
            return float(e["value"])
    return None

# A scenario during which the hypervisor took more than this share of the machine (steal, in
# per cent, recorded by bench/run.sh) ran on less machine than the goals are set for: its goals
# are shown, not judged, and left out of the medians (decision 106).
STEAL_LIMIT = 5.0
# Below that limit a goal is judged, and from this share on the steal is shown beside the
# verdict: it comes in bursts that stall both cores, and a few per cent of it can already
# lengthen a p99 several times.
STEAL_NOTED = 1.0

def goals_of(label, backend):
    """(goal, figures, steal) for each goal this run measured on this backend; a figure is
    (name, value, passes), passes a test of the value alone, so that it also applies to a
    median; steal is the most the hypervisor took during the scenarios the goal is judged on,
    None where the run did not record it."""
    found = []
    def judge(goal, figures, scenarios=()):
        figures = [(name, value, ok) for name, value, ok in figures if value is not None]
        steals = [extra(label, backend, f"{s}_steal_pct") for s in scenarios]
        steals = [v for v in steals if v is not None]
        if figures:
            found.append((goal, figures, max(steals) if steals else None))
    at_least = lambda floor: lambda v: v >= floor
    under = lambda limit: lambda v: v < limit
    reads = [(s, row(label, backend, s)) for s in ("read_user", "me")]
    reads = [(s, r) for s, r in reads if r]
    floor = 15000 if backend == "sqlite" else 8000
    read_scenarios = [s for s, _ in reads]
    judge(f"authenticated read ≥ {floor:,} req/s", [(s, float(r["rps"]), at_least(floor)) for s, r in reads],
          read_scenarios)
    judge("read p99 < 5 ms", [(s, float(r["p99_ms"]), under(5)) for s, r in reads], read_scenarios)
    ceiling = row(label, backend, "ceiling")
    if ceiling:
        top = float(ceiling["rps"])
        judge("read ≥ half of the ceiling", [(s + " %", 100 * float(r["rps"]) / top, at_least(50)) for s, r in reads],
              read_scenarios + ["ceiling"])
    for scenario in ("login", "register"):
        share, against = extra(label, backend, f"{scenario}_of_hash_rate_pct"), "of the 5 s rates"
        if share is None:
            share, against = extra(label, backend, f"{scenario}_of_hash_bound_pct"), "of the quicker timing"
        judge(f"{scenario} ≥ 90 % of the hash-bound limit", [(f"{scenario} % {against}", share, at_least(90))],
              [scenario])
    probe = row(label, backend, "healthz_during_login")
    if probe:
        judge("/healthz p99 < 10 ms during a login flood", [("p99 ms", float(probe["p99_ms"]), under(10))],
              ["healthz_login"])
    refresh = row(label, backend, "refresh")
    if refresh:
        judge("refresh ≥ 2,000 req/s", [("refresh", float(refresh["rps"]), at_least(2000))], ["refresh"])
    search = row(label, backend, "search")
    if search and backend == "postgres":
        judge("admin search at 100k users p99 < 50 ms", [("p99 ms", float(search["p99_ms"]), under(50))],
              ["search"])
    judge("memory < 25 MiB at rest", [("MiB", extra(label, backend, "rss_at_rest_mib"), under(25))])
    judge("memory < 64 MiB during the read flood",
          [(s + " MiB", float(r["peak_rss_mib"]), under(64)) for s, r in reads])
    login = row(label, backend, "login")
    if login:
        judge("memory < 128 MiB during the login flood", [("MiB", float(login["peak_rss_mib"]), under(128))])
    if backend == "sqlite":
        judge("cold start to ready < 200 ms", [("ms", extra(label, backend, "cold_start_ms"), under(200))])
    return found

def verdict(run, backend, goal, figures, steal=None):
    text = ", ".join(f"{name} {value:,.0f}" if value >= 100 or value == int(value)
                     else f"{name} {value:.2f}" for name, value, _ in figures)
    if steal is not None and steal > STEAL_LIMIT:
        return f"| {run} | {backend} | {goal} | {text} | not judged: steal {steal:.1f} % |"
    met = "yes" if all(ok(value) for _, value, ok in figures) else "**no**"
    if steal is not None and steal >= STEAL_NOTED:
        met += f" (steal {steal:.1f} %)"
    return f"| {run} | {backend} | {goal} | {text} | {met} |"

# Each run on its own, then, for each binary run more than once, the median of each figure
# over its runs: on a machine whose speed wanders from minute to minute, a single run can fall
# either side of a goal that the service meets on the whole. Runs of one binary are those whose
# labels differ only by a trailing "-<n>" (bench/run.sh's LABEL: 8e95de2, 8e95de2-2, ...).
goal_lines = ["| run | backend | goal | measured | met? |", "|---|---|---|---|---|"]
across = {}
for label in labels:
    binary = re.sub(r"-\d+$", "", label)
    for backend in ("sqlite", "postgres"):
        for goal, figures, steal in goals_of(label, backend):
            goal_lines.append(verdict(label, backend, goal, figures, steal))
            if steal is not None and steal > STEAL_LIMIT:
                continue
            for name, value, ok in figures:
                across.setdefault((binary, backend, goal), {}).setdefault(name, ([], ok))[0].append(value)
for (binary, backend, goal), figures in across.items():
    runs = max(len(values) for values, _ in figures.values())
    if runs > 1:
        medians = [(name, statistics.median(values), ok) for name, (values, ok) in figures.items()]
        goal_lines.append(verdict(f"{binary}: median of {runs} runs", backend, goal, medians))
with open(os.path.join(out, "goals.md"), "w") as f:
    f.write("\n".join(goal_lines) + "\n")
