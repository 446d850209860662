"""VariBAD training (Zintgraf et al. 2020, Algorithm 1): trials, PPO on (s, belief), the VAE.

Per iteration:

1. `varibad.trials_per_iteration` trials, each on a random train task: `episodes_per_trial`
   episodes in a row with the encoder's GRU state carried across them (the BAMDP of the
   paper: horizon H+ = the whole trial), actions sampled from the current policy on
   (s_t, belief b_t), every step's belief, value and log-probability recorded.
2. PPO (training/common/ppo.py, the `ppo` section) on those trials: one sequence per trial,
   GAE over the whole trial (an episode's end inside a trial is not an end of the BAMDP:
   the value runs on across it; the trial's end is, bootstrap 0), the policy and value fed
   the beliefs recorded in step 1. Those are data (detached): the policy's loss does not
   train the encoder, as in the paper (its `rlloss_through_encoder` off; on with
   `varibad.rl_through_encoder`, which recomputes the beliefs with gradient).
3. `varibad.vae_updates` VAE steps (training/algos/varibad/losses.py), each on
   `varibad.vae_batch` trials drawn from the `varibad.vae_buffer` most recent ones (the
   VAE is trained off-policy on past trials, as in the paper).

Before the first iteration, one round of trials with the untrained policy freezes the
observation normalisation (every network's) and seeds the VAE buffer. Evaluation: the
few-shot protocol (training/evaluate.py) with the run as a recurrent agent (hidden kept
across a task's episodes, as the runtime does): the return of episode K + 1 after K.

The run dir holds `config.yaml`, `checkpoint.pt` (networks, both optimizers, the VAE
buffer, RNG states, counters, history), TensorBoard logs under `tb/`, `history.json` and
`eval.json`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from training.algos.varibad.losses import TrialBatch, vae_update
from training.algos.varibad.networks import VariBADNets, belief_input, make_nets
from training.common.agents import RecurrentAgent, torch_step
from training.common.loop import train_loop
from training.common.onnx_export import RecurrentStepGraph
from training.common.ppo import gae, gaussian_entropy, gaussian_log_prob, ppo_update
from training.common.run_state import RunState
from training.common.tasks import open_run
from training.config import TrainConfig
from training.evaluate import FewShotReport, few_shot_eval

ALGORITHM = "varibad"
CHECKPOINT_VERSION = 1


@dataclass
class Trial:
    """One task's episodes in a row, N steps in all; per step t (N rows each)."""

    obs: np.ndarray  # s_t (N, obs)
    prev_action: np.ndarray  # a_{t-1} (N, act), 0 at the trial's first step
    prev_reward: np.ndarray  # r_{t-1} (N, 1)
    prev_done: np.ndarray  # (N, 1): 1 at the first step of an episode after another
    action: np.ndarray  # a_t = tanh(u_t) as sent to the env (N, act)
    u: np.ndarray  # the pre-squash Gaussian sample (N, act)
    reward: np.ndarray  # r_t (N, 1)
    next_obs: np.ndarray  # s_{t+1} (N, obs)
    logp: np.ndarray  # log pi(u_t | s_t, b_t) at collection (N,)
    value: np.ndarray  # V(s_t, b_t) at collection (N,)
    mean: np.ndarray  # belief b_t: mean (N, L)
    logvar: np.ndarray  # and log variance (N, L)

    @property
    def length(self) -> int:
        """Steps N."""
        return int(self.obs.shape[0])

    def to_state(self) -> dict[str, Tensor]:
        """Tensors for a checkpoint (`weights_only` loadable)."""
        return {f.name: torch.from_numpy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> Trial:
        """What `to_state` wrote."""
        return cls(**{f.name: state[f.name].numpy() for f in fields(cls)})


def _padded(arrays: list[np.ndarray], T: int) -> Tensor:
    """Per-trial (N_i, ...) arrays -> (S, T, ...) zero-padded float32."""
    out = np.zeros((len(arrays), T, *arrays[0].shape[1:]), np.float32)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out)


def trial_batch(trials: list[Trial]) -> TrialBatch:
    """The VAE's padded batch of `trials`."""
    T = max(t.length for t in trials)

    def pad(name: str) -> Tensor:
        return _padded([getattr(t, name) for t in trials], T)

    return TrialBatch(
        obs=pad("obs"),
        prev_action=pad("prev_action"),
        prev_reward=pad("prev_reward"),
        prev_done=pad("prev_done"),
        action=pad("action"),
        reward=pad("reward"),
        next_obs=pad("next_obs"),
        lengths=torch.tensor([t.length for t in trials], dtype=torch.int64),
    )


