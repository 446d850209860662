"""The Meta-World MT10 table (issue 20, benchmark 1) from the run dirs, in one command.

Each run dir `mt10_<method>-s<seed>` (configs/train/mt10_<method>.yaml) holds the
`zshot eval` report of its exported artifact (`zeval.json`, the `--json` path BENCHMARKS.md
gives), its `history.json` (env steps and updates at the end) and `config.yaml` (the
wall-clock budget `max_minutes`). Prints Markdown: per MT10 task the successes / episodes of
each method, pooled over its seeds; the mean over the 10 tasks of the per-task success rate
(pooled, and per seed); then per method its budget, env steps, updates, the collection episodes'
return at the first iteration (the untrained policy) and the last, and the eval's mean
episode return per run beside Yu et al. 2019's MT50 success figure where the paper has one. `--png` draws the per-method
mean (bars: pooled; dots: seeds; crosses: the paper's MT50 figures).

    python bench/mt10_table.py runs                       # every runs/mt10_*-s*
    python bench/mt10_table.py runs --png docs/img/mt10_success.png

A run dir without its `zeval.json` or `history.json` is an error (exit 2): a table that
silently left a run out would misreport the seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

METHODS: dict[str, str] = {
    "mtsac": "MT-SAC (one-hot)",
    "embedding": "MT-SAC, task embeddings",
    "multihead": "multi-head SAC",
    "pcgrad": "MT-SAC + PCGrad",
    "mtppo": "MT-PPO",
    "distral": "Distral (shared policy)",
}
"""Method key (the config's stem after `mt10_`) -> its name in the table, in table order."""

PAPER_MT50: dict[str, float] = {
    "mtppo": 8.98,
    "embedding": 15.31,
    "mtsac": 28.83,
    "multihead": 35.85,
}
"""Yu et al. 2019 (Meta-World, arXiv 1910.10897), MT50 success rates in %; MT-TRPO's
22.86 % has no run here, PCGrad and Distral have no entry in that table."""

T = TypeVar("T")

RUN_DIR = re.compile(r"^mt10_(?P<method>[a-z0-9]+)-s(?P<seed>\d+)$")
REPORT = "zeval.json"


class TableError(Exception):
    """A run dir or report the table cannot use (the message names it)."""


@dataclass
class Run:
    """One run dir's figures."""

    method: str
    seed: int
    tasks: dict[str, tuple[int, int]]  # label -> (successes, episodes), in report order
    env_steps: int
    updates: int
    max_minutes: float | None
    mean_return: float  # the report's, over every episode
    train_returns: tuple[float, float] | None  # train/return at the first and last iteration

    @property
    def mean_success(self) -> float:
        """The mean over tasks of this run's per-task success rate."""
        return sum(s / e for s, e in self.tasks.values()) / len(self.tasks)


@dataclass
class Method:
    """A method's runs, pooled."""

    key: str
    runs: list[Run] = field(default_factory=list)

    def pooled(self, label: str) -> tuple[int, int]:
        """Successes and episodes of task `label` over the seeds."""
        cells = [r.tasks[label] for r in self.runs if label in r.tasks]
        return sum(c[0] for c in cells), sum(c[1] for c in cells)

    def mean_success(self, labels: Sequence[str]) -> float:
        """The mean over `labels` of the pooled per-task success rate."""
        rates = [s / e for s, e in (self.pooled(lab) for lab in labels) if e]
        return sum(rates) / len(rates) if rates else 0.0


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(f"{path}: missing (run `zshot eval ... --json {path}`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: not readable JSON ({exc})") from None


def load_run(run_dir: Path) -> Run:
    """One run dir (module docstring); TableError naming what is missing or wrong."""
    m = RUN_DIR.match(run_dir.name)
    if m is None:
        raise TableError(f"{run_dir}: not an mt10_<method>-s<seed> run dir")
    report = _load_json(run_dir / REPORT)
    try:
        tasks = {
            str(t["label"]): (int(t["successes"]), int(t["episodes"])) for t in report["tasks"]
        }
    except (KeyError, TypeError, ValueError):
        raise TableError(f"{run_dir / REPORT}: not a `zshot eval` report (tasks rows)") from None
    if not tasks or any(e <= 0 for _, e in tasks.values()):
        raise TableError(f"{run_dir / REPORT}: no task with episodes")
    try:
        mean_return = float(report["mean_return"])
    except (KeyError, TypeError, ValueError):
        raise TableError(f"{run_dir / REPORT}: no mean_return") from None
    history = _load_json(run_dir / "history.json")
    if not isinstance(history, list) or not history or not isinstance(history[-1], dict):
        raise TableError(f"{run_dir / 'history.json'}: no iteration recorded")
    last = history[-1]
    first_ret, last_ret = history[0].get("train/return"), last.get("train/return")
    train_returns = None
    if isinstance(first_ret, int | float) and isinstance(last_ret, int | float):
        train_returns = (float(first_ret), float(last_ret))
    max_minutes = None
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        max_minutes = cfg.get("max_minutes")
    return Run(
        method=m["method"],
        seed=int(m["seed"]),
        tasks=tasks,
        env_steps=int(last.get("counters/env_steps", 0)),
        updates=int(last.get("counters/updates", 0)),
        max_minutes=max_minutes,
        mean_return=mean_return,
        train_returns=train_returns,
    )


def collect(root: Path) -> list[Method]:
    """Every `mt10_*-s*` run dir under `root`, grouped by method (METHODS' order first)."""
    if not root.is_dir():
        raise TableError(f"{root}: not a directory")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and RUN_DIR.match(p.name))
    if not dirs:
        raise TableError(f"{root}: no mt10_<method>-s<seed> run dirs")
    methods: dict[str, Method] = {}
    for d in dirs:
        run = load_run(d)
        methods.setdefault(run.method, Method(run.method)).runs.append(run)
    order = [k for k in METHODS if k in methods] + sorted(set(methods) - set(METHODS))
    for meth in methods.values():
        meth.runs.sort(key=lambda r: r.seed)
    return [methods[k] for k in order]


