"""Few-shot trials: per plug, reset the task, K adaptation episodes (explore), N evaluation
episodes (exploit); the per-plug table of the ODA paper, saved as JSON and a PNG plot.

    plug | successes/N | mean time | peak force | force limit | aborted

A plug's row sums its `tasks_per_plug` hidden tasks (each from the prior: K adaptation, then
N evaluation episodes), labelled by the plug's name (a spec file's `name`). `mean time` is the
mean control time [s] of the *successful* evaluation episodes, `peak force` the largest |F|
[N] seen in any evaluation episode, `force limit` the episodes (adaptation and evaluation)
the robot ended on its own force limit (the sim's 40 N), `aborted` those the bridge aborted
(its safety layer's force stop, runtime lost, protective stop).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware_bridge.config import TrialsConfig
from hardware_bridge.loop import ControlLoop, EpisodeResult
from zshot.jsonio import strict, write_json

__all__ = ["PlugResult", "TrialsReport", "format_table", "run_trials", "save_plot"]


@dataclass
class PlugResult:
    """One row of the table, with the episodes behind it."""

    plug: str
    n_eval: int
    successes: int = 0
    mean_time_s: float = float("nan")
    peak_force: float = 0.0
    aborted: int = 0
    force_limit: int = 0
    adapt_successes: int = 0
    mean_return: float = float("nan")  # over evaluation episodes
    adapt_mean_return: float = float("nan")  # over adaptation episodes
    task: dict[str, Any] = field(default_factory=dict)
    """The first task's description (all of them: `tasks`)."""
    tasks: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = False


@dataclass
class TrialsReport:
    """Every plug's row; `incomplete` names why the session stopped early, if it did."""

    plugs: list[PlugResult]
    adapt_episodes: int
    eval_episodes: int
    control_hz: float
    incomplete: str = ""
    metric: str = "success"
    """The robot's headline figure: "success" (insertion) or "return" (locomotion)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable (NaN written as null)."""
        out: dict[str, Any] = strict(asdict(self))
        return out

    def save_json(self, path: str | Path) -> Path:
        """Write the report as strict JSON; returns the path."""
        return write_json(path, self.as_dict())


def run_trials(
    loop: ControlLoop,
    cfg: TrialsConfig,
    *,
    log: Callable[[str], None] = print,
) -> TrialsReport:
    """Run the session on `loop` (robot + runtime connected); returns the report.

    A runtime lost mid-session is waited for (`watchdog.reconnect_timeout_s`); when it
    returns, the session goes on with the posterior restored; when it does not, the report
    is returned as it stands, `incomplete` saying why.
    """
    report = TrialsReport([], cfg.adapt_episodes, cfg.eval_episodes, loop.control_hz)
    report.metric = str(getattr(loop.robot, "metric", "success"))
    for plug_index, plug in enumerate(cfg.plugs):
        row = PlugResult(plug=plug, n_eval=cfg.eval_episodes * cfg.tasks_per_plug)
        report.plugs.append(row)
        evals: list[EpisodeResult] = []
        adapts: list[EpisodeResult] = []
        for t in range(cfg.tasks_per_plug):
            task = loop.robot.set_task(plug, cfg.seed + plug_index + t)
            row.tasks.append(task)
            row.task = row.tasks[0]
            row.plug = str(task.get("label", plug))
            descriptor = cfg.task_descriptors.get(plug)  # conditioned artifacts only
            lost = _run_task(loop, cfg, report, row, t, evals, adapts, log, descriptor)
            _summarise(row, evals, adapts)
            if lost:
                report.incomplete = lost
                return report
        row.completed = True
    return report


