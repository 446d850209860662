"""The server's fused STEP path (runtime/server.py `_step_fused`, the artifact's optional
fused.onnx) answers exactly what the unfused path answers: actions, errors, GET_STATE,
and the session's random stream, across modes, resets, observes and bad factors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from runtime.artifact import write_artifact
from runtime.client import RuntimeClient, RuntimeErrorReply
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from tests.runtime.conftest import Running, start_server
from tests.runtime.onnx_fixture import IR_VERSION, OPSET, RandomWeights

pytest.importorskip("onnx")

OBS, A, L = 6, 3, 4  # T = 2 OBS + A + 1 = 16 = 4 L: the transition is (v, p, m, s) below


def factor_encoder() -> bytes:
    """An encoder whose factor the transition spells out: with tr = (v, p, m, s) [4 x L],
    var = v + (p*p - p*p) and mu = m*s. So var <= 0 (v <= 0), a NaN var (|p| > 2e19:
    inf - inf) and an Inf mu (|m*s| > 3e38) come from finite frames."""
    n = helper.make_node
    starts = {k: helper.make_tensor(f"s{k}", TensorProto.INT64, [1], [k * L]) for k in range(5)}
    axis = helper.make_tensor("ax", TensorProto.INT64, [1], [1])
    nodes = [n("Slice", ["transition", f"s{k}", f"s{k + 1}", "ax"], [f"x{k}"]) for k in range(4)]
    nodes += [
        n("Mul", ["x1", "x1"], ["pp"]),
        n("Sub", ["pp", "pp"], ["nan_or_zero"]),
        n("Add", ["x0", "nan_or_zero"], ["var"]),
        n("Mul", ["x2", "x3"], ["mu"]),
    ]
    graph = helper.make_graph(
        nodes,
        "factor_encoder",
        [helper.make_tensor_value_info("transition", TensorProto.FLOAT, ["B", 4 * L])],
        [
            helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["B", L]),
            helper.make_tensor_value_info("var", TensorProto.FLOAT, ["B", L]),
        ],
        [*starts.values(), axis],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model.SerializeToString()


@pytest.fixture(scope="module")
def two_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same encoder and policy without and with fused.onnx."""
    from training.common.fused_graph import add_fused

    root = tmp_path_factory.mktemp("fused")
    w = RandomWeights(OBS, A, L, 16, seed=5)
    write_artifact(root / "plain", factor_encoder(), w.policy_onnx(), w.spec(prior_var=[2.0] * L))
    shutil.copytree(root / "plain", root / "fused")
    add_fused(root / "fused")
    return root / "plain", root / "fused"


class Counted:
    """LoadedModel.fused_step wrapped to count its calls (the test must hit the path)."""

    def __init__(self, model: LoadedModel) -> None:
        self.calls = 0
        inner = model.fused_step

        def fused_step(*args: Any) -> Any:
            self.calls += 1
            return inner(*args)

        model.fused_step = fused_step  # type: ignore[method-assign]


@pytest.fixture
def servers(two_artifacts: tuple[Path, Path]) -> Iterator[tuple[Running, Running, Counted]]:
    plain = LoadedModel.load(two_artifacts[0], ServeConfig())
    fused = LoadedModel.load(two_artifacts[1], ServeConfig())
    assert plain.fused is None and fused.fused is not None
    counted = Counted(fused)
    runs = [start_server(m, None, seed=7) for m in (plain, fused)]  # type: ignore[arg-type]
    yield runs[0], runs[1], counted
    for r in runs:
        for c in r.clients:
            c.close()
        r.server.stop()


def _transition(rng: np.random.Generator) -> np.ndarray:
    v = rng.uniform(0.05, 5.0, L)
    p = rng.normal(size=L)
    m = rng.normal(size=L)
    s = np.ones(L)
    bad = rng.random()
    if bad < 0.04:
        v[rng.integers(L)] = rng.choice([0.0, -0.0, -1.0, -1e-30])  # var <= 0
    elif bad < 0.07:
        p[rng.integers(L)] = 1e30  # NaN var
    elif bad < 0.10:
        i = rng.integers(L)
        m[i], s[i] = 1e30, rng.choice([1e30, -1e30])  # Inf mu
    elif bad < 0.12:
        v[rng.integers(L)] = 3e38  # a factor that says nearly nothing: accepted
    return np.concatenate([v, p, m, s]).astype(np.float32)


def _call(c: RuntimeClient, sha: str, fn: str, *args: Any, **kw: Any) -> Any:
    """The reply, or the error reply as (code, message with the artifact hash blanked)."""
    try:
        out = getattr(c, fn)(*args, **kw)
    except RuntimeErrorReply as exc:
        return ("error", int(exc.code), exc.message.replace(sha[:12], "SHA"))
    if fn == "get_state":
        return tuple(
            x.tobytes() if isinstance(x, np.ndarray) else x
            for x in (out.mean, out.var, out.z, out.count, out.kind)
        )
    return out.tobytes() if isinstance(out, np.ndarray) else out


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_and_unfused_servers_answer_the_same(
    servers: tuple[Running, Running, Counted], seed: int
) -> None:
    plain, fused, counted = servers
    clients = []
    for r in (plain, fused):
        c = r.client()
        c.hello()
        c.set_mode("exploit", "step")
        clients.append((c, r.server.model.sha256))
    rng = np.random.default_rng(seed)
    rejected = 0
    for i in range(400):
        u = rng.random()
        obs = rng.normal(size=OBS).astype(np.float32)
        if u < 0.70:
            call: tuple[Any, ...] = ("step", obs, _transition(rng))
            kw = {"stochastic": bool(rng.random() < 0.3)}
        elif u < 0.76:
            call, kw = ("step", obs), {"stochastic": bool(rng.random() < 0.5)}
        elif u < 0.80:
            call, kw = ("observe", np.stack([_transition(rng) for _ in range(3)])), {}
        elif u < 0.84:
            call, kw = ("reset_episode",), {}
        elif u < 0.86:
            call, kw = ("reset_task",), {}
        elif u < 0.92:
            mode = "explore" if rng.random() < 0.3 else "exploit"
            call, kw = ("set_mode", mode, "episode" if rng.random() < 0.25 else "step"), {}
        else:
            call, kw = ("get_state",), {}
        got = [_call(c, sha, *call, **kw) for c, sha in clients]
        assert got[0] == got[1], (i, call[0])
        if isinstance(got[0], tuple) and got[0][0] == "error":
            assert "var > 0" in got[0][2] and "context unchanged" in got[0][2]
            rejected += 1
        # The state after every request, not only when a GET_STATE was drawn.
        states = [_call(c, sha, "get_state") for c, sha in clients]
        assert states[0] == states[1], (i, call[0])
    assert counted.calls > 150 and rejected > 5  # both paths were really exercised


