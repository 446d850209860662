"""Offline PEARL, the ODA recipe (Zhao et al., "Offline Meta-Reinforcement Learning for
Industrial Insertion", ICRA 2022, arXiv 2110.04276).

PEARL's context encoder (training/algos/pearl/losses.py: per-transition Gaussian factors,
product of Gaussians, KL to N(0, I), trained through the critic) on top of AWAC (Nair et al.
2020, arXiv 2006.09359) instead of SAC, trained from a fixed multi-task dataset only
(`zshot collect`, training/common/datasets.py; the trainer is trainer.py). Read top to bottom:

1. `offline_pearl_losses(batch, nets, cfg, per_task=False)`: pure; returns `OfflineLosses`
   (scalars, or with `per_task` (T,) terms that sum to them):
   - critic: policy evaluation of pi (AWAC eq. 3, twin Q + target networks, no entropy):
         y = r_scale * r + gamma (1 - d) min_i Q'_i(s', a' ~ pi(.|s', z), z)
   - actor: advantage-weighted maximum likelihood of the *dataset* actions (AWAC eq. 8):
         L_pi = -E_(s,a)~D [ w(s, a) log pi(a | s, z) ],
         w = min(exp(A(s, a, z) / lambda), max_weight),
         A = min_i Q_i(s, a, z) - E_{a'~pi} min_i Q_i(s, a', z)
     weights clipped as in CRR/IQL so a few large advantages cannot dominate a batch;
   - or, with `offline.critic: iql` (Implicit Q-Learning, Kostrikov et al. 2021, arXiv
     2110.06169), no action outside the data is evaluated: V(s, z) fits the tau-expectile
     of the target Qs of the dataset actions (`expectile_loss`), the critic backs up through
     it, y = r_scale * r + gamma (1 - d) V(s', z), and A = min_i Q'_i(s, a, z) - V(s, z);
     the same weighted actor (beta = 1 / lambda). V's loss joins the critic loss (V only);
   - kl_div: KL(q(z|c) || N(0, I)) summed over tasks (PEARL eq. 4);
   - task_loss (optional): MSE of head(posterior mean) against the standardised hidden task
     parameters (remedy c below).
2. `offline_update(batch, nets, optimizers, cfg, grad_transform=None)`: the optimizer steps,
   one `Learner` each (training/common/learner.py, with its gradient-surgery hook). Gradient paths:
       encoder  <- critic loss + kl_lambda * KL (+ task_loss_weight * task_loss)
       Q1, Q2   <- critic loss                     (and V <- its expectile loss, iql)
       policy   <- actor loss                      (z and the weights w detached)
       task head<- task_loss_weight * task_loss     (with `offline.task_targets`)
3. `OfflineTrainer`: the loop (no env steps), checkpoints in `zshot train`'s schema so
   `zshot export` and `zshot eval` read offline runs unchanged.

The context-shift remedy (the known weakness of offline context encoders: the dataset's
behaviour policies produce other contexts than the learned policy explores with at test
time; Dorfman et al. 2021 "BOReL" and Li et al. 2021 "FOCAL" describe it, and the ODA paper
adapts from demonstrations for this reason): two parts.
  a) `context_sampling: per_behaviour` (default): every training context is drawn from the
     transitions of a *single* behaviour policy of the task, chosen at random per task and
     step, instead of a mix of all of them. The encoder must then identify the task from the
     data of any one policy (scripted, random, partially trained), so its posterior does not
     depend on the behaviour mix that only the dataset has; the "training the encoder on
     contexts from mixed policies" remedy (cf. Pong et al. 2022, "SMAC", who name the
     mismatch between offline and online context distributions as the failure).
  b) at test time, adaptation context from demonstrations (finetune.py,
     `context_source: teleop`, a demonstrator that knows the socket as a person would, or
     `scripted`, the noisy spiral), the ODA paper's protocol.
  c) supervised task inference (`offline.task_targets`, `TaskInference`): a linear head on
     the posterior mean regresses the training tasks' hidden parameters, its loss added to
     the encoder's, so z keeps what a context says about the task whichever policy gathered
     it (privileged task information at training time, Humplik et al. 2019, "Meta
     reinforcement learning as task inference", arXiv 1905.06424). Measured in BENCHMARKS.md
     `## offline` r5: on the same data 280 -> 447/900 (weight 10) from two teleop
     demonstrations; R^2 of the socket x from z 0.19 -> 0.97 with 384 training tasks.
The measurement (success with demonstration vs own-exploration context) is in finetune.py.

Shapes: batch (T, B, .); context (T, C, D) with D = 2*obs + act + 1; z (T, L) -> (T*B, L).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from training.algos.offline_pearl.networks import OfflinePearlNets
from training.algos.pearl.losses import (
    PearlOptimizers,
    batch_latent,
    pearl_learners,
    step_learners,
)
from training.common.batches import MetaBatch, assemble_batch
from training.common.learner import GradTransform, Learner, task_reducer
from training.common.networks import TanhGaussianPolicy
from training.config import TrainConfig

ACTION_EPS = 1e-4  # dataset actions at exactly +-1 have atanh = inf: clip into the open box


class OfflineLosses(NamedTuple):
    """Every loss term of one offline PEARL step plus diagnostics. The losses are scalars, or
    with `per_task` (T,) terms summing to them (training/common/learner.py `task_reducer`); the
    diagnostics are always over the whole batch."""

    qf_loss: Tensor
    """Twin-Q Bellman error (policy evaluation); its gradient also trains the encoder. With
    `offline.critic: iql` it also holds V's expectile loss (`v_loss`), which reaches V only."""
    v_loss: Tensor
    """iql: V's expectile loss, detached, for logging (0 with awac)."""
    policy_loss: Tensor
    """Advantage-weighted negative log-likelihood of the dataset actions."""
    kl_div: Tensor
    """Sum over tasks of KL(q(z|c_T) || N(0, I)) (not yet weighted by kl_lambda)."""
    task_loss: Tensor
    """Task inference: MSE of the head's prediction of the standardised hidden task
    parameters from the posterior mean (0 without `offline.task_targets`; not yet weighted)."""
    advantage: Tensor  # mean A(s, a, z) on the batch, detached
    weight: Tensor  # mean clipped weight, detached
    z_mean: Tensor  # (T, L), detached
    z_var: Tensor  # (T, L), detached
    q_mean: Tensor  # mean Q1 on the batch, detached


