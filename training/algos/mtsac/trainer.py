"""MT-SAC training over the train tasks, each told by its task input (`mtsac.task_input`:
one-hot id, learned embedding, descriptor; Yu et al. 2019).

Before the first update, `initial_steps` per train task with the untrained (stochastic)
policy; then per iteration `tasks_per_iteration` random train tasks collect
`steps_prior + steps_posterior + steps_extra_posterior` steps each (MT-SAC has no
posterior: the three are one budget of on-task steps), then `updates_per_iteration`
gradient steps on `meta_batch` tasks x `batch_size` transitions, with PCGrad
(training/common/pcgrad.py) on the per-task losses when the config says `pcgrad: true`.
Evaluation: `eval.eval_episodes` deterministic episodes per train task (MT-SAC is told the
task, so there is no exploration); with task_input descriptor also on the test tasks
(held-out plugs: zero-shot), written to `eval-zeroshot.json`. With task_input embedding the
collection policy draws z ~ p(z|t) once per episode (Hausman et al. 2018); evaluation and
the exported policy use the embedding's mean.

The loop, checkpoints and logs are training/common/multitask.py's (the run dir holds
`config.yaml`, `checkpoint.pt`, TensorBoard logs under `tb/`, `history.json`, `eval.json`).
"""

from __future__ import annotations

import numpy as np
import torch

from training.algos.mtsac.losses import MTSACOptimizers, mtsac_update
from training.algos.mtsac.networks import MTSACNets, make_nets
from training.common.multitask import MTBatch, MultiTaskTrainer
from training.common.networks import deterministic_action
from training.common.rollout import Episode
from training.evaluate import FewShotReport, conditioned_eval

ALGORITHM = "mtsac"
CHECKPOINT_VERSION = 1


class DescriptorActor:
    """A collection actor (`EpisodeActor`): the policy's sampled actions for one task's
    input (with task_input embedding, z drawn from p(z|t) at each episode's start)."""

    def __init__(self, trainer: MTSACTrainer, task: int) -> None:
        self.trainer = trainer
        self.task = torch.tensor([task])
        nets = trainer.nets
        # an embedding's z is drawn at each episode's start; its mean until then
        self.d = nets.told(self.task) if nets.embedding is None else nets.embedding.mean[[task]]

    def begin_episode(self, rng: np.random.Generator) -> None:
        """With an embedding: a fresh z ~ p(z | t) for the episode (from the trainer's
        generator); otherwise nothing (the task input is the task's)."""
        emb = self.trainer.nets.embedding
        if emb is not None:
            eps = self.trainer.rng.standard_normal(emb.mean.shape[1]).astype(np.float32)
            with torch.no_grad():
                self.d = emb.sample(self.task, torch.from_numpy(eps)[None])

    def act(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action of the current policy."""
        t = self.trainer
        with torch.no_grad():
            eps = torch.from_numpy(t.rng.standard_normal(t.act_dim).astype(np.float32))
            a, _ = t.nets.policy.sample(torch.as_tensor(obs)[None], self.d, eps[None])
        return a[0].numpy()

    def end_episode(self, episode: Episode) -> None:
        """Nothing: the trainer stores the episode."""


class MTSACTrainer(MultiTaskTrainer[FewShotReport]):
    """One MT-SAC run (training/common/multitask.py's loop with MT-SAC's networks and
    update)."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION
    LABEL = "MT-SAC"
    nets: MTSACNets
    optimizers: MTSACOptimizers

    def build(self) -> None:
        """MT-SAC's networks (with each train task's descriptor for task_input descriptor)
        and optimizers."""
        descriptors = None
        if self.cfg.mtsac.task_input == "descriptor":
            descriptors = [self.source.describe(t).tolist() for t in self.source.train_tasks]
        self.nets = make_nets(self.obs_dim, self.act_dim, self.cfg, None, descriptors)
        self.optimizers = MTSACOptimizers.create(self.nets, self.cfg)

    def actor(self, task: int) -> DescriptorActor:
        """The current policy told train task `task`."""
        return DescriptorActor(self, task)

    def update(self, batch: MTBatch) -> dict[str, float]:
        """One MT-SAC step (PCGrad when configured)."""
        return mtsac_update(batch, self.nets, self.optimizers, self.cfg, self.pcgrad)

    def told_policy(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """The deterministic action (noise 0) for `obs` told `descriptor` (what the exported
        artifact computes)."""
        with torch.no_grad():
            z = self.nets.policy_input_of(torch.as_tensor(descriptor)[None])
        return np.asarray(deterministic_action(self.nets.policy, obs, z))

    def evaluate(self, seed_offset: int = 1, test: bool = False) -> FewShotReport:
        """`eval.eval_episodes` deterministic episodes (noise 0) per train task, each told
        its one-hot id or descriptor (training/evaluate.py `conditioned_eval`); `test`
        (task_input descriptor only): on the test tasks instead, zero-shot."""
        descriptor = "descriptor" if self.cfg.mtsac.task_input == "descriptor" else "onehot"
        return conditioned_eval(
            self.source,
            self.told_policy,
            self.cfg.eval.eval_episodes,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
            protocol={"algorithm": ALGORITHM, "task_input": self.cfg.mtsac.task_input},
            descriptor=descriptor,
            tasks=self.source.test_tasks if test else None,
        )

    def finish(self, report: FewShotReport) -> None:
        """task_input descriptor: the zero-shot evaluation on the test tasks too."""
        if self.cfg.mtsac.task_input == "descriptor":
            zero_shot = self.evaluate(seed_offset=self.iteration, test=True)
            zero_shot.write_json(self.run_dir / "eval-zeroshot.json")
