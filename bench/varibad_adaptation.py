"""A recurrent policy's adaptation curve (VariBAD, RL²): the return of episode k = 0, 1, 2, 3
of a test task, i.e. after k episodes of it, with the hidden state (VariBAD: the belief)
carried across the episodes as the runtime keeps it; beside the same policy with its hidden
state reset before every episode (nothing carried: what the memory across episodes buys).

Through onnxruntime for an exported artifact (the numbers the robot gets) or torch for a
run dir. Deterministic actions (noise 0); each test task's episodes draw their reset seeds
from `task_rng(--seed, task index)`, the same for both rows. `--draws S1,S2`: test tasks of
the config with seed S (the point task draws its 6 test goals from the seed), pooled.

    python bench/varibad_adaptation.py artifacts/varibad_point-s0 --draws 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training.common.agents import OnnxRecurrentAgent, RecurrentAgent, new_posterior
from training.common.rollout import task_rng
from training.common.tasks import env_control_hz, make_task_source, select_test_tasks
from training.config import TrainConfig
from training.evaluate import run_episode
from training.registry import agent_of, load_run


def load(target: Path) -> tuple[RecurrentAgent, TrainConfig, str]:
    """An artifact (onnxruntime) or a run dir (torch) as a recurrent agent + its config."""
    if (target / "manifest.json").is_file():
        onnx_agent = OnnxRecurrentAgent(target)
        cfg = TrainConfig.model_validate(onnx_agent.artifact.manifest.training["config"])
        return onnx_agent, cfg, "onnxruntime"
    run = load_run(target)
    agent = agent_of(run)
    if not isinstance(agent, RecurrentAgent):
        raise ValueError(f"{target}: a {run.algorithm.name} run is not a recurrent policy")
    return agent, run.cfg, "torch"


def curves(
    agent: RecurrentAgent, cfg: TrainConfig, episodes: int, seed: int, max_tasks: int | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool]:
    """(returns, successes) per row ("carried", "reset"), each (tasks, episodes)."""
    source = make_task_source(cfg)
    tasks = select_test_tasks(source, None, None, max_tasks, flag="")
    rets: dict[str, list[list[float]]] = {"carried": [], "reset": []}
    wins: dict[str, list[list[bool]]] = {"carried": [], "reset": []}
    for i, task in enumerate(tasks):
        env: Any = source.make_env()
        try:
            env.set_task(task)
            hz = env_control_hz(env)
            for row in rets:
                rng = task_rng(seed, i)
                agent.reset_task()
                post = new_posterior(agent)
                r, w = [], []
                for _ in range(episodes):
                    if row == "reset":
                        agent.reset_task()
                    ep = run_episode(
                        env,
                        agent,
                        post,
                        rng,
                        z_mode="mean",
                        update_every_step=False,
                        control_hz=hz,
                        max_steps=cfg.max_episode_steps,
                    )
                    r.append(ep.ret)
                    w.append(ep.success)
                rets[row].append(r)
                wins[row].append(w)
        finally:
            env.close()
    out_r = {k: np.asarray(v) for k, v in rets.items()}
    out_w = {k: np.asarray(v) for k, v in wins.items()}
    return out_r, out_w, source.has_success


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", type=Path, help="a recurrent artifact dir or a run dir")
    p.add_argument("--episodes", type=int, default=4, help="episodes per task (k = 0..N-1)")
    p.add_argument("--draws", default="0", help="config seeds whose test tasks to pool")
    p.add_argument("--seed", type=int, default=12345, help="the episodes' reset seeds")
    p.add_argument("--max-tasks", type=int, help="at most this many test tasks per draw")
    args = p.parse_args(argv)
    try:
        agent, cfg, backend = load(args.target)
        draws = [int(s) for s in args.draws.split(",")]
    except ValueError as exc:
        print(f"varibad_adaptation: {exc}", file=sys.stderr)
        return 2
    rets: dict[str, list[np.ndarray]] = {"carried": [], "reset": []}
    wins: dict[str, list[np.ndarray]] = {"carried": [], "reset": []}
    has_success = False
    for d in draws:
        draw_r, draw_w, has_success = curves(
            agent, cfg.model_copy(update={"seed": d}), args.episodes, args.seed, args.max_tasks
        )
        for k in rets:
            rets[k].append(draw_r[k])
            wins[k].append(draw_w[k])
    n = sum(len(x) for x in rets["carried"])
    print(f"{args.target} ({backend}): {n} test tasks (draws {draws}), return of episode k")
    head = f"{'hidden state':<16}" + "".join(f" {f'k={k}':>15}" for k in range(args.episodes))
    print(head)
    print("-" * len(head))
    for row, name in (("carried", "kept"), ("reset", "reset each ep.")):
        r = np.concatenate(rets[row])
        cells = "".join(
            f" {f'{m:.2f} ± {s:.2f}':>15}" for m, s in zip(r.mean(0), r.std(0), strict=True)
        )
        print(f"{name:<16}{cells}")
        if has_success:
            w = np.concatenate(wins[row])
            print(f"{'  success':<16}" + "".join(f" {f'{int(c)}/{len(w)}':>15}" for c in w.sum(0)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
