"""Learning curves of the meta-RL comparison (issue 21): the training return of each run
of `bench/meta_compare.py` against its env steps and against its training wall clock, one
line per method and seed, from the runs' own `history.json` (one row per iteration) and
`train.json` (the budget the run got).

    python bench/meta_learning.py runs/meta_compare/FAMILY [--png docs/img/FAMILY_learning.png]
        [--metric return|success] [--last 3]

What "training return" is per method (each trainer's own per-iteration figure; they differ,
so read the curves as each method's progress, the adaptation curves of meta_compare.py as
the comparison):

- pearl, nocontext: `train/return`, the mean return of the iteration's collected episodes
  (PEARL: z drawn from the prior or the posterior, as it collects);
- rl2, varibad: `train/return`, the mean over every episode of the iteration's trials;
- maml: `train/return_post`, the mean return after the inner step (the meta-objective).

The x of the wall-clock panel is each iteration's end: `time/train_min` where the trainer
logs it (pearl, nocontext), else the run's `train_seconds` spread over its iterations in
proportion to their env steps (said in the axis label). `--metric success` plots
`train/success` (insertion, point) where the trainer logs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.mt10_table import save_figure

RUN_DIR = re.compile(r"^(?P<method>[a-z0-9_]+)-s(?P<seed>\d+)$")
RETURN_KEY = {"maml": "train/return_post"}


class LearningError(Exception):
    """A problem reported in one line (exit 2)."""


@dataclass
class Learning:
    """One run's training curve."""

    method: str
    seed: int
    steps: np.ndarray  # env steps at each iteration's end
    minutes: np.ndarray  # training wall clock at each iteration's end
    values: np.ndarray  # the metric at each iteration
    timed: bool  # minutes logged by the trainer (else spread over env steps)

    def final(self, last: int) -> float:
        """The mean of the last `last` iterations' values."""
        return float(np.mean(self.values[-last:]))


def metric_key(method: str, metric: str) -> str:
    """The history key of `metric` for `method`'s trainer."""
    if metric == "success":
        return "train/success"
    return RETURN_KEY.get(method, "train/return")


def load_run(run: Path, metric: str = "return") -> Learning:
    """A `meta_compare.py` run dir (METHOD-sSEED holding history.json and train.json) as a
    learning curve."""
    m = RUN_DIR.match(run.name)
    if m is None:
        raise LearningError(f"{run}: not a METHOD-sSEED run dir of meta_compare.py")
    method, seed = m["method"], int(m["seed"])
    try:
        history = json.loads((run / "history.json").read_text())
        train = json.loads((run / "train.json").read_text())
    except FileNotFoundError as exc:
        raise LearningError(f"{run}: {Path(str(exc.filename)).name} missing") from None
    except json.JSONDecodeError as exc:
        raise LearningError(f"{run}: unreadable JSON ({exc})") from None
    key = metric_key(method, metric)
    rows = [r for r in history if isinstance(r, dict) and key in r]
    if not rows:
        raise LearningError(f"{run}: no iteration logs {key!r} ({method}, --metric {metric})")
    steps = np.array([float(r.get("counters/env_steps", np.nan)) for r in rows])
    if not np.all(np.isfinite(steps)):
        raise LearningError(f"{run}: an iteration without counters/env_steps")
    values = np.array([float(r[key]) for r in rows])
    timed = all("time/train_min" in r for r in rows)
    if timed:
        minutes = np.array([float(r["time/train_min"]) for r in rows])
    else:
        total = float(train.get("train_seconds", train.get("wall_s", np.nan))) / 60.0
        minutes = total * steps / steps[-1] if steps[-1] > 0 else np.full_like(steps, np.nan)
    return Learning(method, seed, steps, minutes, values, timed)


def load_all(root: Path, metric: str) -> list[Learning]:
    """Every trained run under `root` (dirs METHOD-sSEED with a train.json), sorted."""
    if not root.is_dir():
        raise LearningError(f"{root}: no such directory")
    runs = sorted(d for d in root.iterdir() if d.is_dir() and (d / "train.json").is_file())
    if not runs:
        raise LearningError(f"{root}: no trained run (METHOD-sSEED/train.json)")
    return [load_run(d, metric) for d in runs]


def table(curves: Sequence[Learning], metric: str, last: int) -> str:
    """Markdown: per run, iterations, env steps, minutes and the final training metric."""
    lines = [
        f"| method | seed | iterations | env steps | training min | first {metric} "
        f"| last {last} iterations' {metric} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in curves:
        lines.append(
            f"| {c.method} | {c.seed} | {len(c.values)} | {int(c.steps[-1]):,} | "
            f"{c.minutes[-1]:.1f} | {c.values[0]:.2f} | {c.final(last):.2f} |"
        )
    return "\n".join(lines)


def plot(curves: Sequence[Learning], path: Path, title: str, metric: str) -> None:
    """Two panels: the metric against env steps and against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colours: dict[str, str] = {}
    for c in curves:
        colour = colours.setdefault(c.method, f"C{len(colours)}")
        style = "-" if c.seed % 2 == 0 else "--"
        label = f"{c.method} s{c.seed}"
        axes[0].plot(c.steps, c.values, style, color=colour, label=label)
        axes[1].plot(c.minutes, c.values, style, color=colour, label=label)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("env steps (log)")
    spread = any(not c.timed for c in curves)
    axes[1].set_xlabel(
        "training minutes"
        + (" (rl2/varibad/maml: the run's time spread by steps)" if spread else "")
    )
    for ax in axes:
        ax.set_ylabel(f"training {metric}")
        ax.set_title(title)
    axes[1].legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="a meta_compare.py output dir (METHOD-sSEED runs)")
    p.add_argument("--png", type=Path)
    p.add_argument("--metric", choices=("return", "success"), default="return")
    p.add_argument("--last", type=int, default=3, help="iterations averaged for the table")
    args = p.parse_args(argv)
    if args.last < 1:
        p.error(f"--last must be >= 1, got {args.last}")
    try:
        curves = load_all(args.root, args.metric)
    except LearningError as exc:
        print(f"meta_learning: {exc}", file=sys.stderr)
        return 2
    print(table(curves, args.metric, args.last))
    if args.png:
        plot(curves, args.png, args.root.name, args.metric)
        print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
