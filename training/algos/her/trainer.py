"""HER training (training/common/goal_trainer.py's loop): each update samples `batch_size`
transitions with HER's `future` relabelling (`her.relabel_k` per real goal; 0: plain SAC)
and takes one SAC step (losses.py). Evaluation: `eval.eval_episodes` deterministic episodes
per train task, each told the goal its env draws (training/evaluate.py `goal_eval`)."""

from __future__ import annotations

from training.algos.her.losses import HEROptimizers, her_update
from training.algos.her.networks import HERNets, make_nets
from training.common.goal_trainer import GoalTrainer
from training.common.goals import sample_her
from training.evaluate import FewShotReport, goal_eval


class HERTrainer(GoalTrainer):
    """One HER (or, with relabel_k 0, plain SAC) run on a goal env."""

    ALGORITHM = "her"
    LABEL = "HER"
    CHECKPOINT_VERSION = 1
    nets: HERNets

    def make_nets(self) -> HERNets:
        """HER's networks for this run's env."""
        return make_nets(self.flat_dim, self.act_dim, self.cfg)

    def make_optimizers(self) -> HEROptimizers:
        """Adam for each learner."""
        return HEROptimizers.create(self.nets, self.cfg)

    def update(self) -> dict[str, float]:
        """One SAC step on a HER batch."""
        cfg = self.cfg
        batch = sample_her(self.buffer, cfg.batch_size, cfg.her.relabel_k, self.epsilon, self.rng)
        return her_update(batch, self.nets, self.optimizers, cfg)

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """Deterministic episodes, each told its goal."""
        return goal_eval(
            self.source,
            self.deterministic_action,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={"algorithm": self.ALGORITHM, "relabel_k": self.cfg.her.relabel_k},
        )
