"""Variants of the spiral search with memory (`sim.spiral.MemorySpiralParams`) in the few-shot
protocol of `zshot eval spiral-memory`, and where each variant loses its episodes
(BENCHMARKS.md `## distill with a faster teacher, and a prior-matched search`).

    python bench/search_variants.py --profile hard --tasks-per-plug 10 box=2.2 max_radius=3.2
    python bench/search_variants.py --profile hard --misses        # the defaults, per task

PARAM=VALUE pairs override MemorySpiralParams fields (a comma-separated value is a tuple:
`yaw_offsets=0,1.5,-1.5`). Prints the total, per-plug successes and mean time-to-insert;
`--misses` also prints every task with a failed evaluation episode and its K + N outcomes
in order (S / F; `r` a re-entry at the remembered pose that went in, `d` the memory no
longer trusted), which tells misses before the hole was found from failed re-entries.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import numpy as np

from training.behaviours import MemorySpiralAgent
from training.common.tasks import make_task_source, select_test_tasks
from training.config import EvalConfig, TrainConfig
from training.evaluate import few_shot_eval
from zshot.config import load_config


def parse_params(pairs: list[str], contact: bool = False) -> dict[str, Any]:
    """PARAM=VALUE pairs -> MemorySpiralParams (`contact`: ContactSpiralParams) keyword
    arguments (ValueError names a bad one)."""
    from sim.contact_search import ContactSpiralParams
    from sim.spiral import MemorySpiralParams

    cls = ContactSpiralParams if contact else MemorySpiralParams
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"{pair!r}: expected FIELD=VALUE with a {cls.__name__} field")
        default = getattr(cls(), name)
        if isinstance(default, tuple):
            out[name] = tuple(float(v) for v in value.split(",") if v)
        elif isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        else:
            out[name] = type(default)(value)
    return out


def protocol(args: argparse.Namespace, profile: str) -> tuple[TrainConfig, EvalConfig, Any]:
    """The train config (profile, `args.seed`), the few-shot protocol (`args.k`, `args.n`,
    `args.tasks_per_plug`) and the task source of `args.config`."""
    cfg = load_config(TrainConfig, args.config, [f"profile={profile}", f"seed={args.seed}"])
    ev = EvalConfig.model_validate(
        {
            **cfg.eval.model_dump(),
            "explore_episodes": args.k,
            "eval_episodes": args.n,
            "tasks_per_label": args.tasks_per_plug,
        }
    )
    return cfg, ev, make_task_source(cfg)


class RecordingAgent(MemorySpiralAgent):
    """The memory spiral that records each episode's outcome per task."""

    def __init__(self, sim_config: Any, params: dict[str, Any], contact: bool = False) -> None:
        from sim.contact_search import ContactSpiralParams, ContactSpiralPolicy
        from sim.spiral import MemorySpiralParams, MemorySpiralPolicy

        super().__init__(sim_config)
        if contact:
            self.policy = ContactSpiralPolicy(sim_config, ContactSpiralParams(**params))
        else:
            self.policy = MemorySpiralPolicy(sim_config, MemorySpiralParams(**params))
        self.outcomes: list[list[str]] = []

    def reset_task(self) -> None:
        """A new task: a new row of outcomes."""
        self.outcomes.append([])
        super().reset_task()

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Record the outcome, then tell the script."""
        p: Any = self.policy
        tag = ("S" if success else "F") + ("r" if p.reentering and not p.reentry_failed else "")
        self.outcomes[-1].append(tag + ("" if p.trusted else "d"))
        super().end_episode(success, final_obs)


def main(argv: list[str] | None = None) -> int:
    """Run one variant and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("params", nargs="*", help="MemorySpiralParams overrides, FIELD=VALUE")
    p.add_argument("--config", default="configs/train/insertion.yaml")
    p.add_argument("--profile", choices=["known", "oda", "hard"], default="hard")
    p.add_argument("--seed", type=int, default=0, help="the config's seed (test-task draw)")
    p.add_argument("-k", type=int, default=3)
    p.add_argument("-n", type=int, default=10)
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--misses", action="store_true")
    p.add_argument(
        "--contact",
        action="store_true",
        help="the contact-torque search (sim.contact_search, ContactSpiralParams fields)",
    )
    p.add_argument("--plugs", nargs="+", help="only these plugs' test tasks")
    args = p.parse_args(argv)
    try:
        params = parse_params(args.params, args.contact)
    except ValueError as e:
        p.error(str(e))
    cfg, ev, source = protocol(args, args.profile)
    env = source.make_env()
    agent = RecordingAgent(env.config, params, args.contact)
    env.close()
    t0 = time.perf_counter()
    try:
        report = few_shot_eval(
            source, agent, ev, 12345, labels=args.plugs, max_steps=cfg.max_episode_steps
        )
    except ValueError as e:  # an unknown plug
        p.error(str(e))
    wins = sum(r.successes for r in report.tasks)
    total = sum(r.episodes for r in report.tasks)
    viol = sum(r.safety_violations for r in report.tasks)
    t = sum((r.mean_time_to_insert or 0.0) * r.successes for r in report.tasks) / max(wins, 1)
    print(
        f"{args.profile} {'contact' if args.contact else 'memory'} {params or 'defaults'}: {wins}/{total}, {t:.2f} s to insert, "
        f"{viol} force-limit endings ({time.perf_counter() - t0:.0f} s)"
    )
    print(
        "  "
        + " ".join(
            f"{r.label} {r.successes} ({r.mean_time_to_insert or 0.0:.2f} s)" for r in report.tasks
        )
    )
    if args.misses:
        tasks = select_test_tasks(source, args.plugs, args.tasks_per_plug)
        for task, row in zip(tasks, agent.outcomes, strict=True):
            if any(o.startswith("F") for o in row[args.k :]):
                print(
                    f"  {source.task_label(task):<14} dx {task.dx * 1e3:+.2f} mm dy "
                    f"{task.dy * 1e3:+.2f} mm dyaw {np.degrees(task.dyaw):+.2f} deg: "
                    + " ".join(row)
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
