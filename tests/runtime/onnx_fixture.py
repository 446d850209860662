"""Small random encoder/policy ONNX graphs built with `onnx.helper` from numpy weights.

The runtime must be testable without torch: these graphs follow the artifact contract
(docs/INTERFACES.md) and come with numpy reference implementations, so tests can check the
server's actions and posteriors against an independent computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.artifact import Artifact, ArtifactSpec, write_artifact

OPSET = 17
IR_VERSION = 9
MIN_VAR = 0.05  # var = softplus(.) + MIN_VAR > 0, as the contract requires


NOISE_SCALE = 0.3  # action noise = NOISE_SCALE * the `noise` input, before the squashing


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def scaled_normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Random float32 weights [shape], N(0, scale² / shape[0])."""
    return (rng.standard_normal(shape) * scale / np.sqrt(shape[0])).astype(np.float32)


def squash_ref(
    mid: np.ndarray, w2: np.ndarray, b2: np.ndarray, low: np.ndarray, high: np.ndarray,
    noise: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """numpy of `squash_tail`: low + (tanh(mid @ w2 + b2 + NOISE_SCALE noise) + 1) (high - low) / 2."""
    pre = mid @ w2 + b2
    if noise is not None:
        pre = pre + NOISE_SCALE * np.atleast_2d(noise)
    return low + (np.tanh(pre) + 1.0) * 0.5 * (high - low)


def squash_tail(
    mid: str, w2: np.ndarray, b2: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
    """Initialisers and nodes from the tensor `mid` (and the graph input `noise`) to the
    output `action`, within [low, high] (`squash_ref` in numpy)."""
    inits = [
        numpy_helper.from_array(v, n)
        for n, v in [
            ("w2", w2),
            ("b2", b2),
            ("ns", np.array([NOISE_SCALE], np.float32)),
            ("one", np.array([1.0], np.float32)),
            ("half_range", (0.5 * (high - low)).astype(np.float32)),
            ("low", low),
        ]
    ]
    nodes = [
        helper.make_node("MatMul", [mid, "w2"], ["p0"]),
        helper.make_node("Add", ["p0", "b2"], ["p1"]),
        helper.make_node("Mul", ["noise", "ns"], ["n1"]),
        helper.make_node("Add", ["p1", "n1"], ["p2"]),
        helper.make_node("Tanh", ["p2"], ["u"]),
        helper.make_node("Add", ["u", "one"], ["u1"]),
        helper.make_node("Mul", ["u1", "half_range"], ["u2"]),
        helper.make_node("Add", ["u2", "low"], ["action"]),
    ]
    return inits, nodes


def spec_fields(name: str, low: np.ndarray, high: np.ndarray, obs_dim: int) -> dict[str, object]:
    """The manifest fields every fixture artifact shares (names o*, a*; 100 Hz)."""
    return {
        "name": name,
        "obs_dim": obs_dim,
        "act_dim": len(low),
        "obs_names": [f"o{i}" for i in range(obs_dim)],
        "action_names": [f"a{i}" for i in range(len(low))],
        "action_low": low.tolist(),
        "action_high": high.tolist(),
        "control_hz": 100.0,
    }


@dataclass
class RandomWeights:
    """Weights of the fixture networks and numpy versions of the two graphs."""

    obs_dim: int
    act_dim: int
    latent_dim: int
    hidden: int
    seed: int

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        t = 2 * self.obs_dim + self.act_dim + 1
        h, lat, o, a = self.hidden, self.latent_dim, self.obs_dim, self.act_dim

        def w(*shape: int, scale: float = 1.0) -> np.ndarray:
            return scaled_normal(rng, *shape, scale=scale)

        self.t_mean = rng.normal(0, 0.5, t).astype(np.float32)
        self.t_std = rng.uniform(0.5, 2.0, t).astype(np.float32)
        self.e_w1, self.e_b1 = w(t, h), w(1, h)[0]
        self.e_wm, self.e_bm = w(h, lat), w(1, lat)[0]
        self.e_wv, self.e_bv = w(h, lat), w(1, lat)[0]
        self.p_w1, self.p_b1 = w(o + lat, h, scale=2.0), w(1, h)[0]
        self.p_w2, self.p_b2 = w(h, a), w(1, a)[0]
        self.low = -np.linspace(1.0, 2.0, a).astype(np.float32)
        self.high = np.linspace(1.0, 3.0, a).astype(np.float32)

    @property
    def transition_dim(self) -> int:
        """Width of one (s, a, r, s') row."""
        return 2 * self.obs_dim + self.act_dim + 1

    # numpy references (float64 maths, compared with tolerance)
    def encode(self, tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mu, var [n, L] for transitions [n, T]."""
        x = (np.asarray(tr, np.float64) - self.t_mean) / self.t_std
        hid = np.tanh(x @ self.e_w1 + self.e_b1)
        return hid @ self.e_wm + self.e_bm, _softplus(hid @ self.e_wv + self.e_bv) + MIN_VAR

    def act(self, obs: np.ndarray, z: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """action [n, act_dim] for obs [n, obs_dim], z [n, L], noise [n, act_dim]."""
        obs = np.atleast_2d(np.asarray(obs, np.float64))
        z = np.atleast_2d(np.asarray(z, np.float64))
        hid = np.tanh(np.concatenate([obs, z], axis=1) @ self.p_w1 + self.p_b1)
        return squash_ref(hid, self.p_w2, self.p_b2, self.low, self.high, noise)

    # ONNX graphs
    def encoder_onnx(self) -> bytes:
        """encoder.onnx bytes: transition [B, T] -> mu, var [B, L]."""
        t, lat = self.transition_dim, self.latent_dim
        inits = [
            numpy_helper.from_array(v, n)
            for n, v in [
                ("t_mean", self.t_mean),
                ("t_std", self.t_std),
                ("w1", self.e_w1),
                ("b1", self.e_b1),
                ("wm", self.e_wm),
                ("bm", self.e_bm),
                ("wv", self.e_wv),
                ("bv", self.e_bv),
                ("min_var", np.array([MIN_VAR], np.float32)),
            ]
        ]
        nodes = [
            helper.make_node("Sub", ["transition", "t_mean"], ["c"]),
            helper.make_node("Div", ["c", "t_std"], ["x"]),
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Tanh", ["h1"], ["h"]),
            helper.make_node("MatMul", ["h", "wm"], ["m0"]),
            helper.make_node("Add", ["m0", "bm"], ["mu"]),
            helper.make_node("MatMul", ["h", "wv"], ["v0"]),
            helper.make_node("Add", ["v0", "bv"], ["v1"]),
            helper.make_node("Softplus", ["v1"], ["v2"]),
            helper.make_node("Add", ["v2", "min_var"], ["var"]),
        ]
        graph = helper.make_graph(
            nodes,
            "encoder",
            [helper.make_tensor_value_info("transition", TensorProto.FLOAT, ["B", t])],
            [
                helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["B", lat]),
                helper.make_tensor_value_info("var", TensorProto.FLOAT, ["B", lat]),
            ],
            inits,
        )
        return _serialise(graph)

    def policy_onnx(self) -> bytes:
        """policy.onnx bytes: obs [B, obs], z [B, L], noise [B, act] -> action [B, act]."""
        o, lat, a = self.obs_dim, self.latent_dim, self.act_dim
        tail_inits, tail = squash_tail("h", self.p_w2, self.p_b2, self.low, self.high)
        inits = [
            numpy_helper.from_array(self.p_w1, "w1"),
            numpy_helper.from_array(self.p_b1, "b1"),
            *tail_inits,
        ]
        nodes = [
            helper.make_node("Concat", ["obs", "z"], ["x"], axis=1),
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Tanh", ["h1"], ["h"]),
            *tail,
        ]
        graph = helper.make_graph(
            nodes,
            "policy",
            [
                helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", o]),
                helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", lat]),
                helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["B", a]),
            ],
            [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", a])],
            inits,
        )
        return _serialise(graph)

    def spec(self, **overrides: object) -> ArtifactSpec:
        """The manifest spec matching these graphs."""
        fields = spec_fields(f"fixture-{self.seed}", self.low, self.high, self.obs_dim)
        fields["latent_dim"] = self.latent_dim
        fields.update(overrides)
        return ArtifactSpec.model_validate(fields)


def _serialise(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_artifact(
    out_dir: str | Path,
    *,
    obs_dim: int = 6,
    act_dim: int = 3,
    latent_dim: int = 4,
    hidden: int = 16,
    seed: int = 0,
    **spec_overrides: object,
) -> tuple[Artifact, RandomWeights]:
    """Write a random artifact into `out_dir`; return it and its weights (the reference)."""
    w = RandomWeights(obs_dim, act_dim, latent_dim, hidden, seed)
    art = write_artifact(out_dir, w.encoder_onnx(), w.policy_onnx(), w.spec(**spec_overrides))
    return art, w
