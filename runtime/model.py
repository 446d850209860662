"""An artifact loaded into onnxruntime: the encoder and the policy, ready for batch-1 calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from runtime.artifact import Artifact, ArtifactError, load_artifact, verify_graphs
from runtime.config import ServeConfig
from zshot.config import ConfigError

__all__ = ["LoadedModel", "session_options"]

F32 = npt.NDArray[np.float32]
_ENC_OUT = ["mu", "var"]
_POL_OUT = ["action"]


def session_options(cfg: ServeConfig) -> ort.SessionOptions:
    """onnxruntime options for control-rate batch-1 inference (threads, spinning off)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning keeps worker threads busy-waiting between calls: lower latency on an idle
    # machine, a stolen core on a robot controller. Off unless the config says so.
    spin = "1" if cfg.allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.log_severity_level = 3
    return opts


def _providers(cfg: ServeConfig) -> list[str]:
    available = ort.get_available_providers()
    missing = [p for p in cfg.providers if p not in available]
    if missing:
        raise ConfigError(
            f"onnxruntime providers {missing} are not available here (available: {available}); "
            "install onnxruntime-gpu for CUDAExecutionProvider or fix `providers` in the config"
        )
    return list(cfg.providers)


class LoadedModel:
    """Encoder + policy sessions of one verified artifact."""

    def __init__(self, artifact: Artifact, cfg: ServeConfig) -> None:
        """Create onnxruntime sessions for `artifact` (already hash-verified)."""
        verify_graphs(artifact)  # IO names and widths against the manifest
        self.artifact = artifact
        m = artifact.manifest
        self.obs_dim = m.obs_dim
        self.act_dim = m.act_dim
        self.latent_dim = m.latent_dim
        self.transition_dim = m.transition_dim
        self.prior_mean = np.asarray(
            m.prior_mean if m.prior_mean is not None else np.zeros(m.latent_dim), np.float64
        )
        self.prior_var = np.asarray(
            m.prior_var if m.prior_var is not None else np.ones(m.latent_dim), np.float64
        )
        opts = session_options(cfg)
        providers = _providers(cfg)
        try:
            self.encoder = ort.InferenceSession(
                str(artifact.encoder_path), opts, providers=providers
            )
            self.policy = ort.InferenceSession(str(artifact.policy_path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises private exception types
            raise ArtifactError(f"{artifact.root}: onnxruntime cannot load it: {exc}") from None
        self.providers = self.policy.get_providers()
        self._zero_noise: F32 = np.zeros((1, self.act_dim), np.float32)
        # InferenceSession.run validates its feed in Python (~1.3 µs a call) before calling
        # the C++ session; our feeds are built here with the right names, dtypes and shapes,
        # so call the C++ session directly when this onnxruntime exposes it.
        self._enc_run = getattr(self.encoder, "_sess", self.encoder).run
        self._pol_run = getattr(self.policy, "_sess", self.policy).run
        self._raw = hasattr(self.encoder, "_sess") and hasattr(self.policy, "_sess")

    @classmethod
    def load(cls, path: str | Path, cfg: ServeConfig) -> LoadedModel:
        """Load, verify (hashes, dims, graph IO) and open the artifact at `path`."""
        return cls(load_artifact(path), cfg)

    @property
    def sha256(self) -> str:
        """sha256 of the artifact's manifest.json."""
        return self.artifact.sha256

    def encode(self, transitions: F32) -> tuple[F32, F32]:
        """Per-transition factors: transitions [n, T] -> (mu [n, L], var [n, L])."""
        if self._raw:
            mu, var = self._enc_run(_ENC_OUT, {"transition": transitions}, None)
        else:
            mu, var = self.encoder.run(_ENC_OUT, {"transition": transitions})
        return mu, var

    def act(self, obs: F32, z: F32, noise: F32 | None = None) -> F32:
        """Action [1, act_dim] for obs [1, obs_dim] and z [1, L]; noise None = deterministic."""
        feed = {"obs": obs, "z": z, "noise": self._zero_noise if noise is None else noise}
        if self._raw:
            out: F32 = self._pol_run(_POL_OUT, feed, None)[0]
        else:
            out = self.policy.run(_POL_OUT, feed)[0]
        return out
