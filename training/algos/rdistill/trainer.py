"""Recurrent distillation from the spiral search with memory (issue #17).

Teacher: `sim.spiral.MemorySpiralPolicy` (`rdistill.teacher`: its MemorySpiralParams). It
is not privileged: it reads the observation, its own commanded pose and each episode's
success, the inputs a robot has. So what the teacher remembers (the pose where the plug went
in, the search's progress, whether the socket seems to move) is a function of the history
the student sees too, and a GRU can represent it in principle.

DAgger with a stateful teacher (`ShadowTeacher`): in every state of a trial, whoever
drives, the teacher is asked for its action; its commanded pose then follows the action
that was *executed* (a robot's setpoint is what was commanded), so its label is "what the
script would do from here, given this history". Round 0 is the teacher alone, its executed
actions perturbed by `action_noise` (DART, Laskey et al. 2017); round r lets the teacher
drive a trial with probability `beta_decay**r`, else the student (its deterministic
action). Every trial is aggregated with its labels. `probe_trials` more per round, driven by
the student after its fit, are measured for the history only (the student's progress when
beta stays 1: behaviour cloning with DART noise alone).

Measured (BENCHMARKS.md `## rdistill`): with the student driving (beta_decay 0.5 or 0.8) the
student collapsed, since in its states the script's label depends on the script's own
progress along its spiral, which runs on whatever the student does: not a function of the
student's history. The committed config therefore keeps beta at 1.

Student: RL²'s `RecurrentPolicy` (GRU over (s_t, a_{t-1}, r_{t-1}, d_{t-1}), the runtime's
`recurrent` kind), trained by

    bc_loss = mean over a trial's steps of |tanh(mean_t) - a_teacher_t|^2
              + 1e-3 |log_std - log(policy_std)|^2,

backpropagated through whole trials (`episodes_per_trial` episodes, hidden state from
zeros at the trial's start, as RESET_TASK leaves it). Only the policy is trained (the
value network RL2Nets carries is unused). Trials are drawn in turn from `profiles`.

Three options, all off in the committed config, each measured worse (BENCHMARKS.md
`### rdistill: a memory head, ...`; `hard` /900 against 572 for the config's rerun):
- `memory_coef` > 0: a training-only linear head on h_t is trained to predict the teacher's
  memory (with `memory_search`, also its search progress), MemorySpiralPolicy's
  state_features. 366-418; yet it fitted the teacher's labels on teacher-driven trials
  slightly better (bc mse 0.0068 against 0.0075). The closed loop, not the fit, is what it
  lost.
- `ignore_last_action`: the GRU's weights on a_{t-1} are held at zero. 484-490.
- `student_steps` < 1: a student-driven trial executes the teacher's label on the other
  steps (DAgger's per-step mixture). 288-391.

RL fine-tuning (`rl_iterations` > 0; configs/train/rdistill_rl_insertion.yaml runs it
from a cloned run, rdistill_insertion.yaml does not): after
the rounds, PPO (RL²'s terms, `training/algos/rl2/losses.py`, the `ppo:` section) on the
student's own trials (`rl_trials` per iteration, its Gaussian's noise on, `rl_std` at the
start), with the reward a robot computes, one return across each trial's episodes. The
critic (RL2Nets' value GRU, never exported) starts at the first batch's mean discounted
return and is trained alone for `rl_value_warmup` iterations. `rl_bc_updates` anchor
steps of bc_loss on the rounds' teacher trials may follow each update (DAPG's demonstration
term, Rajeswaran et al. 2018). This trains the closed loop that cloning never sees: the
states the student drives itself into, scored by what it inserts. `init_from` starts the
networks from another rdistill run (rounds 0: the RL phase alone). Measured (BENCHMARKS.md
`### rdistill's RL phase`, 30 min, seeds 0 / 1): /900 known 873 / 876 and oda 828 / 851,
against cloning's 819 / 853 and 785 / 800; hard 543 / 538 against 593 / 518. The press-in
and the speed improve, the search does not. A bc_loss anchor (`rl_bc_updates` 10) held the
student where cloning left it.

Early stopping by validation (`rl_select_every` > 0; on in rdistill_rl_insertion.yaml):
`select_score` runs the student's mean action on `rl_select_trials` fixed train tasks per
profile, the same reset seeds at every call (common random numbers: two scores differ by
the networks alone), before the first PPO iteration, every `rl_select_every`, and after the
last; the run ends with the best-scoring networks (checkpoint.pt; selection.json holds the
scores). Its draws come from their own streams and it runs in envs of its own, so PPO's
trajectory is the one of a run without it. Until the run ends, checkpoint.pt holds the
latest networks. Measured (BENCHMARKS.md `### rdistill's RL phase with early stopping`): both seeds kept iteration
80's networks; /900 known 878 / 877, oda 838 / 832, hard 587 / 599.

A success memory (`rl2.success_memory`, and `rl2.commanded_pose`; RL²'s networks.py
`SuccessMemory`): the student's recurrent state also holds where the task's last
successful episode ended (and the setpoint integrated from the executed actions), computed
in the step graph from the runtime's inputs, the recall the GRU alone made 0.6 mm off.
Measured (BENCHMARKS.md `### A success memory in the student's recurrent state`,
configs/train/rdistill_mem*_insertion.yaml, seeds 0 / 1): hard 713 / 690 (with the
commanded pose 681 / 698), known 847 / 856 (844 / 870), oda 789 / 805 (798 / 824). The
student still comes back 0.3-0.5 mm off the hole: cloning does not learn the small
corrections of the servo to the remembered pose.

    zshot train configs/train/rdistill_insertion.yaml --no-progress
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from torch import Tensor

from training.algos.rl2 import losses as rl2_losses
from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.networks import RL2Nets, make_nets
from training.algos.rl2.rollout import run_trials
from training.common.checkpoint import RoundsCheckpoint, checkpoint_algorithm, load_checkpoint
from training.common.ppo import gae
from training.common.tasks import make_task_source, open_run
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval
from zshot.jsonio import write_json

__all__ = [
    "RDistillTrainer",
    "ShadowTeacher",
    "Trial",
    "bc_loss",
    "hold_last_action_at_zero",
    "run_trial",
    "trial_batch",
]


class ShadowTeacher:
    """The spiral search with memory as a labeller of any driver's states: `label(obs)` is
    its action; `executed(action)` makes its commanded pose follow what was executed."""

    def __init__(self, env_config: Any, params: dict[str, Any] | None = None) -> None:
        from sim.spiral import MemorySpiralParams, MemorySpiralPolicy  # lazy: pybullet's sim

        try:
            prm = MemorySpiralParams(**(params or {}))
        except TypeError as exc:
            raise ValueError(
                f"rdistill.teacher: {exc} (fields of sim.spiral.MemorySpiralParams)"
            ) from None
        self.policy = MemorySpiralPolicy(env_config, prm)
        self._label = np.zeros(4, np.float32)

    def label(self, obs: np.ndarray) -> np.ndarray:
        """The teacher's action in this state (it advances its own state)."""
        self._label = np.asarray(self.policy.act(obs), np.float32)
        return self._label

    def state(self) -> np.ndarray:
        """The teacher's memory and search progress now (MemorySpiralPolicy.state_features):
        the target of the student's memory head."""
        return self.policy.state_features()

    def executed(self, action: np.ndarray) -> None:
        """The action the arm was sent instead of the label: the commanded pose moves by it."""
        self.policy.follow(action, self._label)


