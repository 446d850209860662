"""`zshot sweep CONFIG --seeds 0,1,2 --set key=v1,v2 ...`: seed and hyper-parameter sweeps.

The trials are the product of the seeds and of every `--set`'s values (commas outside
brackets separate values: `--set 'train_plugs=[a,b],[c]'` is two values). Each trial is
`zshot train CONFIG --set seed=S --set key=v ...` into its own run dir under `--out`
(`t03-seed1-sac.lr=0.001`); all trials' configs are checked before any runs (a bad key or
value: one line, exit 2).

Ray core, not Ray Tune: a trial is one whole training run, so the sweep needs a pool of
workers and a table, not Tune's schedulers and its own result directories; the trials run
through training/common/parallel.py's `run_ordered` (1 worker: one after another in this
process, without Ray; N: N Ray actors, local or `--ray-address`/`RAY_ADDRESS`). A trial that
raises, or whose worker dies twice, is a `failed` row with its reason; the others finish.
`--out` gets sweep.json (every row), summary.md (the table) and summary.png.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.common.parallel import add_workers_arguments, run_ordered, workers_error
from training.config import TrainConfig
from training.registry import make_trainer
from zshot.config import ConfigError, add_set_argument, load_config
from zshot.jsonio import write_json


def split_values(text: str) -> list[str]:
    """`a,[b,c],d` -> ['a', '[b,c]', 'd']: commas inside brackets or braces stay."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_grid(sets: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`--set key=v1,v2` entries -> [(key, [v1, v2])]; ValueError naming a bad one."""
    grid = []
    for item in sets:
        key, sep, values = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected KEY=V1,V2,...")
        vals = split_values(values)
        if any(v == "" for v in vals):
            raise ValueError(f"--set {item!r}: an empty value")
        grid.append((key.strip(), vals))
    return grid


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; ValueError naming a bad entry."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected integers separated by commas") from None


def trials(seeds: Sequence[int], grid: Sequence[tuple[str, list[str]]]) -> list[list[str]]:
    """Every trial's `--set` overrides: seed first, then one value per grid key."""
    keys = [k for k, _ in grid]
    out = []
    for seed, values in itertools.product(seeds, itertools.product(*[v for _, v in grid])):
        out.append([f"seed={seed}", *(f"{k}={v}" for k, v in zip(keys, values, strict=True))])
    return out


def trial_name(index: int, overrides: Sequence[str]) -> str:
    """The run dir's name: t03-seed1-sac.lr=0.001 (unsafe characters as _)."""
    text = "-".join(o.replace("seed=", "seed", 1) for o in overrides)
    return f"t{index:02d}-" + re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)[:120]


class TrialWorker:
    """A sweep worker: `run(i)` trains trial i into its run dir, returns its table row
    (failed with the reason when the training raises)."""

    def __init__(self, config: str, overrides: list[list[str]], out: str) -> None:
        self.config, self.overrides, self.out = config, overrides, Path(out)

    def run(self, i: int) -> dict[str, Any]:
        """Train trial i; its row."""
        sets = self.overrides[i]
        run_dir = self.out / trial_name(i, sets)
        row: dict[str, Any] = {"trial": i, "overrides": sets, "run_dir": str(run_dir)}
        t0 = time.perf_counter()
        try:
            # one process per trial: a trial's own rollout workers would wait for CPUs the
            # sweep's workers hold (the run is the same with any `workers`)
            cfg = load_config(TrainConfig, self.config, [*sets, "workers=1"])
            report = make_trainer(cfg, run_dir).run(progress=False)
        except Exception as exc:  # a failed trial is a row; the sweep goes on
            (run_dir / "error.txt").parent.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
            return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        row.update(status="ok", seconds=time.perf_counter() - t0)
        if report is not None:
            row.update(success_rate=report.success_rate, mean_return=report.mean_return)
        return row


def lost_trial(i: int, reason: str) -> dict[str, Any]:
    """The row of a trial whose worker died every time it ran."""
    return {"trial": i, "status": "failed", "error": f"worker lost: {reason}"}


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table: trial, overrides, status, success, return, seconds or the error."""
    lines = [
        "| trial | overrides | status | success | return | seconds / error |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = r["status"] == "ok"
        succ = f"{r['success_rate']:.2f}" if ok and "success_rate" in r else "-"
        ret = f"{r['mean_return']:.2f}" if ok and "mean_return" in r else "-"
        last = f"{r['seconds']:.1f}" if ok else str(r.get("error", "")).replace("|", "/")
        sets = " ".join(r.get("overrides", []))
        lines.append(f"| {r['trial']} | {sets} | {r['status']} | {succ} | {ret} | {last} |")
    return "\n".join(lines)


def summary_plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Bars of each trial's final mean return (failed trials as a red x at 0)."""
    import matplotlib  # lazy: plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 3.5))
    for r in rows:
        if r["status"] == "ok" and "mean_return" in r:
            ax.bar(r["trial"], r["mean_return"], color="tab:blue")
        else:
            ax.plot(r["trial"], 0.0, "x", color="tab:red", markersize=10)
    ax.set_xticks([r["trial"] for r in rows])
    ax.set_xlabel("trial (sweep.json / summary.md)")
    ax.set_ylabel("final eval mean return")
    ax.set_title("zshot sweep (x: failed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep(
    config: str,
    seeds: Sequence[int],
    sets: Sequence[str],
    out: str | Path,
    *,
    workers: int = 1,
    ray_address: str | None = None,
) -> list[dict[str, Any]]:
    """Run every trial (module doc); write sweep.json, summary.md, summary.png; the rows."""
    out = Path(out)
    overrides = trials(seeds, parse_grid(sets))
    for o in overrides:  # every config checked before anything runs
        load_config(TrainConfig, config, o)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        row
        for _, row in run_ordered(
            TrialWorker,
            (config, overrides, str(out)),
            "run",
            len(overrides),
            workers=workers,
            ray_address=ray_address,
            max_attempts=2,
            lost=lost_trial,
        )
    ]
    for r in rows:
        r.setdefault("overrides", overrides[r["trial"]])
    write_json(out / "sweep.json", {"config": config, "trials": rows}, indent=1)
    (out / "summary.md").write_text(summary_table(rows) + "\n")
    summary_plot(rows, out / "summary.png")
    return rows


def main(argv: Sequence[str]) -> int:
    """`zshot sweep CONFIG --seeds 0,1 [--set KEY=V1,V2 ...] --out DIR [--workers N]`."""
    p = argparse.ArgumentParser(
        prog="zshot sweep",
        description="Train every combination of --seeds and the --set values, one run dir "
        "per trial under --out, and a summary table (summary.md, summary.png, sweep.json).",
    )
    p.add_argument("config", help="YAML under configs/train/")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    add_set_argument(
        p, help="KEY=V1,V2,...: one trial per value (commas inside [] stay); repeatable"
    )
    p.add_argument("--out", required=True, help="sweep directory (one run dir per trial)")
    add_workers_arguments(p)
    args = p.parse_args(list(argv))
    if (err := workers_error(args.workers)) is not None:
        print(f"zshot sweep: {err}", file=sys.stderr)
        return 2
    try:
        rows = sweep(
            args.config,
            parse_seeds(args.seeds),
            args.overrides,
            args.out,
            workers=args.workers,
            ray_address=args.ray_address,
        )
    except (ValueError, ConfigError, FileNotFoundError) as exc:
        print(f"zshot sweep: {exc}", file=sys.stderr)
        return 2
    print(summary_table(rows))
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"wrote {args.out}/summary.md, summary.png, sweep.json ({failed} failed)")
    return 1 if failed else 0
