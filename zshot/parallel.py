"""Fan-out on Ray (issue #22): the same code on a laptop (a local Ray) and on a cluster.

Shared by training/ (`zshot collect`, `eval`, `sweep`) and hardware_bridge/ (`zshot trials
--workers`); stdlib only at import, Ray imported inside the functions that fan out.

`run_ordered(cls, args, method, n, workers=N)` builds `cls(*args)` once per worker and calls
`worker.<method>(i)` for i = 0 .. n-1, yielding `(i, result)` in index order whatever the
order the workers finish in, so a caller that writes the results as they come writes the
same bytes with 1 and with N workers (the items themselves must depend on `i` alone: the
rollout worker's per-task seeds, `training.common.rollout.task_rng`; a trial unit's
episode seeds).

- `workers == 1`: in this process, without importing Ray (Ray is the optional `ray` extra).
- `workers > 1`: `workers` Ray actors of `cls`; the local Ray is started sized to them
  (`num_cpus=workers`, no dashboard, warnings only), or `ray_address` / `RAY_ADDRESS`
  names a running cluster. Nothing else changes between the two.
- Faults: an actor that dies (killed, out of memory, its node lost) is replaced by a fresh
  one and the item it was running is run again, at most `max_attempts` times in all; an
  item whose result came back is never run twice, so every item is yielded exactly once.
  An item that loses its worker `max_attempts` times raises RuntimeError, or, with
  `lost(i, reason)`, yields that instead (a sweep reports the trial and goes on).
  An exception raised by `method` itself is the caller's error: it is raised as it is.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RAY_HINT = "--workers > 1 runs on Ray, which is not installed: pip install 'zshot[ray]'"
ROOT = Path(__file__).resolve().parents[1]


def ray_available() -> bool:
    """Whether the `ray` package can be imported (without importing it)."""
    return importlib.util.find_spec("ray") is not None


def add_workers_arguments(p: argparse.ArgumentParser) -> None:
    """`--workers N` and `--ray-address ADDR` on a CLI that fans out."""
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="rollout workers: 1 (default) runs in this process; N > 1 runs N Ray actors "
        "(the `ray` extra), results identical to 1 worker",
    )
    p.add_argument(
        "--ray-address",
        help="a running Ray cluster (default: $RAY_ADDRESS, else a local Ray sized to --workers)",
    )


def workers_error(workers: int) -> str | None:
    """The one-line reason `--workers` cannot be used, None when it can."""
    if workers < 1:
        return f"--workers must be at least 1, got {workers}"
    if workers > 1 and not ray_available():
        return RAY_HINT
    return None


def init_ray(workers: int, address: str | None = None) -> None:
    """Connect to `address` / $RAY_ADDRESS, else start a local Ray with `workers` CPUs
    (no dashboard, warnings only); nothing when Ray is already initialised."""
    import ray  # the optional extra: only imported when work fans out

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
        return
    # Local workers are started by the raylet with this environment: they import this
    # checkout, as the driver does, even when an installed copy sits elsewhere on sys.path.
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    ray.init(num_cpus=workers, include_dashboard=False, **quiet)


def run_ordered(
    cls: type,
    args: tuple[Any, ...],
    method: str,
    n: int,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    max_attempts: int = 3,
    local: Any = None,
    lost: Callable[[int, str], Any] | None = None,
) -> Iterator[tuple[int, Any]]:
    """`(i, cls(*args).<method>(i))` for i in range(n), in index order (module doc).

    `local`: an already built `cls(*args)` to use when `workers == 1`."""
    if workers <= 1:
        worker = local if local is not None else cls(*args)
        for i in range(n):
            yield i, getattr(worker, method)(i)
        return
    yield from _run_on_ray(cls, args, method, n, workers, ray_address, max_attempts, lost)


def _run_on_ray(
    cls: type,
    args: tuple[Any, ...],
    method: str,
    n: int,
    workers: int,
    ray_address: str | None,
    max_attempts: int,
    lost: Callable[[int, str], Any] | None,
) -> Iterator[tuple[int, Any]]:
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    init_ray(workers, ray_address)
    # A Ray already running (an earlier call in this process, a cluster) may have fewer
    # CPUs than `workers`: an actor beyond them would never start and its items never end.
    cpus = int(ray.cluster_resources().get("CPU", workers))
    if cpus < workers:
        print(f"ray: {cpus} CPUs for {workers} workers; running {max(cpus, 1)}", file=sys.stderr)
    actor_cls: Any = ray.remote(num_cpus=1, max_restarts=0)(cls)
    actors: list[Any] = [actor_cls.remote(*args) for _ in range(max(1, min(workers, n, cpus)))]
    queue = deque(range(n))
    attempts = [0] * n
    pending: dict[Any, tuple[int, int]] = {}  # ref -> (actor slot, item)
    done: dict[int, Any] = {}
    next_out = 0

    def submit(slot: int) -> None:
        if queue:
            i = queue.popleft()
            attempts[i] += 1
            pending[getattr(actors[slot], method).remote(i)] = (slot, i)

    try:
        for slot in range(len(actors)):
            submit(slot)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            slot, i = pending.pop(ref)
            try:
                done[i] = ray.get(ref)
            except RayTaskError as exc:  # the method raised: the caller's error, as it is
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, BaseException) else exc) from None
            except RayActorError as exc:
                actors[slot] = actor_cls.remote(*args)  # a fresh worker
                if attempts[i] < max_attempts:
                    queue.appendleft(i)  # the item again
                else:
                    reason = f"item {i} lost its worker {attempts[i]} times; last: {exc}"
                    if lost is None:
                        raise RuntimeError(reason) from None
                    done[i] = lost(i, reason)
            submit(slot)
            while next_out in done:
                yield next_out, done.pop(next_out)
                next_out += 1
    finally:
        for actor in actors:
            ray.kill(actor)
