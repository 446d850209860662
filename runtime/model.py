"""An artifact loaded into onnxruntime: its graphs, ready for batch-1 calls.

Kind posterior: `encode` + `act`, and `fused_step` when the artifact carries the optional
fused graph; recurrent: `step`; conditioned and weights: `act_plain` (runtime/artifact.py
lists each kind's graphs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from runtime.artifact import FUSED_IO, Artifact, ArtifactError, load_artifact, verify_graphs
from runtime.config import ServeConfig
from runtime.kinds import ArtifactKind
from zshot.config import ConfigError

__all__ = ["LoadedModel", "session_options"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
_ENC_OUT = ["mu", "var"]
_POL_OUT = ["action"]
_STEP_OUT = ["next_hidden", "action"]
_FUSED_OUT = list(FUSED_IO["outputs"])  # next_precision, next_eta, z, factor_ok, action


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
    """The onnxruntime sessions of one verified artifact (any kind)."""

    def __init__(self, artifact: Artifact, cfg: ServeConfig) -> None:
        """Create onnxruntime sessions for `artifact` (already hash-verified)."""
        verify_graphs(artifact)  # IO names and widths against the manifest and its kind
        self.artifact = artifact
        m = artifact.manifest
        # Interned: the server compares it with literals on every STEP (identity first).
        self.kind: ArtifactKind = cast(ArtifactKind, sys.intern(m.kind))
        self.obs_dim = m.obs_dim
        self.act_dim = m.act_dim
        self.latent_dim = m.latent_dim
        self.transition_dim = m.transition_dim
        self.hidden_dim = m.hidden_dim or 0
        self.descriptor_dim = m.descriptor_dim or 0
        self.initial_hidden: F32 = np.asarray(
            m.initial_hidden if m.initial_hidden is not None else np.zeros(self.hidden_dim),
            np.float32,
        ).reshape(1, -1)
        self.prior_mean = np.asarray(
            m.prior_mean if m.prior_mean is not None else np.zeros(m.latent_dim), np.float64
        )
        self.prior_var = np.asarray(
            m.prior_var if m.prior_var is not None else np.ones(m.latent_dim), np.float64
        )
        opts = session_options(cfg)
        providers = _providers(cfg)
        try:
            sessions = {
                role: ort.InferenceSession(
                    str(artifact.graph_path(role)), opts, providers=providers
                )
                for role in m.files
            }
        except Exception as exc:  # onnxruntime raises private exception types
            raise ArtifactError(f"{artifact.root}: onnxruntime cannot load it: {exc}") from None
        # The encoder exists for kind posterior only, the policy for every kind but
        # recurrent (whose one graph is the step); a missing one is None.
        self.encoder = sessions.get("encoder")
        self.policy = sessions.get("policy")
        self.step_graph = sessions.get("step")
        # Kind posterior, optional: encoder + posterior update + policy in one call.
        self.fused = sessions.get("fused")
        self.providers = next(iter(sessions.values())).get_providers()
        self._zero_noise: F32 = np.zeros((1, self.act_dim), np.float32)
        # InferenceSession.run validates its feed in Python (~1.3 µs a call) before calling
        # the C++ session; our feeds are built here with the right names, dtypes and shapes,
        # so call the C++ session directly when this onnxruntime exposes it.
        self._raw = all(hasattr(sess, "_sess") for sess in sessions.values())
        self._enc_run = _runner(self.encoder, self._raw)
        self._pol_run = _runner(self.policy, self._raw)
        self._step_run = _runner(self.step_graph, self._raw)
        # The fused graph is only ever called through its IOBinding (either onnxruntime API).
        self._fused_bound = None if self.fused is None else _FusedBinding(self.fused, self)

    @classmethod
    def load(cls, path: str | Path, cfg: ServeConfig) -> LoadedModel:
        """Load, verify (hashes, dims, graph IO) and open the artifact at `path`."""
        return cls(load_artifact(path), cfg)

    @property
    def sha256(self) -> str:
        """sha256 of the artifact's manifest.json."""
        return self.artifact.sha256

    def encode(self, transitions: F32) -> tuple[F32, F32]:
        """Kind posterior: per-transition factors, transitions [n, T] -> (mu, var [n, L])."""
        mu, var = self._enc_run(_ENC_OUT, {"transition": transitions}, None)
        return mu, var

    def act(self, obs: F32, z: F32, noise: F32 | None = None) -> F32:
        """Kind posterior: action [1, act_dim] for obs [1, obs_dim] and z [1, L]; noise
        None = deterministic."""
        feed = {"obs": obs, "z": z, "noise": self._zero_noise if noise is None else noise}
        out: F32 = self._pol_run(_POL_OUT, feed, None)[0]
        return out

    def fused_step(
        self, obs: F32, transition: F32, precision: F64, eta: F64, noise: F32 | None = None
    ) -> list[Any]:
        """Kind posterior with the fused graph: one call, all [1, width] -> [next_precision,
        next_eta (float64 [1, L]), z (float32 [1, L]), factor_ok (bool [1, 1]), action
        [1, act_dim]] (runtime/artifact.py `FUSED_IO`)."""
        bound = self._fused_bound
        if bound is None:
            raise ArtifactError("this artifact has no fused graph")
        return bound.run(obs, transition, precision, eta, noise)

    def act_plain(self, obs: F32, descriptor: F32 | None, noise: F32 | None = None) -> F32:
        """Kinds conditioned (with its descriptor [1, D]) and weights (descriptor None):
        action [1, act_dim] for obs [1, obs_dim]."""
        feed = {"obs": obs, "noise": self._zero_noise if noise is None else noise}
        if descriptor is not None:
            feed["descriptor"] = descriptor
        out: F32 = self._pol_run(_POL_OUT, feed, None)[0]
        return out

    def step(
        self,
        hidden: F32,
        obs: F32,
        last_action: F32,
        reward: F32,
        done: F32,
        noise: F32 | None = None,
    ) -> tuple[F32, F32]:
        """Kind recurrent: one step graph call, all [1, width] -> (next_hidden [1, H],
        action [1, act_dim])."""
        feed = {
            "hidden": hidden,
            "obs": obs,
            "last_action": last_action,
            "reward": reward,
            "done": done,
            "noise": self._zero_noise if noise is None else noise,
        }
        nxt, action = self._step_run(_STEP_OUT, feed, None)
        return nxt, action


