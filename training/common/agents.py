"""Agents behind one protocol: what evaluation, fine-tuning and collection drive.

A `FewShotAgent` acts given (obs, z, noise) and has per-task and per-episode hooks (no-ops
for most; a scripted baseline with memory uses them). Only a posterior agent has an
`encoder` (`PosteriorEncoder`: per-transition Gaussian factors, the `posterior` artifact
kind); for the others it is None and z stays 0. `Posterior` accumulates the factors as the
robot's runtime does. `OnnxAgent` runs an exported `posterior` artifact in onnxruntime.
Algorithm-specific agents live with their algorithm (training/algos/pearl/agent.py).

Recurrent policies (RL², VariBAD: the `recurrent` kind) act from a hidden state that the
agent keeps exactly as the runtime's session does (docs/PROTOCOL.md "recurrent"):
`RecurrentAgent` drives any step function (hidden, obs, last_action, reward, done, noise)
-> (next_hidden, action); `torch_step` makes one of a torch step module (the run, in
torch: `zshot eval RUN`, collection), `OnnxRecurrentAgent` of an exported artifact's
step.onnx (`zshot eval ARTIFACT`). The hidden state is kept across the episodes of a task
(`reset_episode`) and reset by `reset_task`; it learns the previous step's action and reward
from `observe`, the hook every agent gets each step's (s, a, r, s') row through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from runtime.artifact import load_artifact
from runtime.posterior import NaturalPosterior


class PosteriorEncoder(Protocol):
    """Per-transition factors Psi(z | c_n) = N(mu_n, var_n) of a posterior agent."""

    prior_in_posterior: bool
    """Whether the N(0, I) prior is one of the posterior's factors."""

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) raw (s, a, r, s') rows -> mu (N, L), var (N, L)."""
        ...


class FewShotAgent(Protocol):
    """What evaluation needs from a trained model or a scripted baseline."""

    latent_dim: int
    encoder: PosteriorEncoder | None
    """The context encoder; None: no context (z is all zeros)."""

    def reset_task(self) -> None:
        """A new task begins (a baseline with memory forgets it)."""
        ...

    def reset_episode(self) -> None:
        """A new episode of the same task begins."""
        ...

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """obs (obs_dim,), z (L,), noise (act_dim,) -> action (act_dim,); noise 0: deterministic."""
        ...

    def observe(self, row: np.ndarray) -> None:
        """The (s, a, r, s') float32 row of the step just taken (a recurrent policy reads
        its action and reward; the others ignore it)."""
        ...

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """The episode ended (a baseline with memory learns from it)."""
        ...


class AgentBase:
    """No-op hooks and no encoder: what an agent without per-episode state inherits."""

    latent_dim: int = 1
    encoder: PosteriorEncoder | None = None

    def reset_task(self) -> None:
        """Nothing to forget."""

    def reset_episode(self) -> None:
        """Nothing to restart."""

    def observe(self, row: np.ndarray) -> None:
        """Nothing to read."""

    def end_episode(self, success: bool, final_obs: np.ndarray) -> None:
        """Nothing to learn."""


class Posterior(NaturalPosterior):
    """q(z | c) exactly as the robot's runtime keeps it (`runtime.posterior`), so evaluation
    in Python and on the robot share one implementation.

    `prior_in_posterior=False` gives PEARL's original product over the context factors
    alone (no N(0, I) factor; the prior itself when the context is empty).
    """

    def __init__(self, latent_dim: int, prior_in_posterior: bool = True) -> None:
        super().__init__(np.zeros(latent_dim), np.ones(latent_dim))
        self.prior_in_posterior = prior_in_posterior

    @property
    def var(self) -> np.ndarray:
        """Posterior variance (L,)."""
        if self.prior_in_posterior:
            return 1.0 / self.precision
        prec = self.precision_sum
        return 1.0 / np.where(prec > 0, prec, 1.0)

    @property
    def mean(self) -> np.ndarray:
        """Posterior mean (L,)."""
        if self.prior_in_posterior:
            return self.eta / self.precision
        if self.count == 0:
            return np.zeros(self.latent_dim)
        return self.eta_sum * self.var


def new_posterior(agent: FewShotAgent) -> Posterior:
    """The prior of `agent`'s latent (with its encoder's prior convention)."""
    enc = agent.encoder
    return Posterior(agent.latent_dim, True if enc is None else enc.prior_in_posterior)


class OnnxEncoder:
    """encoder.onnx of an artifact as a `PosteriorEncoder`."""

    def __init__(self, session: Any, prior_in_posterior: bool) -> None:
        self.session = session
        self.prior_in_posterior = prior_in_posterior

    def factors(self, transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-transition factors from encoder.onnx."""
        mu, var = self.session.run(["mu", "var"], {"transition": transitions.astype(np.float32)})
        return mu.astype(np.float64), var.astype(np.float64)


class OnnxAgent(AgentBase):
    """An exported `posterior` artifact run through onnxruntime (the numbers the robot gets)."""

    def __init__(
        self, artifact_dir: str | Path, sample_rng: np.random.Generator | None = None
    ) -> None:
        """`sample_rng`: draw the graph's noise input from N(0, I) with it at every call
        (sampled actions, as the runtime's STEP flag `stochastic`) instead of zeros."""
        import onnxruntime as ort  # lazy: only evaluation of artifacts needs it

        self.artifact = load_artifact(artifact_dir, check_graphs=True)
        m = self.artifact.manifest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(self.artifact.encoder_path), opts, providers=providers)
        self.policy = ort.InferenceSession(
            str(self.artifact.policy_path), opts, providers=providers
        )
        self.latent_dim = m.latent_dim
        prior = bool(m.training.get("prior_in_posterior", True))
        use_latent = bool(m.training.get("use_latent", True))
        self.encoder = OnnxEncoder(session, prior) if use_latent else None

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Action from policy.onnx."""
        (a,) = self.policy.run(
            ["action"],
            {
                "obs": obs.astype(np.float32)[None],
                "z": z.astype(np.float32)[None],
                "noise": noise.astype(np.float32)[None],
            },
        )
        return a[0]


class OnnxConditionedPolicy:
    """An exported `conditioned` artifact's policy.onnx run through onnxruntime: (obs,
    descriptor) -> the deterministic action (noise 0), what the runtime serves."""

    def __init__(
        self, artifact_dir: str | Path, sample_rng: np.random.Generator | None = None
    ) -> None:
        """`sample_rng`: draw the graph's noise input from N(0, I) with it at every call
        (sampled actions, as the runtime's STEP flag `stochastic`) instead of zeros."""
        import onnxruntime as ort  # lazy: only evaluation of artifacts needs it

        self.artifact = load_artifact(artifact_dir, check_graphs=True)
        m = self.artifact.manifest
        if m.kind != "conditioned":
            raise ValueError(f"{artifact_dir}: a {m.kind!r} artifact, not a conditioned one")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.artifact.policy_path), opts, providers=["CPUExecutionProvider"]
        )
        self.descriptor_dim = int(m.descriptor_dim or 0)
        self.noise = np.zeros((1, m.act_dim), np.float32)
        self.sample_rng = sample_rng

    def __call__(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """The action for `obs` told `descriptor` (sampled with `sample_rng`)."""
        if self.sample_rng is not None:
            self.noise = self.sample_rng.standard_normal(self.noise.shape).astype(np.float32)
        (a,) = self.session.run(
            ["action"],
            {
                "obs": np.asarray(obs, np.float32)[None],
                "descriptor": np.asarray(descriptor, np.float32)[None],
                "noise": self.noise,
            },
        )
        return np.asarray(a[0])


StepFn = Callable[..., tuple[np.ndarray, np.ndarray]]
"""(hidden [1, H], obs [1, obs], last_action [1, act], reward [1, 1], done [1, 1], noise
[1, act]) float32 -> (next_hidden [1, H], action [1, act]): one recurrent policy step."""


class RecurrentAgent(AgentBase):
    """A recurrent policy's step function behind `FewShotAgent`, with the per-task state
    the runtime keeps per session (docs/PROTOCOL.md "recurrent"): the hidden state, the
    previous step's action and reward, and `done`.

    `reset_task`: hidden back to `initial_hidden` (zeros), action, reward and done 0.
    `reset_episode`: all kept; done = 1 if a step has run since the task began. `act`: one
    step (done back to 0). `observe(row)`: its action and reward become the next step's
    `last_action` and `reward`. So step t of a trial sees (s_t, a_{t-1}, r_{t-1}, d_{t-1})
    (Duan et al. 2016), as a client of the runtime does. `z` is ignored."""

    def __init__(
        self,
        step: StepFn,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        initial_hidden: np.ndarray | None = None,
    ) -> None:
        self.step = step
        self.obs_dim, self.act_dim, self.hidden_dim = obs_dim, act_dim, hidden_dim
        self.initial_hidden = (
            np.zeros(hidden_dim, np.float32)
            if initial_hidden is None
            else np.asarray(initial_hidden, np.float32).reshape(hidden_dim)
        )
        self.reset_task()

    def reset_task(self) -> None:
        """A new task: back to the initial state."""
        self.hidden = self.initial_hidden.copy()
        self.last_action = np.zeros(self.act_dim, np.float32)
        self.reward = np.float32(0.0)
        self.done = np.float32(0.0)
        self.stepped = False

    def reset_episode(self) -> None:
        """A new episode of the same task: the state is kept, the next step sees done = 1."""
        if self.stepped:
            self.done = np.float32(1.0)

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """One step of the policy from the current state (which it advances)."""
        next_hidden, action = self.step(
            self.hidden[None],
            np.asarray(obs, np.float32).reshape(1, self.obs_dim),
            self.last_action[None],
            np.full((1, 1), self.reward, np.float32),
            np.full((1, 1), self.done, np.float32),
            np.asarray(noise, np.float32).reshape(1, self.act_dim),
        )
        self.hidden = np.asarray(next_hidden, np.float32).reshape(self.hidden_dim)
        self.done = np.float32(0.0)
        self.stepped = True
        return np.asarray(action, np.float32).reshape(self.act_dim)

    def observe(self, row: np.ndarray) -> None:
        """The step's (s, a, r, s') row: a and r feed the next step."""
        o, a = self.obs_dim, self.act_dim
        self.last_action = np.asarray(row[o : o + a], np.float32).copy()
        self.reward = np.float32(row[o + a])

    def snapshot(self) -> tuple[Any, ...]:
        """The per-task state (hidden, previous action and reward, done, whether a step has
        run) as copies: `restore` puts it back, so an episode can be run from a state
        without changing what the task's next episode starts from."""
        return (self.hidden.copy(), self.last_action.copy(), self.reward, self.done, self.stepped)

    def restore(self, state: tuple[Any, ...]) -> None:
        """Back to a `snapshot`'s state."""
        hidden, last_action, self.reward, self.done, self.stepped = state
        self.hidden, self.last_action = hidden.copy(), last_action.copy()


def torch_step(module: nn.Module) -> StepFn:
    """A torch step module (training/common/onnx_export.py `RecurrentStepGraph`) as a
    `StepFn` (no gradient, float32 numpy in and out)."""

    def step(*inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            h, a = module(*(torch.from_numpy(np.asarray(x, np.float32)) for x in inputs))
        return h.numpy(), a.numpy()

    return step


class OnnxRecurrentAgent(RecurrentAgent):
    """An exported `recurrent` artifact's step.onnx in onnxruntime (the numbers the robot
    gets), its initial state the manifest's `initial_hidden` (zeros if none)."""

    def __init__(
        self, artifact_dir: str | Path, sample_rng: np.random.Generator | None = None
    ) -> None:
        """`sample_rng`: draw the graph's noise input from N(0, I) with it at every call
        (sampled actions, as the runtime's STEP flag `stochastic`) instead of zeros."""
        import onnxruntime as ort  # lazy: only evaluation of artifacts needs it

        self.artifact = load_artifact(artifact_dir, check_graphs=True)
        m = self.artifact.manifest
        if m.kind != "recurrent" or m.hidden_dim is None:
            raise ValueError(f"{artifact_dir}: a {m.kind!r} artifact, not a recurrent one")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        session = ort.InferenceSession(
            str(self.artifact.graph_path("step")), opts, providers=["CPUExecutionProvider"]
        )
        names = ["hidden", "obs", "last_action", "reward", "done", "noise"]

        def step(*inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            h, a = session.run(["next_hidden", "action"], dict(zip(names, inputs, strict=True)))
            return h, a

        initial = None if m.initial_hidden is None else np.asarray(m.initial_hidden)
        super().__init__(step, m.obs_dim, m.act_dim, m.hidden_dim, initial)
