"""Shared benchmark harness: repeat a measurement, report the median, compare with a ceiling.

Every benchmark measures its own ceiling in the same run (for example raw PyNaCl verifies/s)
because these machines are shared and noisy: ratios are comparable across runs, absolute
figures are not. Each benchmark module writes one JSON file under ``bench/results/``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


@dataclass
class Figure:
    """One measured figure: the median of several repeats, with its spread."""

    name: str
    unit: str
    median: float
    samples: list[float]
    ceiling_name: str | None = None
    ceiling_median: float | None = None
    target_ratio: float | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.ceiling_median:
            return None
        return self.median / self.ceiling_median

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["meets_target"] = (
            None if self.target_ratio is None or self.ratio is None
            else self.ratio >= self.target_ratio
        )
        return data


def ops_per_second(operation: Callable[[], object], *, iterations: int) -> float:
    """Run ``operation`` ``iterations`` times and return operations per second."""
    start = time.perf_counter()
    for _ in range(iterations):
        operation()
    elapsed = time.perf_counter() - start
    return iterations / elapsed


def repeated(measure: Callable[[], float], repeats: int = REPEATS) -> list[float]:
    """Call ``measure`` ``repeats`` times (after one warm-up) and return the samples."""
    measure()
    return [measure() for _ in range(repeats)]


def figure(name: str, unit: str, samples: list[float], **extra: object) -> Figure:
    return Figure(name=name, unit=unit, median=statistics.median(samples), samples=samples,
                  **extra)  # type: ignore[arg-type]


@dataclass
class Report:
    """Collects the figures of one benchmark module and writes them as JSON."""

    benchmark: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.benchmark}.json"
        payload = {
            "benchmark": self.benchmark,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "repeats": REPEATS,
            "recorded_at_unix": int(time.time()),
            "figures": [f.as_dict() for f in self.figures],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        self.print_table()
        return path

    def print_table(self) -> None:
        print(f"\n== {self.benchmark} ==")
        print(f"{'figure':44} {'median':>14} {'unit':10} {'ceiling':>14} {'ratio':>7} target")
        for fig in self.figures:
            ceiling = f"{fig.ceiling_median:,.0f}" if fig.ceiling_median else "-"
            ratio = f"{fig.ratio:.2f}" if fig.ratio is not None else "-"
            target = "-" if fig.target_ratio is None else (
                f">={fig.target_ratio:.2f} " + ("ok" if (fig.ratio or 0) >= fig.target_ratio
                                                 else "MISSED"))
            print(f"{fig.name:44} {fig.median:>14,.1f} {fig.unit:10} {ceiling:>14} {ratio:>7} "
                  f"{target}")
