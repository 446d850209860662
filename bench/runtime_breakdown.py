"""Where a runtime step's time goes beyond bare echo + bare onnxruntime (bench/runtime_latency.py).

One run, interleaved step by step (load from other processes hits every variant alike):
  (1) echo       bare ROUTER echo in its own process, bare DEALER client
  (2) ort        bare onnxruntime encoder + policy calls in this process
  (3) ort-echo   a bare ROUTER in its own process that runs the same two onnxruntime calls
                 per request (no protocol): (3) - (1) - (2) is what running the model in
                 another process costs (wake-ups, cold caches), not zshot's code
  (4) raw        the bare client against `zshot serve`: (4) - (3) is the server's Python
  (5) client     RuntimeClient.step against `zshot serve`: (5) - (4) is the client's Python

    python bench/runtime_breakdown.py [--steps 20000] [--artifact DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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


def ort_echo_server(endpoint: str, artifact: str) -> None:
    """Bare ROUTER: per request, the encoder on the transition and the policy on the obs."""
    model = LoadedModel.load(artifact, ServeConfig())
    z = np.zeros((1, model.latent_dim), np.float32)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    send, more = sock.send, zmq.SNDMORE
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"quit":
            break
        action = b""
        if len(frames) == 4:
            model.encode(np.frombuffer(frames[3], "<f4").reshape(1, -1))
            action = model.act(np.frombuffer(frames[2], "<f4").reshape(1, -1), z).tobytes()
        send(frames[0], more)  # part by part, as the echo server and `zshot serve` send
        send(frames[1], more)
        send(action)
    sock.close()
    ctx.term()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--artifact", default=str(ROOT / "hardware_bridge" / "demo_artifact"))
    args = p.parse_args()
    art = load_artifact(args.artifact)
    m = art.manifest
    obs, tr = step_inputs(m)

    echo_ep, ort_ep, rt_ep = free_endpoint(), free_endpoint(), free_endpoint()
    procs = [
        bench_process("runtime_latency", f"echo_server({echo_ep!r}, {4 * m.act_dim})"),
        bench_process("runtime_breakdown", f"ort_echo_server({ort_ep!r}, {str(args.artifact)!r})"),
        serve_process(args.artifact, rt_ep),
    ]
    try:
        echo, ort_echo = EchoClient(echo_ep), EchoClient(ort_ep)
        for c in (echo, ort_echo):
            wait_ready(lambda c=c: c.step(obs, tr) or (_ for _ in ()).throw(OSError()), "echo")
        rc = RuntimeClient(rt_ep, timeout_s=1.0)
        wait_ready(lambda: rc.hello(timeout_s=0.5), "zshot serve")
        rc.set_mode("exploit", "step")
        raw = EchoClient(rt_ep, session=rc.session_id)  # the bare client, in rc's session
        _, ort_step = bare_ort(art, obs, tr)

        def raw_step() -> None:
            raw.seq = max(raw.seq, rc._seq)
            raw.step(obs, tr)
            rc._seq = raw.seq

        def client_step() -> None:
            rc._seq = max(raw.seq, rc._seq)
            rc.step(obs, tr)
            raw.seq = rc._seq

        variants = {
            "(1) bare echo": lambda: echo.step(obs, tr),
            "(2) bare onnxruntime": ort_step,
            "(3) ort-echo (model in a bare server)": lambda: ort_echo.step(obs, tr),
            "(4) zshot serve, bare client": raw_step,
            "(5) zshot serve, RuntimeClient": client_step,
        }
        times: dict[str, list[int]] = {k: [] for k in variants}
        clock = time.perf_counter_ns
        for i in range(1000 + args.steps):
            for name, fn in variants.items():
                t0 = clock()
                fn()
                if i >= 1000:
                    times[name].append(clock() - t0)
        print(f"cpu count {os.cpu_count()}, {args.steps} interleaved steps per variant, µs:\n")
        print("| variant | p50 | p99 |\n|---|---|---|")
        s = {k: pct(np.array(v)) for k, v in times.items()}
        for name, st in s.items():
            print(f"| {name} | {st['p50']:.1f} | {st['p99']:.1f} |")
        k = list(s)
        for q in ("p50", "p99"):
            floor = s[k[0]][q] + s[k[1]][q]
            print(
                f"\n{q}: floor (1)+(2) {floor:.1f}; model in another process (3)-(1)-(2) "
                f"{s[k[2]][q] - floor:+.1f}; server Python (4)-(3) {s[k[3]][q] - s[k[2]][q]:+.1f}; "
                f"client Python (5)-(4) {s[k[4]][q] - s[k[3]][q]:+.1f}; ratio (5)/floor "
                f"{s[k[4]][q] / floor:.2f}, (3)/floor {s[k[2]][q] / floor:.2f}"
            )
        rc.bye()
        for c in (echo, ort_echo):
            c.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
