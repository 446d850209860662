"""The runtime end to end through `RuntimeClient`: actions, posterior, modes, sessions, reload."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime.client import RuntimeClient, RuntimeErrorReply, RuntimeTimeout, RuntimeUnavailable
from runtime.model import LoadedModel
from runtime.protocol import ErrorCode
from runtime.server import RELOAD_REFUSED
from tests.runtime.conftest import Running, rand_transition, start_server
from tests.runtime.onnx_fixture import RandomWeights


def reference_posterior(
    w: RandomWeights, transitions: np.ndarray, var0: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Product of the prior N(0, var0 I) and the reference encoder's factors."""
    mu, var = w.encode(np.atleast_2d(transitions))
    prec = 1.0 / var0 + (1.0 / var).sum(0)
    return (mu / var).sum(0) / prec, 1.0 / prec


def test_hello_reports_the_artifact(
    running: Running, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    from runtime.artifact import load_artifact

    c = running.client()
    info = c.hello(obs_dim=6, act_dim=3, artifact_sha256=load_artifact(artifact_dir[0]).sha256)
    assert (info.obs_dim, info.act_dim, info.latent_dim, info.transition_dim) == (6, 3, 4, 16)
    assert info.obs_names == [f"o{i}" for i in range(6)]
    assert info.action_low == pytest.approx([-1.0, -1.5, -2.0])
    assert info.control_hz == 100.0 and info.protocol_version == 2
    assert (info.kind, info.hidden_dim, info.descriptor_dim) == ("posterior", 0, 0)
    assert info.session_id == c.session_id != 0


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"obs_dim": 7}, "obs_dim 7"),
        ({"act_dim": 2}, "act_dim 2"),
        ({"artifact_sha256": "0" * 64}, "sha256"),
    ],
)
def test_hello_refuses_a_mismatched_expectation(
    running: Running, kw: dict[str, object], needle: str
) -> None:
    with pytest.raises(RuntimeErrorReply) as info:
        running.client().hello(**kw)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.HANDSHAKE_MISMATCH and needle in info.value.message


def test_exploit_actions_match_the_reference_maths(running: Running) -> None:
    w, rng = running.weights, np.random.default_rng(3)
    c = running.client()
    c.hello()
    c.set_mode("exploit", "step")
    seen = []
    for _ in range(20):
        obs = rng.normal(size=6).astype(np.float32)
        tr = rand_transition(rng, w)
        seen.append(tr)
        action = c.step(obs, tr)
        mean, _ = reference_posterior(w, np.array(seen))
        np.testing.assert_allclose(action, w.act(obs, mean)[0], atol=2e-5)
    state = c.get_state()
    mean, var = reference_posterior(w, np.array(seen))
    np.testing.assert_allclose(state.mean, mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.var, var, rtol=1e-4)
    np.testing.assert_array_equal(state.z, state.mean)
    assert state.count == 20


def test_observe_batch_equals_steps_and_is_chunked(running: Running) -> None:
    w, rng = running.weights, np.random.default_rng(4)
    running.server.cfg.encode_chunk = 7  # force several encoder calls for one batch
    demos = rand_transition(rng, w, 50)
    a, b = running.client(), running.client()
    a.hello()
    b.hello()
    assert a.observe(demos[:1][0]) == 1  # a single row [T] is accepted
    assert a.observe(demos[1:]) == 50
    for row in demos:
        b.step(np.zeros(6), row)
    sa, sb = a.get_state(), b.get_state()
    np.testing.assert_allclose(sa.mean, sb.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sa.var, sb.var, rtol=1e-5)
    np.testing.assert_allclose(sa.mean, reference_posterior(w, demos)[0], rtol=1e-4, atol=1e-6)


