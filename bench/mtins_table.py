"""Insertion as a multi-task problem (issue 20, benchmark 3): the tables from the run dirs, in
one command (bench/mt10_table.py's reader, for the insertion runs).

Each run dir `<stem>-s<seed>` of a config in METHODS (configs/train/<stem>.yaml) holds its
training's `eval.json` (deterministic episodes on every training plug, each told its id or
descriptor), `history.json` (env steps, updates, collection success per iteration) and
`config.yaml` (`max_minutes`); optionally `eval-sampled.json` (the same plugs with sampled
actions: `zshot eval ARTIFACT --sample-actions [--train-tasks]`) and, for a method told the
plug descriptor, `zeroshot-<profile>.json` / `zeroshot-<profile>-sampled.json` (`zshot eval
ARTIFACT --profile P` on the held-out plugs). `--pearl DIR` adds PEARL's reports on the same
held-out tasks, `DIR/<profile>-s<seed>-k<K>.json` (`zshot eval` of the PEARL artifact with
the descriptor runs' test split, K exploration episodes; K = 0 is PEARL told nothing).

    python bench/mtins_table.py runs --pearl runs/mtins/pearl --png docs/img/mtins_success.png

Prints Markdown: per training plug the successes / episodes of each method pooled over its
seeds (deterministic; sampled beside it where measured); per method its budget, steps,
updates, collection success and the means; per held-out plug the zero-shot successes of
the descriptor methods and PEARL in each profile ("not defined" for a method told an id
only). A run dir without `eval.json` or `history.json` is an error (exit 2).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.mt10_table import TableError, _load_json, _pct, save_figure, table_main

METHODS: dict[str, tuple[str, bool]] = {
    "mtsac_insertion_onehot": ("MT-SAC (one-hot)", False),
    "mtsac_insertion_embedding": ("MT-SAC, task embeddings", False),
    "mtsac_insertion_descriptor": ("MT-SAC, plug descriptor", True),
    "mtsac_insertion_multihead": ("multi-head SAC", False),
    "mtsac_insertion_pcgrad": ("MT-SAC + PCGrad (descriptor)", True),
    "mtppo_insertion": ("MT-PPO (one-hot)", False),
    "distral_insertion": ("Distral (shared policy)", False),
    "dnc_insertion": ("DnC (central policy)", False),
}
"""Config stem -> (name in the tables, told the plug descriptor: has a zero-shot column)."""

PROFILES = ("oda", "hard")
RUN_DIR = re.compile(r"^(?P<stem>[a-z0-9_]+)-s(?P<seed>\d+)$")
PEARL_FILE = re.compile(r"^(?P<profile>[a-z]+)-s(?P<seed>\d+)-k(?P<k>\d+)\.json$")
Cells = dict[str, tuple[int, int]]


def _cells(path: Path) -> Cells:
    """label -> (successes, episodes) of a `zshot eval` / training report, summed over the
    rows of a label (a told policy's report has one row per task, a few-shot one per label)."""
    report = _load_json(path)
    out: dict[str, tuple[int, int]] = {}
    try:
        for t in report["tasks"]:
            s, e = out.get(str(t["label"]), (0, 0))
            out[str(t["label"])] = (s + int(t["successes"]), e + int(t["episodes"]))
    except (KeyError, TypeError, ValueError):
        raise TableError(f"{path}: not an evaluation report (tasks rows)") from None
    return out


def _optional(path: Path) -> Cells | None:
    return _cells(path) if path.is_file() else None


@dataclass
class Run:
    """One run dir's figures."""

    stem: str
    seed: int
    train: Cells  # deterministic, the training's eval.json
    train_sampled: Cells | None
    zero_shot: dict[str, Cells]  # "oda", "oda-sampled", ... -> cells
    env_steps: int
    updates: int
    max_minutes: float | None
    collect_success: float | None  # mean train/success over the last 10 iterations
    ms_per_update: float | None  # median time/update_ms


def load_run(run_dir: Path) -> Run:
    """One run dir (module docstring); TableError naming what is missing or wrong."""
    m = RUN_DIR.match(run_dir.name)
    if m is None or m["stem"] not in METHODS:
        raise TableError(f"{run_dir}: not a <method>-s<seed> run dir of {', '.join(METHODS)}")
    history = _load_json(run_dir / "history.json")
    if not isinstance(history, list) or not history or not isinstance(history[-1], dict):
        raise TableError(f"{run_dir / 'history.json'}: no iteration recorded")
    last = history[-1]
    succ = [h["train/success"] for h in history[-10:] if isinstance(h.get("train/success"), float)]
    ms = [h["time/update_ms"] for h in history if isinstance(h.get("time/update_ms"), float)]
    zero_shot = {}
    for prof in PROFILES:
        for tag in (prof, f"{prof}-sampled"):
            cells = _optional(run_dir / f"zeroshot-{tag}.json")
            if cells is not None:
                zero_shot[tag] = cells
    cfg_path = run_dir / "config.yaml"
    cfg: dict[str, Any] = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
    return Run(
        stem=m["stem"],
        seed=int(m["seed"]),
        train=_cells(run_dir / "eval.json"),
        train_sampled=_optional(run_dir / "eval-sampled.json"),
        zero_shot=zero_shot,
        env_steps=int(last.get("counters/env_steps", 0)),
        updates=int(last.get("counters/updates", 0)),
        max_minutes=cfg.get("max_minutes"),
        collect_success=sum(succ) / len(succ) if succ else None,
        ms_per_update=statistics.median(ms) if ms else None,
    )


@dataclass
class Method:
    """A method's runs (by seed)."""

    stem: str
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        return METHODS[self.stem][0]

    @property
    def told_descriptor(self) -> bool:
        return METHODS[self.stem][1]


def pool(cells: Sequence[Cells | None]) -> Cells | None:
    """Successes and episodes per label summed over runs (None if any run lacks them)."""
    if not cells or any(c is None for c in cells):
        return None
    out: dict[str, list[int]] = {}
    for c in cells:
        assert c is not None
        for lab, (s, e) in c.items():
            acc = out.setdefault(lab, [0, 0])
            acc[0] += s
            acc[1] += e
    return {lab: (s, e) for lab, (s, e) in out.items()}


def total(cells: Cells | None) -> tuple[int, int] | None:
    if cells is None:
        return None
    return sum(s for s, _ in cells.values()), sum(e for _, e in cells.values())


def _frac(t: tuple[int, int] | None) -> str:
    return "-" if t is None or not t[1] else f"{t[0]}/{t[1]} ({_pct(t[0] / t[1])})"


def _per_seed(runs: Sequence[Run], cells: Callable[[Run], Cells | None]) -> str:
    """The suffix ' (s0 3, s1 0)': each seed's successes, where every run has the cells."""
    got = [total(cells(r)) for r in runs]
    if len(runs) < 2 or any(t is None for t in got):
        return ""
    return " (" + ", ".join(f"s{r.seed} {t[0]}" for r, t in zip(runs, got, strict=True) if t) + ")"


def collect(root: Path) -> list[Method]:
    """Every run dir of METHODS under `root`, grouped, in METHODS' order."""
    if not root.is_dir():
        raise TableError(f"{root}: not a directory")
    methods: dict[str, Method] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        m = RUN_DIR.match(d.name)
        if m is None or m["stem"] not in METHODS:
            continue
        run = load_run(d)
        methods.setdefault(run.stem, Method(run.stem)).runs.append(run)
    if not methods:
        raise TableError(f"{root}: no run dirs of {', '.join(METHODS)}")
    for meth in methods.values():
        meth.runs.sort(key=lambda r: r.seed)
    return [methods[k] for k in METHODS if k in methods]


def load_pearl(folder: Path) -> dict[tuple[str, int], dict[int, Cells]]:
    """(profile, K) -> seed -> cells of PEARL's reports in `folder`."""
    if not folder.is_dir():
        raise TableError(f"{folder}: not a directory")
    out: dict[tuple[str, int], dict[int, Cells]] = {}
    for f in sorted(folder.iterdir()):
        m = PEARL_FILE.match(f.name)
        if m is not None:
            out.setdefault((m["profile"], int(m["k"])), {})[int(m["seed"])] = _cells(f)
    if not out:
        raise TableError(f"{folder}: no <profile>-s<seed>-k<K>.json reports")
    return out


def markdown(
    methods: Sequence[Method], pearl: dict[tuple[str, int], dict[int, Cells]] | None = None
) -> str:
    """The three tables (module docstring)."""
    lines = ["| training plug | " + " | ".join(m.name for m in methods) + " |"]
    lines.append("|---|" + "---:|" * len(methods))
    det = [pool([r.train for r in m.runs]) for m in methods]
    smp = [pool([r.train_sampled for r in m.runs]) for m in methods]
    labels: list[str] = []
    for c in det:
        labels += [lab for lab in (c or {}) if lab not in labels]
    for lab in labels:
        row = []
        for d, s in zip(det, smp, strict=True):
            cell = "-" if d is None or lab not in d else f"{d[lab][0]}/{d[lab][1]}"
            if s is not None and lab in s:
                cell += f" · {s[lab][0]}/{s[lab][1]}"
            row.append(cell)
        lines.append(f"| {lab} | " + " | ".join(row) + " |")
    lines.append("| all, deterministic | " + " | ".join(_frac(total(d)) for d in det) + " |")
    lines.append("| all, sampled actions | " + " | ".join(_frac(total(s)) for s in smp) + " |")
    lines += [
        "",
        "| method | seeds | budget | env steps per run | updates per run | median ms / update "
        "| collection success, last 10 iterations | train plugs, deterministic "
        "| train plugs, sampled | zero-shot `oda` | zero-shot `hard` |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for meth, d, s in zip(methods, det, smp, strict=True):
        runs = meth.runs
        budget = ", ".join(
            sorted({"-" if r.max_minutes is None else f"{r.max_minutes:g} min" for r in runs})
        )
        zs = []
        for prof in PROFILES:
            if not meth.told_descriptor:
                zs.append("not defined (told an id)")
                continue
            dz = total(pool([r.zero_shot.get(prof) for r in runs]))
            sz = total(pool([r.zero_shot.get(f"{prof}-sampled") for r in runs]))
            zs.append(_frac(dz) + ("" if sz is None else f"; sampled {_frac(sz)}"))
        lines.append(
            f"| {meth.name} | {', '.join(str(r.seed) for r in runs)} | {budget} | "
            + ", ".join(f"{r.env_steps:,}" for r in runs)
            + " | "
            + ", ".join(f"{r.updates:,}" for r in runs)
            + " | "
            + ", ".join("-" if r.ms_per_update is None else f"{r.ms_per_update:.0f}" for r in runs)
            + " | "
            + ", ".join(
                "-" if r.collect_success is None else f"{r.collect_success:.2f}" for r in runs
            )
            + f" | {_frac(total(d))}{_per_seed(runs, lambda r: r.train)} | "
            + f"{_frac(total(s))}{_per_seed(runs, lambda r: r.train_sampled)} | {zs[0]} | {zs[1]} |"
        )
    zero = [m for m in methods if m.told_descriptor]
    pearl = pearl or {}
    cols: list[tuple[str, str, Cells | None]] = []
    for prof in PROFILES:
        for m in zero:
            cols.append(
                (f"{m.name}, `{prof}`", prof, pool([r.zero_shot.get(prof) for r in m.runs]))
            )
            sampled = pool([r.zero_shot.get(f"{prof}-sampled") for r in m.runs])
            if sampled is not None:
                cols.append((f"{m.name}, sampled, `{prof}`", prof, sampled))
        for (p, k), by_seed in sorted(pearl.items()):
            if p == prof:
                cols.append((f"PEARL r3, K = {k}, `{prof}`", prof, pool(list(by_seed.values()))))
    if cols:
        held: list[str] = []
        for _, _, c in cols:
            held += [lab for lab in (c or {}) if lab not in held]
        lines += ["", "| held-out plug | " + " | ".join(n for n, _, _ in cols) + " |"]
        lines.append("|---|" + "---:|" * len(cols))
        for lab in held:
            cells = [
                "-" if c is None or lab not in c else f"{c[lab][0]}/{c[lab][1]}" for _, _, c in cols
            ]
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        lines.append("| all | " + " | ".join(_frac(total(c)) for _, _, c in cols) + " |")
    return "\n".join(lines)


def plot(
    methods: Sequence[Method], out: Path, pearl: dict[tuple[str, int], dict[int, Cells]] | None
) -> None:
    """Bars: each method's success on the training plugs (deterministic, sampled) and
    zero-shot on the held-out plugs per profile; PEARL's zero-shot beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rate(c: Cells | None) -> float:
        t = total(c)
        return 100 * t[0] / t[1] if t and t[1] else 0.0

    names = [m.name for m in methods]
    series: list[tuple[str, list[float]]] = [
        ("train plugs, deterministic", [rate(pool([r.train for r in m.runs])) for m in methods]),
        ("train plugs, sampled", [rate(pool([r.train_sampled for r in m.runs])) for m in methods]),
    ]
    for prof in PROFILES:
        series.append(
            (
                f"held-out, zero-shot `{prof}`",
                [rate(pool([r.zero_shot.get(prof) for r in m.runs])) for m in methods],
            )
        )
    for (prof, k), by_seed in sorted((pearl or {}).items()):
        names.append(f"PEARL r3 K={k} ({prof})")
        for label, vals in series:
            vals.append(rate(pool(list(by_seed.values()))) if label.endswith(f"`{prof}`") else 0.0)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        ax.bar([x + i * width for x in range(len(names))], vals, width, label=label)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names, rotation=25, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_title("insertion as a multi-task problem: 24 training plugs; 9 held-out plugs zero-shot")
    ax.legend(fontsize=8)
    save_figure(fig, out)


def main(argv: Sequence[str] | None = None) -> int:
    """The tables of the run dirs under ROOT (and PEARL's); exit 2 with one line on a bad
    run dir."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="the folder holding the <method>-s<seed> run dirs")
    p.add_argument("--pearl", type=Path, help="PEARL's <profile>-s<seed>-k<K>.json reports")
    p.add_argument("--png", type=Path, help="also draw the success bars here")
    args = p.parse_args(argv)

    def load() -> tuple[list[Method], dict[tuple[str, int], dict[int, Cells]] | None]:
        return collect(args.root), load_pearl(args.pearl) if args.pearl is not None else None

    return table_main(
        "mtins_table",
        load,
        lambda data: markdown(*data),
        lambda data, png: plot(data[0], png, data[1]),
        args.png,
    )


if __name__ == "__main__":
    sys.exit(main())
