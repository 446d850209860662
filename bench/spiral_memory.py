"""Spiral search with memory (`sim.spiral.MemorySpiralPolicy`) against its own ceiling: the same
script given the *true* socket pose as its memory from the first episode (a diagnostic: no
robot knows it; this is what re-entry at a remembered pose can reach when the memory is exact).

    python bench/spiral_memory.py [--config configs/train/insertion.yaml] [-k 3] [-n 10]
        [--tasks-per-plug 10] [--plugs ...] [--seed 12345] [--oracle-only]

Prints the per-plug table of each variant (the same protocol and tasks as
`zshot eval spiral-memory`, whose figures the first table repeats) and the wall time.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from training.behaviours import MemorySpiralAgent
from training.common.tasks import make_task_source
from training.config import EvalConfig, TrainConfig
from training.evaluate import few_shot_eval
from zshot.config import load_config


class OracleMemoryAgent(MemorySpiralAgent):
    """The memory spiral whose memory, at every new task, is the task's true socket pose."""

    def __init__(self, sim_config: Any) -> None:
        super().__init__(sim_config)
        self.env: Any = None  # the evaluation's env (set by `main`), to read the hidden task

    def reset_task(self) -> None:
        """Forget the task, then remember its true socket pose (privileged: a diagnostic)."""
        super().reset_task()
        task = self.env._pending or self.env.task  # set_task takes effect at the next reset
        pose = (task.dx * 1000.0, task.dy * 1000.0, math.degrees(task.dyaw))
        self.policy.memory = pose  # type: ignore[attr-defined]
        self.policy.successes = [pose]  # type: ignore[attr-defined]


def main() -> None:
    """Run the variants and print their tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/train/insertion.yaml")
    p.add_argument("-k", type=int, default=3, help="exploration episodes per task")
    p.add_argument("-n", type=int, default=10, help="evaluation episodes per task")
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--plugs", nargs="+")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--oracle-only", action="store_true", help="skip the plain memory variant")
    args = p.parse_args()
    cfg = load_config(TrainConfig, args.config, [])
    ev = EvalConfig.model_validate(
        {
            **cfg.eval.model_dump(),
            "explore_episodes": args.k,
            "eval_episodes": args.n,
            "tasks_per_label": args.tasks_per_plug,
        }
    )
    variants = [("true socket pose as memory", True)]
    if not args.oracle_only:
        variants.insert(0, ("memory from successes (zshot eval spiral-memory)", False))
    for name, oracle in variants:
        source = make_task_source(cfg)
        env = source.make_env()
        agent = OracleMemoryAgent(env.config) if oracle else MemorySpiralAgent(env.config)
        env.close()
        build = source.make_env

        def make_env(agent: MemorySpiralAgent = agent, build: Any = build) -> Any:
            env = build()  # few_shot_eval builds one per test task: the oracle reads it
            if isinstance(agent, OracleMemoryAgent):
                agent.env = env
            return env

        source.make_env = make_env
        t0 = time.perf_counter()
        report = few_shot_eval(
            source, agent, ev, args.seed, labels=args.plugs, max_steps=cfg.max_episode_steps
        )
        wall = time.perf_counter() - t0
        viol = sum(r.safety_violations for r in report.tasks)
        print(f"\n{name}: K={args.k}, N={args.n}, {viol} force-limit endings, {wall:.0f} s")
        print(report.table())


if __name__ == "__main__":
    main()