def expectile_loss(
    diff: Tensor, tau: float, reduce: Callable[[Tensor], Tensor] = torch.mean
) -> Tensor:
    """IQL's asymmetric squared loss of u = Q - V: mean |tau - 1(u < 0)| u^2 (eq. 5). Its
    minimiser over a constant V is the tau-expectile of Q (the mean at tau = 0.5).
    `reduce`: the mean, or per-task terms (training/common/learner.py `task_reducer`)."""
    w = torch.where(diff < 0, 1.0 - tau, tau)
    return reduce(w * diff.pow(2))


def tanh_gaussian_log_prob(
    policy: TanhGaussianPolicy, obs: Tensor, z: Tensor, action: Tensor
) -> Tensor:
    """log pi(a | s, z) of given actions in [-1, 1] under the tanh-Gaussian policy: (N, 1).

    u = atanh(a); log pi(a) = log N(u; mean, std) - sum log(1 - a^2)  (SAC appendix C).
    """
    mean, log_std = policy(obs, z)
    a = torch.clamp(action, -1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
    u = torch.atanh(a)
    normal = -0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return (normal - torch.log1p(-a.pow(2))).sum(-1, keepdim=True)


def offline_pearl_losses(
    batch: MetaBatch,
    nets: OfflinePearlNets,
    cfg: TrainConfig,
    task_head: torch.nn.Module | None = None,
    task_targets: Tensor | None = None,
    per_task: bool = False,
) -> OfflineLosses:
    """Every offline PEARL loss term for one meta-batch; pure (no optimizer step).

    `task_head` and `task_targets` (T, n): the task-inference term, head(posterior mean)
    against the batch tasks' standardised hidden parameters (`TaskInference`).
    `per_task`: each loss as (T,) terms, task t's share of the scalar (its mean / T; KL: its
    own KL), so that they sum to the scalar loss (the seam for gradient surgery)."""
    sac, off = cfg.sac, cfg.offline
    T, B, _ = batch.obs.shape
    L = nets.latent_dim
    reduce = task_reducer(T, per_task)
    zero = torch.zeros(T) if per_task else torch.zeros(())

    # --- q(z | c) and a reparameterised z: (T, L), grads -> encoder through the critic;
    # without context (the ODA paper's AWAC baseline) z is fixed at 0 ---
    z_mean, z_var, z, kl_div = batch_latent(nets, batch.context, cfg, zero)

    z_flat = z.unsqueeze(1).expand(T, B, L).reshape(T * B, L)  # (T*B, L)
    obs = batch.obs.reshape(T * B, -1)
    actions = batch.actions.reshape(T * B, -1)
    rewards = batch.rewards.reshape(T * B, 1)
    next_obs = batch.next_obs.reshape(T * B, -1)
    dones = batch.dones.reshape(T * B, 1)
    z_det = z_flat.detach()

    vf = nets.vf if off.critic == "iql" else None  # V(s, z): the iql critic
    if off.critic == "iql" and vf is None:
        raise ValueError("offline.critic: iql needs networks with a value function (make_nets)")
    # --- critic: Q by the Bellman backup; z not detached (the encoder learns through it) ---
    #   awac: through a' ~ pi (AWAC eq. 3); iql: through V(s', z) (IQL eq. 6)
    q1 = nets.qf1(obs, actions, z_flat)
    q2 = nets.qf2(obs, actions, z_flat)
    with torch.no_grad():
        if vf is not None:
            next_v = vf(next_obs, z_det)
        else:
            next_actions, _ = nets.policy.sample(next_obs, z_det)
            next_v = torch.min(
                nets.target_qf1(next_obs, next_actions, z_det),
                nets.target_qf2(next_obs, next_actions, z_det),
            )
        q_target = sac.reward_scale * rewards + (1.0 - dones) * sac.gamma * next_v
    if per_task:
        qf_loss = reduce((q1 - q_target) ** 2) + reduce((q2 - q_target) ** 2)
    else:  # F.mse_loss's own backward kernel: the scalar loss stays what it always was
        qf_loss = F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target)

    # --- advantage of the dataset actions, and V's expectile loss (iql) ---
    v_loss = zero
    if vf is not None:
        with torch.no_grad():  # IQL eq. 5: the target networks' Q of the dataset action
            q_data = torch.min(
                nets.target_qf1(obs, actions, z_det), nets.target_qf2(obs, actions, z_det)
            )
        v_pred = vf(obs, z_det)
        v_loss = expectile_loss(q_data - v_pred, off.expectile, reduce)
        adv = (q_data - v_pred).detach()
    else:
        with torch.no_grad():
            q_data = torch.min(nets.qf1(obs, actions, z_det), nets.qf2(obs, actions, z_det))
            k = off.value_samples
            obs_k = obs.repeat(k, 1)  # (k*T*B, obs)
            z_k = z_det.repeat(k, 1)
            a_k, _ = nets.policy.sample(obs_k, z_k)
            v = torch.min(nets.qf1(obs_k, a_k, z_k), nets.qf2(obs_k, a_k, z_k))
            v = v.reshape(k, T * B, 1).mean(0)  # V(s, z) = E_pi Q(s, a, z)
            adv = q_data - v

    # --- actor: advantage-weighted regression onto dataset actions (AWAC eq. 8, IQL eq. 7) ---
    with torch.no_grad():
        # exp(A / lambda) clipped at max_weight; clamp the exponent first so exp cannot overflow
        weight = torch.exp(torch.clamp(adv / off.awac_lambda, max=math.log(off.max_weight)))
    log_prob = tanh_gaussian_log_prob(nets.policy, obs, z_det, actions)  # grads -> policy only
    policy_loss = -reduce(weight * log_prob)

    # --- task inference (privileged, training only): grads -> encoder and the head ---
    task_loss = zero
    if task_head is not None and task_targets is not None and cfg.use_latent:
        if per_task:
            task_loss = reduce((task_head(z_mean) - task_targets) ** 2)
        else:
            task_loss = F.mse_loss(task_head(z_mean), task_targets)

    return OfflineLosses(
        qf_loss=qf_loss + v_loss,
        v_loss=v_loss.detach(),
        policy_loss=policy_loss,
        kl_div=kl_div,
        task_loss=task_loss,
        advantage=adv.mean(),
        weight=weight.mean(),
        z_mean=z_mean.detach(),
        z_var=z_var.detach(),
        q_mean=q1.detach().mean(),
    )


