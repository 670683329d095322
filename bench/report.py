#!/usr/bin/env python3
"""Renders bench/run.sh results (OUT/*.tsv) as a Markdown table (OUT/table.md) and an SVG chart
(OUT/chart.svg) that puts our figures beside the peers' from issue 8. Plain text, no network."""
import csv
import glob
import math
import os
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
def ours(label, backend, scenario):
    for r in rows:
        if (r["label"], r["backend"], r["scenario"]) == (label, backend, scenario):
            return float(r["rps"])
    return None

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
