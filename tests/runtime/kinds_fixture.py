"""Tiny ONNX graphs of the artifact kinds `recurrent`, `conditioned` and `weights`, built with
`onnx.helper` from numpy weights, each with a numpy reference (the posterior kind's are in
onnx_fixture.py). Every graph follows runtime.artifact.KIND_IO; tests compare the server's
actions with the references (export parity at the runtime level)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from runtime.artifact import Artifact, ArtifactKind, ArtifactSpec, GraphRole, write_graphs
from tests.runtime.onnx_fixture import (
    _serialise,
    scaled_normal,
    spec_fields,
    squash_ref,
    squash_tail,
)


@dataclass
class KindWeights:
    """Weights of one kind's graph: an input layer over the concatenated inputs (recurrent:
    hidden, obs, last_action, reward, done; conditioned: obs, descriptor; weights: obs),
    tanh, then (recurrent) the new hidden state and the squashed action from it."""

    kind: ArtifactKind
    obs_dim: int = 5
    act_dim: int = 2
    width: int = 3  # hidden_dim (recurrent), descriptor_dim (conditioned)
    hidden: int = 12
    seed: int = 0
    initial_hidden: list[float] | None = None
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        o, a, h = self.obs_dim, self.act_dim, self.hidden
        n_in = {"recurrent": self.width + o + a + 2, "conditioned": o + self.width}.get(
            self.kind, o
        )
        n_mid = self.width if self.kind == "recurrent" else h
        rng = self.rng
        self.w1 = scaled_normal(rng, n_in, n_mid, scale=2.0)
        self.b1 = scaled_normal(rng, 1, n_mid)[0]
        self.w2, self.b2 = scaled_normal(rng, n_mid, a), scaled_normal(rng, 1, a)[0]
        self.low = -np.linspace(1.0, 2.0, a).astype(np.float32)
        self.high = np.linspace(1.0, 3.0, a).astype(np.float32)

    def ref(self, *inputs: np.ndarray, noise: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The graph in numpy: inputs in KIND_IO order (without noise), each [n, width].
        Returns (action,) or, for recurrent, (next_hidden, action)."""
        x = np.concatenate([np.atleast_2d(np.asarray(v, np.float64)) for v in inputs], axis=1)
        mid = np.tanh(x @ self.w1 + self.b1)
        action = squash_ref(mid, self.w2, self.b2, self.low, self.high, noise)
        return (mid, action) if self.kind == "recurrent" else (action,)

    # ONNX
    def graph(self) -> bytes:
        """The kind's one graph (step.onnx or policy.onnx) as ONNX bytes."""
        o, a, w = self.obs_dim, self.act_dim, self.width
        names = {
            "recurrent": [
                ("hidden", w),
                ("obs", o),
                ("last_action", a),
                ("reward", 1),
                ("done", 1),
            ],
            "conditioned": [("obs", o), ("descriptor", w)],
            "weights": [("obs", o)],
        }[self.kind]
        mid = "next_hidden" if self.kind == "recurrent" else "mid"
        tail_inits, tail = squash_tail(mid, self.w2, self.b2, self.low, self.high)
        inits = [numpy_helper.from_array(self.w1, "w1"), numpy_helper.from_array(self.b1, "b1")]
        nodes = [
            helper.make_node("Concat", [n for n, _ in names], ["x"], axis=1),
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Tanh", ["h1"], [mid]),
            *tail,
        ]
        inits += tail_inits
        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", d]) for n, d in names]
        inputs.append(helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["B", a]))
        outputs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", a])]
        if self.kind == "recurrent":
            outputs.insert(0, helper.make_tensor_value_info(mid, TensorProto.FLOAT, ["B", w]))
        return _serialise(helper.make_graph(nodes, self.kind, inputs, outputs, inits))

    def spec(self, **overrides: object) -> ArtifactSpec:
        """The manifest spec of this kind matching the graph."""
        fields = spec_fields(f"fixture-{self.kind}-{self.seed}", self.low, self.high, self.obs_dim)
        fields["kind"] = self.kind
        if self.kind == "recurrent":
            fields["hidden_dim"] = self.width
            fields["initial_hidden"] = self.initial_hidden
        if self.kind == "conditioned":
            fields["descriptor_dim"] = self.width
        fields.update(overrides)
        return ArtifactSpec.model_validate(fields)


def make_kind_artifact(
    out_dir: str | Path,
    kind: ArtifactKind,
    spec: dict[str, object] | None = None,
    **kw: object,
) -> tuple[Artifact, KindWeights]:
    """Write an artifact of `kind` (recurrent, conditioned, weights) into `out_dir`; `spec`
    overrides manifest fields, `kw` go to KindWeights."""
    w = KindWeights(kind, **kw)  # type: ignore[arg-type]
    role: GraphRole = "step" if kind == "recurrent" else "policy"
    return write_graphs(out_dir, {role: w.graph()}, w.spec(**(spec or {}))), w


def a_r(tr: np.ndarray, w: KindWeights) -> tuple[np.ndarray, np.ndarray]:
    """The (last_action, reward) a recurrent step takes from a transition row."""
    o, a = w.obs_dim, w.act_dim
    return tr[o : o + a][None], tr[o + a : o + a + 1][None]


class RecurrentRef:
    """The runtime's recurrent session semantics, in numpy (docs/PROTOCOL.md)."""

    def __init__(self, w: KindWeights) -> None:
        self.w = w
        self.reset_task()

    def reset_task(self) -> None:
        w = self.w
        init = w.initial_hidden if w.initial_hidden is not None else [0.0] * w.width
        self.h = np.asarray(init, np.float64)[None]
        self.a, self.r = np.zeros((1, w.act_dim)), np.zeros((1, 1))
        self.done, self.stepped = 0.0, False

    def reset_episode(self) -> None:
        if self.stepped:
            self.done = 1.0

    def observe(self, tr: np.ndarray) -> None:
        self.a, self.r = a_r(tr, self.w)

    def step(self, obs: np.ndarray, tr: np.ndarray | None = None) -> np.ndarray:
        if tr is not None:
            self.observe(tr)
        self.h, action = self.w.ref(self.h, obs[None], self.a, self.r, np.array([[self.done]]))
        self.done, self.stepped = 0.0, True
        return np.asarray(action[0])