def test_update_per_episode_holds_z_until_the_next_episode(running: Running) -> None:
    w, rng = running.weights, np.random.default_rng(5)
    c = running.client()
    c.hello()
    c.set_mode("exploit", "episode")
    z0 = c.get_state().z
    np.testing.assert_array_equal(z0, np.zeros(4))  # exploit at the prior: z = prior mean
    c.observe(rand_transition(rng, w, 10))
    st = c.get_state()
    assert st.count == 10 and not np.allclose(st.mean, 0)
    np.testing.assert_array_equal(st.z, z0)  # context grew, z did not move mid-episode
    c.reset_episode()
    st2 = c.get_state()
    np.testing.assert_array_equal(st2.z, st2.mean)  # new episode: z follows the posterior
    assert st2.count == 10  # reset-episode keeps the posterior


def test_explore_draws_one_z_per_episode_from_the_posterior(running: Running) -> None:
    w, rng = running.weights, np.random.default_rng(6)
    c = running.client()
    c.hello()
    c.set_mode("explore", "episode")
    c.observe(rand_transition(rng, w, 3))
    zs = []
    for _ in range(400):
        c.reset_episode()
        z = c.get_state().z
        a1 = c.step(np.ones(6))
        a2 = c.step(np.ones(6))  # same obs, same episode -> same z -> same action
        np.testing.assert_array_equal(a1, a2)
        zs.append(z)
    st = c.get_state()
    zs_a = np.array(zs)
    # z ~ N(mean, var): moments within sampling error of 400 draws
    assert np.all(np.abs(zs_a.mean(0) - st.mean) < 4 * np.sqrt(st.var / 400))
    np.testing.assert_allclose(zs_a.var(0), st.var, rtol=0.35)


def test_reset_task_goes_back_to_the_prior(running: Running) -> None:
    c = running.client()
    c.hello()
    c.observe(rand_transition(np.random.default_rng(7), running.weights, 5))
    c.reset_task()
    st = c.get_state()
    assert st.count == 0
    np.testing.assert_array_equal(st.mean, np.zeros(4))
    np.testing.assert_array_equal(st.var, np.ones(4))


def test_stochastic_flag_changes_the_action_deterministic_does_not(running: Running) -> None:
    c = running.client()
    c.hello()
    c.set_mode("exploit")
    det = [c.step(np.ones(6)) for _ in range(3)]
    sto = [c.step(np.ones(6), stochastic=True) for _ in range(3)]
    assert all(np.array_equal(det[0], d) for d in det)
    assert not np.allclose(sto[0], sto[1])


def test_sessions_are_isolated(running: Running) -> None:
    w, rng = running.weights, np.random.default_rng(8)
    a, b = running.client(), running.client()
    a.hello()
    b.hello()
    assert a.session_id != b.session_id
    b.set_mode("exploit", "step")
    before = b.get_state()
    a.observe(rand_transition(rng, w, 30))
    a.set_mode("explore", "step")
    a.reset_task()
    after = b.get_state()
    np.testing.assert_array_equal(before.mean, after.mean)
    assert after.count == 0


def test_bye_ends_the_session(running: Running) -> None:
    c = running.client()
    c.hello()
    sid = c.session_id
    c.bye()
    assert sid not in running.server.sessions
    c.session_id = sid  # pretend we never heard the bye reply
    with pytest.raises(RuntimeErrorReply) as info:
        c.step(np.zeros(6))
    assert info.value.code == ErrorCode.UNKNOWN_SESSION


def test_errors_carry_codes_and_the_session_survives(running: Running) -> None:
    c = running.client()
    c.hello()
    c.set_mode("exploit")
    good = c.step(np.ones(6))
    cases = [
        (lambda: c.step(np.zeros(5)), ErrorCode.BAD_PAYLOAD, "expected 24"),
        (lambda: c.step(np.zeros(6), np.zeros(15)), ErrorCode.BAD_PAYLOAD, "transition"),
        (lambda: c.step(np.full(6, np.nan)), ErrorCode.NON_FINITE, "NaN"),
        (lambda: c.step(np.zeros(6), np.full(16, np.inf)), ErrorCode.NON_FINITE, "transition"),
        (lambda: c.observe(np.zeros((2, 17))), ErrorCode.BAD_PAYLOAD, "multiple of 64"),
        (lambda: c.observe(np.zeros((0, 16))), ErrorCode.BAD_PAYLOAD, "positive multiple"),
    ]
    for call, code, needle in cases:
        with pytest.raises(RuntimeErrorReply) as info:
            call()
        assert info.value.code == code, info.value
        assert needle in info.value.message
    st = c.get_state()
    assert st.count == 0  # nothing half-applied
    np.testing.assert_array_equal(c.step(np.ones(6)), good)


