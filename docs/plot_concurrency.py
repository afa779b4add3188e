#!/usr/bin/env python3
"""Plots benches/concurrency.rs: throughput against writers, the engine next
to the raw baselines of the same run (64 KiB put_object in ops/s, 8 MiB
upload_part in MB/s), and the engine next to the durable peers (MB/s at 1
and 4 writers, 64 KiB / 1 MiB / 8 MiB values), from the bench's OPS lines.

Give it one or more logs of `cargo bench --bench concurrency` (one per
run): each point is the median of the runs' medians, the bars span the
runs' medians (min..max); with a single log, the bars span its rounds.

    cargo bench --bench concurrency | tee conc1.txt   # ... conc2.txt, conc3.txt
    python3 docs/plot_concurrency.py docs/concurrency.png conc1.txt conc2.txt conc3.txt
    python3 docs/plot_concurrency.py --table conc1.txt conc2.txt conc3.txt   # BENCHMARKS.md's tables

Needs matplotlib (a venv is enough: python3 -m venv target/plot-venv &&
target/plot-venv/bin/pip install matplotlib).
"""
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATIO = re.compile(
    r"^RATIO concurrency(?P<peers>/peers)?/(?P<label>\S+)/vs_(?P<other>\w+): .*; "
    r"ratio (?P<r>[\d.]+) \(min (?P<lo>[\d.]+), max (?P<hi>[\d.]+), (?P<n>\d+) interleaved pairs\)"
)
OPS = re.compile(
    r"^OPS concurrency(?P<peers>/peers)?/(?P<label>\S+) (?P<variant>\w+): "
    r"(?P<ops>[\d.]+) ops/s \((?P<ops_lo>[\d.]+)\.\.(?P<ops_hi>[\d.]+)\), "
    r"(?P<mbs>[\d.]+) MB/s \((?P<mbs_lo>[\d.]+)\.\.(?P<mbs_hi>[\d.]+)\)"
)


def parse(paths):
    """{(group, label, variant): [(median, lo, hi) per run]} for ops/s and MB/s."""
    out = {}
    for path in paths:
        for line in open(path):
            m = OPS.match(line.strip())
            if not m:
                continue
            group = "peers" if m["peers"] else "writers"
            key = (group, m["label"], m["variant"])
            out.setdefault(key, []).append(
                {
                    "ops": (float(m["ops"]), float(m["ops_lo"]), float(m["ops_hi"])),
                    "mbs": (float(m["mbs"]), float(m["mbs_lo"]), float(m["mbs_hi"])),
                }
            )
    return out


def parse_ratios(paths):
    """{(group, label, other): [(ratio, lo, hi) per run]}."""
    out = {}
    for path in paths:
        for line in open(path):
            m = RATIO.match(line.strip())
            if m:
                group = "peers" if m["peers"] else "writers"
                out.setdefault((group, m["label"], m["other"]), []).append(
                    (float(m["r"]), float(m["lo"]), float(m["hi"]))
                )
    return out


def spread(runs, unit):
    """'median (min..max of the runs' medians)'."""
    y, a, b = point(runs, unit)
    fmt = "{:,.0f}" if unit == "ops" else "{:,.0f}"
    return f"{fmt.format(y)} ({fmt.format(a)}..{fmt.format(b)})"


def ratio_cell(runs):
    """'median of the runs' ratios (min..max of the runs' ratios; pairs min..max)'."""
    if not runs:
        return "-"
    rs = [r for r, _, _ in runs]
    lo = min(l for _, l, _ in runs)
    hi = max(h for _, _, h in runs)
    return f"**{statistics.median(rs):.2f}** ({min(rs):.2f}..{max(rs):.2f}; pairs {lo:.2f}..{hi:.2f})"


