"""Privileged-teacher distillation for insertion (issue #17): DAgger against the sim's servo,
and a context encoder that reads the hidden socket pose out of what a robot measures.

The product is the usual artifact (`zshot export`): a context encoder emitting one Gaussian
factor per transition (served unchanged by runtime/posterior.py) and a policy pi(a | obs, z).
Here z has a meaning: the *socket pose relative to the believed one*, standardised,

    z = (dx / Z_SCALE[0] mm, dy / Z_SCALE[1] mm, dyaw / Z_SCALE[2] deg),

so the prior N(0, I) is roughly the spread of the `hard` profile's error (±2 mm, ±3°).

Teacher (privileged, training only): `sim.teleop.TeleopDemonstrator` told the episode's
true socket pose (`info["socket_pose"]`): servo over the hole, align yaw, press in; tuned
by `distill.teacher` (the committed config: descent at the arm's 20 mm/s, lowering within
1.5 mm / 0.04 rad, whose student inserts faster than the spiral with memory in `known`).

Student, trained by DAgger (Ross et al. 2011): round 0 rolls the teacher out (behaviour
cloning); round r rolls out the teacher with probability `beta_decay**r` per episode, else
the student; every visited state is labelled with the teacher's action and aggregated.
Two losses, each training one network (tests/training/algos/distill/test_distill.py checks which):

    policy  <- bc_loss:  |tanh(mean(obs, z_in)) - a_teacher|^2 (+ a small pull of log-std
               to log(policy_std)); z_in = the true z + N(0, z_noise^2) (Learning by
               Cheating, Chen et al. 2019: the student is conditioned on the privileged pose,
               made robust to an estimate's error by the noise);
    encoder <- nll_loss: -log N(z_true; product of the prior and the factors of a random
               subset of a context's transitions), plus hinges against runaway factors.
               A transition that ends in the hole (the success bonus in r, the depth in
               s') pins x, y, yaw of s' = the socket; the others should learn a large
               variance. Contexts: groups of `explore_group` exploration episodes of one
               task (the student with z ~ N(0, I), labelled by the servo told the pose that
               z stands for) and successful episodes' last transitions; without exploration
               episodes (`explore_episodes_per_round: 0`), single episodes.

At deployment z is the encoder's posterior (episodic protocol: a sample per exploration
episode, the mean after), the only way the pose reaches the policy. Measured
(BENCHMARKS.md `## distill`): the student matches the servo with the pose known (900/900);
the posterior is accurate after demonstrations, but the student's own exploration neither
finds the hole in `hard` nor leaves the posterior where it was (its failed presses
mislead it): a per-transition factor cannot say "not here" and pi(a | obs, z) keeps no
search state.

    zshot train configs/train/distill_insertion.yaml --profile known
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from torch import Tensor
from torch.nn import functional as F

from training.algos.pearl.agent import TorchAgent
from training.algos.pearl.losses import product_of_gaussians
from training.algos.pearl.networks import PearlNets, make_nets
from training.common.checkpoint import RoundsCheckpoint
from training.common.tasks import open_run
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval
from zshot.jsonio import write_json

__all__ = [
    "Z_SCALE",
    "DistillData",
    "DistillTrainer",
    "bc_loss",
    "nll_loss",
    "pose_to_z",
    "teacher_for",
    "z_to_pose",
]

Z_SCALE = (1.2, 1.2, 1.8)
"""mm, mm, deg per unit of z (about the std of U(-2 mm, 2 mm) and U(-3 deg, 3 deg))."""


def pose_to_z(socket_pose: np.ndarray) -> np.ndarray:
    """`info["socket_pose"]` [m, m, rad] -> standardised z (3,), float32."""
    x, y, yaw = (float(v) for v in socket_pose)
    return np.array(
        [x * 1000.0 / Z_SCALE[0], y * 1000.0 / Z_SCALE[1], math.degrees(yaw) / Z_SCALE[2]],
        np.float32,
    )


def z_to_pose(z: np.ndarray) -> np.ndarray:
    """The inverse of `pose_to_z`: standardised z -> socket pose [m, m, rad]."""
    return np.array(
        [
            float(z[0]) * Z_SCALE[0] / 1000.0,
            float(z[1]) * Z_SCALE[1] / 1000.0,
            math.radians(float(z[2]) * Z_SCALE[2]),
        ]
    )


def teacher_for(
    env: Any, task: Any, socket_pose: np.ndarray, params: dict[str, float] | None = None
) -> Any:
    """The privileged servo told this episode's true socket pose (privileged: training only);
    `params`: TeleopParams fields (`distill.teacher`)."""
    from sim.teleop import TeleopDemonstrator, TeleopParams

    teacher = TeleopDemonstrator(env.config, TeleopParams(**(params or {})))
    x, y, yaw = (float(v) for v in socket_pose)
    teacher.reset(task.model_copy(update={"dx": x, "dy": y, "dyaw": yaw}))
    return teacher


def bc_loss(
    nets: PearlNets, obs: Tensor, z_in: Tensor, target: Tensor, policy_std: float
) -> Tensor:
    """Behaviour cloning of the teacher's normalised action; trains only the policy."""
    mean, log_std = nets.policy(obs, z_in)
    mse = F.mse_loss(torch.tanh(mean), target)
    return mse + 1e-3 * (log_std - math.log(policy_std)).pow(2).mean()