def test_set_mode_validates_locally() -> None:
    c = RuntimeClient("tcp://127.0.0.1:9", timeout_s=0.05)
    with pytest.raises(ValueError, match="mode"):
        c.set_mode("greedy")
    c.close()


def test_stats_report_latency(running: Running) -> None:
    c = running.client()
    c.hello()
    for _ in range(50):
        c.step(np.zeros(6), np.zeros(16))
    s = c.stats()
    assert s["steps"] == 50 and s["context_count"] == 50 and s["errors"] == 0
    assert s["requests"] == 51  # 50 steps + this stats request (hello is not counted)
    assert 0 < s["p50_us"] <= s["p99_us"] <= s["p999_us"] <= s["max_us"]
    assert (
        sum(v for k, v in s.items() if k.startswith("hist_")) == 50
    )  # the stats request itself is not yet recorded


@pytest.fixture
def reloadable(
    model: LoadedModel,
    artifact_dir: tuple[Path, RandomWeights],
    other_artifact_dir: tuple[Path, RandomWeights],
) -> Iterator[Running]:
    """A server whose RELOAD is on, rooted at the directory holding the test artifacts."""
    root = os.path.commonpath([artifact_dir[0], other_artifact_dir[0]])
    r = start_server(model, artifact_dir[1], reload_root=root)
    yield r
    for c in r.clients:
        c.close()
    r.server.stop()


def test_reload_swaps_artifact_and_keeps_the_session(
    reloadable: Running, other_artifact_dir: tuple[Path, RandomWeights]
) -> None:
    running = reloadable
    w2 = other_artifact_dir[1]
    c, other = running.client(), running.client()
    c.hello()
    other.hello()
    c.set_mode("exploit", "step")
    c.observe(rand_transition(np.random.default_rng(9), running.weights, 4))
    info = c.reload(str(other_artifact_dir[0]))
    assert info.session_id == c.session_id and info.latent_dim == 5
    assert info.mode == "exploit" and info.update == "step"  # settings kept
    st = c.get_state()
    assert st.count == 0
    np.testing.assert_allclose(st.var, np.full(5, 2.0))  # the new artifact's prior
    obs = np.linspace(-1, 1, 6).astype(np.float32)
    np.testing.assert_allclose(c.step(obs), w2.act(obs, np.zeros(5))[0], atol=2e-5)
    assert other.get_state().mean.shape == (4,)  # other robots keep their artifact


def test_reload_is_off_unless_configured(
    running: Running, artifact_dir: tuple[Path, object]
) -> None:
    c = running.client()
    c.hello()
    with pytest.raises(RuntimeErrorReply) as info:
        c.reload(str(artifact_dir[0]))  # a perfectly good artifact
    assert info.value.code == ErrorCode.BAD_ARTIFACT and info.value.message == RELOAD_REFUSED


