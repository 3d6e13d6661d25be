"""Print one table of every benchmark result in bench/results (run by `make bench`)."""

from __future__ import annotations

import json

from bench.harness import RESULTS_DIR


def main() -> None:
    rows = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        for fig in data.get("figures", []):
            rows.append((data["benchmark"], fig))
    print(f"\n{'benchmark':14} {'figure':46} {'median':>14} {'unit':10} {'ratio':>7} target")
    for benchmark, fig in rows:
        ratio = "-" if fig.get("ratio") is None else f"{fig['ratio']:.2f}"
        target = fig.get("target_ratio")
        verdict = "-" if target is None else (
            f">={target:.2f} " + ("ok" if fig.get("meets_target") else "MISSED"))
        print(f"{benchmark:14} {fig['name']:46} {fig['median']:>14,.1f} {fig['unit']:10} "
              f"{ratio:>7} {verdict}")


if __name__ == "__main__":
    main()
