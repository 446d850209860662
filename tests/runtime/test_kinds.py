"""Artifact kinds (posterior, recurrent, conditioned, weights): the manifest and its graphs are
checked per kind, and a client of the runtime gets the actions of a numpy reference of each
kind's graph (export parity at the runtime level), with each kind's session semantics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.artifact import (
    GRAPH_NAMES,
    KIND_IO,
    ArtifactError,
    ArtifactKind,
    io_docs,
    load_artifact,
    onnx_metadata,
    write_graphs,
)
from runtime.client import RuntimeClient, RuntimeErrorReply
from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.protocol import ARTIFACT_KINDS, ErrorCode
from runtime.server import RELOAD_REFUSED
from tests.runtime.conftest import Running, start_server
from tests.runtime.kinds_fixture import KindWeights, RecurrentRef, make_kind_artifact
from tests.runtime.onnx_fixture import make_artifact

ATOL = 2e-5


def serve(root: Path, weights: object, **cfg: object) -> Running:
    return start_server(LoadedModel.load(root, ServeConfig()), weights, **cfg)  # type: ignore[arg-type]


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Running, KindWeights]]:
    kind, kw = request.param
    _, w = make_kind_artifact(tmp_path / kind, kind, **kw)
    r = serve(tmp_path / kind, w)
    yield r, w
    for c in r.clients:
        c.close()
    r.server.stop()


def transition(rng: np.random.Generator, w: KindWeights) -> np.ndarray:
    return rng.normal(size=2 * w.obs_dim + w.act_dim + 1).astype(np.float32)


# -- manifest and graphs ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["recurrent", "conditioned", "weights"])
def test_each_kind_loads_with_its_graphs_checked(tmp_path: Path, kind: ArtifactKind) -> None:
    art, _ = make_kind_artifact(tmp_path, kind)
    again = load_artifact(tmp_path, check_graphs=True)
    assert again.manifest.kind == kind and set(again.manifest.files) == set(KIND_IO[kind])
    # Each graph's every input and output has a doc string (the export conventions).
    for role, io in KIND_IO[kind].items():
        assert set(io_docs(art.manifest, role)) == set(io["inputs"]) | set(io["outputs"]), role
        meta = onnx_metadata(art.manifest, role)
        assert meta["zshot.kind"] == kind and meta["zshot.artifact_kind"] == role
        assert role in GRAPH_NAMES


def test_posterior_is_the_default_kind_and_its_interface_hash_is_unchanged(tmp_path: Path) -> None:
    art, _ = make_artifact(tmp_path / "p")
    raw = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert art.manifest.kind == "posterior" and raw["kind"] == "posterior"
    del raw["kind"], raw["hidden_dim"], raw["initial_hidden"]
    del raw["descriptor_dim"], raw["descriptor_names"]
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(raw))  # a manifest before kinds
    old = load_artifact(tmp_path / "p", check_graphs=True)
    assert old.manifest.kind == "posterior"
    assert old.manifest.interface_sha256() == art.manifest.interface_sha256()
    # A hash computed the way it was before kinds existed: INTERFACE_FIELDS only.
    import hashlib

    from runtime.artifact import INTERFACE_FIELDS

    body = {k: getattr(old.manifest, k) for k in INTERFACE_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert old.manifest.interface_sha256() == hashlib.sha256(text.encode()).hexdigest()


def _edit(root: Path, **fields: object) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def test_manifests_whose_kind_and_graphs_disagree_are_refused_in_one_line(
    tmp_path: Path,
) -> None:
    make_artifact(tmp_path / "post")
    cases: list[tuple[Path, str]] = []
    # A posterior artifact's files under kind recurrent.
    _edit(tmp_path / "post", kind="recurrent", latent_dim=0, hidden_dim=4)
    cases.append((tmp_path / "post", r"kind 'recurrent' takes the graph\(s\) \['step'\]"))
    # A posterior field in a recurrent manifest.
    make_kind_artifact(tmp_path / "rec", "recurrent")
    _edit(tmp_path / "rec", latent_dim=4)
    cases.append((tmp_path / "rec", "kind 'recurrent' takes no latent_dim"))
    # Kind conditioned without its descriptor size.
    make_kind_artifact(tmp_path / "cond", "conditioned")
    _edit(tmp_path / "cond", descriptor_dim=None)
    cases.append((tmp_path / "cond", "kind 'conditioned' needs descriptor_dim"))
    for root, msg in cases:
        with pytest.raises(ArtifactError, match=msg) as exc:
            load_artifact(root)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "graph_kind, spec_kind, over, msg",
    [
        # a plain (weights) policy declared conditioned: no descriptor input
        ("weights", "conditioned", {"descriptor_dim": 3}, r"inputs are \['noise', 'obs'\]"),
        # a conditioned policy declared weights: an input too many
        ("conditioned", "weights", {}, "a policy graph of kind 'weights' needs"),
        # a recurrent step graph whose hidden size differs from the manifest's
        ("recurrent", "recurrent", {"hidden_dim": 7}, r"input 'hidden' has shape .* \[batch, 7\]"),
    ],
)
def test_graphs_that_do_not_fit_their_kind_are_refused(
    tmp_path: Path,
    graph_kind: ArtifactKind,
    spec_kind: ArtifactKind,
    over: dict[str, object],
    msg: str,
) -> None:
    w = KindWeights(graph_kind)
    spec = KindWeights(spec_kind).spec(**over)
    role = "step" if spec_kind == "recurrent" else "policy"
    write_graphs(tmp_path, {role: w.graph()}, spec)
    load_artifact(tmp_path)  # hashes and fields are fine: the graphs are what is wrong
    with pytest.raises(ArtifactError, match=msg) as exc:
        LoadedModel.load(tmp_path, ServeConfig())
    assert "\n" not in str(exc.value)


def test_a_graph_stamped_for_another_kind_is_refused(tmp_path: Path) -> None:
    import onnx

    w = KindWeights("weights")
    model = onnx.load_from_string(w.graph())
    other = KindWeights("conditioned").spec()  # metadata of another artifact
    for k, v in onnx_metadata(other, "policy").items():
        model.metadata_props.add(key=k, value=v)
    write_graphs(tmp_path, {"policy": model.SerializeToString()}, w.spec())
    with pytest.raises(ArtifactError, match="metadata zshot.interface_sha256"):
        load_artifact(tmp_path, check_graphs=True)


def test_write_graphs_refuses_the_wrong_graph_set(tmp_path: Path) -> None:
    w = KindWeights("recurrent")
    with pytest.raises(ValueError, match=r"kind 'recurrent' takes the graph\(s\) \['step'\]"):
        write_graphs(tmp_path, {"policy": w.graph()}, w.spec())


# -- recurrent ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "served", [("recurrent", {"initial_hidden": [0.5, -0.25, 0.1]})], indirect=True
)
def test_recurrent_hidden_is_kept_across_episodes_and_cleared_by_reset_task(
    served: tuple[Running, KindWeights],
) -> None:
    running, w = served
    c = running.client()
    info = c.hello(kind="recurrent")
    assert (info.kind, info.hidden_dim, info.latent_dim) == ("recurrent", 3, 0)
    ref = RecurrentRef(w)
    rng = np.random.default_rng(0)

    def episode(steps: int) -> None:
        tr = None
        for _ in range(steps):
            obs = rng.normal(size=w.obs_dim).astype(np.float32)
            np.testing.assert_allclose(c.step(obs, tr), ref.step(obs, tr), atol=ATOL)
            tr = transition(rng, w)
        assert tr is not None
        assert c.observe(tr[None]) > 0  # the episode's last transition, as the bridge sends it
        ref.observe(tr)

    c.reset_task()
    c.reset_episode()  # right after reset_task: the first step still sees done = 0
    episode(4)
    st = c.get_state()
    assert st.kind == "recurrent" and st.count == 4 and st.mean.size == 0
    np.testing.assert_allclose(st.state, ref.h[0], atol=ATOL)
    c.reset_episode()
    np.testing.assert_allclose(c.get_state().state, ref.h[0], atol=ATOL)  # kept
    ref.reset_episode()
    assert ref.done == 1.0
    episode(3)  # its first step gets done = 1 and the previous episode's last (a, r)
    c.reset_task()
    ref.reset_task()
    st = c.get_state()
    np.testing.assert_allclose(st.state, [0.5, -0.25, 0.1], atol=1e-7)  # the initial state
    assert st.count == 0
    episode(2)
    assert c.stats()["kind"] == ARTIFACT_KINDS.index("recurrent")


@pytest.mark.parametrize("served", [("recurrent", {})], indirect=True)
def test_recurrent_sessions_are_isolated(served: tuple[Running, KindWeights]) -> None:
    running, w = served
    a, b = running.client(), running.client()
    a.hello()
    b.hello()
    ra, rb = RecurrentRef(w), RecurrentRef(w)
    rng = np.random.default_rng(1)
    for i in range(6):  # interleaved: each session's hidden state is its own
        for c, ref in ((a, ra), (b, rb)):
            obs = rng.normal(size=w.obs_dim).astype(np.float32)
            tr = transition(rng, w) if i else None
            np.testing.assert_allclose(c.step(obs, tr), ref.step(obs, tr), atol=ATOL)
    b.reset_task()
    rb.reset_task()
    np.testing.assert_allclose(a.get_state().state, ra.h[0], atol=ATOL)  # a untouched
    assert np.all(b.get_state().state == 0)


@pytest.mark.parametrize("served", [("recurrent", {})], indirect=True)
def test_a_refused_recurrent_step_changes_nothing(served: tuple[Running, KindWeights]) -> None:
    running, w = served
    c = running.client()
    c.hello()
    obs = np.ones(w.obs_dim, np.float32)
    c.step(obs)
    before = c.get_state()
    bad = np.full(w.obs_dim, np.nan, np.float32)
    with pytest.raises(RuntimeErrorReply, match="NON_FINITE"):
        c.step(bad, np.ones(2 * w.obs_dim + w.act_dim + 1, np.float32))
    after = c.get_state()
    np.testing.assert_array_equal(after.state, before.state)
    assert after.count == before.count


# -- conditioned --------------------------------------------------------------------------
@pytest.mark.parametrize("served", [("conditioned", {})], indirect=True)
def test_conditioned_policy_follows_the_descriptor(served: tuple[Running, KindWeights]) -> None:
    running, w = served
    c = running.client()
    info = c.hello()
    assert (info.kind, info.descriptor_dim) == ("conditioned", 3)
    obs = np.random.default_rng(2).normal(size=w.obs_dim).astype(np.float32)
    with pytest.raises(RuntimeErrorReply, match="NO_TASK.*RESET_TASK with the task descriptor"):
        c.step(obs)
    d1, d2 = np.array([1, 0, 0], np.float32), np.array([0, 0, 1], np.float32)
    c.reset_task(d1)
    a1 = c.step(obs)
    np.testing.assert_allclose(a1, w.ref(obs[None], d1[None])[0][0], atol=ATOL)
    c.reset_task(d2)
    a2 = c.step(obs)
    np.testing.assert_allclose(a2, w.ref(obs[None], d2[None])[0][0], atol=ATOL)
    assert np.abs(a1 - a2).max() > 1e-3  # the descriptor changes the action
    st = c.get_state()
    assert st.kind == "conditioned"
    np.testing.assert_array_equal(st.state, d2)
    # A wrong-size descriptor: one clear error reply; the session keeps its task.
    with pytest.raises(RuntimeErrorReply, match=r"descriptor frame is 8 bytes, expected 12") as e:
        c.reset_task([1.0, 0.0])
    assert e.value.code == ErrorCode.BAD_PAYLOAD
    with pytest.raises(RuntimeErrorReply, match="NON_FINITE"):
        c.reset_task([np.nan, 0.0, 0.0])
    np.testing.assert_allclose(c.step(obs), a2, atol=1e-7)
    c.reset_task()  # a new task without a descriptor: no policy until one is given
    with pytest.raises(RuntimeErrorReply, match="NO_TASK"):
        c.step(obs)
    assert c.stats()["kind"] == ARTIFACT_KINDS.index("conditioned")


def test_a_descriptor_to_another_kind_is_refused(running: Running) -> None:
    c = running.client()
    c.hello()
    with pytest.raises(RuntimeErrorReply, match="only for a conditioned artifact") as e:
        c.reset_task([1.0, 0.0])
    assert e.value.code == ErrorCode.BAD_FRAMES
    with pytest.raises(RuntimeErrorReply, match="HANDSHAKE_MISMATCH: kind conditioned"):
        running.client().hello(kind="conditioned")


# -- weights ------------------------------------------------------------------------------
def test_weights_policy_is_swapped_by_a_guarded_reload(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    _, w0 = make_kind_artifact(root / "pre", "weights", seed=0)
    _, w1 = make_kind_artifact(root / "adapted", "weights", seed=1)
    make_artifact(root / "posterior", obs_dim=w0.obs_dim, act_dim=w0.act_dim)
    make_kind_artifact(tmp_path / "outside", "weights", seed=2)
    running = serve(root / "pre", w0, reload_root=str(root))
    try:
        c = running.client()
        info = c.hello()
        assert (info.kind, info.latent_dim) == ("weights", 0)
        obs = np.random.default_rng(3).normal(size=w0.obs_dim).astype(np.float32)
        # STEP's stochastic flag: the policy's noise input from the session's generator
        # (serve config seed 0 + the session's number, 1: the server's first session).
        noise = np.random.default_rng(1).standard_normal((1, w0.act_dim))
        sampled = c.step(obs, stochastic=True)
        np.testing.assert_allclose(sampled, w0.ref(obs[None], noise=noise)[0][0], atol=ATOL)
        assert np.abs(sampled - w0.ref(obs[None])[0][0]).max() > 1e-3
        tr = np.zeros(2 * w0.obs_dim + w0.act_dim + 1, np.float32)
        np.testing.assert_allclose(c.step(obs, tr), w0.ref(obs[None])[0][0], atol=ATOL)
        assert c.reload(str(root / "adapted")).kind == "weights"
        np.testing.assert_allclose(c.step(obs), w1.ref(obs[None])[0][0], atol=ATOL)
        for refused in (root / "posterior", tmp_path / "outside"):  # other kind; outside root
            with pytest.raises(RuntimeErrorReply, match=re.escape(RELOAD_REFUSED)):
                c.reload(str(refused))
            np.testing.assert_allclose(c.step(obs), w1.ref(obs[None])[0][0], atol=ATOL)
        assert c.get_state().kind == "weights"
    finally:
        for cl in running.clients:
            cl.close()
        running.server.stop()


def test_reload_stays_off_without_reload_root(tmp_path: Path) -> None:
    _, w0 = make_kind_artifact(tmp_path / "pre", "weights", seed=0)
    make_kind_artifact(tmp_path / "adapted", "weights", seed=1)
    running = serve(tmp_path / "pre", w0)
    try:
        c = running.client()
        c.hello()
        with pytest.raises(RuntimeErrorReply, match=re.escape(RELOAD_REFUSED)):
            c.reload(str(tmp_path / "adapted"))
    finally:
        for cl in running.clients:
            cl.close()
        running.server.stop()


# -- any sequence of requests -------------------------------------------------------------
@pytest.fixture(scope="module")
def recurrent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("recurrent")
    _, w = make_kind_artifact(root, "recurrent", initial_hidden=[0.3, 0.0, -0.6], seed=7)
    r = serve(root, w)
    yield r
    r.server.stop()


OPS = st.lists(st.sampled_from(["step", "step+tr", "observe", "episode", "task"]), max_size=30)


@settings(max_examples=40, deadline=None, database=None)
@given(ops=OPS, seed=st.integers(0, 2**16))
def test_recurrent_session_follows_the_reference_for_any_request_sequence(
    recurrent_server: Running, ops: list[str], seed: int
) -> None:
    """Whatever order a client steps, observes and resets in, every action and the hidden
    state are the reference's (docs/PROTOCOL.md: when the step runs, what it is fed)."""
    w: KindWeights = recurrent_server.weights  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    with RuntimeClient(recurrent_server.endpoint, timeout_s=2.0) as c:
        c.hello()
        ref = RecurrentRef(w)
        for op in ops:
            if op.startswith("step"):
                obs = rng.normal(size=w.obs_dim).astype(np.float32)
                tr = transition(rng, w) if op == "step+tr" else None
                np.testing.assert_allclose(c.step(obs, tr), ref.step(obs, tr), atol=ATOL)
            elif op == "observe":
                rows = np.stack([transition(rng, w) for _ in range(int(rng.integers(1, 4)))])
                c.observe(rows)
                ref.observe(rows[-1])
            elif op == "episode":
                c.reset_episode()
                ref.reset_episode()
            else:
                c.reset_task()
                ref.reset_task()
        np.testing.assert_allclose(c.get_state().state, ref.h[0], atol=ATOL)