PRE_VAR_FLOOR = -12.0
"""softplus(-12) = 6e-6: a factor more confident than this is pushed back (`nll_loss`)."""
MU_BOUND = 5.0
"""|factor mean| beyond this (5 prior std) is pushed back too."""


def _pre_var(encoder: Any, transition: Tensor) -> Tensor:
    """The encoder's variance logits (before softplus and its 1e-7 clamp, where the
    gradient vanishes), computed as `ContextEncoder.forward` does."""
    o, a = encoder.obs_dim, encoder.act_dim
    s, act, r, s_next = torch.split(transition, [o, a, 1, o], dim=-1)
    x = torch.cat([encoder.normaliser(s), act, r, encoder.normaliser(s_next)], dim=-1)
    return encoder.net(x)[..., encoder.latent_dim :]


def nll_loss(nets: PearlNets, context: Tensor, mask: Tensor, z_true: Tensor) -> Tensor:
    """-log N(z_true; q(z | context)) per episode, averaged; context (E, C, D), mask (E, C),
    z_true (E, L). q is the prior times the masked factors (as the runtime multiplies them);
    trains only the encoder.

    Plus hinges on variance logits below `PRE_VAR_FLOOR` and factor means beyond
    `MU_BOUND` (rows the encoder extrapolates to, e.g. a force-limit ending's reward of
    -410: their var sits at the clamp, where the NLL has no gradient left to fix them)."""
    mu_n, var_n = nets.encoder(context)
    mu, var = product_of_gaussians(mu_n, var_n, prior=True, mask=mask)
    nll = 0.5 * (torch.log(var) + (z_true - mu).pow(2) / var).sum(-1).mean()
    floor = F.relu(PRE_VAR_FLOOR - _pre_var(nets.encoder, context)).sum(-1)
    floor = floor + F.relu(mu_n.abs() - MU_BOUND).sum(-1)
    return nll + (floor * mask).sum() / mask.sum().clamp(min=1.0)


class Episode(NamedTuple):
    """One collected episode: visited obs, the teacher's labels, the transitions, true z."""

    obs: np.ndarray  # (T, obs)
    labels: np.ndarray  # (T, act) the teacher's action at each visited state
    rows: np.ndarray  # (T, 2 obs + act + 1) the transitions as executed
    z: np.ndarray  # (L,) the episode's true socket pose, standardised (the encoder's target)
    z_label: np.ndarray  # (L,) the pose the labelling teacher was told (the policy's z)
    success: bool
    by_teacher: bool
    explore: bool = False
    """Driven by the student with z drawn from the prior (not the truth)."""
    group: int = -1
    """Exploration episodes of one task share a group (the encoder's context is a group)."""


