"""How much of the hidden socket error does a run's posterior carry on the held-out tasks?
(BENCHMARKS.md, ## offline, r5)

Per test task: K context episodes (teleop demonstrations, the noisy spiral or the run's own
exploration, as `training.finetune`), then the posterior mean z. A least-squares linear map
from z (plus a constant) to the task's (dx mm, dy mm, dyaw deg) is fitted over all the
tasks and its R^2 printed per parameter: 1 = z names the socket pose exactly (linearly),
0 = z tells nothing about it. In-sample over the test tasks (6 parameters per target
against 90 tasks), so it is an upper bound on what a linear read-out generalises to.

    python bench/offline_probe.py runs/offline_insertion_oda-s0 --context teleop
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from training.algos.pearl.agent import TorchAgent
from training.behaviours import demo_noise
from training.common.agents import new_posterior
from training.common.tasks import env_control_hz, make_task_source, select_test_tasks
from training.evaluate import gather_context
from training.registry import load_finetune_run as load_run


def main() -> None:
    """Print R^2 of a linear read-out of (dx, dy, dyaw) from the posterior mean."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--context", choices=["teleop", "scripted", "own"], default="teleop")
    p.add_argument("-k", type=int, default=2, help="context episodes per task")
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    nets, cfg = load_run(args.run)
    source = make_task_source(cfg)
    env = source.make_env()
    hz = env_control_hz(env)
    agent = TorchAgent(nets, cfg.use_latent, cfg.encoder.prior_in_posterior)
    rng = np.random.default_rng(args.seed)
    zs, ys = [], []
    for task in select_test_tasks(source, None, args.tasks_per_plug):
        env.set_task(task)
        post = new_posterior(agent)
        noise = demo_noise(cfg.finetune)
        gather_context(
            env, task, agent, post, args.context, args.k, noise, rng, hz, cfg.max_episode_steps
        )
        zs.append(post.mean)
        ys.append([task.dx * 1000.0, task.dy * 1000.0, np.degrees(task.dyaw)])
    env.close()
    z, y = np.asarray(zs), np.asarray(ys)
    x = np.c_[z, np.ones(len(z))]
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    r2 = 1.0 - (resid**2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    print(f"{args.run}: {len(z)} test tasks, K = {args.k} {args.context} context episodes")
    for name, unit, r, e in zip(
        ("dx", "dy", "dyaw"), ("mm", "mm", "deg"), r2, resid.std(0), strict=True
    ):
        print(f"  {name:<5} R^2 {r:6.3f}   residual std {e:.3f} {unit}")


if __name__ == "__main__":
    main()
