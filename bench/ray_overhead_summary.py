"""Median and spread of bench/ray_overhead.py's `RESULT` lines, per setting.

python bench/ray_overhead_summary.py LOG [LOG ...]     # logs of --workers 2 runs
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

import numpy as np

PROBE = re.compile(
    r"^\[\d+\] (.+?) +[\d,]+ steps/s .*driver in (?:conversion \+ )?write_task ([\d.]+) %"
    r"(?:; worker gaps between calls median ([\d.]+) ms.*workers idle ([\d.]+) %)?"
)


WORKERS = 2  # bench/ray_overhead.py's default --workers


def _med(values: list[float]) -> str:
    return f"{np.median(values):.1f}" if values else "-"


def main() -> None:
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                probe = PROBE.match(line)
                if probe and not probe[1].endswith("1 worker"):
                    rows[probe[1]]["driver_pct"].append(float(probe[2]))
                    if probe[3]:
                        rows[probe[1]]["gap_ms"].append(float(probe[3]))
                        rows[probe[1]]["idle_pct"].append(float(probe[4]))
                if not line.startswith("RESULT "):
                    continue
                head, _, rest = line[7:].partition(" rep=")
                if head.endswith("1 worker"):
                    continue
                for cell in ("rep=" + rest).split():
                    key, _, value = cell.partition("=")
                    if key != "rep":
                        rows[head][key].append(float(value))
    print(
        f"{'setting':<22} {'n':>3} {'eff. median':>11} {'min-max':>10} {'non-worker CPU %':>16} "
        f"{'driver busy %':>13} {'gap ms':>6} {'workers idle %':>14} {'load':>5} "
        f"{'steps/s 1 / N, median':>21} {'cores busy':>10} {'CPU/step 1:N':>12}"
    )
    for head, cols in sorted(rows.items()):
        e = cols["eff"]
        # CPU of every process of the fan-out over N cores x wall; efficiency / that = the
        # 1-worker phase's CPU per step over the N-worker phase's
        busy = (np.asarray(cols["other_cpu_pct"]) + np.asarray(cols["worker_cpu_pct"])) / (
            100 * WORKERS
        )
        print(
            f"{head:<22} {len(e):>3} {np.median(e):>11.2f} {min(e):>5.2f}-{max(e):<4.2f} "
            f"{np.median(cols['other_cpu_pct']):>16.1f} {_med(cols['driver_pct']):>13} "
            f"{_med(cols['gap_ms']):>6} {_med(cols['idle_pct']):>14} {np.median(cols['load']):>5.2f} "
            f"{np.median(cols['tp1']):>10,.0f} / {np.median(cols['tp']):<8,.0f} "
            f"{np.median(busy):>10.2f} {np.median(np.asarray(e) / busy):>12.2f}"
        )


if __name__ == "__main__":
    main()
