"""Divide-and-Conquer training (Ghosh et al. 2018) over the train tasks: training/common/
multitask.py's loop with DnC's networks and RL update, plus the periodic distillation of
the central policy pi_G (`dnc.distill_steps` supervised steps every `dnc.distill_every`
iterations, and before an evaluation if the local policies moved since the last one; its
states drawn with a generator of its own). Collection on task i uses its context's local
policy (sampled actions); evaluation and the exported artifact use pi_G told the task's
one-hot id (deterministic: noise 0), `eval.eval_episodes` episodes per train task
(training/evaluate.py `conditioned_eval`); `eval-local-policies.json` beside `eval.json`
holds the same evaluation of the local policies (what distillation loses)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from training.algos.dnc.losses import DnCOptimizers, distill_step, dnc_update
from training.algos.dnc.networks import DnCNets, make_nets
from training.common.local_policies import LocalPolicyActor
from training.common.multitask import MTBatch, MultiTaskTrainer, sample_batch
from training.common.networks import deterministic_action
from training.evaluate import FewShotReport, conditioned_eval

ALGORITHM = "dnc"
CHECKPOINT_VERSION = 1
DISTILL_STREAM = 0xD1C
"""Mixed into the seed of the distillation's generator (independent of collection's)."""


class DnCTrainer(MultiTaskTrainer[FewShotReport]):
    """One Divide-and-Conquer run."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION
    LABEL = "DnC"
    nets: DnCNets
    optimizers: DnCOptimizers

    def build(self) -> None:
        """DnC's networks, optimizers and the distillation's generator."""
        self.nets = make_nets(self.obs_dim, self.act_dim, self.cfg)
        self.optimizers = DnCOptimizers.create(self.nets, self.cfg)
        self.distill_rng = np.random.default_rng([self.cfg.seed, DISTILL_STREAM])
        self.distilled_at = -1
        """`updates` at the last distillation (-1: none yet)."""
        self.distillations = 0

    def actor(self, task: int) -> LocalPolicyActor:
        """The local policy of `task`'s context, sampled."""
        return LocalPolicyActor(self, self.nets, int(self.nets.context(torch.tensor(task))), task)

    def update(self, batch: MTBatch) -> dict[str, float]:
        """One RL step of the critic and local policies (PCGrad when configured)."""
        return dnc_update(batch, self.nets, self.optimizers, self.cfg, self.pcgrad)

    def distill(self) -> dict[str, float]:
        """`dnc.distill_steps` supervised steps of pi_G on replayed states of every task."""
        cfg, n = self.cfg, self.nets.num_tasks
        losses = []
        for _ in range(cfg.dnc.distill_steps):
            tasks = self.distill_rng.choice(n, size=cfg.meta_batch, replace=cfg.meta_batch > n)
            batch = sample_batch(self.buffer, tasks, cfg.batch_size, self.distill_rng)
            losses.append(distill_step(batch, self.nets, self.optimizers))
        self.distilled_at, self.distillations = self.updates, self.distillations + 1
        return {
            "loss/distill_first": losses[0],
            "loss/distill": losses[-1],
            "dnc/distillations": float(self.distillations),
        }

    def train_iteration(self) -> dict[str, float]:
        """The multi-task iteration, then a distillation every `dnc.distill_every`."""
        logs = super().train_iteration()
        if self.iteration % self.cfg.dnc.distill_every == 0:
            logs.update(self.distill())
        return logs

    def shared_policy(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """pi_G's deterministic action for `obs` told `descriptor` (the exported graph's)."""
        d = torch.as_tensor(descriptor)[None]
        return np.asarray(deterministic_action(self.nets.shared, obs, d))

    def local_policy(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """The deterministic action of the local policy of the one-hot `descriptor`'s task."""
        task = torch.tensor([int(np.argmax(descriptor))])
        policy = self.nets.task_policy(int(self.nets.context(task)[0]))
        return np.asarray(deterministic_action(policy, obs, self.nets.local_z(task)))

    def evaluate(self, seed_offset: int = 1, local_policies: bool = False) -> FewShotReport:
        """pi_G (distilled first if stale) or each task's local policy on every train task."""
        if not local_policies and self.distilled_at != self.updates:
            self.distill()
        return conditioned_eval(
            self.source,
            self.local_policy if local_policies else self.shared_policy,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={
                "algorithm": ALGORITHM,
                "policy": "local policies" if local_policies else "central policy pi_G",
            },
        )

    def finish(self, report: FewShotReport) -> None:
        """The local policies' evaluation beside the central one's."""
        own = self.evaluate(seed_offset=self.iteration, local_policies=True)
        own.write_json(self.run_dir / "eval-local-policies.json")

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        """The multi-task state and the distillation's counters."""
        dnc = {"distilled_at": self.distilled_at, "distillations": self.distillations}
        return {**super().extra_state(), "dnc": dnc}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the multi-task state and the distillation's counters."""
        super().load_extra_state(state)
        self.distilled_at = int(state["dnc"]["distilled_at"])
        self.distillations = int(state["dnc"]["distillations"])

    def extra_rng_state(self) -> dict[str, Any]:
        """PCGrad's generator and the distillation's."""
        distill = json.dumps(self.distill_rng.bit_generator.state)  # weights_only loadable
        return {**super().extra_rng_state(), "distill": distill}

    def restore_extra_rng(self, rng: dict[str, Any]) -> None:
        """Restore PCGrad's and the distillation's generators."""
        super().restore_extra_rng(rng)
        self.distill_rng.bit_generator.state = json.loads(rng["distill"])
