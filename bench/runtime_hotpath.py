"""Hot-path micro-benchmarks of the runtime's STEP (issue 19 item 10, branch fuse), in one
process, variants alternating block by block (best of 15 blocks), so that load from other
processes hits each alike. Hot figures: a served step runs colder (BENCHMARKS.md).

    python bench/runtime_hotpath.py fused ARTIFACT
        the fused graph's one call vs encoder -> NaturalPosterior.add_one -> mean_row ->
        policy (what the unfused server does) vs the bare encoder + policy calls; checks on
        300 random transitions first that the fused state and action are bit-identical
    python bench/runtime_hotpath.py client NAME=CLIENT_PY NAME=CLIENT_PY ...
        RuntimeClient.step with its reply already queued (inproc ROUTER): the client's own
        Python per step, for each given runtime/client.py (e.g. a base tree's and this one)
    python bench/runtime_hotpath.py server-recv
        the server loop's receive of one STEP message (identity, header, obs, transition):
        recv() + getsockopt(RCVMORE) per frame (before) vs zmq.Frame.more (now)
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.protocol import REPLY_BIT, MsgType, pack_header  # noqa: E402


def best_of(variants: dict[str, Callable[[], float]], rounds: int = 15) -> dict[str, float]:
    """Each variant's `block()` (µs per call) `rounds` times, alternating; the best."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, block in variants.items():
            best[name] = min(best[name], block())
    return best


def timed(fn: Callable[[], object], n: int = 2000) -> Callable[[], float]:
    def block() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - t0) / n / 1000

    return block


def fused(artifact: str) -> None:
    from runtime.config import ServeConfig
    from runtime.model import LoadedModel
    from runtime.posterior import NaturalPosterior

    m = LoadedModel.load(artifact, ServeConfig())
    if m.fused is None:
        raise SystemExit(f"{artifact} has no fused graph (zshot artifact fuse DIR adds one)")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(1, m.obs_dim)).astype(np.float32)
    p = NaturalPosterior(m.prior_mean, m.prior_var)
    for _ in range(300):
        tr = (3 * rng.normal(size=(1, m.transition_dim))).astype(np.float32)
        prec, eta = p.rows()
        _, _, z, ok, action = m.fused_step(obs, tr, prec, eta)
        mu, var = m.encode(tr)
        p.add_one(mu, var)
        same = z.tobytes() == p.mean_row().tobytes()
        if not (ok[0, 0] and same and action.tobytes() == m.act(obs, p.mean_row()).tobytes()):
            raise SystemExit("the fused graph differs from the unfused path")
    print("300 random steps: fused state and actions bit-identical to the unfused path")
    prec, eta = p.rows()
    z = p.mean_row()
    q = NaturalPosterior(m.prior_mean, m.prior_var)

    def unfused() -> None:
        mu, var = m.encode(tr)
        q.add_one(mu, var)
        m.act(obs, q.mean_row())

    best = best_of(
        {
            "fused call": timed(lambda: m.fused_step(obs, tr, prec, eta)),
            "encoder + add_one + mean_row + policy": timed(unfused),
            "bare encoder + policy": timed(lambda: (m.encode(tr), m.act(obs, z))),
        }
    )
    for name, us in best.items():
        print(f"{name}: {us:.1f} µs")


def _load(path: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def client(pairs: list[str]) -> None:
    ctx = zmq.Context.instance()
    obs, tr = np.zeros(18, np.float32), np.zeros(41, np.float32)
    act = np.zeros(4, np.float32).tobytes()
    variants = {}
    for i, pair in enumerate(pairs):
        name, _, path = pair.partition("=")
        mod = _load(path, f"client_{i}")
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.RCVHWM, 0)
        router.bind(f"inproc://hotpath{i}")
        c = mod.RuntimeClient(f"inproc://hotpath{i}", timeout_s=1.0)
        c._sock.send(b"hi")
        ident = router.recv_multipart()[0]

        def block(c: Any = c, router: zmq.Socket[bytes] = router, ident: bytes = ident) -> float:
            n = 2000
            heads = [pack_header(MsgType.STEP | REPLY_BIT, 0, c._seq + 1 + k) for k in range(n)]
            t0 = time.perf_counter_ns()
            for k in range(n):
                router.send_multipart([ident, heads[k], act])
                c.step(obs, tr)
            us = (time.perf_counter_ns() - t0) / n / 1000
            while router.poll(0):
                router.recv_multipart()
            return us

        variants[name] = block
    best = best_of(variants)
    print("client step with its reply queued (the fake reply's send included), µs:")
    for name, us in best.items():
        print(f"  {name}: {us:.2f}")


def server_recv() -> None:
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.RCVHWM, 0)
    router.bind("inproc://hotpath-srv")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 0)
    dealer.connect("inproc://hotpath-srv")
    head = b"h" * 36
    obs, tr = np.zeros(18, np.float32).tobytes(), np.zeros(41, np.float32).tobytes()
    recv, more_of, rcvmore = router.recv, router.getsockopt, zmq.RCVMORE

    def before() -> None:
        first = recv(copy=False)
        frames, wire = [first.bytes], 0
        more = bool(first.more)
        while more:
            f = recv()
            frames.append(f)
            wire += len(f)
            more = bool(more_of(rcvmore))

    def now() -> None:
        frame = recv(copy=False)
        frames, wire = [frame.bytes], 0
        while frame.more:
            frame = recv(copy=False)
            frames.append(frame.bytes)
            wire += len(frame)

    def queued(fn: Callable[[], None]) -> Callable[[], float]:
        inner = timed(fn)

        def block() -> float:
            for _ in range(2000):
                dealer.send(head, zmq.SNDMORE)
                dealer.send(obs, zmq.SNDMORE)
                dealer.send(tr)
            return inner()

        return block

    best = best_of({"recv + getsockopt(RCVMORE)": queued(before), "Frame.more": queued(now)})
    print("server receive of one STEP message, µs:")
    for name, us in best.items():
        print(f"  {name}: {us:.2f}")


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["fused"] and len(args) == 2:
        fused(args[1])
    elif args[:1] == ["client"] and len(args) >= 2:
        client(args[1:])
    elif args == ["server-recv"]:
        server_recv()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