def _labels(methods: Sequence[Method]) -> list[str]:
    """The task labels in the first report's order, then any others."""
    out: list[str] = []
    for meth in methods:
        for run in meth.runs:
            out += [lab for lab in run.tasks if lab not in out]
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(methods: Sequence[Method]) -> str:
    """The two tables (module docstring)."""
    labels = _labels(methods)
    names = [METHODS.get(m.key, m.key) for m in methods]
    lines = ["| MT10 task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(methods)]
    for lab in labels:
        cells = []
        for meth in methods:
            s, e = meth.pooled(lab)
            cells.append(f"{s}/{e}" if e else "-")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    means = [f"**{_pct(m.mean_success(labels))}**" for m in methods]
    lines.append("| mean over tasks | " + " | ".join(means) + " |")
    per_seed = [", ".join(f"s{r.seed} {_pct(r.mean_success)}" for r in m.runs) for m in methods]
    lines.append("| mean, per seed | " + " | ".join(per_seed) + " |")
    lines += [
        "",
        "| method | seeds | budget per run | env steps per run | updates per run "
        "| train return, first -> last iteration | eval return per episode | mean success "
        "| Yu et al. 2019, MT50 |",
        "|---|---|---|---|---|---|---:|---:|---:|",
    ]
    for meth, name in zip(methods, names, strict=True):
        budgets = {r.max_minutes for r in meth.runs}
        budget = ", ".join("-" if b is None else f"{b:g} min" for b in sorted(budgets, key=str))
        paper = PAPER_MT50.get(meth.key)
        lines.append(
            f"| {name} | {', '.join(str(r.seed) for r in meth.runs)} | {budget} | "
            + ", ".join(f"{r.env_steps:,}" for r in meth.runs)
            + " | "
            + ", ".join(f"{r.updates:,}" for r in meth.runs)
            + " | "
            + ", ".join(
                "-"
                if r.train_returns is None
                else f"{r.train_returns[0]:.0f} -> {r.train_returns[1]:.0f}"
                for r in meth.runs
            )
            + " | "
            + ", ".join(f"{r.mean_return:.1f}" for r in meth.runs)
            + f" | {_pct(meth.mean_success(labels))} | "
            + ("-" if paper is None else f"{paper:.2f} %")
            + " |"
        )
    return "\n".join(lines)


def plot(methods: Sequence[Method], out: Path) -> None:
    """Bars of each method's pooled mean success, its seeds as dots, the paper as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _labels(methods)
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = range(len(methods))
    ax.bar(xs, [100 * m.mean_success(labels) for m in methods], color="tab:blue", alpha=0.6)
    for x, meth in zip(xs, methods, strict=True):
        ax.plot([x] * len(meth.runs), [100 * r.mean_success for r in meth.runs], "k.", ms=8)
        if meth.key in PAPER_MT50:
            ax.plot([x], [PAPER_MT50[meth.key]], "rx", ms=10, mew=2)
    ax.set_xticks(list(xs), [METHODS.get(m.key, m.key) for m in methods], rotation=20, ha="right")
    ax.set_ylabel("mean success over MT10's tasks (%)")
    ax.set_title("MT10, this budget (bars: seeds pooled, dots: seeds); x: Yu et al. 2019 MT50")
    save_figure(fig, out)


def save_figure(fig: Any, out: Path) -> None:
    """Lay out, write (its folder made) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables; exit 2 with one line on a missing or bad run dir."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="the folder holding the mt10_<method>-s<seed> dirs")
    p.add_argument("--png", type=Path, help="also draw the per-method means here")
    args = p.parse_args(argv)
    return table_main("mt10_table", lambda: collect(args.root), markdown, plot, args.png)


def table_main(
    prog: str,
    load: Callable[[], T],
    text: Callable[[T], str],
    draw: Callable[[T, Path], None],
    png: Path | None,
) -> int:
    """Load the runs, print their tables, draw the PNG if asked; exit 2 with one line
    (`prog: what`) on a TableError."""
    try:
        data = load()
    except TableError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(text(data))
    if png is not None:
        draw(data, png)
        print(f"\nwrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