def offline_update(
    batch: MetaBatch,
    nets: OfflinePearlNets,
    optimizers: PearlOptimizers,
    cfg: TrainConfig,
    task: TaskInference | None = None,
    tasks: np.ndarray | None = None,
    grad_transform: GradTransform | None = None,
) -> dict[str, float]:
    """One offline PEARL gradient step; returns the loss terms as floats for logging.

    `task` and the batch's dataset task indices `tasks`: add the task-inference loss
    (`offline.task_targets`) to the encoder's and step its head (learner "task_head").
    `grad_transform` (training/common/learner.py): the losses are built per task and the hook may
    replace each learner's gradient (gradient surgery); None: the plain step."""
    if tasks is None:
        task = None  # the head needs to know which dataset tasks the batch holds
    head = task.head if task is not None else None
    targets = task.targets_for(tasks) if task is not None and tasks is not None else None
    per_task = grad_transform is not None
    losses = offline_pearl_losses(batch, nets, cfg, head, targets, per_task=per_task)
    critic_loss = losses.qf_loss + cfg.encoder.kl_lambda * losses.kl_div
    if task is not None:  # the task loss reaches the encoder (through z's mean) and the head
        critic_loss = critic_loss + cfg.offline.task_loss_weight * losses.task_loss
    # No temperature in the advantage-weighted actor: log alpha is not trained offline.
    learners = pearl_learners(
        nets,
        optimizers,
        cfg,
        critic_loss=critic_loss,
        policy_loss=losses.policy_loss,
        alpha_loss=None,
    )
    if task is not None:
        learners.append(
            Learner("task_head", critic_loss, list(task.head.parameters()), task.optimizer)
        )
    step_learners(nets, learners, cfg, grad_transform)
    if task is not None:
        task.sync(nets, cfg)
    return {
        "loss/qf": float((losses.qf_loss - losses.v_loss).detach().sum()),
        "loss/policy": float(losses.policy_loss.detach().sum()),
        "loss/kl_div": float(losses.kl_div.detach().sum()),
        "loss/task": float(losses.task_loss.detach().sum()),
        "loss/v": float(losses.v_loss.sum()),
        "awac/advantage": float(losses.advantage),
        "awac/weight": float(losses.weight),
        "sac/q_mean": float(losses.q_mean),
        "z/var_mean": float(losses.z_var.mean()),
    }


