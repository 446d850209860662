"""Where one runtime step's time goes, phase by phase, on both sides of the socket.

`zshot serve`'s code runs in a child process whose ZeroMQ socket class, `_handle` and model
calls are wrapped to take `perf_counter_ns` stamps (CLOCK_MONOTONIC: one clock for every
process on the machine) into a ring buffer; the bench process drives it with
`RuntimeClient`, whose socket is wrapped the same way, interleaved step by step with a bare
ZeroMQ echo and bare onnxruntime calls exactly as bench/runtime_latency.py does. Steps are
matched by their seq, so every round trip splits into:

    client pre-send     step() entered -> its last frame handed to libzmq
    request in flight   -> the server's first receive returns (I/O threads, loopback TCP,
                           wake-ups)
    server recv rest    the other frames of the message
    server loop         flood guard accounting, key lookup
    handle: checks      header, session, sequence, frame checks before the encoder
    handle: encoder     onnxruntime
    handle: posterior   O(1) update and z refresh (and the noise draw)
    handle: policy      onnxruntime
    handle: reply       action check, reply header
    server sends        the reply's parts handed to libzmq
    reply in flight     -> the client's first receive returns
    client post-recv    the other reply frames, checks, the action copied out

The client's pre-send phase ends when its last send returns; on a 2-core machine the
client's thread is often descheduled inside that send (its I/O thread and the server take
the cores) and resumes only after the server has replied, so that phase and "request in
flight" overlap the server's phases: read the server's phases and the totals.

Every wrapper costs ~0.2-0.5 µs; the table also gives the traced step's total next to the
untraced one measured in the same run, so that cost is visible.

`--inproc` instead times `RuntimeServer._handle` in this process in three conditions:
back to back (hot caches), with a 0.5 ms sleep between calls (the process descheduled, as
between control ticks), and with 16 MiB of memory traffic between calls (another process
evicting the caches), each phase separately; and Python's GC collections per step.

    python bench/runtime_phases.py [--steps 20000] [--artifact DIR] [--inproc]
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
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

from bench.runtime_latency import (  # noqa: E402
    EchoClient,
    bare_ort,
    bench_process,
    free_endpoint,
    pct,
    serve_process,
    step_inputs,
    wait_ready,
)
from runtime.artifact import load_artifact  # noqa: E402
from runtime.client import RuntimeClient  # noqa: E402
from runtime.config import ServeConfig  # noqa: E402
from runtime.model import LoadedModel  # noqa: E402
from runtime.protocol import HEADER, MsgType, pack_header  # noqa: E402
from runtime.server import RuntimeServer  # noqa: E402

clock = time.perf_counter_ns
RAW_SEND = zmq.backend.Socket.send  # what runtime.protocol.raw_send is, where it exists

# Server-side stamps per step (columns of the ring buffer).
S_SEQ, S_RECV0, S_RECV1, S_H0, S_E0, S_E1, S_A0, S_A1, S_H1, S_SEND1 = range(10)
N_S = 10
SERVER_PHASES = [
    ("server recv rest", S_RECV0, S_RECV1),
    ("server loop (guard, key)", S_RECV1, S_H0),
    ("handle: checks", S_H0, S_E0),
    ("handle: encoder", S_E0, S_E1),
    ("handle: posterior", S_E1, S_A0),
    ("handle: policy", S_A0, S_A1),
    ("handle: reply", S_A1, S_H1),
    ("server sends", S_H1, S_SEND1),
]


class Stamps:
    """A ring of per-step stamp rows (a list of lists: appends cost ~50 ns)."""

    def __init__(self, n: int) -> None:
        self.rows = [[0] * N_S for _ in range(n)]
        self.n = n
        self.i = 0
        self.cur = self.rows[0]

    def next_row(self) -> None:
        self.i += 1
        self.cur = self.rows[self.i % self.n]


def traced_server(endpoint: str, artifact: str, out: str, ring: int) -> None:
    """Child process: `zshot serve`'s RuntimeServer with stamps; dumps them on SIGTERM."""
    st = Stamps(ring)
    state = {"first": True}

    class TracedSocket(zmq.Socket):  # type: ignore[type-arg]
        def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
            r = super().recv(flags, copy=copy, track=track)
            t = clock()
            if not copy and state["first"]:  # the loop's first receive: the identity
                st.next_row()
                st.cur[S_RECV0] = t
                state["first"] = False
            st.cur[S_RECV1] = t
            return r

        def send(self, data: Any, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
            r = super().send(data, flags, copy=copy, track=track)
            sent(flags)
            return r

    def sent(flags: int) -> None:
        st.cur[S_SEND1] = clock()
        if not flags & zmq.SNDMORE:
            state["first"] = True

    def raw(sock: zmq.Socket, data: Any, flags: int = 0) -> Any:  # type: ignore[type-arg]
        r = RAW_SEND(sock, data, flags)
        sent(flags)
        return r

    import runtime.server

    if hasattr(runtime.server, "raw_send"):  # the loop binds it at start
        runtime.server.raw_send = raw  # type: ignore[attr-defined]

    class TracedContext(zmq.Context):  # type: ignore[type-arg]
        _socket_class = TracedSocket

    cfg = ServeConfig(default_mode="exploit", default_update="step")
    model = LoadedModel.load(artifact, cfg)
    enc, act = model.encode, model.act

    def encode(x: Any) -> Any:
        st.cur[S_E0] = clock()
        r = enc(x)
        st.cur[S_E1] = clock()
        return r

    def act_(o: Any, z: Any, noise: Any = None) -> Any:
        st.cur[S_A0] = clock()
        r = act(o, z, noise)
        st.cur[S_A1] = clock()
        return r

    model.encode, model.act = encode, act_  # type: ignore[method-assign]
    ctx = TracedContext()
    server = RuntimeServer(model, cfg, context=ctx)
    handle = server._handle

    def traced_handle(frames: list[bytes], *a: Any) -> Any:
        row = st.cur
        row[S_H0] = clock()
        row[S_E0] = row[S_E1] = row[S_A0] = row[S_A1] = 0
        row[S_SEQ] = HEADER.unpack(frames[1])[4] if len(frames) > 1 else -1
        r = handle(frames, *a)
        row[S_H1] = clock()
        return r

    server._handle = traced_handle  # type: ignore[method-assign]
    gcs: list[tuple[int, int]] = []
    gc_t0 = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_t0[0] = clock()
        else:
            gcs.append((info["generation"], clock() - gc_t0[0]))

    gc.callbacks.append(on_gc)

    def dump(*_: object) -> None:
        server._stop.set()

    signal.signal(signal.SIGTERM, dump)
    server.bind(endpoint)
    try:
        server.serve_forever()
    finally:
        n = min(st.i, st.n)
        rows = np.array(st.rows, dtype=np.int64)
        np.savez(out, rows=rows[:n] if st.i < st.n else rows, gc=np.array(gcs, np.int64))


def ctx_switches(pid: int) -> dict[str, tuple[int, int]]:
    """(voluntary, nonvoluntary) context switches of each thread of `pid`."""
    out = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            status = (task / "status").read_text().splitlines()
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
        out[f"{comm}/{task.name}"] = (
            int(fields["voluntary_ctxt_switches"]),
            int(fields["nonvoluntary_ctxt_switches"]),
        )
    return out


def served(args: argparse.Namespace) -> None:
    art = load_artifact(args.artifact)
    m = art.manifest
    obs, tr = step_inputs(m)

    echo_ep, traced_ep, plain_ep = free_endpoint(), free_endpoint(), free_endpoint()
    tmp = tempfile.TemporaryDirectory(prefix="zshot-phases-")
    dump = str(Path(tmp.name) / "stamps.npz")
    procs = [
        bench_process("runtime_latency", f"echo_server({echo_ep!r}, {4 * m.act_dim})"),
        bench_process(
            "runtime_phases",
            f"traced_server({traced_ep!r}, {str(args.artifact)!r}, {dump!r}, {args.steps + 2000})",
        ),
        serve_process(args.artifact, plain_ep),
    ]
    client_rows: list[tuple[int, int, int, int, int]] = []
    cst = {"sent": 0, "recv": 0, "first": True}

    import runtime.client

    def raw(sock: zmq.Socket, data: Any, flags: int = 0) -> Any:  # type: ignore[type-arg]
        r = RAW_SEND(sock, data, flags)
        if isinstance(sock, TracedSocket):
            cst["sent"] = clock()
            cst["first"] = True
        return r

    if hasattr(runtime.client, "raw_send"):
        runtime.client.raw_send = raw  # type: ignore[attr-defined]

    class TracedSocket(zmq.Socket):  # type: ignore[type-arg]
        def send(self, data: Any, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
            r = super().send(data, flags, copy=copy, track=track)
            cst["sent"] = clock()
            cst["first"] = True
            return r

        def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
            r = super().recv(flags, copy=copy, track=track)
            if cst["first"]:
                cst["recv"] = clock()
                cst["first"] = False
            return r

    class TracedContext(zmq.Context):  # type: ignore[type-arg]
        _socket_class = TracedSocket

    try:
        echo = EchoClient(echo_ep)
        wait_ready(lambda: echo.step(obs, tr) or (_ for _ in ()).throw(OSError()), "echo")
        traced = RuntimeClient(traced_ep, timeout_s=1.0, context=TracedContext())
        wait_ready(lambda: traced.hello(timeout_s=0.5), "traced server")
        plain = RuntimeClient(plain_ep, timeout_s=1.0)
        wait_ready(lambda: plain.hello(timeout_s=0.5), "zshot serve")
        for c in (traced, plain):
            c.set_mode("exploit", "step")
        _, ort_step = bare_ort(art, obs, tr)
        sw0 = ctx_switches(procs[1].pid)
        t_echo, t_ort, t_plain = [], [], []
        for i in range(1000 + args.steps):
            c0 = clock()
            echo.step(obs, tr)
            c1 = clock()
            ort_step()
            c2 = clock()
            plain.step(obs, tr)
            c3 = clock()
            traced.step(obs, tr)
            c4 = clock()
            if i >= 1000:
                t_echo.append(c1 - c0)
                t_ort.append(c2 - c1)
                t_plain.append(c3 - c2)
                client_rows.append((traced._seq, c3, cst["sent"], cst["recv"], c4))
        sw1 = ctx_switches(procs[1].pid)
        traced.bye()
        plain.bye()
        echo.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    data = np.load(dump)
    rows, gcs = data["rows"], data["gc"]
    by_seq = {int(r[S_SEQ]): r for r in rows}
    phases: dict[str, list[int]] = {"client pre-send": [], "request in flight": []}
    for name, _, _ in SERVER_PHASES:
        phases[name] = []
    phases["reply in flight"] = []
    phases["client post-recv"] = []
    total, service = [], []
    for seq, c0, sent, recv, c1 in client_rows:
        r = by_seq.get(seq)
        if r is None or not r[S_E0] or not r[S_A0]:
            continue
        phases["client pre-send"].append(sent - c0)
        phases["request in flight"].append(r[S_RECV0] - sent)
        for name, a, b in SERVER_PHASES:
            phases[name].append(r[b] - r[a])
        phases["reply in flight"].append(recv - r[S_SEND1])
        phases["client post-recv"].append(c1 - recv)
        total.append(c1 - c0)
        service.append(r[S_SEND1] - r[S_RECV0])
    print(
        f"cpu count {os.cpu_count()}, {args.steps} interleaved steps, {len(total)} matched "
        "by seq; µs\n\n| phase | p50 | p90 | p99 | mean |\n|---|---|---|---|---|"
    )

    def line(name: str, ns: list[int]) -> None:
        us = np.array(ns) / 1000.0
        q = np.percentile(us, [50, 90, 99])
        print(f"| {name} | {q[0]:.1f} | {q[1]:.1f} | {q[2]:.1f} | {us.mean():.1f} |")

    for name, ns in phases.items():
        line(name, ns)
    line("**traced step (sum)**", total)
    line("server service window (first recv -> last send)", service)
    line("untraced step, same run", t_plain)
    line("bare echo, same run", t_echo)
    line("bare onnxruntime, same run", t_ort)
    e, o, p = pct(np.array(t_echo)), pct(np.array(t_ort)), pct(np.array(t_plain))
    print(
        f"\nuntraced ratio p50 {p['p50'] / (e['p50'] + o['p50']):.2f}, "
        f"p99 {p['p99'] / (e['p99'] + o['p99']):.2f}"
    )
    print("\nserver threads, context switches during the timed steps (voluntary, involuntary):")
    for k, (v1, n1) in sw1.items():
        v0, n0 = sw0.get(k, (0, 0))
        print(f"  {k}: {v1 - v0}, {n1 - n0}")
    n_steps = len(rows)
    for g in range(3):
        sel = gcs[gcs[:, 0] == g][:, 1] / 1000.0 if len(gcs) else np.zeros(0)
        if len(sel):
            print(
                f"server GC gen {g}: {len(sel)} collections over {n_steps} requests "
                f"(p50 {np.percentile(sel, 50):.1f} µs, max {sel.max():.1f} µs)"
            )
        else:
            print(f"server GC gen {g}: none over {n_steps} requests")
    tmp.cleanup()


def inproc(args: argparse.Namespace) -> None:
    art = load_artifact(args.artifact)
    m = art.manifest
    rng = np.random.default_rng(0)
    obs = rng.normal(size=m.obs_dim).astype(np.float32).tobytes()
    tr = rng.normal(size=m.transition_dim).astype(np.float32).tobytes()
    cfg = ServeConfig(default_mode="exploit", default_update="step")
    model = LoadedModel.load(args.artifact, cfg)
    row = [0] * N_S
    enc, act = model.encode, model.act

    def encode(x: Any) -> Any:
        row[S_E0] = clock()
        r = enc(x)
        row[S_E1] = clock()
        return r

    def act_(o: Any, z: Any, noise: Any = None) -> Any:
        row[S_A0] = clock()
        r = act(o, z, noise)
        row[S_A1] = clock()
        return r

    model.encode, model.act = encode, act_  # type: ignore[method-assign]
    server = RuntimeServer(model, cfg)
    hello = server._handle([b"id", pack_header(MsgType.HELLO, 0, 1), b"{}"], b"id")[0]
    assert hello is not None
    sid = HEADER.unpack(hello[0])[3]
    seqs = iter(range(2, 1 << 40))
    junk = np.ones(16 << 18, np.float32)  # 16 MiB

    def step() -> None:
        frames = [b"id", pack_header(MsgType.STEP, sid, next(seqs)), obs, tr]
        row[S_H0] = clock()
        server._handle(frames, b"id")
        row[S_H1] = clock()

    between: dict[str, Callable[[], object]] = {
        "hot (back to back)": lambda: None,
        "0.5 ms sleep between calls": lambda: time.sleep(0.0005),
        "16 MiB memory traffic between calls": lambda: junk.sum(),
    }
    names = ["handle: checks", "handle: encoder", "handle: posterior", "handle: policy"]
    print("in-process RuntimeServer._handle of a STEP (obs + transition), µs p50 (p90)\n")
    print(f"| condition | {' | '.join(names)} | handle: reply | whole handle |")
    print("|---|---|---|---|---|---|---|")
    with np.errstate(all="ignore"):
        for label, gap in between.items():
            cols: list[list[int]] = [[] for _ in range(6)]
            for i in range(args.steps // 4 + 500):
                gap()
                step()
                if i >= 500:
                    for k, (_, a, b) in enumerate(SERVER_PHASES[2:7]):
                        cols[k].append(row[b] - row[a])
                    cols[5].append(row[S_H1] - row[S_H0])
            cells = []
            for c in cols:
                us = np.array(c) / 1000.0
                cells.append(f"{np.percentile(us, 50):.1f} ({np.percentile(us, 90):.1f})")
            print(f"| {label} | {' | '.join(cells)} |")
        # GC: collections triggered by a step's allocations.
        gc.collect()
        counts = [0, 0, 0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                counts[info["generation"]] += 1

        gc.callbacks.append(on_gc)
        n = 10000
        for _ in range(n):
            step()
        gc.callbacks.remove(on_gc)
        print(f"\nGC collections during {n} in-process steps (gen 0, 1, 2): {counts}")
        gc.disable()
        t0 = clock()
        for _ in range(n):
            step()
        off = (clock() - t0) / n / 1000
        gc.enable()
        t0 = clock()
        for _ in range(n):
            step()
        on = (clock() - t0) / n / 1000
        print(f"mean step with GC enabled {on:.1f} µs, disabled {off:.1f} µs")
    server.stop()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--artifact", default=str(ROOT / "hardware_bridge" / "demo_artifact"))
    p.add_argument("--inproc", action="store_true", help="time _handle in this process only")
    args = p.parse_args()
    if args.inproc:
        inproc(args)
    else:
        served(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