class Trial(NamedTuple):
    """One trial: a task's episodes in a row, the student's inputs and the teacher's labels
    at every step (T steps over all episodes)."""

    obs: np.ndarray  # (T, O)
    last_action: np.ndarray  # (T, A) a_{t-1} as executed (0 at the trial's first step)
    reward: np.ndarray  # (T, 1) r_{t-1}
    done: np.ndarray  # (T, 1) 1 at the first step of each later episode
    labels: np.ndarray  # (T, A) the teacher's action
    teacher_state: np.ndarray  # (T, S) the teacher's memory after its label (ShadowTeacher.state)
    successes: tuple[bool, ...]  # per episode
    violations: int  # episodes ended by the force limit
    by_teacher: bool
    profile: str


def run_trial(
    env: Any,
    task: Any,
    teacher: ShadowTeacher,
    student: RL2Nets | None,
    rng: np.random.Generator,
    episodes: int,
    *,
    action_noise: float = 0.0,
    profile: str = "",
    student_steps: float = 1.0,
    teacher_episodes: int = 0,
) -> Trial:
    """`episodes` episodes of `task` in a row; the teacher drives (its action plus
    `action_noise`) when `student` is None, else the student (deterministic), each step
    with probability `student_steps` (the others the teacher's). The first
    `teacher_episodes` episodes the teacher drives in any case, the student's state
    following what was executed (bench/rdistill_ceiling.py: the student handed a history in
    which the hole was searched for by the script). The student's inputs follow
    `RecurrentAgent` (the runtime's session state) exactly."""
    env.set_task(task)
    teacher.policy.reset_task()
    agent = rl2_agent(student, None) if student is not None else None  # type: ignore[arg-type]
    act_dim = int(env.action_space.shape[0])
    last_a, rew, done, stepped = np.zeros(act_dim, np.float32), 0.0, 0.0, False
    cols: dict[str, list[Any]] = {k: [] for k in ("obs", "la", "r", "d", "lab", "ts")}
    successes, violations = [], 0
    zero = np.zeros(act_dim, np.float32)
    for ep in range(episodes):
        lead = ep < teacher_episodes
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        teacher.policy.reset_episode()
        if agent is not None:
            agent.reset_episode()
        if stepped:
            done = 1.0
        success = violated = False
        while True:
            label = teacher.label(obs)
            cols["obs"].append(np.asarray(obs, np.float32))
            cols["la"].append(last_a)
            cols["r"].append(rew)
            cols["d"].append(done)
            cols["lab"].append(label)
            cols["ts"].append(teacher.state())
            if agent is not None:
                action = agent.act(obs, zero, zero)  # advances its state on every step
            if agent is None or lead or (student_steps < 1.0 and rng.random() >= student_steps):
                noise = action_noise * rng.standard_normal(act_dim)
                action = np.clip(label + noise, -1.0, 1.0).astype(np.float32)
            teacher.executed(action)
            nxt, reward, terminated, truncated, info = env.step(action)
            if agent is not None:
                agent.observe(np.concatenate([obs, action, [reward], nxt]).astype(np.float32))
            last_a, rew, done, stepped = np.asarray(action, np.float32), float(reward), 0.0, True
            success = success or bool(info.get("is_success"))
            violated = violated or bool(info.get("safety_violation"))
            obs = nxt
            if terminated or truncated:
                break
        teacher.policy.end_episode(success, np.asarray(obs, np.float64))
        successes.append(success)
        violations += int(violated)
    return Trial(
        np.stack(cols["obs"]),
        np.stack(cols["la"]),
        np.asarray(cols["r"], np.float32)[:, None],
        np.asarray(cols["d"], np.float32)[:, None],
        np.stack(cols["lab"]),
        np.stack(cols["ts"]),
        tuple(successes),
        violations,
        student is None,
        profile,
    )