def test_a_bad_factor_leaves_the_fused_session_unchanged(
    servers: tuple[Running, Running, Counted],
) -> None:
    _, fused, counted = servers
    c = fused.client()
    c.hello()
    c.set_mode("exploit", "step")
    rng = np.random.default_rng(3)
    obs = np.zeros(OBS, np.float32)
    for _ in range(5):
        c.step(obs, _transition(np.random.default_rng(99)))  # a good one
    before = c.get_state()
    bad = [(0.0, 1.0, 1.0), (-2.0, 1.0, 1.0), (1.0, 1e30, 1.0), (1.0, 1.0, 1e30)]
    for bad_v, bad_p, bad_m in bad:  # var 0, var < 0, NaN var, Inf mu
        tr = np.concatenate(
            [[bad_v] + [1.0] * (L - 1), [bad_p] * L, [bad_m] * L, [1e30 if bad_m > 1 else 1.0] * L]
        ).astype(np.float32)
        for stochastic in (False, True):
            calls = counted.calls
            with pytest.raises(RuntimeErrorReply, match="var > 0"):
                c.step(obs, tr, stochastic=stochastic)
            assert counted.calls == calls + 1
            after = c.get_state()
            assert after.count == before.count and after.mean.tobytes() == before.mean.tobytes()
            assert after.var.tobytes() == before.var.tobytes()
            assert after.z.tobytes() == before.z.tobytes()
    action = c.step(obs, _transition(rng))
    assert action.shape == (A,) and action.dtype == np.float32
    action += 1.0  # the client's reply array is the caller's own, writable
    assert c.get_state().count == before.count + 1


def test_the_optional_graph_is_checked_like_the_others(
    two_artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """files.fused is a posterior artifact's optional role only; its sha256 and its IO are
    verified like the kind's own graphs."""
    import json

    from runtime.artifact import ArtifactError, add_optional_graph, load_artifact
    from tests.runtime.kinds_fixture import make_kind_artifact

    weights, _ = make_kind_artifact(tmp_path / "weights", "weights")
    with pytest.raises(ArtifactError, match="no optional graph 'fused'"):
        add_optional_graph(weights, "fused", b"x")
    data = json.loads((weights.root / "manifest.json").read_text())
    data["files"]["fused"] = data["files"]["policy"]
    (weights.root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"optional: \[\]|takes the graph"):
        load_artifact(weights.root)
    # A posterior artifact whose fused.onnx is another graph (the policy): refused at load.
    bad = tmp_path / "bad"
    shutil.copytree(two_artifacts[0], bad)
    art = add_optional_graph(load_artifact(bad), "fused", (bad / "policy.onnx").read_bytes())
    with pytest.raises(ArtifactError, match="fused graph of kind 'posterior' needs"):
        LoadedModel(art, ServeConfig())
    (bad / "fused.onnx").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(bad)


def test_the_bound_fused_call_equals_a_plain_run_and_returns_fresh_arrays(
    two_artifacts: tuple[Path, Path],
) -> None:
    """LoadedModel.fused_step runs the graph through fixed IOBinding buffers; it must give
    what InferenceSession.run gives, clear a previous call's noise, and hand out arrays that
    the next call does not overwrite."""
    from runtime.model import _FUSED_OUT

    m = LoadedModel.load(two_artifacts[1], ServeConfig())
    assert m._fused_bound is not None
    rng = np.random.default_rng(3)
    kept: list[list[Any]] = []
    for i in range(40):
        obs = rng.normal(size=(1, OBS)).astype(np.float32)
        tr = rng.normal(size=(1, 4 * L)).astype(np.float32)
        tr[0, :L] = np.abs(tr[0, :L]) + 0.1  # var > 0: an accepted factor
        prec = rng.uniform(0.5, 3.0, size=(1, L))
        eta = rng.normal(size=(1, L))
        noise = rng.normal(size=(1, A)).astype(np.float32) if i % 3 == 0 else None
        feed = {
            "obs": obs,
            "transition": tr,
            "precision": prec,
            "eta": eta,
            "noise": np.zeros((1, A), np.float32) if noise is None else noise,
        }
        want = m.fused.run(_FUSED_OUT, feed)  # type: ignore[union-attr]
        got = m.fused_step(obs, tr, prec, eta, noise)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g, w)
        assert bool(got[3][0, 0])
        kept.append([(g, g.copy()) for g in got])
    for step in kept:  # later calls left every earlier result as it was
        for g, snapshot in step:
            assert np.array_equal(g, snapshot)
