#!/usr/bin/env python3
"""Print bench/run's figures as a table: `report.py RESULTS.tsv CORES CPU`.

RESULTS.tsv rows: kind, label, n, wall seconds, peak RSS KB, send-phase seconds (one per run).
Medians over runs; peak RSS is the largest of the runs.
"""
import statistics
import sys
from collections import OrderedDict

rows = OrderedDict()
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        kind, label, n, wall, rss, phase = line.rstrip("\n").split("\t")
        r = rows.setdefault((kind, label), {"n": int(n), "wall": [], "rss": [], "phase": []})
        r["wall"].append(float(wall))
        r["rss"].append(int(rss or 0))
        r["phase"].append(float(phase))


def med(xs):
    return statistics.median(xs)


def rate(n, s):
    return n / s if s > 0 else 0.0


def fmt_rate(x, unit):
    return f"{x:,.0f} {unit}"


out = []
out.append(f"announce benchmark: {sys.argv[3]}, {sys.argv[2]} cores; medians of {max(len(r['wall']) for r in rows.values())} runs")
out.append("")
header = ("what", "announce", "send phase", "peak RSS", "reference", "ratio", "target", "met")
table = []
for (kind, label), r in rows.items():
    if kind in ("smtp-source", "floor"):
        continue
    n, wall, phase, rss = r["n"], med(r["wall"]), med(r["phase"]), max(r["rss"]) / 1024
    if kind == "email":
        ours = rate(n, wall)
        ref = rows.get(("smtp-source", label))
        ref_rate = rate(n, med(ref["wall"])) if ref else 0.0
        ratio = ours / ref_rate if ref_rate else 0.0
        ok = ratio >= 0.8
        table.append((label + " msgs", fmt_rate(ours, "msg/s"), fmt_rate(rate(n, phase), "msg/s"), f"{rss:,.0f} MB",
                      fmt_rate(ref_rate, "msg/s") + " smtp-source", f"{ratio:.0%}", ">= 80% of smtp-source", "yes" if ok else "NO"))
    elif kind == "http":
        ours = rate(n, wall)
        ok = ours >= 5000
        table.append((label + " requests", fmt_rate(ours, "req/s"), fmt_rate(rate(n, phase), "req/s"), f"{rss:,.0f} MB",
                      "", "", ">= 5,000 req/s", "yes" if ok else "NO"))
    elif kind == "plan":
        full = n >= 1_000_000
        floor = rows.get(("floor", label))
        if floor:
            # email + SMS: against the sqlite3 floor of the same run (issue 19)
            f = med(floor["wall"])
            ratio = wall / f if f else 0.0
            ok = ratio <= 2 and rss < 150
            table.append((label, f"{wall:.2f} s", "", f"{rss:,.0f} MB", f"{f:.2f} s sqlite3 import x2", f"{ratio:.1f}x",
                          "<= 2x the floor, < 150 MB" if full else "(1M: <= 2x the floor, < 150 MB)",
                          ("yes" if ok else "NO") if full else f"({'yes' if ok else 'no'})"))
        else:
            ok = wall < 10 and rss < 200
            table.append((label, f"{wall:.2f} s", "", f"{rss:,.0f} MB", "", "", "< 10 s, < 200 MB" if full else "(1M: < 10 s, < 200 MB)",
                          ("yes" if ok else "NO") if full else "-"))
    elif kind == "first":
        ok = wall < 0.015
        table.append((label, f"{wall * 1000:.1f} ms", "", "", "", "", "< 15 ms", "yes" if ok else "NO"))
    elif kind == "preview":
        ok = wall < 0.020
        table.append((label, f"{wall * 1000:.1f} ms", "", f"{rss:,.0f} MB", "", "", "< 20 ms", "yes" if ok else "NO"))

widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
out.append(line(header))
out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for t in table:
    out.append(line(t))
print("\n".join(out))