def trial_batch(trials: list[Trial]) -> dict[str, Tensor]:
    """Trials padded to the longest: obs, last_action, reward, done, labels, teacher_state
    (B, T, .) and a mask (B, T) of the real steps."""
    T = max(len(t.obs) for t in trials)
    out: dict[str, Tensor] = {}
    for key in ("obs", "last_action", "reward", "done", "labels", "teacher_state"):
        arrs = [getattr(t, key) for t in trials]
        pad = np.zeros((len(trials), T, arrs[0].shape[1]), np.float32)
        for i, a in enumerate(arrs):
            pad[i, : len(a)] = a
        out[key] = torch.from_numpy(pad)
    mask = np.zeros((len(trials), T), np.float32)
    for i, t in enumerate(trials):
        mask[i, : len(t.obs)] = 1.0
    out["mask"] = torch.from_numpy(mask)
    return out


def bc_loss(
    nets: RL2Nets,
    batch: dict[str, Tensor],
    policy_std: float,
    memory_head: torch.nn.Module | None = None,
    memory_coef: float = 0.0,
) -> Tensor:
    """Behaviour cloning over whole trials (module docstring); trains only the policy, and
    with `memory_head` and `memory_coef` > 0 adds memory_coef x the masked mean squared error
    of memory_head(h_t) against the teacher's state (its GRU and the head get that
    gradient; the policy's action head does not)."""
    B = batch["obs"].shape[0]
    h0 = torch.zeros(B, nets.hidden_dim)
    hs, mean, log_std = nets.policy.sequence(
        h0, batch["obs"], batch["last_action"], batch["reward"], batch["done"]
    )
    mask = batch["mask"]
    denom = mask.sum().clamp(min=1.0)
    err = (torch.tanh(mean) - batch["labels"]).pow(2).mean(-1)
    loss = (err * mask).sum() / denom + 1e-3 * (log_std - math.log(policy_std)).pow(2).mean()
    if memory_head is not None and memory_coef > 0:
        m_err = (memory_head(hs) - batch["teacher_state"]).pow(2).mean(-1)
        loss = loss + memory_coef * (m_err * mask).sum() / denom
    return loss


