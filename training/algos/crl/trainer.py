"""Contrastive RL training (training/common/goal_trainer.py's loop): each update samples
`batch_size` (s, a) with a future achieved goal (Δ ~ Geom(1 - sac.gamma)) and takes one
step of the critic and the actor (losses.py). Evaluation: `eval.eval_episodes`
deterministic episodes per train task, each told its goal (training/evaluate.py
`goal_eval`)."""

from __future__ import annotations

from training.algos.crl.losses import CRLOptimizers, crl_update
from training.algos.crl.networks import CRLNets, make_nets
from training.common.goal_trainer import GoalTrainer
from training.common.goals import sample_future
from training.evaluate import goal_eval


class CRLTrainer(GoalTrainer):
    """One contrastive RL run on a goal env."""

    ALGORITHM = "crl"
    LABEL = "CRL"
    CHECKPOINT_VERSION = 1
    nets_of = staticmethod(make_nets)
    optimizers_of = CRLOptimizers
    evaluator = staticmethod(goal_eval)
    nets: CRLNets

    def update(self) -> dict[str, float]:
        """One contrastive step on a batch of futures."""
        cfg = self.cfg
        batch = sample_future(self.buffer, cfg.batch_size, cfg.sac.gamma, self.rng)
        return crl_update(batch, self.nets, self.optimizers, cfg)