class DistillData:
    """The aggregated DAgger dataset (every round's episodes)."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []

    def add(self, eps: list[Episode]) -> None:
        """Aggregate one round's episodes."""
        self.episodes.extend(eps)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(obs, z, labels) of every visited state; z is the pose the labelling teacher was
        told (the truth, or an exploration episode's draw)."""
        eps = self.episodes
        obs = np.concatenate([e.obs for e in eps])
        z = np.concatenate([np.repeat(e.z_label[None], len(e.obs), 0) for e in eps])
        labels = np.concatenate([e.labels for e in eps])
        return obs, z, labels


def rollout(
    env: Any,
    task: Any,
    student: PearlNets | None,
    rng: np.random.Generator,
    z_noise: float,
    max_steps: int,
    explore: bool = False,
    teacher_params: dict[str, float] | None = None,
) -> Episode:
    """One episode on `task`: the teacher acts when `student` is None, else the student with
    z_in = true z + noise; every state is labelled with the teacher's action. `explore`: the
    student with z_in ~ N(0, I) (a posterior-sampling episode from the prior), labelled by
    the teacher told the pose z_in stands for: "servo to where z says" in every state."""
    env.set_task(task)
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    pose = np.asarray(info["socket_pose"], np.float64)
    z = pose_to_z(pose)
    noise = rng.standard_normal(z.shape).astype(np.float32)
    z_label = noise if explore else z
    teacher = teacher_for(env, task, z_to_pose(noise) if explore else pose, teacher_params)
    z_in = torch.as_tensor(noise if explore else z + z_noise * noise)[None]
    obs_l, lab_l, rows = [], [], []
    success = False
    for _ in range(max_steps):
        label = np.asarray(teacher.act(obs), np.float32)
        if student is None:
            action = label
        else:
            with torch.no_grad():
                mean, _ = student.policy(torch.as_tensor(obs, dtype=torch.float32)[None], z_in)
            action = torch.tanh(mean)[0].numpy()
        nxt, reward, terminated, truncated, info = env.step(action)
        obs_l.append(np.asarray(obs, np.float32))
        lab_l.append(label)
        rows.append(np.concatenate([obs, action, [reward], nxt]).astype(np.float32))
        success = success or bool(info.get("is_success"))
        obs = nxt
        if terminated or truncated:
            break
    return Episode(
        np.stack(obs_l),
        np.stack(lab_l),
        np.stack(rows),
        z,
        z_label,
        success,
        student is None,
        explore,
    )


def _rate(flags: list[bool]) -> float:
    """The fraction of True (NaN for none)."""
    return sum(flags) / len(flags) if flags else float("nan")


class DistillTrainer(RoundsCheckpoint):
    """DAgger rounds: collect (teacher or student), aggregate, fit the policy (bc_loss) and
    the encoder (nll_loss); a checkpoint `zshot export` and `zshot eval` read."""

    ALGORITHM = "distill"

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        if cfg.env != "insertion":
            raise ValueError("distill: only env 'insertion' has a privileged servo teacher")
        if cfg.distill is None:
            raise ValueError("distill: the config has no `distill` section")
        if cfg.encoder.latent_dim != 3:
            raise ValueError(
                f"distill: encoder.latent_dim must be 3 (z = dx, dy, dyaw), got "
                f"{cfg.encoder.latent_dim}"
            )
        if cfg.offline.task_features:
            raise ValueError("distill: offline.task_features are not used here; remove them")
        self.cfg = cfg
        self.dcfg = cfg.distill
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "distill")
        self.rng, self.source, self.env = run.rng, run.source, run.env
        self.obs_dim, self.act_dim = run.obs_dim, run.act_dim
        self.max_steps = cfg.max_episode_steps or int(self.env.config.max_steps)
        self.nets: PearlNets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.policy_opt = torch.optim.Adam(self.nets.policy.parameters(), lr=self.dcfg.lr)
        self.encoder_opt = torch.optim.Adam(self.nets.encoder.parameters(), lr=self.dcfg.lr)
        self.data = DistillData()
        self.round = 0
        self.groups = 0
        self.updates = 0
        self.env_steps = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ one round
    def collect(self, n: int, beta: float) -> list[Episode]:
        """`n` episodes on random train tasks; the teacher drives each with probability beta."""
        tasks = self.source.train_tasks
        out = []
        for _ in range(n):
            task = tasks[int(self.rng.integers(len(tasks)))]
            student = None if self.rng.random() < beta else self.nets
            out.append(self._rollout(task, student, False))
        return out

    def explore(self, n: int) -> list[Episode]:
        """`n` exploration episodes in groups of `explore_group` on one random train task each
        (as K episodes of one test task add up in the runtime's posterior)."""
        tasks = self.source.train_tasks
        out: list[Episode] = []
        while len(out) < n:
            task = tasks[int(self.rng.integers(len(tasks)))]
            self.groups += 1
            for _ in range(min(self.dcfg.explore_group, n - len(out))):
                ep = self._rollout(task, self.nets, True)
                out.append(ep._replace(group=self.groups))
        return out

    def _rollout(self, task: Any, student: PearlNets | None, explore: bool) -> Episode:
        d = self.dcfg
        ep = rollout(
            self.env,
            task,
            student,
            self.rng,
            d.z_noise,
            self.max_steps,
            explore,
            d.teacher.params(),
        )
        self.env_steps += len(ep.obs)
        return ep

    def fit_policy(self, updates: int) -> float:
        """`updates` Adam steps of bc_loss on minibatches of the aggregated data."""
        obs, z, labels = (torch.as_tensor(a) for a in self.data.arrays())
        n, bs, total = len(obs), self.dcfg.batch_size, 0.0
        gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        for _ in range(updates):
            idx = torch.randint(n, (bs,), generator=gen)
            z_in = z[idx] + self.dcfg.z_noise * torch.randn(bs, z.shape[1], generator=gen)
            loss = bc_loss(self.nets, obs[idx], z_in, labels[idx], self.dcfg.policy_std)
            self.policy_opt.zero_grad()
            loss.backward()
            self.policy_opt.step()
            total += float(loss.detach())
            self.updates += 1
        return total / max(updates, 1)

    def encoder_batch(self, n_eps: int) -> tuple[Tensor, Tensor, Tensor]:
        """Context (E, C, D), mask (E, C), true z (E, L).

        A context is a random subset of one exploration group's transitions (up to
        `explore_group` episodes of one task, as the runtime multiplies K episodes' factors),
        target the true z of its last episode. `success_fraction` of the contexts also get
        the last transition of a successful episode (the one that ends in the hole), target
        its z (the group's rows masked out when that is another pose). Only exploration
        episodes give whole contexts: elsewhere the actor was told the truth, and its motion
        towards the hole would leak the pose into factors the deployed student cannot use."""
        eps = self.data.episodes
        groups: dict[int, list[Episode]] = {}
        for e in eps:
            if e.explore:
                groups.setdefault(e.group, []).append(e)
        pool = list(groups.values()) or [[e] for e in eps]
        wins = [e for e in eps if e.success]
        C = max(sum(len(e.rows) for e in g) for g in pool) + 1
        D = eps[0].rows.shape[1]
        ctx = np.zeros((n_eps, C, D), np.float32)
        mask = np.zeros((n_eps, C), np.float32)
        z = np.zeros((n_eps, 3), np.float32)
        for i in range(n_eps):
            g = pool[int(self.rng.integers(len(pool)))]
            rows = np.concatenate([e.rows for e in g])
            T = len(rows)
            ctx[i, :T] = rows
            mask[i, :T] = self.rng.random(T) < self.rng.uniform(0.2, 1.0)
            z[i] = g[-1].z
            if wins and self.rng.random() < self.dcfg.success_fraction:
                w = wins[int(self.rng.integers(len(wins)))]
                ctx[i, T] = w.rows[-1]
                mask[i, T] = 1.0
                mask[i, :T] *= float(np.array_equal(w.z, z[i]))  # other pose: success alone
                z[i] = w.z
        return torch.as_tensor(ctx), torch.as_tensor(mask), torch.as_tensor(z)

    def fit_encoder(self, updates: int) -> float:
        """`updates` Adam steps of nll_loss."""
        total = 0.0
        for _ in range(updates):
            ctx, mask, z = self.encoder_batch(self.dcfg.encoder_episodes)
            loss = nll_loss(self.nets, ctx, mask, z)
            self.encoder_opt.zero_grad()
            loss.backward()
            # one confident factor off by a clearance costs 1e3-1e5 nats: clip its step
            torch.nn.utils.clip_grad_norm_(self.nets.encoder.parameters(), self.dcfg.grad_clip)
            self.encoder_opt.step()
            total += float(loss.detach())
        return total / max(updates, 1)

    def set_obs_stats(self) -> None:
        """Freeze the observation normalisation from the teacher's round-0 data."""
        obs, _, _ = self.data.arrays()
        t = torch.as_tensor(obs)
        self.nets.set_obs_stats(t.mean(0), t.std(0))

    def step_round(self) -> dict[str, Any]:
        """Collect one DAgger round, aggregate, fit both networks; returns its history row."""
        d = self.dcfg
        t0 = time.perf_counter()
        beta = 1.0 if self.round == 0 else d.beta_decay**self.round
        eps = self.collect(d.episodes_per_round, beta)
        if self.round > 0:  # the first student is untrained: explore from round 1 on
            eps += self.explore(d.explore_episodes_per_round)
        self.data.add(eps)
        if self.round == 0:
            self.set_obs_stats()
        student = [e for e in eps if not e.by_teacher and not e.explore]
        explored = [e for e in eps if e.explore]
        bc = self.fit_policy(d.policy_updates)
        nll = self.fit_encoder(d.encoder_updates)
        self.train_seconds += time.perf_counter() - t0
        row = {
            "iteration": self.round,
            "beta": beta,
            "episodes": len(self.data.episodes),
            "student_success": _rate([e.success for e in student]),
            "teacher_success": _rate([e.success for e in eps if e.by_teacher]),
            "explore_success": _rate([e.success for e in explored]),
            "bc_loss": bc,
            "nll_loss": nll,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "seconds": round(self.train_seconds, 1),
        }
        self.history.append(row)
        self.round += 1
        return row

    def evaluate(self) -> FewShotReport:
        """The config's few-shot evaluation on the test tasks (torch)."""
        agent = TorchAgent(self.nets, True, True)
        return few_shot_eval(
            self.source, agent, self.cfg.eval, seed=self.cfg.seed, max_steps=self.max_steps
        )

    def run(self, progress: bool = False) -> FewShotReport:
        """All rounds (or until `max_minutes`), then a checkpoint, history, curves, eval."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        start = time.monotonic()
        for _ in range(self.dcfg.rounds):
            row = self.step_round()
            print(
                f"round {row['iteration']}: beta {row['beta']:.2f} student "
                f"{row['student_success']:.2f} explore {row['explore_success']:.2f} bc {row['bc_loss']:.4f} nll {row['nll_loss']:.3f} "
                f"({row['seconds']:.0f} s)",
                flush=True,
            )
            if cfg.max_minutes is not None and time.monotonic() - start > 60 * cfg.max_minutes:
                break
        self.save_checkpoint()
        write_json(self.run_dir / "history.json", self.history)
        plot_history(self.history, self.run_dir / "curves.png")
        self.env.close()
        report = self.evaluate()
        report.write_json(self.run_dir / "eval.json")
        return report


def plot_history(history: list[dict[str, Any]], path: str | Path) -> None:
    """PNG: the student's success in its own DAgger episodes, and both losses, per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [h["iteration"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(it, [h["student_success"] for h in history], "o-")
    axes[0].set(
        title="student success (its DAgger episodes, train tasks)",
        xlabel="round",
        ylim=(-0.02, 1.02),
    )
    axes[1].plot(it, [h["bc_loss"] for h in history], label="bc (policy)")
    axes[1].plot(it, [h["nll_loss"] for h in history], label="nll (encoder)")
    axes[1].set(title="losses", xlabel="round", yscale="symlog")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
