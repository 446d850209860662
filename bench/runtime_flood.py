"""Multipart floods against `zshot serve`: the server's memory and another session's latency.

A victim session steps back to back: first alone (baseline), then while a flooder process
keeps sending messages of `--frames` frames of 1 MiB (each on a fresh connection, as the
issue's attacker did). Alternating blocks of `--block` steps, so load drift on a shared
machine hits both alike. Prints the victim's p50/p99 in each phase, their ratio, the
server's RSS before, at its peak and after, and how many connections the server closed.

    python bench/runtime_flood.py [--artifact DIR] [--frames 1000] [--blocks 10 --block 500]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runtime_latency import pct  # noqa: E402
from runtime.artifact import load_artifact  # noqa: E402
from runtime.client import RuntimeClient  # noqa: E402
from runtime.protocol import MsgType, pack_header  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def flooder(endpoint: str, frames: int, go: Any, stop: Any, sent: Any) -> None:
    """While `go` is set: one message of `frames` x 1 MiB per fresh connection."""
    ctx = zmq.Context()
    frame = zmq.Frame(b"\0" * (1 << 20))
    while not stop.is_set():
        if not go.wait(0.05):
            continue
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, 2000)
        s.connect(endpoint)
        try:
            s.send_multipart([pack_header(MsgType.OBSERVE, 1, 2)] + [frame] * frames, copy=False)
            with sent.get_lock():
                sent.value += 1
        except zmq.Again:
            pass
        time.sleep(0.2)  # let the server close it; a new connection for the next one
        s.close(linger=0)
    ctx.term()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--artifact", default=str(ROOT / "hardware_bridge" / "demo_artifact"))
    p.add_argument("--frames", type=int, default=1000, help="1 MiB frames per flood message")
    p.add_argument("--blocks", type=int, default=10, help="baseline/flood block pairs")
    p.add_argument("--block", type=int, default=500, help="victim steps per block")
    args = p.parse_args()
    m = load_artifact(args.artifact).manifest
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    server = subprocess.Popen(
        [sys.executable, "-m", "zshot", "serve", args.artifact, "--bind", endpoint,
         "--log-level", "ERROR"], cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    go, stop, sent = mp.Event(), mp.Event(), mp.Value("i", 0)
    flood = mp.Process(target=flooder, args=(endpoint, args.frames, go, stop, sent))
    flood.start()
    try:
        victim = RuntimeClient(endpoint, timeout_s=2.0)
        t0 = time.monotonic()
        while True:
            try:
                victim.hello(timeout_s=0.5)
                break
            except OSError:
                if time.monotonic() - t0 > 60:
                    raise SystemExit("zshot serve did not come up") from None
        victim.set_mode("exploit", "step")
        rng = np.random.default_rng(0)
        obs = rng.normal(size=m.obs_dim).astype(np.float32)
        tr = rng.normal(size=m.transition_dim).astype(np.float32)
        for _ in range(500):
            victim.step(obs, tr)
        base_rss = peak = rss_mb(server.pid)
        watching = [True]

        def watch() -> None:
            nonlocal peak
            while watching[0]:
                peak = max(peak, rss_mb(server.pid))
                time.sleep(0.01)

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        times: dict[str, list[int]] = {"baseline": [], "flood": []}
        misses = {"baseline": 0, "flood": 0}
        clock = time.perf_counter_ns
        for _ in range(args.blocks):
            for phase in ("baseline", "flood"):
                if phase == "flood":
                    go.set()
                    time.sleep(0.1)  # the first flood is on its way
                for _ in range(args.block):
                    c0 = clock()
                    try:
                        victim.step(obs, tr)
                    except OSError:
                        misses[phase] += 1
                        continue
                    times[phase].append(clock() - c0)
                go.clear()
                time.sleep(0.3)
        watching[0] = False
        w.join()
        after = rss_mb(server.pid)
        b, f = pct(np.array(times["baseline"])), pct(np.array(times["flood"]))
        print(
            f"victim: {len(times['baseline'])} + {len(times['flood'])} steps; flood messages "
            f"sent: {sent.value} of {args.frames} x 1 MiB\n"
        )
        print("| phase | p50 µs | p99 µs | max µs | timeouts (2 s) |\n|---|---|---|---|---|")
        for name, st in (("baseline", b), ("under flood", f)):
            key = "baseline" if name == "baseline" else "flood"
            print(
                f"| {name} | {st['p50']:.1f} | {st['p99']:.1f} | {st['max']:.1f} | {misses[key]} |"
            )
        print(f"| ratio | {f['p50'] / b['p50']:.2f} | {f['p99'] / b['p99']:.2f} | | |")
        print(
            f"\nserver RSS: {base_rss:.1f} MB before, {peak:.1f} MB peak "
            f"(+{peak - base_rss:.1f}), {after:.1f} MB after"
        )
        victim.bye()
        victim.close()
    finally:
        stop.set()
        go.set()
        flood.join(10)
        if flood.is_alive():
            flood.kill()
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
