"""HER training (training/common/goal_trainer.py's loop): each update samples `batch_size`
transitions with HER's `future` relabelling (`her.relabel_k` per real goal; 0: plain SAC)
and takes one SAC step (losses.py). Evaluation: `eval.eval_episodes` deterministic episodes
per train task, each told the goal its env draws (training/evaluate.py `goal_eval`)."""

from __future__ import annotations

from typing import Any

from training.algos.her.losses import HEROptimizers, her_update
from training.algos.her.networks import HERNets, make_nets
from training.common.goal_trainer import GoalTrainer
from training.common.goals import sample_her
from training.evaluate import goal_eval


class HERTrainer(GoalTrainer):
    """One HER (or, with relabel_k 0, plain SAC) run on a goal env."""

    ALGORITHM = "her"
    LABEL = "HER"
    CHECKPOINT_VERSION = 1
    nets_of = staticmethod(make_nets)
    optimizers_of = HEROptimizers
    evaluator = staticmethod(goal_eval)
    nets: HERNets

    def update(self) -> dict[str, float]:
        """One SAC step on a HER batch."""
        cfg = self.cfg
        batch = sample_her(self.buffer, cfg.batch_size, cfg.her.relabel_k, self.epsilon, self.rng)
        return her_update(batch, self.nets, self.optimizers, cfg)

    def eval_protocol(self) -> dict[str, Any]:
        """The algorithm and its relabelling."""
        return {"algorithm": self.ALGORITHM, "relabel_k": self.cfg.her.relabel_k}