class _FusedBinding:
    """The fused graph bound once to fixed input and output buffers (onnxruntime IOBinding):
    a call copies the step's inputs in and the outputs out, instead of `run` converting five
    inputs and allocating five outputs (hot: ~72 -> ~50 µs a call on the demo artifact,
    BENCHMARKS.md). One per model: the serving thread is its only caller."""

    def __init__(self, sess: ort.InferenceSession, model: LoadedModel) -> None:
        L, A = model.latent_dim, model.act_dim
        self.obs = np.zeros((1, model.obs_dim), np.float32)
        self.transition = np.zeros((1, model.transition_dim), np.float32)
        self.precision = np.zeros((1, L), np.float64)
        self.eta = np.zeros((1, L), np.float64)
        self.noise = np.zeros((1, A), np.float32)
        self.noisy = False  # self.noise holds a draw (zeroed again before a plain call)
        self.out: list[npt.NDArray[Any]] = [
            np.zeros((1, L), np.float64),  # next_precision
            np.zeros((1, L), np.float64),  # next_eta
            np.zeros((1, L), np.float32),  # z
            np.zeros((1, 1), np.bool_),  # factor_ok
            np.zeros((1, A), np.float32),  # action
        ]
        binding = sess.io_binding()
        for name in FUSED_IO["inputs"]:
            binding.bind_cpu_input(name, getattr(self, name))
        for name, arr in zip(_FUSED_OUT, self.out, strict=True):
            binding.bind_output(name, "cpu", 0, arr.dtype, list(arr.shape), arr.ctypes.data)
        raw = getattr(sess, "_sess", None)
        if raw is not None and hasattr(binding, "_iobinding"):
            c_binding, opts = binding._iobinding, ort.RunOptions()
            self._call: Callable[[], None] = lambda: raw.run_with_iobinding(c_binding, opts)
        else:
            self._call = lambda: sess.run_with_iobinding(binding)

    def run(
        self, obs: F32, transition: F32, precision: F64, eta: F64, noise: F32 | None
    ) -> list[Any]:
        copy = np.copyto
        copy(self.obs, obs)
        copy(self.transition, transition)
        copy(self.precision, precision)
        copy(self.eta, eta)
        if noise is not None:
            copy(self.noise, noise)
            self.noisy = True
        elif self.noisy:
            self.noise.fill(0.0)
            self.noisy = False
        self._call()
        prec, eta_, z, ok, action = self.out
        # Fresh arrays: the next call overwrites the buffers.
        return [prec.copy(), eta_.copy(), z.copy(), ok.copy(), action.copy()]


def _runner(sess: ort.InferenceSession | None, raw: bool) -> Callable[..., Any]:
    """`run(output_names, feed, run_options)` of a session: its C++ session's when `raw`
    (no Python-side feed checks), else the public method; a missing graph's raises."""
    if sess is None:

        def missing(*args: object) -> Any:
            raise ArtifactError("this artifact's kind has no such graph")

        return missing
    return getattr(sess, "_sess").run if raw else sess.run  # noqa: B009
