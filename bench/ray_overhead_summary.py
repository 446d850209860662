"""Median and spread of bench/ray_overhead.py's `RESULT` lines, per setting.

python bench/ray_overhead_summary.py LOG [LOG ...]
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np


def main() -> None:
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                if not line.startswith("RESULT "):
                    continue
                head, _, rest = line[7:].partition(" rep=")
                if head == "1 worker":
                    continue
                for cell in ("rep=" + rest).split():
                    key, _, value = cell.partition("=")
                    if key != "rep":
                        rows[head][key].append(float(value))
    print(
        f"{'setting':<20} {'n':>3} {'efficiency median':>18} {'min-max':>12} "
        f"{'other CPU % median':>19} {'load median':>12}"
    )
    for head, cols in sorted(rows.items()):
        e = cols["eff"]
        print(
            f"{head:<20} {len(e):>3} {np.median(e):>18.2f} {min(e):>5.2f}-{max(e):<6.2f} "
            f"{np.median(cols['other_cpu_pct']):>19.1f} {np.median(cols['load']):>12.2f}"
        )


if __name__ == "__main__":
    main()