def tables(logs):
    data, ratios = parse(logs), parse_ratios(logs)
    for kind, unit, title in [("put_64KiB", "ops", "64 KiB put_object, ops/s"),
                              ("part_8MiB", "mbs", "8 MiB upload_part, MB/s")]:
        print(f"\n{title}: median of the runs' medians (min..max of the runs' medians)\n")
        print("| writers | partstore | raw, growing file | raw, pre-written file | raw + group commit | engine / raw growing | engine / raw pre-written | N writers / 1 writer (engine) | engine / raw + group commit |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n in (1, 2, 4, 8):
            label = f"{kind}/{n}w"
            cells = [spread(data[("writers", label, v)], unit) if ("writers", label, v) in data else "-"
                     for v in ("engine", "raw_growing", "raw_prewritten", "raw_group_commit")]
            rs = [ratio_cell(ratios.get(("writers", label, o)))
                  for o in ("raw_growing", "raw_prewritten", "engine_1w", "raw_group_commit")]
            if n == 1:
                rs[2] = "1"
            print(f"| {n} | " + " | ".join(cells + rs) + " |")
    print("\npeers, MB/s: median of the runs' medians (min..max of the runs' medians); ratio partstore / peer\n")
    print("| value | writers | partstore | redb | fjall | object_store | / redb | / fjall | / object_store |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in ("64KiB", "1MiB", "8MiB"):
        for n in (1, 4):
            label = f"{size}/{n}w"
            cells = [spread(data[("peers", label, v)], "mbs") if ("peers", label, v) in data else "-"
                     for v in ("partstore", "redb", "fjall", "object_store")]
            rs = [ratio_cell(ratios.get(("peers", label, o))) for o in ("redb", "fjall", "object_store")]
            print(f"| {size} | {n} | " + " | ".join(cells + rs) + " |")


def point(runs, unit):
    """Median over runs, and the bar: min..max of the runs' medians (or of
    the single run's rounds)."""
    meds = [r[unit][0] for r in runs]
    if len(runs) == 1:
        return meds[0], runs[0][unit][1], runs[0][unit][2]
    return statistics.median(meds), min(meds), max(meds)


def writers_panel(ax, data, kind, unit, ylabel, title):
    styles = [
        ("engine", "partstore", dict(color="tab:blue", marker="o")),
        ("raw_growing", "raw write_all_at + fdatasync, growing file", dict(color="k", ls="--", marker="s")),
        ("raw_prewritten", "raw, pre-written file (the floor)", dict(color="tab:gray", ls=":", marker="^")),
        ("raw_group_commit", "raw + the engine's group commit (one fdatasync in flight)",
         dict(color="tab:purple", ls="-.", marker="x")),
        ("engine_1w", "partstore, 1 writer, in the same rounds as the N-writer point",
         dict(color="tab:blue", ls="none", marker="o", mfc="none")),
    ]
    for variant, name, style in styles:
        xs, ys, lo, hi = [], [], [], []
        for n in (1, 2, 4, 8):
            runs = data.get(("writers", f"{kind}/{n}w", variant))
            if not runs:
                continue
            y, a, b = point(runs, unit)
            xs.append(n)
            ys.append(y)
            lo.append(y - a)
            hi.append(b - y)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], capsize=3, label=name, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8])
    ax.set_xticklabels(["1", "2", "4", "8"])
    ax.set_xlabel("writers (threads)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def peers_panel(ax, data):
    stores = [
        ("partstore", "tab:blue"),
        ("redb", "tab:orange"),
        ("fjall", "tab:green"),
        ("object_store", "tab:red"),
    ]
    groups = [(s, n) for s in ("64KiB", "1MiB", "8MiB") for n in (1, 4)]
    width = 0.2
    for k, (store, color) in enumerate(stores):
        xs, ys, lo, hi = [], [], [], []
        for g, (size, n) in enumerate(groups):
            runs = data.get(("peers", f"{size}/{n}w", store))
            if not runs:
                continue
            y, a, b = point(runs, "mbs")
            xs.append(g + (k - 1.5) * width)
            ys.append(y)
            lo.append(y - a)
            hi.append(b - y)
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, color=color, label=store)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{s}\n{n} writer{'s' if n > 1 else ''}" for s, n in groups], fontsize=8)
    ax.set_ylabel("MB/s (median; bars: spread)")
    ax.set_title("durable writes: partstore put_object vs peers, same run", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)


def main():
    if sys.argv[1] == "--table":
        tables(sys.argv[2:])
        return
    png, logs = sys.argv[1], sys.argv[2:]
    data = parse(logs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), dpi=110)
    writers_panel(axes[0], data, "put_64KiB", "ops", "ops/s (median; bars: spread)",
                  "put_object of 64 KiB, Durability::Sync")
    writers_panel(axes[1], data, "part_8MiB", "mbs", "MB/s (median; bars: spread)",
                  "upload_part of 8 MiB (one upload per writer), Durability::Sync")
    peers_panel(axes[2], data)
    runs = max((len(v) for v in data.values()), default=0)
    fig.suptitle(
        f"partstore with many writers vs its baselines and peers ({runs} runs; each point's variants interleaved "
        "round by round; points minutes apart, so compare within a point)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
