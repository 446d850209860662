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
from training.evaluate import FewShotReport, goal_eval


class CRLTrainer(GoalTrainer):
    """One contrastive RL run on a goal env."""

    ALGORITHM = "crl"
    LABEL = "CRL"
    CHECKPOINT_VERSION = 1
    nets: CRLNets

    def make_nets(self) -> CRLNets:
        """Contrastive RL's networks for this run's env."""
        return make_nets(self.flat_dim, self.act_dim, self.cfg)

    def make_optimizers(self) -> CRLOptimizers:
        """Adam for each learner."""
        return CRLOptimizers.create(self.nets, self.cfg)

    def update(self) -> dict[str, float]:
        """One contrastive step on a batch of futures."""
        cfg = self.cfg
        batch = sample_future(self.buffer, cfg.batch_size, cfg.sac.gamma, self.rng)
        return crl_update(batch, self.nets, self.optimizers, cfg)

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """Deterministic episodes, each told its goal."""
        return goal_eval(
            self.source,
            self.deterministic_action,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={"algorithm": self.ALGORITHM},
        )
