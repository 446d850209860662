"""Distral training (Teh et al. 2017) over the train tasks: training/common/multitask.py's
loop with Distral's networks and update. Collection on task i uses that task's own policy
pi_i (sampled actions); evaluation and the exported artifact use the shared policy pi_0
told the task's one-hot id (deterministic: noise 0), `eval.eval_episodes` episodes per
train task (training/evaluate.py `conditioned_eval`); `eval-task-policies.json` beside
`eval.json` holds the same evaluation of the task policies (what distillation loses)."""

from __future__ import annotations

import numpy as np
import torch

from training.algos.distral.losses import DistralOptimizers, distral_update
from training.algos.distral.networks import DistralNets, make_nets
from training.common.local_policies import LocalPolicyActor, empty_z
from training.common.multitask import MTBatch, MultiTaskTrainer
from training.common.networks import deterministic_action
from training.evaluate import FewShotReport, conditioned_eval

ALGORITHM = "distral"
CHECKPOINT_VERSION = 1


class DistralTrainer(MultiTaskTrainer[FewShotReport]):
    """One Distral run."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION
    LABEL = "Distral"
    nets: DistralNets
    optimizers: DistralOptimizers

    def build(self) -> None:
        """Distral's networks and optimizers."""
        self.nets = make_nets(self.obs_dim, self.act_dim, self.cfg)
        self.optimizers = DistralOptimizers.create(self.nets, self.cfg)

    def actor(self, task: int) -> LocalPolicyActor:
        """pi_task, sampled."""
        return LocalPolicyActor(self, self.nets, task, task)

    def update(self, batch: MTBatch) -> dict[str, float]:
        """One Distral step (PCGrad when configured)."""
        return distral_update(batch, self.nets, self.optimizers, self.cfg, self.pcgrad)

    def shared_policy(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """pi_0's deterministic action for `obs` told `descriptor` (the exported graph's)."""
        d = torch.as_tensor(descriptor)[None]
        return np.asarray(deterministic_action(self.nets.shared, obs, d))

    def task_policy(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """The deterministic action of pi_i, i the one-hot `descriptor`'s task."""
        policy = self.nets.task_policy(int(np.argmax(descriptor)))
        return np.asarray(deterministic_action(policy, obs, empty_z(1)))

    def evaluate(self, seed_offset: int = 1, task_policies: bool = False) -> FewShotReport:
        """The shared policy (or, `task_policies`, each pi_i) on every train task."""
        return conditioned_eval(
            self.source,
            self.task_policy if task_policies else self.shared_policy,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={
                "algorithm": ALGORITHM,
                "policy": "task policies pi_i" if task_policies else "shared policy pi_0",
            },
        )

    def finish(self, report: FewShotReport) -> None:
        """The task policies' evaluation beside the shared one's."""
        own = self.evaluate(seed_offset=self.iteration, task_policies=True)
        own.write_json(self.run_dir / "eval-task-policies.json")