def _run_task(
    loop: ControlLoop,
    cfg: TrialsConfig,
    report: TrialsReport,
    row: PlugResult,
    task_index: int,
    evals: list[EpisodeResult],
    adapts: list[EpisodeResult],
    log: Callable[[str], None],
    descriptor: list[float] | None = None,
) -> str:
    """One hidden task of `row`'s plug from the prior (told `descriptor` if given); "" or
    why the session must stop."""
    try:
        loop.reset_task(descriptor)
    except (TimeoutError, ConnectionError, RuntimeError) as exc:
        if not loop.restore_runtime():
            return f"runtime lost before plug {row.plug} (task {task_index}): {exc}"
        loop.reset_task(descriptor)
    schedule = ["explore"] * cfg.adapt_episodes + ["exploit"] * cfg.eval_episodes
    tag = f"task {task_index + 1}/{cfg.tasks_per_plug} " if cfg.tasks_per_plug > 1 else ""
    for ep, mode in enumerate(schedule):
        meta = {"plug": row.plug, "task": row.tasks[-1], "episode_in_plug": ep}
        res = loop.run_episode(mode, meta)
        row.episodes.append({"mode": mode, "task_index": task_index, **res.as_dict()})
        row.aborted += int(res.aborted)
        row.force_limit += int(res.force_limit)
        if mode == "explore":
            row.adapt_successes += int(res.success)
            adapts.append(res)
        else:
            evals.append(res)
        log(
            f"{row.plug:<16} {tag}{mode:<7} {ep + 1:>3}/{len(schedule)}  "
            + (
                f"return {res.episode_return:9.2f}  {res.steps:>4} steps"
                if report.metric == "return"
                else f"{'success' if res.success else 'fail   '}  {res.steps:>4} steps  "
                f"peak {res.peak_force:6.1f} N" + ("  FORCE LIMIT" if res.force_limit else "")
            )
            + (f"  ABORTED ({res.abort_reason})" if res.aborted else "")
        )
        if res.aborted and res.abort_reason.startswith("runtime_lost"):
            if not loop.restore_runtime():
                return (
                    f"runtime lost during plug {row.plug} and did not come back within "
                    f"{cfg.watchdog.reconnect_timeout_s:.1f} s"
                )
    return ""


def _summarise(
    row: PlugResult, evals: list[EpisodeResult], adapts: list[EpisodeResult] | None = None
) -> None:
    if evals:
        row.mean_return = sum(e.episode_return for e in evals) / len(evals)
    if adapts:
        row.adapt_mean_return = sum(e.episode_return for e in adapts) / len(adapts)
    ok = [e for e in evals if e.success]
    row.successes = len(ok)
    row.mean_time_s = sum(e.duration_s for e in ok) / len(ok) if ok else float("nan")
    row.peak_force = max((e.peak_force for e in evals), default=0.0)


def format_table(report: TrialsReport) -> str:
    """The per-plug table, fixed-width, Markdown-compatible (per task and return-based for a
    locomotion robot: task | mean return | adapt return | N | aborted)."""
    head = ["plug", "successes/N", "mean time", "peak force", "force limit", "aborted"]
    if report.metric == "return":
        head = ["task", "mean return", "adapt return", "N", "aborted"]
    rows = [head]
    for r in report.plugs:
        if report.metric == "return":
            rows.append(
                [
                    str(r.task.get("name", r.plug)) + ("" if r.completed else " (incomplete)"),
                    f"{r.mean_return:.1f}",
                    f"{r.adapt_mean_return:.1f}",
                    str(r.n_eval),
                    str(r.aborted),
                ]
            )
            continue
        mean = f"{r.mean_time_s:.1f} s" if math.isfinite(r.mean_time_s) else "-"
        rows.append(
            [
                r.plug + ("" if r.completed else " (incomplete)"),
                f"{r.successes}/{r.n_eval}",
                mean,
                f"{r.peak_force:.1f} N",
                str(r.force_limit),
                str(r.aborted),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    text = "\n".join(lines)
    if report.incomplete:
        text += f"\nincomplete: {report.incomplete}"
    return text


def save_plot(report: TrialsReport, path: str | Path) -> Path | None:
    """Bar plot of success rate and mean time per plug; None (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [r.plug for r in report.plugs]
    if report.metric == "return":
        fig, ax = plt.subplots(figsize=(6, 3.5))
        adapt = [r.adapt_mean_return for r in report.plugs]
        x = np.arange(len(names))
        ax.bar(x - 0.2, adapt, 0.4, label=f"adaptation (K = {report.adapt_episodes})")
        ax.bar(x + 0.2, [r.mean_return for r in report.plugs], 0.4, label="evaluation")
        ax.set_xticks(x, names, rotation=30)
        ax.set_ylabel("mean episode return")
        ax.legend()
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out
    rate = [r.successes / r.n_eval if r.n_eval else 0.0 for r in report.plugs]
    times = [r.mean_time_s if math.isfinite(r.mean_time_s) else 0.0 for r in report.plugs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.bar(names, rate, color="tab:green")
    ax1.set_ylim(0, 1)
    ax1.set_ylabel(f"success rate (N = {report.eval_episodes})")
    ax1.set_title(f"after K = {report.adapt_episodes} adaptation episodes")
    ax2.bar(names, times, color="tab:blue")
    ax2.set_ylabel("mean time of successes [s]")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
