"""Runtime latency: full runtime step vs. its floor (bare ZeroMQ echo + bare onnxruntime).

All in one run, interleaved step by step so that load from other processes hits each alike:
  (1) echo    bare DEALER/ROUTER round trip with the runtime's frame sizes (request: header,
              obs, transition; reply: header, action), server in its own process
  (2) ort     bare onnxruntime encoder + policy calls, batch 1, same session options
  (3) runtime RuntimeClient.step(obs, transition) against `zshot serve` in its own process
  ratio = (3) / ((1) + (2)) at p50 and p99.
  (2f) when the artifact has the optional fused graph (fused.onnx, one call for encoder +
       posterior update + policy, which the server uses on this exploit per-step path): the
       bare fused call, interleaved with (2) in a second loop and printed beside it; the
       floor stays (1) + (2) as issue 19 defines it.
Then the per-step cost at context sizes 10 .. 100,000 (must stay flat: O(1) posterior), and
with --rates, sustained 100 Hz / 1 kHz loops counting deadline misses (reply later than
one period) for the runtime next to a bare echo at the same rate.

    python bench/runtime_latency.py [--steps 20000] [--rates 100,1000 --duration 60]
        [--artifact DIR | --obs-dim 24 --act-dim 4 --latent-dim 8 --hidden 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.artifact import load_artifact  # noqa: E402
from runtime.client import RuntimeClient  # noqa: E402
from runtime.config import ServeConfig  # noqa: E402
from runtime.model import LoadedModel  # noqa: E402
from runtime.protocol import HEADER, MsgType, pack_header  # noqa: E402


def set_fifo(priority: int) -> None:
    """SCHED_FIFO for the calling thread (0: leave the scheduling alone)."""
    if priority:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))


def echo_server(endpoint: str, reply_bytes: int, fifo: int = 0) -> None:
    """Bare ROUTER: answer every request with a header-sized frame and a reply payload."""
    set_fifo(fifo)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    payload = b"\0" * reply_bytes
    send, more = sock.send, zmq.SNDMORE
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"quit":
            break
        send(frames[0], more)  # part by part, as `zshot serve` sends
        send(frames[1], more)
        send(payload)
    sock.close()
    ctx.term()


class EchoClient:
    """DEALER with the same send/receive pattern and deadline handling as RuntimeClient
    (part-by-part sends, a blocking receive with ZMQ_RCVTIMEO, replies matched by seq)."""

    def __init__(self, endpoint: str, session: int = 1) -> None:
        self.session = session
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.connect(endpoint)
        self.seq = 0
        self._rcvtimeo = -1

    def step(self, obs: np.ndarray, tr: np.ndarray, timeout_s: float = 1.0) -> bool:
        self.seq += 1
        sock = self.sock
        deadline = time.monotonic() + timeout_s
        sock.send(pack_header(MsgType.STEP, self.session, self.seq), zmq.SNDMORE)
        sock.send(obs, zmq.SNDMORE)
        sock.send(tr)
        while True:
            left = (deadline - time.monotonic()) * 1000
            if left <= 0:
                return False
            ms = max(1, min(1000, int(left + 0.999)))
            if ms != self._rcvtimeo:
                sock.setsockopt(zmq.RCVTIMEO, ms)
                self._rcvtimeo = ms
            try:
                reply = [sock.recv()]
            except zmq.Again:
                continue
            while sock.getsockopt(zmq.RCVMORE):
                reply.append(sock.recv())
            if HEADER.unpack(reply[0])[4] == self.seq:
                return True

    def close(self) -> None:
        self.sock.send_multipart([b"quit"])
        self.sock.close(linger=100)


def bare_ort(art: Any, obs: np.ndarray, tr: np.ndarray) -> tuple[LoadedModel, Callable[[], None]]:
    """The artifact in onnxruntime in this process, and one bare step: encoder + policy."""
    model = LoadedModel(art, ServeConfig())
    z = np.zeros((1, model.latent_dim), np.float32)
    o2, t2 = obs.reshape(1, -1), tr.reshape(1, -1)

    def ort_step() -> None:
        model.encode(t2)
        model.act(o2, z)

    return model, ort_step


def bare_fused(model: LoadedModel, obs: np.ndarray, tr: np.ndarray) -> Callable[[], None]:
    """One bare call of the artifact's fused graph (encoder + posterior update + policy)
    from the prior, as the server makes it on an exploit per-step STEP."""
    prec = np.array([1.0 / model.prior_var])
    eta = np.array([model.prior_mean / model.prior_var])
    o2, t2 = obs.reshape(1, -1), tr.reshape(1, -1)

    def fused_step() -> None:
        model.fused_step(o2, t2, prec, eta)

    return fused_step


def free_endpoint() -> str:
    """A tcp://127.0.0.1 endpoint on a port that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def step_inputs(m: Any) -> tuple[np.ndarray, np.ndarray]:
    """The runtime benches' one obs and one transition (seed 0) for manifest `m`."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=m.obs_dim).astype(np.float32)
    tr = rng.normal(size=m.transition_dim).astype(np.float32)
    return obs, tr


def bench_process(module: str, call: str) -> subprocess.Popen[bytes]:
    """A `python -c` process running `call` from `bench.<module>` of this checkout, e.g.
    bench_process("runtime_latency", "echo_server('tcp://127.0.0.1:5000', 16)")."""
    name = call.split("(", 1)[0]
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.{module} import {name}; {call}"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def serve_process(artifact: str | Path, endpoint: str, *extra: str) -> subprocess.Popen[bytes]:
    """`zshot serve artifact --bind endpoint` (log level WARNING, stdout discarded)."""
    cmd = [sys.executable, "-m", "zshot", "serve", str(artifact), "--bind", endpoint]
    cmd += ["--log-level", "WARNING", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)


def wait_ready(fn: object, what: str, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while True:
        try:
            fn()  # type: ignore[operator]
            return
        except OSError:
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{what} did not come up") from None


def pct(ns: np.ndarray) -> dict[str, float]:
    us = ns / 1000.0
    return {
        "p50": float(np.percentile(us, 50)),
        "p99": float(np.percentile(us, 99)),
        "p99.9": float(np.percentile(us, 99.9)),
        "max": float(us.max()),
    }


def row(name: str, s: dict[str, float]) -> str:
    return f"| {name} | {s['p50']:.1f} | {s['p99']:.1f} | {s['p99.9']:.1f} | {s['max']:.1f} |"


def make_fixture(out: Path, args: argparse.Namespace) -> Path:
    from tests.runtime.onnx_fixture import make_artifact  # needs onnx (dev install)

    make_artifact(
        out,
        obs_dim=args.obs_dim,
        act_dim=args.act_dim,
        latent_dim=args.latent_dim,
        hidden=args.hidden,
        seed=0,
        control_hz=1000.0,
    )
    return out


def sustained(
    step: object, rate: float, duration: float, obs: np.ndarray, tr: np.ndarray
) -> tuple[int, int, float]:
    """Run `step(obs, tr, timeout)` at `rate` Hz on absolute ticks; count replies later than
    one period (misses). Returns (steps, misses, CPU seconds of this thread)."""
    period = 1.0 / rate
    n = int(rate * duration)
    misses = 0
    cpu0 = time.thread_time()
    t0 = time.monotonic() + 0.01
    for k in range(n):
        tick = t0 + k * period
        now = time.monotonic()
        if tick - now > 0.0003:
            time.sleep(tick - now - 0.0002)
        while time.monotonic() < tick:
            pass
        deadline_left = tick + period - time.monotonic()
        if deadline_left <= 0:
            misses += 1  # the previous step overran into this whole period
            continue
        try:
            ok = step(obs, tr, deadline_left)  # type: ignore[operator]
        except OSError:  # RuntimeTimeout, RuntimeUnavailable
            ok = False
        if not ok:
            misses += 1
    return n, misses, time.thread_time() - cpu0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=20000, help="back-to-back steps per variant")
    p.add_argument("--artifact", help="an exported artifact (default: a random fixture)")
    p.add_argument("--obs-dim", type=int, default=24)
    p.add_argument("--act-dim", type=int, default=4)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument(
        "--contexts", default="10,1000,100000", help="context sizes for the flatness check"
    )
    p.add_argument("--rates", default="", help="e.g. 100,1000: sustained-rate runs")
    p.add_argument(
        "--busy-poll-us",
        type=float,
        default=0.0,
        help="RuntimeClient's busy_poll_us for the runtime client (0: off, the default)",
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds per sustained-rate run")
    p.add_argument(
        "--fifo",
        type=int,
        default=0,
        help="SCHED_FIFO priority for the bench, the echo server and the runtime (root; "
        "0: normal scheduling)",
    )
    args = p.parse_args()

    set_fifo(args.fifo)
    tmp = tempfile.TemporaryDirectory(prefix="zshot-bench-")
    art_dir = Path(args.artifact) if args.artifact else make_fixture(Path(tmp.name) / "art", args)
    art = load_artifact(art_dir)
    m = art.manifest
    T = m.transition_dim
    obs, tr = step_inputs(m)
    print(
        f"artifact: obs {m.obs_dim}, act {m.act_dim}, latent {m.latent_dim}, transition {T}; "
        f"cpu count {os.cpu_count()}, steps {args.steps}, client busy_poll_us {args.busy_poll_us:g}"
    )

    echo_ep, rt_ep = free_endpoint(), free_endpoint()
    echo = bench_process(
        "runtime_latency", f"echo_server({echo_ep!r}, {4 * m.act_dim}, {args.fifo})"
    )
    fifo = ["--set", f"sched_fifo_priority={args.fifo}"] if args.fifo else []
    server = serve_process(art_dir, rt_ep, *fifo)
    try:
        ec = EchoClient(echo_ep)
        wait_ready(lambda: ec.step(obs, tr) or (_ for _ in ()).throw(OSError()), "echo server")
        rc = RuntimeClient(rt_ep, timeout_s=1.0, busy_poll_us=args.busy_poll_us)
        wait_ready(lambda: rc.hello(obs_dim=m.obs_dim, timeout_s=0.5), "zshot serve")
        rc.set_mode("exploit", "step")
        model, ort_step = bare_ort(art, obs, tr)

        for _ in range(1000):  # warm-up
            ec.step(obs, tr)
            ort_step()
            rc.step(obs, tr)
        rc.reset_task()
        rc.observe(np.tile(tr, (10, 1)))
        # Interleaved step by step: on a shared machine each variant meets the same load.
        t_echo, t_ort, t_rt = [], [], []
        clock = time.perf_counter_ns
        for _ in range(args.steps):
            c0 = clock()
            ec.step(obs, tr)
            c1 = clock()
            ort_step()
            c2 = clock()
            rc.step(obs, tr)
            c3 = clock()
            t_echo.append(c1 - c0)
            t_ort.append(c2 - c1)
            t_rt.append(c3 - c2)
        e, o, r = (pct(np.array(x)) for x in (t_echo, t_ort, t_rt))
        print(f"\n{len(t_rt)} back-to-back steps each, µs:\n")
        print("| variant | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|")
        print(row("(1) bare ZeroMQ echo", e))
        print(row("(2) bare onnxruntime encoder + policy", o))
        print(row("(1) + (2)", {k: e[k] + o[k] for k in e}))
        print(row("(3) runtime step (observe + step) via client", r))
        ratio = {k: r[k] / (e[k] + o[k]) for k in e}
        print(
            f"| ratio (3)/((1)+(2)) | {ratio['p50']:.2f} | {ratio['p99']:.2f} | "
            f"{ratio['p99.9']:.2f} | {ratio['max']:.2f} |"
        )
        if model.fused is not None:
            fused_step = bare_fused(model, obs, tr)
            t_o2, t_f = [], []
            for _ in range(min(args.steps, 5000)):
                c0 = clock()
                ort_step()
                c1 = clock()
                fused_step()
                t_o2.append(c1 - c0)
                t_f.append(clock() - c1)
            o2, f2 = pct(np.array(t_o2)), pct(np.array(t_f))
            print(
                f"\nthe artifact's fused graph, {len(t_f)} steps interleaved with (2) (not in the "
                "floor):\n\n| variant | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|"
            )
            print(row("(2) bare onnxruntime encoder + policy", o2))
            print(row("(2f) bare onnxruntime fused call (encoder + update + policy)", f2))
            print(row("(1) + (2f)", {k: e[k] + f2[k] for k in e}))
            print(
                f"| ratio (3)/((1)+(2f)) | {r['p50'] / (e['p50'] + f2['p50']):.2f} | "
                f"{r['p99'] / (e['p99'] + f2['p99']):.2f} | | |"
            )
        # The server's own cost, without sockets or scheduling: RuntimeServer._handle on a
        # step message (transition + obs) vs the bare onnxruntime calls, in this process;
        # best of 30 blocks of 300, so other processes' load mostly drops out.
        from runtime.server import RuntimeServer

        inproc = RuntimeServer(model, ServeConfig(default_mode="exploit", default_update="step"))
        hello = inproc._handle([b"id", pack_header(MsgType.HELLO, 0, 1), b"{}"], b"id")[0]
        assert hello is not None
        sid = HEADER.unpack(hello[0])[3]
        seqs = iter(range(2, 1 << 40))
        ob, trb = obs.tobytes(), tr.tobytes()

        def handle_step() -> None:
            inproc._handle([b"id", pack_header(MsgType.STEP, sid, next(seqs)), ob, trb], b"id")

        def best_us(fn: object) -> float:
            best = float("inf")
            for _ in range(30):
                t0 = clock()
                for _ in range(300):
                    fn()  # type: ignore[operator]
                best = min(best, (clock() - t0) / 300 / 1000)
            return best

        b_ort, b_handle = best_us(ort_step), best_us(handle_step)
        inproc.stop()
        print(
            f"\nin-process, best of 30x300: bare onnxruntime {b_ort:.1f} µs, server handling of a "
            f"step {b_handle:.1f} µs, overhead {b_handle - b_ort:.1f} µs"
        )
        srv = rc.stats()
        print(
            f"\nserver-side service time (histogram, 9 % bins): p50 {srv['p50_us']:.1f} µs, "
            f"p99 {srv['p99_us']:.1f} µs, max {srv['max_us']:.1f} µs"
        )

        # Flatness in the context length: one session per context size, stepped round-robin
        # (so load drift on a shared machine hits every size alike), each step adding its
        # transition (encoder call + O(1) posterior update + policy call).
        contexts = [int(c) for c in args.contexts.split(",") if c]
        batch = np.tile(tr, (1000, 1))
        sessions = []
        for size in contexts:
            c = RuntimeClient(rt_ep, timeout_s=1.0, busy_poll_us=args.busy_poll_us)
            c.hello()
            c.set_mode("exploit", "step")
            count = 0
            while count < size:
                count = c.observe(batch[: min(1000, size - count)], timeout_s=10.0)
            sessions.append(c)
        times: list[list[int]] = [[] for _ in contexts]
        n_flat = min(args.steps, 10000)
        for _ in range(n_flat):
            for k, c in enumerate(sessions):
                t0 = clock()
                c.step(obs, tr)
                times[k].append(clock() - t0)
        print(
            f"\n{n_flat} steps per context size, round-robin:\n\n"
            "| context transitions at start | p50 µs | p99 µs | p50 / p50 at the smallest |\n"
            "|---|---|---|---|"
        )
        base = pct(np.array(times[0]))["p50"]
        for size, ts, c in zip(contexts, times, sessions, strict=True):
            s = pct(np.array(ts))
            print(f"| {size} | {s['p50']:.1f} | {s['p99']:.1f} | {s['p50'] / base:.3f} |")
            c.bye()
            c.close()

        rates = [float(x) for x in args.rates.split(",") if x]
        if rates:
            print(
                "\n| rate | seconds | steps | runtime misses | echo misses | bench thread CPU, "
                "runtime / echo |\n|---|---|---|---|---|---|"
            )
            for rate in rates:
                rc.reset_task()
                # Alternate 1-second blocks so that load drift hits both alike.
                n = miss_rt = miss_echo = 0
                cpu_rt = cpu_echo = 0.0
                for _ in range(max(1, int(args.duration))):
                    k, m_rt, c_rt = sustained(
                        lambda o_, t_, d: rc.step(o_, t_, timeout_s=d) is not None,
                        rate,
                        1.0,
                        obs,
                        tr,
                    )
                    _, m_echo, c_echo = sustained(
                        lambda o_, t_, d: ec.step(o_, t_, d), rate, 1.0, obs, tr
                    )
                    n, miss_rt, miss_echo = n + k, miss_rt + m_rt, miss_echo + m_echo
                    cpu_rt, cpu_echo = cpu_rt + c_rt, cpu_echo + c_echo
                secs = max(1, int(args.duration))
                print(
                    f"| {rate:g} Hz | {args.duration:g} | {n} | {miss_rt} ({100 * miss_rt / n:.3f} %) | "
                    f"{miss_echo} ({100 * miss_echo / n:.3f} %) | {100 * cpu_rt / secs:.1f} % / "
                    f"{100 * cpu_echo / secs:.1f} % of a core |"
                )
        rc.bye()
        rc.close()
        ec.close()
    finally:
        server.terminate()
        echo.terminate()
        server.wait(10)
        echo.wait(10)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
