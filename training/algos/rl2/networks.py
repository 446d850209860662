"""RL²'s networks: a recurrent Gaussian policy (GRU over (normalised s, a_prev, r_prev,
d_prev), an MLP head to the pre-tanh mean, a state-independent log-std) and a recurrent
value function of the same inputs with its own GRU (the value loss trains only it, the
surrogate only the policy). `sequence` runs nn.GRU over padded trials (training); `step`
computes one GRU step from the same weights by its equations (what step.onnx holds;
tests check the two agree).

With `rl2.success_memory` each network's recurrent state also carries a `SuccessMemory`:
where the task's last successful episode ended, computed inside the graph from the inputs
the runtime already sends, and fed to the GRU and to the head beside h_t."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from training.common.networks import ObsNormaliser, mlp
from training.config import TrainConfig

POSE_NAMES = ("x_mm", "y_mm", "yaw_deg")
"""The observation entries a `SuccessMemory` remembers (the insertion env's)."""
COMMAND_NAMES = ("x_mm", "y_mm", "z_mm", "yaw_deg")
"""The entries of its commanded pose (`rl2.commanded_pose`)."""


class SuccessMemory(nn.Module):
    """Where the task's last successful episode ended, as part of the recurrent state.

    Not privileged: it reads only the policy's inputs. At the first step of a later episode
    (d_{t-1} = 1) whose previous episode ended in a success (its last reward r_{t-1} above
    `threshold`: zshot.reward's success bonus exceeds any step's cost, so an episode's last
    reward tells a success apart), the memory becomes the pose of the previous step, the
    last one the policy saw of that episode (the robot's own measured pose, where the plug
    went in). A GRU can only approximate such a recall (bench/rdistill_ceiling.py measured
    0.6 mm where the script comes back to 0.06 mm); here it is exact.

    State: [has memory, memory x, y, yaw, previous step's x, y, yaw] (obs units: mm, deg).
    Features, zero without a memory: [has memory, memory x/2, y/2, yaw/3, (x - memory x)/0.5,
    (y - memory y)/0.5, (yaw - memory yaw)/1, the last three clipped to +-CLIP].

    With `command_step` (mm, mm, mm, deg per unit of action: max speed x control period) it
    also integrates the **commanded pose**, the arm's setpoint as the scripted controllers
    keep it (sim.spiral): the measured pose at each episode's first step, then + a_{t-1} x
    command_step each step. The measured pose lags the setpoint (the compliance, the
    contacts), so only the setpoint tells "on its way there" from "stopped short". State +
    [started, command x, y, z, yaw]; features + [(memory - command) / command_step for x, y,
    yaw (zero without a memory), (command - pose) / command_step for x, y, z, yaw], clipped
    to +-CLIP: the first three are the scripted re-entry's unclipped action.

    `step` is one step (what step.onnx holds), `sequence` the same over padded trials
    (cumulative max and sum over the steps: no loop); tests check they agree.
    """

    CLIP = 4.0
    cols: Tensor
    mem_scale: Tensor
    delta_scale: Tensor
    ccols: Tensor
    unit: Tensor

    def __init__(
        self,
        pose_columns: tuple[int, int, int],
        threshold: float,
        command_columns: tuple[int, int, int, int] | None = None,
        command_step: tuple[float, float, float, float] | None = None,
    ) -> None:
        super().__init__()
        if (command_columns is None) != (command_step is None):
            raise ValueError("SuccessMemory: command_columns and command_step go together")
        self.pose_columns = tuple(int(c) for c in pose_columns)
        self.threshold = float(threshold)
        self.command = command_step is not None
        self.STATE_DIM = 7 + (5 if self.command else 0)
        self.FEATURE_DIM = 7 + (7 if self.command else 0)
        self.register_buffer("cols", torch.tensor(self.pose_columns), persistent=False)
        self.register_buffer("mem_scale", torch.tensor([2.0, 2.0, 3.0]), persistent=False)
        self.register_buffer("delta_scale", torch.tensor([0.5, 0.5, 1.0]), persistent=False)
        if command_columns is not None and command_step is not None:
            self.command_columns = tuple(int(c) for c in command_columns)
            self.command_step = tuple(float(u) for u in command_step)
            self.register_buffer("ccols", torch.tensor(self.command_columns), persistent=False)
            self.register_buffer("unit", torch.tensor(self.command_step), persistent=False)

    def state_names(self) -> list[str]:
        """Names of the state's STATE_DIM entries, in order (the manifest states them)."""
        names = ["has_memory", *[f"memory_{n}" for n in POSE_NAMES]]
        names += [f"previous_{n}" for n in POSE_NAMES]
        if self.command:
            names += ["started", *[f"command_{n}" for n in COMMAND_NAMES]]
        return names

    def _clip(self, x: Tensor) -> Tensor:
        return x.clamp(-self.CLIP, self.CLIP)

    def features(
        self,
        flag: Tensor,
        mem: Tensor,
        pose: Tensor,
        cmd: Tensor | None = None,
        pose4: Tensor | None = None,
    ) -> Tensor:
        """(..., 1), (..., 3), (..., 3) (, commanded pose (..., 4), measured (..., 4)) ->
        (..., FEATURE_DIM)."""
        delta = self._clip((pose - mem) / self.delta_scale)
        parts = [flag, flag * mem / self.mem_scale, flag * delta]
        if cmd is not None and pose4 is not None:
            u = self.unit
            to_mem = self._clip((mem - cmd[..., [0, 1, 3]]) / u[[0, 1, 3]])
            parts += [flag * to_mem, self._clip((cmd - pose4) / u)]
        return torch.cat(parts, dim=-1)

    def step(
        self, state: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(B, STATE_DIM), raw obs (B, O), a_{t-1} (B, A), r_{t-1} (B, 1), d_{t-1} (B, 1) ->
        next state, features (B, FEATURE_DIM)."""
        flag, mem, prev = state[:, :1], state[:, 1:4], state[:, 4:7]
        pose = obs[:, self.cols]
        event = ((done > 0.5) & (reward > self.threshold)).to(obs.dtype)
        mem = event * prev + (1.0 - event) * mem
        flag = torch.maximum(flag, event)
        if not self.command:
            return torch.cat([flag, mem, pose], dim=-1), self.features(flag, mem, pose)
        started, cmd = state[:, 7:8], state[:, 8:12]
        pose4 = obs[:, self.ccols]
        reset = torch.maximum((done > 0.5).to(obs.dtype), 1.0 - started)
        cmd = reset * pose4 + (1.0 - reset) * (cmd + last_action[:, :4] * self.unit)
        started = torch.ones_like(started)
        feats = self.features(flag, mem, pose, cmd, pose4)
        return torch.cat([flag, mem, pose, started, cmd], dim=-1), feats

    def sequence(
        self, state0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """state0 (S, STATE_DIM), inputs (S, T, .) -> the state after each step (S, T,
        STATE_DIM) and the features of each step (S, T, FEATURE_DIM), as `step` makes them."""
        S, T = obs.shape[:2]
        pose = obs[..., self.cols]
        prev = torch.cat([state0[:, None, 4:7], pose[:, :-1]], dim=1)
        event = (done[..., 0] > 0.5) & (reward[..., 0] > self.threshold)
        steps = torch.arange(T, device=obs.device).expand(S, T)
        none = torch.full_like(steps, -1)
        last = torch.where(event, steps, none).cummax(dim=1).values
        seen = (last >= 0)[..., None]
        recalled = prev.gather(1, last.clamp(min=0)[..., None].expand(S, T, 3))
        mem = torch.where(seen, recalled, state0[:, None, 1:4].expand(S, T, 3))
        ones = torch.ones_like(mem[..., :1])
        flag = torch.where(seen, ones, state0[:, None, :1].expand(S, T, 1))
        if not self.command:
            return torch.cat([flag, mem, pose], dim=-1), self.features(flag, mem, pose)
        pose4 = obs[..., self.ccols]
        reset = done[..., 0] > 0.5
        reset[:, 0] |= state0[:, 7] < 0.5  # a task's first step
        start = torch.where(reset, steps, none).cummax(dim=1).values
        # the integral of the actions in float64 (a trial's sum runs to thousands of mm)
        total = (last_action[..., :4].double() * self.unit.double()).cumsum(dim=1)
        at = start.clamp(min=0)[..., None].expand(S, T, 4)
        since = pose4.double().gather(1, at) + total - total.gather(1, at)
        carried = state0[:, None, 8:12].double() + total
        cmd = torch.where((start >= 0)[..., None], since, carried).to(obs.dtype)
        feats = self.features(flag, mem, pose, cmd, pose4)
        return torch.cat([flag, mem, pose, ones, cmd], dim=-1), feats


def _joined(h: Tensor, mem_state: Tensor, feats: Tensor) -> tuple[Tensor, Tensor]:
    """The recurrent state [GRU's, memory's] and the head's input [GRU's, features]."""
    return torch.cat([h, mem_state], dim=-1), torch.cat([h, feats], dim=-1)


class RecurrentCore(nn.Module):
    """GRU over x = [normalised obs, last_action, reward, done (, memory features)], an MLP
    on its hidden state (and the memory features). `hidden_dim` is the recurrent state's
    size: the GRU's `gru_dim`, plus `SuccessMemory.STATE_DIM` with a memory."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        head: list[int],
        out: int,
        memory: SuccessMemory | None = None,
    ):
        super().__init__()
        self.obs_dim, self.act_dim, self.gru_dim = obs_dim, act_dim, hidden_dim
        self.memory = memory
        extra = memory.FEATURE_DIM if memory is not None else 0
        self.hidden_dim = hidden_dim + (memory.STATE_DIM if memory is not None else 0)
        self.normaliser = ObsNormaliser(obs_dim)
        self.gru = nn.GRU(obs_dim + act_dim + 2 + extra, hidden_dim, batch_first=True)
        self.head = mlp([hidden_dim + extra, *head, out])

    def inputs(
        self,
        obs: Tensor,
        last_action: Tensor,
        reward: Tensor,
        done: Tensor,
        features: Tensor | None = None,
    ) -> Tensor:
        """The GRU's input (..., obs + act + 2 (+ SuccessMemory.FEATURE_DIM))."""
        parts = [self.normaliser(obs), last_action, reward, done]
        return torch.cat(parts if features is None else [*parts, features], dim=-1)

    def last_action_columns(self) -> slice:
        """Where a_{t-1} sits in `inputs` (the GRU's input columns)."""
        return slice(self.obs_dim, self.obs_dim + self.act_dim)

    def hiddens(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """h0 (S, hidden_dim), inputs (S, T, .) -> the recurrent state after each step (S, T,
        hidden_dim) and the head's input at each step (S, T, gru_dim (+ features))."""
        G = self.gru_dim
        if self.memory is not None:
            mem_states, feats = self.memory.sequence(h0[:, G:], obs, last_action, reward, done)
            x = self.inputs(obs, last_action, reward, done, feats)
            out, _ = self.gru(x, h0[None, :, :G].contiguous())
            return _joined(out, mem_states, feats)
        out, _ = self.gru(self.inputs(obs, last_action, reward, done), h0[None].contiguous())
        return out, out

    def one_step(
        self, hidden: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One step, all (B, .) -> the next recurrent state (B, hidden_dim) and the head's
        input (B, gru_dim (+ features))."""
        G = self.gru_dim
        if self.memory is not None:
            mem_state, feats = self.memory.step(hidden[:, G:], obs, last_action, reward, done)
            h = self.cell(self.inputs(obs, last_action, reward, done, feats), hidden[:, :G])
            return _joined(h, mem_state, feats)
        h = self.cell(self.inputs(obs, last_action, reward, done), hidden)
        return h, h

    def cell(self, x: Tensor, h: Tensor) -> Tensor:
        """One GRU step by its equations (PyTorch's gate order r, z, n): (B, in), (B, H) ->
        (B, H)."""
        w_ih, w_hh, b_ih, b_hh = self.gru.all_weights[0]  # layer 0: the only one
        gi = x @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h


class RecurrentPolicy(RecurrentCore):
    """pi(u | history): u ~ N(mean(h_t), exp(log_std)^2), a = tanh(u)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        head: list[int],
        init_log_std: float,
        memory: SuccessMemory | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden_dim, head, act_dim, memory)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def sequence(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> recurrent state after each step (S, T, H), mean (S, T, A), log_std (S, T, A)."""
        hs, head_in = self.hiddens(h0, obs, last_action, reward, done)
        mean = self.head(head_in)
        return hs, mean, self.log_std.expand_as(mean)

    def step(
        self, hidden: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step, all (B, .) -> next_hidden (B, H), mean (B, A), log_std (B, A): the
        core of the exported step graph (training/common/onnx_export.py)."""
        h, head_in = self.one_step(hidden, obs, last_action, reward, done)
        mean = self.head(head_in)
        return h, mean, self.log_std.expand_as(mean)


class RecurrentValue(RecurrentCore):
    """V(history) -> (S, T): the critic, with its own GRU (and its own memory)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        head: list[int],
        memory: SuccessMemory | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden_dim, head, 1, memory)

    def sequence(
        self, h0: Tensor, obs: Tensor, last_action: Tensor, reward: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """-> recurrent state after each step (S, T, H), value (S, T)."""
        hs, head_in = self.hiddens(h0, obs, last_action, reward, done)
        return hs, self.head(head_in)[..., 0]


class RL2Nets(nn.Module):
    """The policy (exported) and the value function (training only). With `memory`
    (SuccessMemory's keyword arguments) each carries a SuccessMemory of its own."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        head: list[int],
        init_log_std: float = 0.0,
        memory: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()

        def mem() -> SuccessMemory | None:
            return SuccessMemory(**memory) if memory is not None else None

        self.policy = RecurrentPolicy(obs_dim, act_dim, hidden_dim, head, init_log_std, mem())
        self.value = RecurrentValue(obs_dim, act_dim, hidden_dim, head, mem())
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.hidden_dim = self.policy.hidden_dim
        """The policy's recurrent state size (the artifact's hidden_dim)."""

    def set_obs_stats(self, mean: Tensor, std: Tensor) -> None:
        """Give both networks the same frozen observation normalisation."""
        for net in (self.policy, self.value):
            net.normaliser.set_stats(mean, std)


def success_threshold(success_bonus: float, max_step_cost: float) -> float:
    """The r_{t-1} above which an episode's last step was a success: halfway between the
    largest reward of a step that does not succeed (0: every cost is >= 0) and the smallest
    of one that does (success_bonus - max_step_cost)."""
    if success_bonus <= max_step_cost:
        raise ValueError(
            f"rl2.success_memory needs reward.success_bonus ({success_bonus}) above "
            f"reward.max_step_cost ({max_step_cost}): else a success cannot be told apart "
            "from the last reward of an episode"
        )
    return 0.5 * (success_bonus - max_step_cost)


def make_nets(
    obs_dim: int, act_dim: int, cfg: TrainConfig, obs_index: Mapping[str, int] | None = None
) -> RL2Nets:
    """The networks for `cfg` (`rl2.gru_hidden`, `ppo.hidden`, `ppo.init_log_std`,
    `rl2.success_memory`, `rl2.commanded_pose`); `obs_index` is unused (the memory's columns
    are the insertion env's, its threshold and command step the run's sim config's)."""
    memory = success_memory_spec(cfg) if cfg.rl2.success_memory else None
    return RL2Nets(
        obs_dim, act_dim, cfg.rl2.gru_hidden, cfg.ppo.hidden, cfg.ppo.init_log_std, memory
    )


def success_memory_spec(cfg: TrainConfig) -> dict[str, Any]:
    """SuccessMemory's keyword arguments for `cfg`'s env (only the insertion env): the pose
    columns, the success threshold of its reward, and with `rl2.commanded_pose` the command
    columns and the setpoint's step per unit of action (max speeds x control period)."""
    if cfg.env != "insertion":
        raise ValueError(
            f"rl2.success_memory: only env 'insertion' has the poses it remembers, got {cfg.env!r}"
        )
    from sim.insertion import OBS_INDEX  # lazy: pybullet's sim
    from training.common.tasks import insertion_sim_config

    sim = insertion_sim_config(cfg)
    rc = sim.reward
    spec: dict[str, Any] = {
        "pose_columns": tuple(OBS_INDEX[n] for n in POSE_NAMES),
        "threshold": success_threshold(rc.success_bonus, rc.max_step_cost),
    }
    if cfg.rl2.commanded_pose:
        lin = sim.max_lin_speed * 1000.0 * sim.control_dt  # mm per step at |action| = 1
        yaw = math.degrees(sim.max_yaw_rate) * sim.control_dt  # deg per step
        spec["command_columns"] = tuple(OBS_INDEX[n] for n in COMMAND_NAMES)
        spec["command_step"] = (lin, lin, lin, yaw)
    return spec
