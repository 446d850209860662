"""Agents behind one protocol: what evaluation, fine-tuning and collection drive.

A `FewShotAgent` acts given (obs, z, noise) and has per-task and per-episode hooks (no-ops
for most; a scripted baseline with memory uses them). Only a posterior agent has an
`encoder` (`PosteriorEncoder`: per-transition Gaussian factors, the `posterior` artifact
kind); for the others it is None and z stays 0. `Posterior` accumulates the factors as the
robot's runtime does. `OnnxAgent` runs an exported `posterior` artifact in onnxruntime.
Algorithm-specific agents live with their algorithm (training/algos/pearl/agent.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

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

    def __init__(self, artifact_dir: str | Path) -> None:
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

    def __init__(self, artifact_dir: str | Path) -> None:
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

    def __call__(self, obs: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
        """The action for `obs` told `descriptor`."""
        (a,) = self.session.run(
            ["action"],
            {
                "obs": np.asarray(obs, np.float32)[None],
                "descriptor": np.asarray(descriptor, np.float32)[None],
                "noise": self.noise,
            },
        )
        return np.asarray(a[0])
