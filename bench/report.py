"""Render a pytest-benchmark JSON as a table and a bar chart, every entry as a ratio to ONNX Runtime fp32.

    python bench/report.py results.json [--out results]   # writes results.md and results.png, says where

Ratios (entry min / baseline min in the same group and run) are the numbers to quote: on a shared
machine, interference only ever adds time, so the minimum is the least noisy estimate. The baseline
is ONNX Runtime fp32 in end-to-end groups and the PyTorch op ("torch") in per-kernel groups.
Absolute times are only meaningful with the machine named, which the header does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BASELINES = ("onnxruntime", "torch")  # the first entry name present in a group is its baseline


def load_rows(data: dict) -> list[dict]:
    """One row per benchmark: group, entry, precision, median/min in ms, extra_info."""
    rows = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        rows.append({"group": bench["group"] or "", "entry": info.get("entry", bench["name"]),
                     "precision": info.get("precision", ""), "median_ms": bench["stats"]["median"] * 1e3,
                     "min_ms": bench["stats"]["min"] * 1e3, "info": info})
    return rows


def with_ratios(rows: list[dict]) -> list[dict]:
    """Adds ``baseline`` (the group's first entry named in BASELINES) and ``ratio`` (min / its min)."""
    base = {}
    for name in reversed(BASELINES):
        base.update({r["group"]: r for r in rows if r["entry"] == name})
    return [{**r, "ratio": r["min_ms"] / base[r["group"]]["min_ms"] if r["group"] in base else None,
             "baseline": base[r["group"]]["entry"] if r["group"] in base else None} for r in rows]


def header(data: dict, rows: list[dict]) -> list[str]:
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    stats = next((r["info"] for r in rows if "params_folded" in r["info"]), {})
    versions = data.get("versions", {})
    lines = [f"- machine: {cpu.get('brand_raw', machine.get('processor', '?'))}, "
             f"{cpu.get('count', '?')} logical cores, {machine.get('system', '')} {machine.get('release', '')}",
             f"- python {machine.get('python_version', '?')}; run {data.get('datetime', '?')}"]
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    if stats:
        lines.append(f"- model: {stats.get('weights')} weights, {stats['params_folded'] / 1e6:.2f} M folded params "
                     f"({stats['params_multibranch'] / 1e6:.2f} M multi-branch), "
                     f"{stats.get('gflop_512')} GFLOP per 512x512 image")
    return lines


def markdown(data: dict, rows: list[dict]) -> str:
    out = ["# alnet_fast benchmark", ""] + header(data, rows) + [""]
    for group in dict.fromkeys(r["group"] for r in rows):
        baseline = next((r["baseline"] for r in rows if r["group"] == group and r["baseline"]), None)
        out += [f"## {group}", "", f"| entry | precision | median ms | min ms | min ratio to {baseline or '-'} | check |",
                "|---|---|---:|---:|---:|---|"]
        for r in sorted((r for r in rows if r["group"] == group), key=lambda r: r["min_ms"]):
            info = r["info"]
            check = (f"max diff {info['max_abs_diff']:.1e}" if "max_abs_diff" in info
                     else f"Dice {info['mask_dice']:.4f}" if "mask_dice" in info
                     else f"load->mask {info['load_to_mask_s']:.2f} s" if "load_to_mask_s" in info else "")
            ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
            out.append(f"| {r['entry']} | {r['precision']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {ratio} "
                       f"| {check} |")
        out.append("")
    return "\n".join(out)


def bar_chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in dict.fromkeys(r["group"] for r in rows)
              if any(r["ratio"] for r in rows if r["group"] == g and r["baseline"] == BASELINES[0])]
    plotted = sum(1 for r in rows if r["group"] in groups and r["ratio"])
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 0.8 * len(groups) + 0.25 * plotted), squeeze=False)
    for ax, group in zip(axes[:, 0], groups):
        sub = sorted((r for r in rows if r["group"] == group and r["ratio"]), key=lambda r: r["ratio"])
        labels = [f"{r['entry']} {r['precision']}" for r in sub]
        colors = ["tab:green" if r["entry"].startswith("alnet_fast") else "tab:gray" for r in sub]
        ax.barh(labels, [r["ratio"] for r in sub], color=colors)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(f"{group}: min latency / ONNX Runtime fp32 min latency (lower is faster)", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", type=Path, default=None, help="output stem (default: beside the JSON)")
    args = parser.parse_args(argv)
    data = json.loads(args.results.read_text())
    rows = with_ratios(load_rows(data))
    stem = args.out or args.results.with_suffix("")
    table, chart = Path(f"{stem}.md"), Path(f"{stem}.png")
    table.write_text(markdown(data, rows))
    bar_chart(rows, chart)
    print(table.read_text())
    print(f"wrote {table} (median and min ms; ratios are of minima) and {chart} (ratios of minima)")


if __name__ == "__main__":
    main()
