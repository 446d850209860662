"""Where does an offline PEARL run lose its insertions: the socket estimate or the actor?
(BENCHMARKS.md, ## offline, r7)

Per held-out test task: K teleop demonstrations (as `training.finetune --context teleop`),
the posterior mean z, and the socket pose the run's belief decoder reads from it (runs with
`offline.task_features`). Then the same episodes (same reset seeds in every column) with:

- policy:        the run's policy with z = the posterior mean (what `finetune` measures);
- sampled:       the same, its actions sampled from pi instead of its mean action;
- oracle z:      the policy with z moved, least squares along the decoder's rows, until it
                 decodes to the *true* socket pose (the actor given a perfect estimate);
- servo belief:  the teleop demonstrator (sim/teleop.py, noiseless) told the *decoded* pose
                 instead of the truth (a precise controller given the estimate);
- servo truth:   the demonstrator told the truth, noiseless (what the actor imitates);
- demo noisy:    the demonstrator told the truth with the data's action noise
                 (`finetune.teleop_noise`, the demonstrations in the dataset and the context).

Also the mean absolute estimate error (mm, mm, deg). Seeded: the same command prints the
same table.

    python bench/offline_ceiling.py runs/offline_insertion_oda-s0 --tasks-per-plug 10 -n 5
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np
import torch

from training.algos.pearl.agent import TorchAgent
from training.behaviours import DemoAgent, demo_noise
from training.common.agents import Posterior, new_posterior
from training.common.tasks import env_control_hz, make_task_source, select_test_tasks
from training.evaluate import gather_context, run_episode
from training.registry import load_finetune_run as load_run

COLUMNS = ("policy", "sampled", "oracle z", "servo belief", "servo truth", "demo noisy")


class _FixedZ(Posterior):
    """A posterior whose mean is pinned (the oracle z); adding factors is refused."""

    def __init__(self, z: np.ndarray) -> None:
        super().__init__(len(z), True)
        self._z = np.asarray(z, np.float32)

    @property
    def mean(self) -> np.ndarray:  # type: ignore[override]
        return self._z

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self._z


def oracle_z(nets: Any, z: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The smallest change of z (least squares) after which the decoder reads `truth`."""
    dec = nets.decoder
    w, b = dec.weight.numpy().astype(np.float64), dec.bias.numpy().astype(np.float64)
    target = (truth - dec.t_mean.numpy()) / dec.t_std.numpy()
    return (z + np.linalg.pinv(w) @ (target - (w @ z + b))).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Print success per plug for each column, and the estimate error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("-k", type=int, default=2, help="teleop demonstrations per task (context)")
    p.add_argument("-n", type=int, default=5, help="episodes per task and column")
    p.add_argument("--tasks-per-plug", type=int, default=10)
    p.add_argument("--plugs", nargs="+", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    nets, cfg = load_run(args.run)
    if nets.decoder is None or not cfg.use_latent:
        print(
            f"{args.run}: no belief decoder (offline.task_features is empty): "
            "train with configs/train/offline_insertion_oda.yaml",
            file=sys.stderr,
        )
        return 2
    features = list(cfg.offline.task_features)  # the decoder's rows, in this order
    if features != ["dx", "dy", "dyaw"]:
        print(
            f"{args.run}: the decoder must read dx, dy, dyaw (it reads {features})",
            file=sys.stderr,
        )
        return 2
    source = make_task_source(cfg)
    env = source.make_env()
    hz, max_steps = env_control_hz(env), cfg.max_episode_steps
    agent = TorchAgent(nets, True, cfg.encoder.prior_in_posterior)
    noise = demo_noise(cfg.finetune)
    wins: dict[str, dict[str, int]] = {c: {} for c in COLUMNS}
    counts: dict[str, int] = {}
    errors = []
    tasks = select_test_tasks(source, args.plugs, args.tasks_per_plug)
    for i, task in enumerate(tasks):
        env.set_task(task)
        label = source.task_label(task)
        ctx_rng = np.random.default_rng([args.seed, i, 0])
        post = new_posterior(agent)
        gather_context(env, task, agent, post, "teleop", args.k, noise, ctx_rng, hz, max_steps)
        truth = np.array([task.dx, task.dy, task.dyaw])
        with torch.no_grad():  # (dx m, dy m, dyaw rad) the decoder reads from z
            z = torch.as_tensor(post.mean, dtype=torch.float32)[None]
            belief = nets.decoder.estimate(z)[0].double().numpy()
        err = belief - truth
        errors.append([err[0] * 1000.0, err[1] * 1000.0, math.degrees(err[2])])
        believed_task = task.model_copy(
            update={"dx": float(belief[0]), "dy": float(belief[1]), "dyaw": float(belief[2])}
        )
        pinned = _FixedZ(oracle_z(nets, post.mean.astype(np.float64), truth))
        for col in COLUMNS:
            rng = np.random.default_rng([args.seed, i, 1])  # same reset seeds in every column
            demo_rng = np.random.default_rng([args.seed, i, 2])
            ok = 0
            for _ in range(args.n):
                who: Any = agent
                posterior: Posterior = pinned if col == "oracle z" else post
                if col not in ("policy", "sampled", "oracle z"):  # the demonstrator
                    told = believed_task if col == "servo belief" else task
                    sd = noise["teleop"] if col == "demo noisy" else 0.0
                    who, posterior = DemoAgent(env, told, sd, demo_rng, kind="teleop"), Posterior(1)
                ep = run_episode(
                    env,
                    who,
                    posterior,
                    rng,
                    z_mode="mean",
                    update_every_step=False,
                    control_hz=hz,
                    max_steps=max_steps,
                    stochastic_policy=col == "sampled",
                )
                ok += int(ep.success)
            wins[col][label] = wins[col].get(label, 0) + ok
        counts[label] = counts.get(label, 0) + args.n
    env.close()
    print(
        f"{args.run}: {len(tasks)} test tasks, K = {args.k} teleop demonstrations, "
        f"{args.n} episodes per task and column, seed {args.seed}"
    )
    print(f"{'plug':<16}" + "".join(f"{c:>13}" for c in COLUMNS))
    for label in sorted(counts):
        n = counts[label]
        print(f"{label:<16}" + "".join(f"{wins[c][label]:>9}/{n:<3}" for c in COLUMNS))
    total = sum(counts.values())
    print(f"{'all':<16}" + "".join(f"{sum(wins[c].values()):>9}/{total:<3}" for c in COLUMNS))
    e = np.abs(np.asarray(errors)).mean(0)
    print(f"mean |estimate error|: dx {e[0]:.3f} mm, dy {e[1]:.3f} mm, dyaw {e[2]:.2f} deg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