def ppo_batch(
    trials: list[Trial], gamma: float, lam: float, reward_scale: float = 1.0
) -> dict[str, Tensor]:
    """PPO's batch (training/common/ppo.py): one sequence per trial, GAE over the whole
    trial (bootstrap 0 at its end) of the rewards times `reward_scale`; the policy's inputs
    are the recorded (s_t, b_t)."""
    T = max(t.length for t in trials)
    lengths = torch.tensor([t.length for t in trials])
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    rewards = _padded([t.reward[:, 0] for t in trials], T) * reward_scale
    values = _padded([t.value for t in trials], T)
    advantages, returns = gae(rewards, values, mask, torch.zeros(len(trials)), gamma, lam)
    mean, logvar = _padded([t.mean for t in trials], T), _padded([t.logvar for t in trials], T)
    return {
        "mask": mask,
        "logp": _padded([t.logp for t in trials], T),
        "advantages": advantages,
        "returns": returns,
        "obs": _padded([t.obs for t in trials], T),
        "belief": belief_input(mean, logvar),
        "u": _padded([t.u for t in trials], T),
        "prev_action": _padded([t.prev_action for t in trials], T),
        "prev_reward": _padded([t.prev_reward for t in trials], T),
        "prev_done": _padded([t.prev_done for t in trials], T),
    }