def hold_last_action_at_zero(nets: RL2Nets) -> None:
    """Zero the policy GRU's input weights on a_{t-1} and every gradient they get: Adam then
    never moves them (zero moments give zero steps), so the GRU ignores its last action."""
    w: Tensor = nets.policy.gru.weight_ih_l0  # type: ignore[assignment]  # nn.Module attr
    cols = nets.policy.last_action_columns()
    with torch.no_grad():
        w[:, cols] = 0.0

    def _zero(grad: Tensor) -> Tensor:
        grad = grad.clone()
        grad[:, cols] = 0.0
        return grad

    w.register_hook(_zero)


def _rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


class RDistillTrainer(RoundsCheckpoint):
    """DAgger rounds of trials: collect (teacher or student), aggregate, fit bc_loss; a
    checkpoint that `zshot export` (a `recurrent` artifact) and `zshot eval` read."""

    ALGORITHM = "rdistill"

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        if cfg.env != "insertion":
            raise ValueError("rdistill: only env 'insertion' has the spiral-search teacher")
        if cfg.rdistill.rounds == 0 and cfg.rdistill.init_from is None:
            raise ValueError(
                "rdistill.rounds 0 needs rdistill.init_from (a run dir to fine-tune): "
                "nothing would have trained the student"
            )
        self.cfg, self.dcfg = cfg, cfg.rdistill
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "rdistill")
        self.rng, self.source = run.rng, run.source
        self.obs_dim, self.act_dim = run.obs_dim, run.act_dim
        self.nets: RL2Nets = make_nets(self.obs_dim, self.act_dim, cfg)
        from sim.spiral import MemorySpiralPolicy  # lazy: pybullet's sim

        # training only (not in the checkpoint, not exported): h_t -> the teacher's memory
        self.memory_dims = (
            MemorySpiralPolicy.STATE_DIM
            if self.dcfg.memory_search
            else MemorySpiralPolicy.MEMORY_DIM
        )
        self.memory_head = torch.nn.Linear(self.nets.hidden_dim, self.memory_dims)
        self.params = [*self.nets.policy.parameters(), *self.memory_head.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=self.dcfg.lr)
        if self.dcfg.init_from is not None:
            self.load_init(self.dcfg.init_from)
        if self.dcfg.ignore_last_action:
            hold_last_action_at_zero(self.nets)
        # the RL phase: one Adam, the policy at ppo.lr (0 during the value warm-up), the
        # value function at rl_value_lr; and the anchor's bc_loss steps at ppo.lr
        self.rl_opt = torch.optim.Adam(
            [
                {"params": list(self.nets.policy.parameters()), "lr": cfg.ppo.lr},
                {"params": list(self.nets.value.parameters()), "lr": self.dcfg.rl_value_lr},
            ]
        )
        self.anchor_opt = torch.optim.Adam(self.nets.policy.parameters(), lr=cfg.ppo.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rl_done = 0
        # one env (and task list) per training profile: the same plugs, the profile's errors
        self.envs: dict[str, Any] = {}
        self.tasks: dict[str, list[Any]] = {}
        self.sources: dict[str, Any] = {}
        for prof in self.dcfg.profiles:
            src = (
                self.source
                if prof == cfg.profile
                else make_task_source(cfg.model_copy(update={"profile": prof}))
            )
            self.envs[prof] = run.env if src is self.source else src.make_env()
            self.tasks[prof] = src.train_tasks
            self.sources[prof] = src
        any_env = next(iter(self.envs.values()))
        self.teacher = ShadowTeacher(any_env.config, dict(self.dcfg.teacher))
        self.trials: list[Trial] = []
        self.round = 0
        self.updates = 0
        self.env_steps = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []
        # early stopping by validation (rl_select_every): fixed tasks per profile, drawn from
        # their own seed so that PPO's draws are the same with the selection on or off
        pick = np.random.default_rng([cfg.seed, 7])
        self.select_tasks = {
            prof: [
                tasks[int(i)] for i in pick.integers(len(tasks), size=self.dcfg.rl_select_trials)
            ]
            for prof, tasks in self.tasks.items()
        }
        self.selections: list[dict[str, Any]] = []
        self.best: tuple[float, int, dict[str, Tensor]] | None = None

    # ------------------------------------------------------------------ one round
    def collect(self, n: int, beta: float | None) -> list[Trial]:
        """`n` trials on random train tasks, the profiles in turn; the teacher drives each
        with probability beta (None: the student drives every one, as in the probes)."""
        d, out = self.dcfg, []
        for i in range(n):
            prof = d.profiles[(len(self.trials) + i) % len(d.profiles)]
            tasks = self.tasks[prof]
            task = tasks[int(self.rng.integers(len(tasks)))]
            student = None if beta is not None and self.rng.random() < beta else self.nets
            trial = run_trial(
                self.envs[prof],
                task,
                self.teacher,
                student,
                self.rng,
                d.episodes_per_trial,
                action_noise=d.action_noise,
                profile=prof,
                student_steps=d.student_steps,
            )
            self.env_steps += len(trial.obs)
            out.append(trial)
        return out

    def fit(self, updates: int, opt: torch.optim.Optimizer | None = None) -> float:
        """`updates` Adam steps (`opt`, else the rounds' own) of bc_loss on random batches of
        the aggregated trials."""
        opt = opt or self.opt
        self.nets.train()
        total = 0.0
        for _ in range(updates):
            idx = self.rng.integers(
                len(self.trials), size=min(self.dcfg.batch_trials, len(self.trials))
            )
            batch = trial_batch([self.trials[i] for i in idx])
            batch["teacher_state"] = batch["teacher_state"][..., : self.memory_dims]
            loss = bc_loss(
                self.nets,
                batch,
                self.dcfg.policy_std,
                self.memory_head,
                self.dcfg.memory_coef,
            )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.dcfg.grad_clip)
            opt.step()
            total += float(loss.detach())
            self.updates += 1
        self.nets.eval()
        return total / max(updates, 1)

    def set_obs_stats(self) -> None:
        """Freeze the observation normalisation from the teacher's round-0 trials."""
        obs = torch.as_tensor(np.concatenate([t.obs for t in self.trials]))
        self.nets.set_obs_stats(obs.mean(0), obs.std(0))

    def step_round(self) -> dict[str, Any]:
        """Collect one round, aggregate, fit; returns its history row."""
        d = self.dcfg
        t0 = time.perf_counter()
        beta = d.beta_decay**self.round  # 1 in round 0: the teacher alone
        new = self.collect(d.trials_per_round, beta)
        self.trials.extend(new)
        if self.round == 0 and self.dcfg.init_from is None:
            self.set_obs_stats()
        bc = self.fit(d.updates_per_round)
        probes = self.collect(d.probe_trials, None)  # measured only, never aggregated
        self.env_steps -= sum(len(t.obs) for t in probes)  # not training data either
        self.train_seconds += time.perf_counter() - t0
        row: dict[str, Any] = {
            "iteration": self.round,
            "beta": beta,
            "trials": len(self.trials),
            "bc_loss": bc,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "seconds": round(self.train_seconds, 1),
        }
        groups = (("student", False, new), ("teacher", True, new), ("probe", False, probes))
        for who, flag, trials in groups:
            mine = [t for t in trials if t.by_teacher == flag]
            row[f"{who}_success"] = _rate([s for t in mine for s in t.successes])
            row[f"{who}_violations"] = sum(t.violations for t in mine)
            for prof in d.profiles:
                row[f"{who}_success_{prof}"] = _rate(
                    [s for t in mine if t.profile == prof for s in t.successes]
                )
        self.history.append(row)
        self.round += 1
        return row

    @property
    def iteration(self) -> int:
        """Rounds and PPO iterations done."""
        return self.round + self.rl_done

    def load_init(self, run_dir: str | Path) -> None:
        """Start the networks from another rdistill run's checkpoint."""
        path = Path(run_dir) / "checkpoint.pt"
        try:
            state = load_checkpoint(path)
        except FileNotFoundError as exc:
            raise ValueError(f"rdistill.init_from: {exc}") from None
        algo = checkpoint_algorithm(state, TrainConfig.model_validate(state["config"]))
        if algo != "rdistill":
            raise ValueError(f"rdistill.init_from: {path} was written by algo {algo!r}")
        try:
            self.nets.load_state_dict(state["nets"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(
                f"rdistill.init_from: {path} does not fit these networks (rl2.gru_hidden, "
                f"rl2.success_memory and ppo.hidden must match its config): {first}"
            ) from None

    def rl_collect(self, n: int) -> list[tuple[str, rl2_losses.Trial]]:
        """`n` student trials (its Gaussian's noise on) on random train tasks, the profiles
        in turn: (profile, RL²'s Trial with u and the rewards) each."""
        d = self.dcfg
        out: list[tuple[str, rl2_losses.Trial]] = []
        for i in range(n):
            prof = d.profiles[(self.rl_done * n + i) % len(d.profiles)]
            tasks = self.tasks[prof]
            task = tasks[int(self.rng.integers(len(tasks)))]
            (trial,) = run_trials(
                [self.envs[prof]],
                [task],
                self.nets.policy,
                self.rng,
                d.episodes_per_trial,
                self.cfg.max_episode_steps,
                stochastic=True,
            )
            self.env_steps += trial.steps
            out.append((prof, trial))
        return out

    def _start_rl(self) -> None:
        """Before the first PPO iteration: the std reset (`rl_std`), the anchor's teacher
        trials if the rounds left none."""
        d = self.dcfg
        if d.rl_std is not None:
            with torch.no_grad():
                self.nets.policy.log_std.fill_(math.log(d.rl_std))
        if d.rl_bc_updates and not self.trials:
            self.trials.extend(self.collect(d.trials_per_round, 1.0))

    def rl_iteration(self) -> dict[str, Any]:
        """One PPO iteration: student trials, GAE over each whole trial (RL²'s objective:
        one return across its episodes), `ppo.epochs` x `ppo.minibatches` steps (the policy
        frozen during the value warm-up), then `rl_bc_updates` anchor steps. Returns its
        history row."""
        d, pcfg = self.dcfg, self.cfg.ppo
        t0 = time.perf_counter()
        if self.rl_done == 0:
            self._start_rl()
        pairs = self.rl_collect(d.rl_trials)
        trials = [t for _, t in pairs]
        batch = rl2_losses.trial_batch(trials)
        batch["rewards"] = batch["rewards"] * d.rl_reward_scale
        if self.rl_done == 0:  # the critic's output starts at the mean discounted return
            _, ret = gae(
                batch["rewards"],
                torch.zeros_like(batch["rewards"]),
                batch["mask"],
                torch.zeros(len(trials)),
                pcfg.gamma,
                1.0,
            )
            last = self.nets.value.head[-1]
            assert isinstance(last, torch.nn.Linear)
            with torch.no_grad():
                last.bias.fill_(float((ret * batch["mask"]).sum() / batch["mask"].sum()))
        warm = self.rl_done < d.rl_value_warmup
        self.rl_opt.param_groups[0]["lr"] = 0.0 if warm else pcfg.lr
        self.nets.train()
        logs, sequences = rl2_losses.ppo_step(
            self.nets, batch, pcfg, d.rl_bptt, self.rl_opt, self.generator
        )
        self.updates += pcfg.epochs * min(pcfg.minibatches, sequences)
        bc = math.nan
        if d.rl_bc_updates and not warm:
            bc = self.fit(d.rl_bc_updates, self.anchor_opt)
        self.nets.eval()
        self.rl_done += 1
        self.train_seconds += time.perf_counter() - t0
        row: dict[str, Any] = {
            "iteration": self.iteration - 1,
            "phase": "rl",
            "value_warmup": warm,
            "trials": len(self.trials),
            "bc_loss": bc,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "seconds": round(self.train_seconds, 1),
            "rl_return": float(np.mean([sum(t.episode_returns) for t in trials])),
            "rl_violations": sum(sum(t.episode_violations) for t in trials),
            "std": float(self.nets.policy.log_std.detach().exp().mean()),
            **{k.replace("/", "_"): v for k, v in logs.items()},
        }
        row["rl_success"] = _rate([s for t in trials for s in t.episode_successes])
        for prof in d.profiles:
            row[f"rl_success_{prof}"] = _rate(
                [s for p, t in pairs if p == prof for s in t.episode_successes]
            )
        self.history.append(row)
        return row

    def select_score(self) -> dict[str, Any]:
        """The validation score of the networks as they are: `rl_select_trials` trials per
        profile on `select_tasks`, the mean action, the reset seeds of one fixed stream (the
        same at every call), in a fresh env per profile (one env's contact state carries
        ~1e-19 differences from its earlier episodes: scoring on the training envs changed
        PPO's later trials, measured). Returns the row: rl_iteration, score,
        select_success_<profile>. Keeps a copy of the networks if the score beats every
        earlier one (ties: the earlier)."""
        t0 = time.perf_counter()
        row: dict[str, Any] = {"rl_iteration": self.rl_done}
        for prof, tasks in self.select_tasks.items():
            rng = np.random.default_rng([self.cfg.seed, 8])
            flags: list[bool] = []
            env = self.sources[prof].make_env()
            for task in tasks:
                (trial,) = run_trials(
                    [env],
                    [task],
                    self.nets.policy,
                    rng,
                    self.dcfg.episodes_per_trial,
                    self.cfg.max_episode_steps,
                    stochastic=False,
                )
                flags.extend(trial.episode_successes)
            env.close()
            row[f"select_success_{prof}"] = _rate(flags)
        row["score"] = float(np.mean([row[f"select_success_{p}"] for p in self.select_tasks]))
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        row["seconds"] = round(seconds, 1)
        if self.best is None or row["score"] > self.best[0]:
            self.best = (row["score"], self.rl_done, copy.deepcopy(self.nets.state_dict()))
        row["best_rl_iteration"] = self.best[1]
        self.selections.append(row)
        return row

    def restore_best(self) -> int:
        """Load the best-scoring networks (`select_score`'s copy); returns the PPO
        iteration they are from."""
        assert self.best is not None, "restore_best: nothing was scored"
        self.nets.load_state_dict(self.best[2])
        return self.best[1]

    def evaluate(self) -> FewShotReport:
        """The config's few-shot evaluation on the test tasks (torch, the hidden state kept
        through a task's episodes)."""
        return few_shot_eval(
            self.source, rl2_agent(self.nets, self.cfg), self.cfg.eval, seed=self.cfg.seed
        )

    def run(self, progress: bool = False) -> FewShotReport:
        """All rounds, then the RL phase's iterations (both within `max_minutes`), a
        checkpoint after each, then history, curves, eval."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        start = time.monotonic()

        def over() -> bool:
            return cfg.max_minutes is not None and time.monotonic() - start > 60 * cfg.max_minutes

        def done(line: str) -> bool:
            """Print the row's line, save the checkpoint and the history; budget spent?"""
            print(line, flush=True)
            self.save_checkpoint()
            write_json(self.run_dir / "history.json", self.history)
            return over()

        for _ in range(self.dcfg.rounds):
            row = self.step_round()
            per = " ".join(
                f"{p} {row[f'student_success_{p}']:.2f}/{row[f'teacher_success_{p}']:.2f}"
                + (f"/{row[f'probe_success_{p}']:.2f}" if self.dcfg.probe_trials else "")
                for p in self.dcfg.profiles
            )
            who = "student/teacher" + ("/probe" if self.dcfg.probe_trials else "")
            line = (
                f"round {row['iteration']}: beta {row['beta']:.2f} success {who} "
                f"{per}; violations {row['student_violations']}/{row['teacher_violations']} "
                f"bc {row['bc_loss']:.5f} ({row['seconds']:.0f} s, {row['env_steps']} steps)"
            )
            if done(line):
                break
        rl_iterations = 0 if self.round and over() else self.dcfg.rl_iterations
        every = self.dcfg.rl_select_every if rl_iterations else 0

        def selected() -> None:
            row = self.select_score()
            per = " ".join(f"{p} {row[f'select_success_{p}']:.2f}" for p in self.select_tasks)
            print(
                f"select {row['rl_iteration']}: score {row['score']:.3f} ({per}); best "
                f"{row['best_rl_iteration']} ({row['seconds']:.0f} s)",
                flush=True,
            )
            write_json(self.run_dir / "selection.json", self.selections)

        if every:
            selected()
        for _ in range(rl_iterations):  # the budget's first iteration past it is the last
            row = self.rl_iteration()
            per = " ".join(f"{p} {row[f'rl_success_{p}']:.2f}" for p in self.dcfg.profiles)
            line = (
                f"rl {self.rl_done}{' (value warm-up)' if row['value_warmup'] else ''}: "
                f"success {per}; return {row['rl_return']:.1f}; violations "
                f"{row['rl_violations']}; kl {row['ppo_approx_kl']:.4f} clip "
                f"{row['ppo_clip_fraction']:.3f} value {row['loss_value']:.3f} std "
                f"{row['std']:.3f} bc {row['bc_loss']:.5f} ({row['seconds']:.0f} s, "
                f"{row['env_steps']} steps)"
            )
            stop = done(line)
            if every and self.rl_done % every == 0:
                selected()
            if stop:
                break
        if every:
            if self.selections[-1]["rl_iteration"] != self.rl_done:
                selected()  # the last networks are scored too
            assert self.best is not None  # scored at 0 at least
            score, best = self.best[0], self.restore_best()
            print(
                f"the run ends with PPO iteration {best}'s networks (validation score "
                f"{score:.3f}; the last, {self.rl_done}: {self.selections[-1]['score']:.3f})",
                flush=True,
            )
            self.save_checkpoint()
        plot_history(self.history, self.dcfg.profiles, self.run_dir / "curves.png", self.selections)
        for env in self.envs.values():
            env.close()
        report = self.evaluate()
        report.write_json(self.run_dir / "eval.json")
        return report


def plot_history(
    history: list[dict[str, Any]],
    profiles: Sequence[str],
    path: str | Path,
    selections: Sequence[dict[str, Any]] = (),
) -> None:
    """PNG: per profile, the student's and the teacher's success in their DAgger trials per
    round, then the student's in its RL trials per PPO iteration; bc_loss per round (when
    there were rounds); the validation scores of `rl_select_every` (when scored), the
    selected iteration marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h for h in history if h.get("phase", "bc") != "rl"]
    rl = [h for h in history if h.get("phase") == "rl"]
    it = [h["iteration"] for h in rounds]
    panels = 1 + bool(rounds) + bool(selections)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    ax = axes[0][0]
    for k, prof in enumerate(profiles):
        c = f"C{k}"
        for who, style in (("student", "o-"), ("teacher", "x--")) if rounds else ():
            ys = [h[f"{who}_success_{prof}"] for h in rounds]
            ax.plot(it, ys, style, color=c, label=f"{who}, {prof}")
        probe = [h.get(f"probe_success_{prof}") for h in rounds]
        if any(v is not None and v == v for v in probe):
            ax.plot(it, probe, "s:", color=c, label=f"student probe, {prof}")
        if rl:
            ax.plot(
                [h["iteration"] for h in rl],
                [h[f"rl_success_{prof}"] for h in rl],
                "-",
                color=c,
                alpha=0.6,
                label=f"student RL, {prof}",
            )
    ax.set(
        title="episode success in the training trials (train tasks)",
        xlabel="round, then PPO iteration",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7)
    if rounds:
        axes[0][1].plot(it, [h["bc_loss"] for h in rounds], "o-")
        axes[0][1].set(title="bc_loss (policy)", xlabel="round", yscale="log")
    if selections:
        ax = axes[0][-1]
        xs = [r["rl_iteration"] for r in selections]
        for k, prof in enumerate(profiles):
            ys = [r.get(f"select_success_{prof}") for r in selections]
            ax.plot(xs, ys, "o-", color=f"C{k}", alpha=0.7, label=prof)
        ax.plot(xs, [r["score"] for r in selections], "s-", color="k", label="score (mean)")
        ax.axvline(selections[-1]["best_rl_iteration"], color="k", ls=":", label="selected")
        ax.set(
            title="validation (fixed train tasks, mean action)",
            xlabel="PPO iteration",
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
