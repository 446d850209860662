"""The offline PEARL trainer (`zshot train` with `algo: offline_pearl`, or a config with
`offline.dataset`): `offline.updates` gradient steps on batches of the dataset, periodic
checkpoints (training/common/checkpoint.py) and a final few-shot evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from training.algos.offline_pearl.losses import (
    TaskInference,
    offline_update,
    sample_offline_batch,
    sample_offline_tasks,
)
from training.algos.offline_pearl.networks import make_nets
from training.algos.pearl.agent import TorchAgent
from training.algos.pearl.losses import PearlOptimizers
from training.common.checkpoint import CHECKPOINT, load_checkpoint, run_state, save_checkpoint
from training.common.datasets import DatasetError, load_dataset
from training.common.tasks import make_task_source, observation_index
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval
from zshot.jsonio import write_json

ALGORITHM = "offline_pearl"
CHECKPOINT_VERSION = 1
"""Bump when the checkpoint's keys change in a way an older reader would misread."""


class OfflineTrainer:
    """Trains offline PEARL (or offline AWAC without context) from `cfg.offline.dataset`."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        if cfg.offline.dataset is None:
            raise ValueError("offline training needs offline.dataset (a `zshot collect` dir)")
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.dataset = load_dataset(cfg.offline.dataset)
        self.source = make_task_source(cfg)
        env = self.source.make_env()
        self.obs_dim = int(env.observation_space.shape[0])
        self.act_dim = int(env.action_space.shape[0])
        env.close()
        try:
            self.dataset.check_dims(self.obs_dim, self.act_dim)
        except DatasetError as exc:
            raise ValueError(f"{cfg.offline.dataset}: {exc}") from None
        held = set(self.source.env_info.get("held_out_plugs", []))
        leaked = sorted({t.label for t in self.dataset.tasks} & held)
        if leaked:
            raise ValueError(f"dataset holds held-out plugs {leaked}: they must stay unseen")
        self.nets = make_nets(self.obs_dim, self.act_dim, cfg, observation_index(cfg))
        mean, std = self.dataset.obs_stats()
        self.nets.set_obs_stats(torch.as_tensor(mean), torch.as_tensor(std))
        self.optimizers = PearlOptimizers.create(self.nets, cfg)
        self.task: TaskInference | None = None
        if cfg.offline.task_targets:
            if not cfg.use_latent:
                raise ValueError("offline.task_targets needs the latent (use_latent: true)")
            self.task = TaskInference(
                self.dataset, cfg.offline.task_targets, self.nets.latent_dim, cfg.sac.qf_lr
            )
        self.updates = 0
        self.history: list[dict[str, Any]] = []

    @property
    def iteration(self) -> int:
        """Gradient steps so far (offline training has no collection iterations)."""
        return self.updates

    def state_dict(self) -> dict[str, Any]:
        """`zshot train`'s checkpoint schema (export/eval read it); env_steps is 0 (offline)."""
        state = run_state(
            self.cfg,
            self.nets,
            self.obs_dim,
            self.act_dim,
            iteration=self.updates,
            env_steps=0,
            updates=self.updates,
        )
        return {
            **state,
            "optimizers": self.optimizers.state_dict(),
            "history": json.dumps(self.history),
            "rng": {"numpy": json.dumps(self.rng.bit_generator.state)},
            "task_inference": self.task.state_dict() if self.task is not None else None,
        }

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Resume from a checkpoint written by `save_checkpoint`."""
        state = load_checkpoint(path or self.run_dir / CHECKPOINT)
        self.nets.load_state_dict(state["nets"])
        self.optimizers.load_state_dict(state["optimizers"])
        self.updates = int(state["updates"])
        self.history = json.loads(state["history"])
        self.rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        if self.task is not None:
            if not state.get("task_inference"):
                raise ValueError("the checkpoint was trained without offline.task_targets")
            self.task.load_state_dict(state["task_inference"])

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt atomically (temp file + fsync + rename)."""
        return save_checkpoint(
            self.run_dir / CHECKPOINT,
            self.state_dict(),
            algorithm=ALGORITHM,
            version=CHECKPOINT_VERSION,
        )

    def evaluate(self) -> FewShotReport:
        """Few-shot evaluation (own-exploration context, `cfg.eval`) of the current networks."""
        agent = TorchAgent(self.nets, self.cfg.use_latent, self.cfg.encoder.prior_in_posterior)
        return few_shot_eval(
            self.source,
            agent,
            self.cfg.eval,
            seed=self.cfg.seed + 1,
            max_steps=self.cfg.max_episode_steps,
        )

    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train for `offline.updates` steps; checkpoint, history, final few-shot evaluation."""
        cfg, off = self.cfg, self.cfg.offline
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        bar = tqdm(total=off.updates, initial=self.updates, disable=not progress, desc="offline")
        t0 = time.perf_counter()
        report = None
        try:
            while self.updates < off.updates:
                tasks = sample_offline_tasks(self.dataset, cfg, self.rng)
                logs = offline_update(
                    sample_offline_batch(self.dataset, cfg, self.rng, tasks),
                    self.nets,
                    self.optimizers,
                    cfg,
                    self.task,
                    tasks,
                )
                self.updates += 1
                bar.update(1)
                if self.updates % off.log_every == 0 or self.updates == off.updates:
                    rec: dict[str, Any] = {"updates": self.updates, **logs}
                    rec["time/s"] = time.perf_counter() - t0
                    if off.eval_every and self.updates % off.eval_every == 0:
                        rec["eval_success"] = self.evaluate().success_rate
                    self.history.append(rec)
                    bar.set_postfix(
                        {"qf": f"{logs['loss/qf']:.3g}", "w": f"{logs['awac/weight']:.2f}"}
                    )
                if self.updates % (cfg.checkpoint_every * off.log_every) == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
        self.save_checkpoint()
        write_json(self.run_dir / "history.json", self.history, indent=1)
        if cfg.eval.eval_episodes > 0:
            report = self.evaluate()
            report.write_json(self.run_dir / "eval.json")
        return report