def ppo_evaluate(
    nets: VariBADNets, mb: dict[str, Tensor], through_encoder: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's forward pass (`ppo_update`'s `evaluate`): the current policy's log-probability
    of the recorded u, its entropy and V, each (S, T), on the recorded beliefs (data), or
    `through_encoder` on the beliefs the encoder gives now over the minibatch's trials
    (with gradient)."""
    belief = mb["belief"]
    if through_encoder:
        _, m, lv = nets.encoder(mb["obs"], mb["prev_action"], mb["prev_reward"], mb["prev_done"])
        belief = belief_input(m, lv)
    mean, log_std = nets.policy(mb["obs"], belief)
    logp = gaussian_log_prob(mb["u"], mean, log_std)
    values = nets.vf(mb["obs"], belief).squeeze(-1)
    return logp, gaussian_entropy(log_std), values


def step_graph(nets: VariBADNets) -> RecurrentStepGraph:
    """The run's step graph (hidden, obs, last_action, reward, done, noise) -> (next_hidden,
    action) for the normalised [-1, 1] action space every trainer checks (open_run)."""
    ones = np.ones(nets.act_dim, np.float32)
    return RecurrentStepGraph(nets, -ones, ones)


def varibad_agent(nets: Any, cfg: TrainConfig) -> RecurrentAgent:
    """A VariBAD run in torch as a few-shot agent (its step graph, hidden kept across a
    task's episodes): what `zshot eval RUN` and evaluation during training drive."""
    if not isinstance(nets, VariBADNets):
        raise ValueError(f"{type(nets).__name__} are not VariBAD networks")
    nets.eval()
    return RecurrentAgent(torch_step(step_graph(nets)), nets.obs_dim, nets.act_dim, nets.hidden_dim)


class VariBADTrainer(RunState):
    """Owns the env, networks, optimizers, VAE buffer and RNGs of one VariBAD run."""

    ALGORITHM = ALGORITHM
    CHECKPOINT_VERSION = CHECKPOINT_VERSION

    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        run = open_run(cfg, "VariBAD")
        self.rng, self.source = run.rng, run.source
        self.envs: list[Any] = [run.env]
        """Collection's envs, one per trial stepped together (`collect_trials`)."""
        self.obs_dim, self.act_dim = run.obs_dim, run.act_dim
        self.nets: VariBADNets = make_nets(self.obs_dim, self.act_dim, cfg)
        self.through_encoder = cfg.varibad.rl_through_encoder
        self.ppo_optimizer = torch.optim.Adam(
            self.nets.ppo_parameters(self.through_encoder), lr=cfg.ppo.lr
        )
        self.vae_optimizer = torch.optim.Adam(self.nets.vae_parameters(), lr=cfg.varibad.vae_lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        """PPO's minibatch order and the VAE's draws (noise, subsampling)."""
        self.vae_buffer: deque[Trial] = deque(maxlen=cfg.varibad.vae_buffer)
        self.start_counters()

    # ------------------------------------------------------------------ collection
    def _envs(self, n: int) -> list[Any]:
        """n envs of the source (the rollout worker's first, more built as needed)."""
        while len(self.envs) < n:
            self.envs.append(self.source.make_env())
        return self.envs[:n]

    def collect_trials(self, tasks: list[int]) -> list[tuple[Trial, list[float]]]:
        """One trial per train task of `tasks`, all stepped together (one batched policy
        call per step for every trial still running), actions sampled from the current
        policy; returns each trial and its episodes' returns, in the order of `tasks`.

        Each trial's envs run `episodes_per_trial` episodes in a row; the encoder's input at
        step t is (s_t, a_{t-1}, r_{t-1}, d_{t-1}) with the GRU state carried across the
        episodes (docs/PROTOCOL.md "recurrent"). Draws from the run's generator in a fixed
        order: the reset seeds (by trial), then per step one normal draw per running trial."""
        nets, E, A = self.nets, self.cfg.varibad.episodes_per_trial, self.act_dim
        max_steps = self.cfg.max_episode_steps
        n = len(tasks)
        envs = self._envs(n)
        rows: list[dict[str, list[Any]]] = [{f.name: [] for f in fields(Trial)} for _ in tasks]
        returns: list[list[float]] = [[] for _ in tasks]
        h = torch.zeros(n, nets.hidden_dim)
        prev_a, prev_r, prev_d = torch.zeros(n, A), torch.zeros(n, 1), torch.zeros(n, 1)
        obs: list[np.ndarray] = []
        for env, task in zip(envs, tasks, strict=True):
            env.set_task(self.source.train_tasks[task])
            o, _ = env.reset(seed=int(self.rng.integers(2**31)))
            obs.append(np.asarray(o, np.float32))
        ep_steps, ep_ret, episodes = [0] * n, [0.0] * n, [0] * n
        running = list(range(n))
        nets.eval()
        while running:
            idx = torch.tensor(running)
            o = torch.from_numpy(np.stack([obs[i] for i in running]))
            eps = torch.from_numpy(self.rng.standard_normal((len(running), A)).astype(np.float32))
            with torch.no_grad():
                h_new = nets.encoder.step(h[idx], o, prev_a[idx], prev_r[idx], prev_d[idx])
                mean, logvar = nets.encoder.belief(h_new)
                b = belief_input(mean, logvar)
                mu, log_std = nets.policy(o, b)
                u = mu + log_std.exp() * eps
                logp = gaussian_log_prob(u, mu, log_std)
                value = nets.vf(o, b)[:, 0]
                action = torch.tanh(u)
            record = {
                "obs": o,
                "prev_action": prev_a[idx],
                "prev_reward": prev_r[idx],
                "prev_done": prev_d[idx],
                "u": u,
                "logp": logp,
                "value": value,
                "mean": mean,
                "logvar": logvar,
                "action": action,
            }
            h[idx] = h_new
            still = []
            for j, i in enumerate(running):
                for name, x in record.items():
                    rows[i][name].append(x[j].numpy())
                a = action[j].numpy()
                nxt, r, terminated, truncated, _ = envs[i].step(a)
                nxt = np.asarray(nxt, np.float32)
                rows[i]["reward"].append(np.array([r], np.float32))
                rows[i]["next_obs"].append(nxt)
                prev_a[i], prev_r[i, 0], prev_d[i, 0] = action[j], float(r), 0.0
                ep_steps[i] += 1
                ep_ret[i] += float(r)
                obs[i] = nxt
                if terminated or truncated or (max_steps is not None and ep_steps[i] >= max_steps):
                    self.env_steps += ep_steps[i]
                    returns[i].append(ep_ret[i])
                    episodes[i] += 1
                    ep_steps[i], ep_ret[i] = 0, 0.0
                    if episodes[i] == E:
                        continue  # this trial is complete
                    o_reset, _ = envs[i].reset(seed=int(self.rng.integers(2**31)))
                    obs[i] = np.asarray(o_reset, np.float32)
                    prev_d[i, 0] = 1.0  # the next step is the first of a following episode
                still.append(i)
            running = still
        nets.train()
        out = []
        for i in range(n):
            trial = Trial(**{k: np.stack(v).astype(np.float32) for k, v in rows[i].items()})
            out.append((trial, returns[i]))
        return out

    def collect_trial(self, task: int) -> tuple[Trial, list[float]]:
        """One trial on train task `task` (`collect_trials` of one)."""
        return self.collect_trials([task])[0]

    def collect(self) -> tuple[list[Trial], list[float]]:
        """A round of trials on random train tasks (into the VAE buffer too)."""
        n = len(self.source.train_tasks)
        tasks = [int(t) for t in self.rng.integers(n, size=self.cfg.varibad.trials_per_iteration)]
        done = self.collect_trials(tasks)
        trials = [t for t, _ in done]
        self.vae_buffer.extend(trials)
        return trials, [r for _, rets in done for r in rets]

    def _initial_collection(self) -> None:
        """One round with the untrained policy: freeze the observation statistics."""
        trials, _ = self.collect()
        obs = np.concatenate([t.obs for t in trials] + [t.next_obs[-1:] for t in trials])
        self.nets.set_obs_stats(torch.from_numpy(obs.mean(0)), torch.from_numpy(obs.std(0)))

    # ------------------------------------------------------------------ training
    def train_iteration(self) -> dict[str, float]:
        """One iteration (collect, PPO, VAE); returns logged scalars."""
        cfg = self.cfg
        vb = cfg.varibad
        if self.iteration == 0 and self.updates == 0:
            self._initial_collection()
        trials, returns = self.collect()
        t0 = time.perf_counter()
        batch = ppo_batch(trials, cfg.ppo.gamma, cfg.ppo.gae_lambda, vb.policy_reward_scale)
        logs = ppo_update(
            batch,
            lambda mb: ppo_evaluate(self.nets, mb, self.through_encoder),
            self.ppo_optimizer,
            self.nets.ppo_parameters(self.through_encoder),
            cfg.ppo,
            self.generator,
        )
        self.updates += cfg.ppo.epochs * min(cfg.ppo.minibatches, len(trials))
        buffer = list(self.vae_buffer)
        for _ in range(vb.vae_updates):
            pick = self.rng.integers(len(buffer), size=vb.vae_batch)
            logs.update(
                vae_update(
                    trial_batch([buffer[i] for i in pick]),
                    self.nets,
                    self.vae_optimizer,
                    vb,
                    self.generator,
                )
            )
            self.updates += 1
        self.iteration += 1
        E = vb.episodes_per_trial
        per_episode = np.asarray(returns).reshape(-1, E).mean(0)
        logs.update({f"train/return_ep{k}": float(r) for k, r in enumerate(per_episode)})
        logs.update(
            {
                "train/return": float(np.mean(returns)),
                "time/update_s": time.perf_counter() - t0,
                "counters/env_steps": float(self.env_steps),
                "counters/updates": float(self.updates),
            }
        )
        return logs

    def evaluate(self, seed_offset: int = 1) -> FewShotReport:
        """Few-shot evaluation on the test tasks with the current networks (torch)."""
        report = few_shot_eval(
            self.source,
            varibad_agent(self.nets, self.cfg),
            self.cfg.eval,
            seed=self.cfg.seed + 1_000_003 * seed_offset,
            max_steps=self.cfg.max_episode_steps,
        )
        self.nets.train()
        return report

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        """The PPO and VAE optimizers and the VAE's trial buffer."""
        return {
            "optimizers": {
                "ppo": self.ppo_optimizer.state_dict(),
                "vae": self.vae_optimizer.state_dict(),
            },
            "vae_buffer": [t.to_state() for t in self.vae_buffer],
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the optimizers and the VAE buffer."""
        self.ppo_optimizer.load_state_dict(state["optimizers"]["ppo"])
        self.vae_optimizer.load_state_dict(state["optimizers"]["vae"])
        self.vae_buffer.clear()
        self.vae_buffer.extend(Trial.from_state(t) for t in state["vae_buffer"])

    def extra_rng_state(self) -> dict[str, Any]:
        """The minibatch / VAE generator."""
        return {"generator": self.generator.get_state()}

    def restore_extra_rng(self, rng: dict[str, Any]) -> None:
        """Restore the minibatch / VAE generator."""
        self.generator.set_state(rng["generator"])

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train until cfg.iterations (or `max_minutes`) with TensorBoard, a progress bar,
        periodic few-shot evaluation and checkpoints (training/common/loop.py)."""
        return train_loop(self, "VariBAD", "train/return", progress)