class TaskInference:
    """The task-inference head and its targets (`offline.task_targets`): a linear map from
    the posterior mean to the dataset tasks' hidden parameters, standardised over tasks."""

    def __init__(self, dataset: Any, keys: list[str], latent_dim: int, lr: float) -> None:
        rows = []
        for i, t in enumerate(dataset.tasks):
            row = []
            for k in keys:
                v = t.task.get(k) if isinstance(t.task, dict) else None
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise ValueError(
                        f"offline.task_targets: task {i} ({t.label}) has no finite number "
                        f"under {k!r} in its metadata (has: {sorted(t.task or {})})"
                    )
                row.append(float(v))
            rows.append(row)
        values = np.asarray(rows, np.float64)
        self.keys = list(keys)
        self.mean = values.mean(0)
        self.std = np.where(values.std(0) > 0, values.std(0), 1.0)
        self.targets = torch.as_tensor((values - self.mean) / self.std, dtype=torch.float32)
        self.head = torch.nn.Linear(latent_dim, len(keys))
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=lr)

    def sync(self, nets: OfflinePearlNets, cfg: TrainConfig) -> None:
        """Give the networks' belief features (`offline.task_features`) the current head."""
        if nets.decoder is not None:
            rows = [self.keys.index(k) for k in cfg.offline.task_features]
            nets.decoder.set_head(self.head, self.mean, self.std, rows)

    def targets_for(self, tasks: np.ndarray) -> Tensor:
        """Standardised targets of dataset tasks `tasks`: (T, n)."""
        return self.targets[torch.as_tensor(np.asarray(tasks, np.int64))]

    def state_dict(self) -> dict[str, Any]:
        """Head, optimizer and standardisation (for checkpoints)."""
        return {
            "keys": self.keys,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`."""
        if list(state["keys"]) != self.keys:
            raise ValueError(f"checkpoint's task_targets {state['keys']} differ from {self.keys}")
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])


def sample_offline_tasks(dataset: Any, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """`meta_batch` distinct dataset task indices (all of them when there are fewer)."""
    n = len(dataset.tasks)
    return rng.choice(n, size=min(cfg.meta_batch, n), replace=False)


def sample_offline_batch(
    dataset: Any, cfg: TrainConfig, rng: np.random.Generator, tasks: np.ndarray | None = None
) -> MetaBatch:
    """A meta-batch from an OfflineDataset: `meta_batch` tasks (or `tasks`), RL + context."""
    if tasks is None:
        tasks = sample_offline_tasks(dataset, cfg, rng)
    per_behaviour = cfg.offline.context_sampling == "per_behaviour"
    context = functools.partial(dataset.sample_context, per_behaviour=per_behaviour)
    return assemble_batch(dataset, context, tasks, cfg.batch_size, cfg.context_size, rng)