def test_every_reload_refusal_gets_the_same_reply(
    model: LoadedModel,
    artifact_dir: tuple[Path, RandomWeights],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.runtime.onnx_fixture import make_artifact

    root = tmp_path / "root"
    root.mkdir()
    make_artifact(root / "wide", obs_dim=7, seed=2)
    make_artifact(root / "tampered", seed=3)
    (root / "tampered" / "policy.onnx").write_bytes(b"not onnx")
    (root / "empty").mkdir()
    (root / "a_file").write_text("x")
    make_artifact(tmp_path / "outside", seed=4)  # a good artifact, but not under the root
    (root / "escape").symlink_to(tmp_path / "outside")
    r = start_server(model, artifact_dir[1], reload_root=str(root))
    try:
        c = r.client()
        c.hello()
        probes = [
            root / "missing",
            root / "empty",  # a directory without manifest.json
            root / "a_file",  # not a directory
            root / "wide",  # other dims
            root / "tampered",  # hash mismatch
            tmp_path / "outside",
            root / "escape",  # a symlink out of the root
            root / ".." / "outside",
            "/" + "x" * 4000,  # a 4 kB path
        ]
        for path in probes:
            with pytest.raises(RuntimeErrorReply) as info:
                c.reload(str(path))
            assert (info.value.code, info.value.message) == (ErrorCode.BAD_ARTIFACT, RELOAD_REFUSED)
        assert c.step(np.zeros(6)).shape == (3,)  # still served by the original
        assert c.stats()["errors"] == len(probes)
        refusals = [r for r in caplog.records if RELOAD_REFUSED in r.getMessage()]
        assert len(refusals) == len(probes)  # one log line each, the reason in it
        assert all(r.exc_info is None for r in caplog.records)  # and no traceback at all
    finally:
        r.server.stop()


def test_a_timed_out_request_does_not_lock_the_client(running: Running) -> None:
    c = running.client()
    c.hello()
    c.set_mode("exploit")
    # A batch large enough to take longer than a 0.1 ms deadline on any machine.
    big = rand_transition(np.random.default_rng(10), running.weights, 8000)
    with pytest.raises(RuntimeTimeout):
        c.observe(big, timeout_s=0.0001)
    time.sleep(0.3)  # the late reply arrives and waits in the socket
    assert c.step(np.ones(6)).shape == (3,)  # its seq is not ours: dropped, next reply used
    assert c.get_state().count == 8000


def test_unavailable_server_is_reported_and_the_client_reconnects(
    model: object, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    from tests.runtime.conftest import start_server

    c = RuntimeClient("tcp://127.0.0.1:9", timeout_s=0.05)  # port 9 (discard): nobody serves
    with pytest.raises(RuntimeUnavailable):
        c.hello()
    c.close()
    first = start_server(model, artifact_dir[1])  # type: ignore[arg-type]
    endpoint = first.endpoint
    c = RuntimeClient(endpoint, timeout_s=2.0)
    c.hello()
    first.server.stop()
    with pytest.raises((RuntimeTimeout, RuntimeUnavailable)):
        c.step(np.zeros(6), timeout_s=0.1)
    # A new server on the same port: the socket reconnects by itself; the old session is gone.
    from runtime.config import ServeConfig
    from runtime.server import RuntimeServer

    second = RuntimeServer(model, ServeConfig(poll_interval_s=0.01))  # type: ignore[arg-type]
    second.bind(endpoint)
    second.start()
    try:
        c.reconnect()
        with pytest.raises(RuntimeErrorReply) as info:
            c.step(np.zeros(6))
        assert info.value.code == ErrorCode.UNKNOWN_SESSION
        c.hello()
        assert c.step(np.zeros(6)).shape == (3,)
    finally:
        c.close()
        second.stop()


def test_max_sessions(model: object, artifact_dir: tuple[Path, RandomWeights]) -> None:
    from tests.runtime.conftest import start_server

    r = start_server(model, artifact_dir[1], max_sessions=2)  # type: ignore[arg-type]
    try:
        a, b, c = r.client(), r.client(), r.client()
        a.hello()
        b.hello()
        with pytest.raises(RuntimeErrorReply) as info:
            c.hello()
        assert info.value.code == ErrorCode.TOO_MANY_SESSIONS
        a.bye()
        c.hello()
    finally:
        for cl in r.clients:
            cl.close()
        r.server.stop()


def test_idle_sessions_expire(model: object, artifact_dir: tuple[Path, RandomWeights]) -> None:
    from tests.runtime.conftest import start_server

    r = start_server(model, artifact_dir[1], session_idle_s=0.2)  # type: ignore[arg-type]
    try:
        c = r.client()
        c.hello()
        time.sleep(0.5)
        with pytest.raises(RuntimeErrorReply) as info:
            c.step(np.zeros(6))
        assert info.value.code == ErrorCode.UNKNOWN_SESSION
    finally:
        for cl in r.clients:
            cl.close()
        r.server.stop()


def test_a_misbehaving_encoder_is_an_error_not_a_poisoned_posterior(
    artifact_dir: tuple[Path, RandomWeights],
) -> None:
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from tests.runtime.conftest import start_server

    broken = LoadedModel.load(artifact_dir[0], ServeConfig())
    good_encode = broken.encode

    def encode(tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, var = good_encode(tr)
        if tr[0, 0] > 100:  # the "bad input region" of this model
            var = np.zeros_like(var)
        return mu, var

    broken.encode = encode  # type: ignore[method-assign]
    r = start_server(broken, artifact_dir[1])
    try:
        c = r.client()
        c.hello()
        bad = np.zeros(16, np.float32)
        bad[0] = 1000.0
        with pytest.raises(RuntimeErrorReply) as info:
            c.step(np.zeros(6), bad)
        assert info.value.code == ErrorCode.INTERNAL and "var > 0" in info.value.message
        assert c.get_state().count == 0
        c.step(np.zeros(6), np.zeros(16))
        assert c.get_state().count == 1
    finally:
        for cl in r.clients:
            cl.close()
        r.server.stop()


def test_client_reopens_its_socket_after_a_silent_spell(running: Running) -> None:
    c = running.client(reconnect_after_s=0.2)
    c.hello()
    c.set_mode("exploit")
    first_socket = c._sock
    running.server._stop.set()  # the server stops answering (its socket stays bound)
    running.server._thread.join()  # type: ignore[union-attr]
    with pytest.raises(RuntimeTimeout):
        c.step(np.ones(6), timeout_s=0.05)  # within 0.2 s of the last reply: same socket
    assert c._sock is first_socket
    time.sleep(0.2)
    with pytest.raises(RuntimeTimeout):
        c.step(np.ones(6), timeout_s=0.05)  # silent for > 0.2 s: a fresh socket
    assert c._sock is not first_socket
    # Serving resumes on the same socket: the reopened client gets through, session intact.
    running.server._stop.clear()
    running.server._thread = None
    running.server.start()
    assert c.step(np.ones(6)).shape == (3,)


def test_idle_sessions_expire_on_a_busy_server(
    model: object, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    from tests.runtime.conftest import start_server

    r = start_server(model, artifact_dir[1], session_idle_s=0.3)  # type: ignore[arg-type]
    try:
        idle, busy = r.client(), r.client()
        idle.hello()
        busy.hello()
        t_end = time.monotonic() + 1.6  # housekeeping runs at least once a second
        while time.monotonic() < t_end:
            busy.step(np.zeros(6))  # never lets the server's receive time out
        assert idle.session_id not in r.server.sessions
        assert busy.session_id in r.server.sessions
    finally:
        for cl in r.clients:
            cl.close()
        r.server.stop()


def test_a_second_hello_closes_the_clients_previous_session(running: Running) -> None:
    c = running.client()
    first = c.hello().session_id
    second = c.hello().session_id
    assert first != second and set(running.server.sessions) == {second}


def _raw_hello(running: Running) -> tuple[int, int]:
    """HELLO from a fresh connection, then drop it without BYE (a killed client)."""
    from runtime.protocol import U32, MsgType, pack_header, unpack_header

    s = running.raw()
    try:
        s.send_multipart([pack_header(MsgType.HELLO, 0, 1), b"{}"])
        reply = s.recv_multipart()
    finally:
        s.close(linger=0)
    head = unpack_header(reply[0])
    if head.msg_type == MsgType.ERROR:
        return 0, U32.unpack(reply[1])[0]
    return head.session, 0


def test_a_hundred_killed_clients_never_lock_out_a_new_one(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    r = start_server(model, artifact_dir[1], max_sessions=3, evict_idle_s=0.0)
    try:
        opened = [_raw_hello(r) for _ in range(100)]
        assert all(sid and not code for sid, code in opened)
        assert set(r.server.sessions) == {sid for sid, _ in opened[-3:]}  # the newest kept
        c = r.client()
        c.hello()
        assert c.step(np.zeros(6)).shape == (3,)
    finally:
        r.server.stop()


def test_a_full_server_keeps_sessions_idle_less_than_evict_idle_s(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    r = start_server(model, artifact_dir[1], max_sessions=2, evict_idle_s=3600.0)
    try:
        assert all(sid for sid, _ in (_raw_hello(r), _raw_hello(r)))
        sid, code = _raw_hello(r)
        assert (sid, code) == (0, ErrorCode.TOO_MANY_SESSIONS)
        assert len(r.server.sessions) == 2
    finally:
        r.server.stop()


def test_one_peer_holds_at_most_max_sessions_per_peer(
    model: LoadedModel, artifact_dir: tuple[Path, RandomWeights]
) -> None:
    from runtime.protocol import MsgType, pack_header, unpack_header

    r = start_server(model, artifact_dir[1], max_sessions_per_peer=2)
    try:
        other = r.client()
        other.hello()
        s = r.raw()
        sids = []
        for seq in range(1, 6):  # one connection, five hellos
            s.send_multipart([pack_header(MsgType.HELLO, 0, seq), b"{}"])
            sids.append(unpack_header(s.recv_multipart()[0]).session)
        s.close(linger=0)
        assert set(r.server.sessions) == {other.session_id, *sids[-2:]}
        assert other.step(np.zeros(6)).shape == (3,)  # another peer's session is untouched
    finally:
        r.server.stop()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), 1e12])
def test_client_deadlines_must_be_finite_and_bounded(running: Running, bad: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        RuntimeClient(running.endpoint, timeout_s=bad)
    c = running.client()
    c.hello()
    with pytest.raises(ValueError, match="timeout_s"):
        c.step(np.zeros(6), timeout_s=bad)
    assert c.step(np.zeros(6)).shape == (3,)


def test_client_refuses_a_bad_endpoint_in_one_line() -> None:
    with pytest.raises(ValueError, match="not an endpoint"):
        RuntimeClient("garbage")


@pytest.mark.parametrize("busy_poll_us", [50.0, 5000.0])
def test_a_busy_polling_client_gets_the_same_actions_and_deadlines(
    running: Running, busy_poll_us: float, model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The busy-poll window (shorter and longer than a round trip) changes how the client
    # waits, never what it gets: the same actions as a plain client's on the same
    # transitions, late replies dropped by seq, and deadlines kept.
    w, rng = running.weights, np.random.default_rng(5)
    encode, hit = model.encode, []

    def slow_batches(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The big OBSERVE below must answer after its deadline on any machine: its 0.1 ms
        # deadline becomes a 1 ms receive timeout, which a fast server could beat.
        if transitions.shape[0] > 1000:
            time.sleep(0.05)
            hit.append(1)
        return encode(transitions)

    monkeypatch.setattr(model, "encode", slow_batches)
    plain, spin = running.client(), running.client(busy_poll_us=busy_poll_us)
    for c in (plain, spin):
        c.hello()
        c.set_mode("exploit", "step")
    for _ in range(30):
        obs = rng.normal(size=6).astype(np.float32)
        tr = rand_transition(rng, w)
        np.testing.assert_array_equal(spin.step(obs, tr), plain.step(obs, tr))
    big = rand_transition(np.random.default_rng(10), w, 8000)
    t0 = time.monotonic()
    with pytest.raises(RuntimeTimeout):
        spin.observe(big, timeout_s=0.0001)
    assert time.monotonic() - t0 < 1.0  # the window is bounded by the deadline
    time.sleep(0.3)
    assert spin.step(np.ones(6)).shape == (3,)  # the late OBSERVE reply is dropped
    assert spin.get_state().count == 8000 + 30
    assert hit  # the slow batch path ran (the server uses this model)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan"), 1e9])
def test_client_busy_poll_window_must_be_finite_and_bounded(running: Running, bad: float) -> None:
    with pytest.raises(ValueError, match="busy_poll_us"):
        RuntimeClient(running.endpoint, busy_poll_us=bad)
