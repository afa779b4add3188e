#!/usr/bin/env python3
"""Plots ingest throughput vs part size, per digest, next to the baselines
measured in the same run, from criterion's output (engine medians and the
spread of its samples) and the RATIO lines the bench prints (the baselines
of the interleaved pairs).

    PARTSTORE_BENCH_SWEEP=1 PARTSTORE_BENCH_MIB=256 cargo bench --bench ingest | tee sweep.txt
    python3 docs/plot_ingest.py target/criterion sweep.txt docs/ingest.png

Needs matplotlib (a venv is enough: python3 -m venv /tmp/v && /tmp/v/bin/pip install matplotlib).
"""
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARTS = [5, 8, 16, 32, 64, 96]
ALGS = [("crc32c", "CRC32C only"), ("sha256", "SHA-256"), ("sha1", "SHA-1"), ("md5", "MD5")]


def engine(crit, alg, part):
    d = os.path.join(crit, "ingest", f"{alg}_{part}MiB_sync", "new")
    try:
        est = json.load(open(os.path.join(d, "estimates.json")))
        bench = json.load(open(os.path.join(d, "benchmark.json")))
        sample = json.load(open(os.path.join(d, "sample.json")))
    except OSError:
        return None
    nbytes = bench["throughput"]["Bytes"]
    per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
    med = est["median"]["point_estimate"]
    # criterion's times are in ns: bytes per ns is GB/s.
    return nbytes / med, nbytes / max(per_iter), nbytes / min(per_iter)


def baselines(log):
    out = {}
    pat = re.compile(
        r"^RATIO ingest/(\w+)/(\d+)MiB/sync: engine [\d.]+ GB/s \(.*?\), (.+) ([\d.]+) GB/s; ratio ([\d.]+)"
    )
    for line in open(log):
        m = pat.match(line.strip())
        if m:
            alg, part, name, rate, ratio = m.groups()
            out[(alg, int(part))] = (name, float(rate), float(ratio))
    return out


def main():
    crit, log, png = sys.argv[1:4]
    base = baselines(log)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colors = {"crc32c": "tab:blue", "sha256": "tab:orange", "sha1": "tab:green", "md5": "tab:red"}
    for alg, label in ALGS:
        xs, ys, lo, hi = [], [], [], []
        for p in PARTS:
            e = engine(crit, alg, p)
            if e:
                xs.append(p)
                ys.append(e[0])
                lo.append(e[0] - e[1])
                hi.append(e[2] - e[0])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=colors[alg],
                        label=f"engine, {label}")
    for alg, style, label in [
        ("crc32c", "k--", "raw append + fdatasync per part"),
        ("sha256", ":", "SHA-256 serial bound (hash, then raw append)"),
        ("md5", ":", "bare MD5"),
    ]:
        pts = sorted((p, v[1]) for (a, p), v in base.items() if a == alg)
        if pts:
            kw = {"color": colors[alg]} if style == ":" else {}
            ax.plot([p for p, _ in pts], [v for _, v in pts], style, label=label, **kw)
    ax.set_xlabel("part size (MiB)")
    ax.set_ylabel("ingest throughput (GB/s, median; bars: min..max sample)")
    ax.set_title("partstore ingest vs baselines from the same run (Durability::Sync, 256 MiB per sample)", fontsize=10)
    ax.set_xticks(PARTS)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
