"""`zshot trials --robot sim --workers N` (issue #22): the session's (plug, task) units on N
Ray workers, merged in unit order, so the report does not depend on N.

A unit is one hidden task of one plug: unit `u = plug_index * tasks_per_plug + t` runs task
`seed + plug_index + t` of plug `plugs[plug_index]`, K adaptation then N evaluation
episodes, exactly as the in-process session (`trials.run_trials`) runs it there: the
worker's SimRobot starts the unit at episode number `u * (K + N)` (the start poses the one
robot of a 1-worker session draws for it), and the unit talks to the runtime over a session
of its own (HELLO, RESET_TASK, ..., BYE; sessions are isolated server-side). The driver
merges the units in `u` order into the per-plug rows (episodes, counts, means) and prints the
units' episode lines in that order.

What may still differ with N is the runtime's side: a `posterior` artifact's exploration
draws come from each runtime session's random stream (`runtime.seed` + the session's
number), which a session per unit changes; exploitation (the posterior mean) and the
`conditioned`, `recurrent` and `weights` kinds without `sample_actions` are deterministic.

Ray is imported by zshot/parallel.py only when `--workers` > 1 (the optional `ray` extra);
this module imports neither Ray nor training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware_bridge.config import TrialsConfig
from hardware_bridge.loop import EpisodeResult
from hardware_bridge.trials import PlugResult, TrialsReport, _run_task, _summarise
from zshot.parallel import run_ordered

__all__ = ["FANOUT_ROBOTS", "TrialsWorker", "UnitResult", "merge_units", "run_trials_fanout"]

FANOUT_ROBOTS = ("sim", "sim-locomotion")
"""Robots `--workers` > 1 runs on: simulated ones, one per worker (never a real arm)."""


@dataclass
class UnitResult:
    """One (plug, task) unit's episodes and counts, as a worker sends them back."""

    task: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EpisodeResult] = field(default_factory=list)
    adapts: list[EpisodeResult] = field(default_factory=list)
    aborted: int = 0
    force_limit: int = 0
    adapt_successes: int = 0
    lost: str = ""
    lines: list[str] = field(default_factory=list)


class TrialsWorker:
    """One worker: its own simulated robot; a runtime session per unit."""

    def __init__(
        self,
        cfg: TrialsConfig,
        control_hz: float,
        keys: tuple[bytes, tuple[bytes, bytes]] | None = None,
    ) -> None:
        from hardware_bridge.robots import make_robot

        self.cfg = cfg
        self.control_hz = control_hz
        self.keys = keys
        self.robot: Any = make_robot(cfg)
        self.robot.connect()

    def unit(self, u: int) -> UnitResult:
        """Run unit `u` (module doc) against the runtime; its result."""
        from hardware_bridge.loop import ControlLoop
        from runtime.client import RuntimeClient

        cfg = self.cfg
        plug_index, t = divmod(u, cfg.tasks_per_plug)
        plug = cfg.plugs[plug_index]
        self.robot.set_episode_number(u * (cfg.adapt_episodes + cfg.eval_episodes))
        task = self.robot.set_task(plug, cfg.seed + plug_index + t)
        res = UnitResult(task=task)
        row = PlugResult(plug=str(task.get("label", plug)), n_eval=0, tasks=[task])
        report = TrialsReport([], cfg.adapt_episodes, cfg.eval_episodes, self.control_hz)
        report.metric = str(getattr(self.robot, "metric", "success"))
        client = RuntimeClient(
            cfg.runtime,
            timeout_s=1.0,
            server_public_key=None if self.keys is None else self.keys[0],
            client_keys=None if self.keys is None else self.keys[1],
        )
        try:
            info = client.hello(
                obs_dim=len(self.robot.obs_names),
                act_dim=self.robot.action_spec.act_dim,
                client="zshot trials worker",
            )
            loop = ControlLoop(
                self.robot,
                client,
                safety=cfg.safety,
                watchdog=cfg.watchdog,
                control_hz=self.control_hz,
                realtime=bool(cfg.realtime),
                update=cfg.update,
                stochastic=cfg.sample_actions,
                latent_dim=info.latent_dim,
                log=res.lines.append,
            )
            descriptor = cfg.task_descriptors.get(plug)
            res.lost = _run_task(
                loop, cfg, report, row, t, res.evals, res.adapts, res.lines.append, descriptor
            )
        finally:
            client.bye_quietly()
            client.close()
        res.episodes = row.episodes
        res.aborted, res.force_limit = row.aborted, row.force_limit
        res.adapt_successes = row.adapt_successes
        return res


def merge_units(
    cfg: TrialsConfig,
    control_hz: float,
    metric: str,
    units: Iterable[tuple[int, UnitResult]],
    log: Callable[[str], None] = print,
) -> TrialsReport:
    """The report from the units in `u` order: each plug's row sums its tasks' units, as
    `run_trials` sums them; the first unit that lost the runtime ends it, `incomplete`."""
    report = TrialsReport([], cfg.adapt_episodes, cfg.eval_episodes, control_hz, metric=metric)
    row = PlugResult(plug="", n_eval=0)
    evals: list[EpisodeResult] = []
    adapts: list[EpisodeResult] = []
    for u, res in units:
        plug_index, t = divmod(u, cfg.tasks_per_plug)
        for line in res.lines:
            log(line)
        if t == 0:
            plug = cfg.plugs[plug_index]
            row = PlugResult(plug=plug, n_eval=cfg.eval_episodes * cfg.tasks_per_plug)
            report.plugs.append(row)
            evals, adapts = [], []
        row.tasks.append(res.task)
        row.task = row.tasks[0]
        row.plug = str(res.task.get("label", row.plug))
        row.episodes += res.episodes
        row.aborted += res.aborted
        row.force_limit += res.force_limit
        row.adapt_successes += res.adapt_successes
        evals += res.evals
        adapts += res.adapts
        _summarise(row, evals, adapts)
        if res.lost:
            report.incomplete = res.lost
            return report
        row.completed = t == cfg.tasks_per_plug - 1
    return report


def run_trials_fanout(
    cfg: TrialsConfig,
    control_hz: float,
    metric: str,
    *,
    workers: int,
    ray_address: str | None = None,
    keys: tuple[bytes, tuple[bytes, bytes]] | None = None,
    log: Callable[[str], None] = print,
) -> TrialsReport:
    """The session on `workers` Ray workers (module doc); the same report `run_trials` gives
    where the runtime answers deterministically."""
    # plug spec files by absolute path: a Ray worker need not start in this directory
    plugs = [str(Path(p).resolve()) if Path(p).is_file() else p for p in cfg.plugs]
    descriptors = {
        str(Path(p).resolve()) if Path(p).is_file() else p: v
        for p, v in cfg.task_descriptors.items()
    }
    wcfg = cfg.model_copy(update={"plugs": plugs, "task_descriptors": descriptors})
    n = len(plugs) * cfg.tasks_per_plug
    units = run_ordered(
        TrialsWorker,
        (wcfg, control_hz, keys),
        "unit",
        n,
        workers=workers,
        ray_address=ray_address,
    )
    report = merge_units(cfg, control_hz, metric, units, log)
    close = getattr(units, "close", None)
    if callable(close):
        close()  # an early end (a lost runtime): the workers go now
    return report
