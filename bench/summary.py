"""Summarise bench/results/*.json: a table on stdout and docs/benchmarks.md (run by `make bench`).

Every figure is a median of repeated runs with its ceiling measured in the same run; the ratio
is what to compare between machines and runs, because these machines are shared and noisy.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _load() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(RESULTS_DIR.glob("*.json"))]


def _verdict(fig: dict[str, Any]) -> str:
    target = fig.get("target_ratio")
    if target is None:
        return "-"
    return f">= {target:.2f}: " + ("met" if fig.get("meets_target") else "MISSED")


def _ratio(fig: dict[str, Any]) -> str:
    return "-" if fig.get("ratio") is None else f"{fig['ratio']:.2f}"


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'benchmark':14} {'figure':46} {'median':>14} {'unit':12} {'ratio':>7} target")
    for data in results:
        for fig in data.get("figures", []):
            print(f"{data['benchmark']:14} {fig['name'][:46]:46} {fig['median']:>14,.1f} "
                  f"{fig['unit'][:12]:12} {_ratio(fig):>7} {_verdict(fig)}")


def write_markdown(results: list[dict[str, Any]]) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Produced by `make bench` (each module: `.venv/bin/python -m bench.bench_<name>`), which",
        "writes `bench/results/<name>.json` and regenerates this page. Figures are medians of",
        "repeated runs; each benchmark measures its own ceiling in the same run (for example raw",
        "PyNaCl verifies/s) and the ratio to it is the figure to compare, because the build",
        "machines are shared 2-core VMs whose absolute speed varies by 2x with other load.",
        "",
        f"Last regenerated: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    for data in results:
        lines += [f"## {data['benchmark']}", "",
                  f"Command: `{data.get('command', '')}` (Python {data.get('python', '?')}, "
                  f"{data.get('cpus', '?')} CPUs, {data.get('repeats', '?')} repeats)", "",
                  "| figure | median | unit | ceiling | ratio | target |",
                  "| --- | ---: | --- | ---: | ---: | --- |"]
        for fig in data.get("figures", []):
            ceiling = ("-" if not fig.get("ceiling_median") else
                       f"{fig['ceiling_median']:,.1f} ({fig.get('ceiling_name') or 'ceiling'})")
            lines.append(f"| {fig['name']} | {fig['median']:,.2f} | {fig['unit']} | {ceiling} "
                         f"| {_ratio(fig)} | {_verdict(fig)} |")
            if fig.get("notes"):
                lines.append(f"| ↳ {fig['notes']} | | | | | |")
        lines.append("")
    DOCS.write_text("\n".join(lines))


def main() -> None:
    results = _load()
    print_table(results)
    if "--no-docs" not in sys.argv:
        write_markdown(results)
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
