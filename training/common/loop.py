"""The outer loop of a trainer that collects then updates per iteration (RL², MT-PPO,
VariBAD, the multi-task loop of MT-SAC / Distral, the goal trainers HER / CRL):
iterations until `cfg.iterations` or the `max_minutes` budget (summed over resumed
sessions), TensorBoard scalars under `tb/`, a progress bar, evaluation every
`eval_every` iterations and at the end, checkpoints every `checkpoint_every` and at the
end (with `history.json`), `eval.json` with the final report (`train_loop`).

`OnPolicyState`: the checkpoint of a trainer with one network module, one optimizer, the
run's numpy generator and a torch generator (PPO's minibatch order): what the on-policy
trainers (training/algos/rl2, training/algos/mtppo) save and restore bit for bit (a
`RunState`, training/common/run_state.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
import yaml
from torch import nn
from tqdm import tqdm

from training.common.run_state import RunState
from training.common.tasks import RunEnv, TaskSource, open_run
from training.config import TrainConfig
from zshot.jsonio import write_json


class Report(Protocol):
    """An evaluation report (training/evaluate.py `FewShotReport`) as the loop reads it."""

    @property
    def success_rate(self) -> float:
        """Successes / episodes."""
        ...

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        ...

    def write_json(self, path: str | Path) -> None:
        """Write it as JSON."""
        ...


R = TypeVar("R", bound=Report)
R_co = TypeVar("R_co", bound=Report, covariant=True)


class LoopTrainer(Protocol[R_co]):
    """What `train_loop` drives."""

    cfg: TrainConfig
    run_dir: Path
    iteration: int
    train_seconds: float
    history: list[dict[str, Any]]

    def train_iteration(self) -> dict[str, float]:
        """One iteration (collect, then update; advances `iteration`): logged scalars."""
        ...

    def evaluate(self, seed_offset: int = 1) -> R_co:
        """The current policy's evaluation report."""
        ...

    def save_checkpoint(self) -> Path:
        """Write the run dir's checkpoint."""
        ...


def train_loop(
    trainer: LoopTrainer[R],
    desc: str,
    progress: str,
    show: bool,
    *,
    label: str | None = None,
    eval_return: bool = True,
) -> R | None:
    """Run `trainer` to its config's end (module docstring); `progress` names the logged
    scalar the bar shows (as `label`, default `progress`), `show` whether the bar is
    drawn, `eval_return` whether each evaluation's mean return is logged beside its
    success rate (history `eval_return`, TensorBoard eval/return). Returns the final
    report (the trainer's `evaluate`'s; None if none was made)."""
    # lazy: TensorBoard's writer pulls in tensorboard (slow to import) for training only
    from torch.utils.tensorboard import SummaryWriter

    cfg = trainer.cfg
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    (trainer.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    writer = SummaryWriter(str(trainer.run_dir / "tb"), purge_step=trainer.iteration)
    bar = tqdm(total=cfg.iterations, initial=trainer.iteration, disable=not show, desc=desc)
    report = None
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None
    start, before = time.perf_counter(), trainer.train_seconds
    try:
        while trainer.iteration < cfg.iterations:
            logs = trainer.train_iteration()
            trainer.train_seconds = before + time.perf_counter() - start
            out_of_time = budget is not None and trainer.train_seconds >= budget
            last = trainer.iteration == cfg.iterations or out_of_time
            record: dict[str, Any] = {"iteration": trainer.iteration, **logs}
            if last or (cfg.eval_every and trainer.iteration % cfg.eval_every == 0):
                report = trainer.evaluate(seed_offset=trainer.iteration)
                record["eval_success"] = report.success_rate
                writer.add_scalar("eval/success", report.success_rate, trainer.iteration)
                if eval_return:
                    record["eval_return"] = report.mean_return
                    writer.add_scalar("eval/return", report.mean_return, trainer.iteration)
            for k, v in logs.items():
                writer.add_scalar(k, v, trainer.iteration)
            trainer.history.append(record)
            bar.update(1)
            bar.set_postfix({label or progress: f"{logs[progress]:.2f}"})
            if last or trainer.iteration % cfg.checkpoint_every == 0:
                trainer.save_checkpoint()
                write_json(trainer.run_dir / "history.json", trainer.history, indent=1)
            if last:
                break
    finally:
        bar.close()
        writer.close()
    if report is not None:
        report.write_json(trainer.run_dir / "eval.json")
    return report


class OnPolicyState(RunState):
    """Set-up and checkpoints of an on-policy trainer (module docstring). A subclass sets
    `ALGORITHM` and `CHECKPOINT_VERSION`, calls `open` and then sets `nets` and
    `optimizer`."""

    source: TaskSource
    nets: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    control_hz: float

    def open(self, cfg: TrainConfig, run_dir: str | Path, who: str) -> RunEnv:
        """Seed and set up the run (training/common/tasks.py `open_run`): `cfg`,
        `run_dir`, `rng`, `source`, `worker`, `obs_dim`, `act_dim`, `control_hz`; PPO's
        minibatch generator from cfg.seed; the counters at 0 (`start_counters`)."""
        run = open_run(cfg, who)
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rng, self.source, self.worker = run.rng, run.source, run.worker
        self.obs_dim, self.act_dim, self.control_hz = run.obs_dim, run.act_dim, run.control_hz
        self.generator = torch.Generator().manual_seed(cfg.seed)  # minibatch order
        self.start_counters()
        return run

    def extra_state(self) -> dict[str, Any]:
        """The optimizer."""
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizer."""
        self.optimizer.load_state_dict(state["optimizer"])

    def extra_rng_state(self) -> dict[str, Any]:
        """PPO's minibatch generator."""
        return {"minibatch": self.generator.get_state()}

    def restore_extra_rng(self, rng: dict[str, Any]) -> None:
        """Restore PPO's minibatch generator."""
        self.generator.set_state(rng["minibatch"])
