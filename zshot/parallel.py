"""Fan-out on Ray (issue #22): the same code on a laptop (a local Ray) and on a cluster.

Shared by training/ (`zshot train`, `collect`, `eval`, `sweep`) and hardware_bridge/ (`zshot trials
--workers`); stdlib only at import, Ray imported inside the functions that fan out.

`run_ordered(cls, args, method, n, workers=N)` builds `cls(*args)` once per worker and calls
`worker.<method>(i)` for i = 0 .. n-1, yielding `(i, result)` in index order whatever the
order the workers finish in, so a caller that writes the results as they come writes the
same bytes with 1 and with N workers (the items themselves must depend on `i` alone: the
rollout worker's per-task seeds, `training.common.rollout.task_rng`; a trial unit's
episode seeds).

`WorkerPool(cls, args, workers=N)` keeps the workers for many `map(method, items, *shared)`
calls (a training run's rollout workers, sent new weights each round through `put`);
`run_ordered` is a pool for one map.

- `workers == 1`: in this process, without importing Ray (Ray is the optional `ray` extra).
- `workers > 1`: `workers` Ray actors of `cls`; the local Ray is started sized to them
  (`num_cpus=workers`, no dashboard, warnings only, Ray's background reporting off and
  the workers at the driver's priority: `LOCAL_SYSTEM_CONFIG`), or `ray_address` /
  `RAY_ADDRESS` names a running cluster (its own settings). Nothing else changes between
  the two.
- Faults: an actor that dies (killed, out of memory, its node lost) is replaced by a fresh
  one and the items it was running or had queued are run again, at most `max_attempts`
  times each; an item whose result came back is never run twice, so every item is
  yielded exactly once.
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

RAY_HINT = "--workers > 1 runs on Ray, which is not installed: pip install 'zshot[ray]'"
ROOT = Path(__file__).resolve().parents[1]


def ray_available() -> bool:
    """Whether the `ray` package can be imported (without importing it)."""
    return importlib.util.find_spec("ray") is not None


def add_workers_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """`--workers N` and `--ray-address ADDR` on a CLI that fans out; `default` names where
    the count comes from without `--workers` (`args.workers` is None then), else it is 1."""
    p.add_argument(
        "--workers",
        type=int,
        default=None if default else 1,
        help=f"rollout workers (default: {default or 1}): 1 runs in this process; N > 1 runs "
        "N Ray actors (the `ray` extra), results identical to 1 worker",
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


# A local Ray's settings that differ from Ray's defaults (issue 22: measured in
# bench/ray_overhead.py, BENCHMARKS.md "Ray collection overhead"). On a machine with a core per
# worker and nothing spare, every CPU-second Ray's own processes spend is taken from a worker,
# and Ray starts its workers 15 nice levels below the driver and its own processes:
# - worker_niceness 0: the actors run at the driver's priority (Ray's default, 15, lets GCS,
#   raylet, agents and the driver preempt them);
# - enable_metrics_collection off: no metrics recorded in the workers nor exported by the agent;
# - task_events_report_interval_ms 0: no per-call events sent to the GCS (they feed the
#   dashboard's and `ray list tasks`'s task table, which a local run without a dashboard
#   does not show);
# - event_stats off: no per-handler timing in Ray's event loops.
# A cluster (`--ray-address` / $RAY_ADDRESS) keeps the settings it was started with, and
# ZSHOT_RAY_DEFAULTS=1 gives a local Ray Ray's own defaults (the bench's "before").
LOCAL_SYSTEM_CONFIG: dict[str, Any] = {
    "worker_niceness": 0,
    "enable_metrics_collection": False,
    "task_events_report_interval_ms": 0,
    "event_stats": False,
}


def init_ray(workers: int, address: str | None = None, *, lean: bool | None = None) -> None:
    """Connect to `address` / $RAY_ADDRESS, else start a local Ray with `workers` CPUs
    (no dashboard, warnings only, and with `lean` (default: unless $ZSHOT_RAY_DEFAULTS is 1)
    `LOCAL_SYSTEM_CONFIG`); nothing when Ray is already initialised."""
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
    if lean is None:
        lean = os.environ.get("ZSHOT_RAY_DEFAULTS", "") != "1"
    system = dict(LOCAL_SYSTEM_CONFIG) if lean else {}
    ray.init(num_cpus=workers, include_dashboard=False, _system_config=system, **quiet)


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
    in_flight: int = 1,
) -> Iterator[tuple[int, Any]]:
    """`(i, cls(*args).<method>(i))` for i in range(n), in index order (module doc): a
    `WorkerPool` for one `map`.

    `local`: an already built `cls(*args)` to use when `workers == 1`."""
    with WorkerPool(
        cls,
        args,
        workers=workers,
        ray_address=ray_address,
        max_attempts=max_attempts,
        local=local,
        in_flight=in_flight,
        most=n,
    ) as pool:
        yield from pool.map(method, range(n), lost=lost)


class WorkerPool:
    """`workers` copies of `cls(*args)` kept across `map` calls: online collection in a
    training run sends its rollout workers the current weights every iteration.

    `workers == 1`: `local` (or `cls(*args)`) in this process, no Ray. `workers > 1`: that
    many Ray actors (one CPU each; `most` caps them, e.g. at the item count). `put(obj)`
    stores an object once for every call of the next `map` (`ray.put`; the object itself in
    this process). `in_flight`: calls queued per actor; 2 lets an actor start its next item
    while the driver is still taking the last one's result (worth it for short items), 1
    hands each item to the first free actor (long items: sweep trials). Faults as
    `run_ordered`'s (module doc)."""

    def __init__(
        self,
        cls: type,
        args: tuple[Any, ...],
        *,
        workers: int = 1,
        ray_address: str | None = None,
        max_attempts: int = 3,
        local: Any = None,
        in_flight: int = 1,
        most: int | None = None,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        self.cls, self.args, self.max_attempts, self.in_flight = cls, args, max_attempts, in_flight
        self.remote = workers > 1
        self.local: Any = None
        self._actors: list[Any] = []
        self._gens: list[int] = []
        if not self.remote:
            self.local = local if local is not None else cls(*args)
            return
        import ray

        init_ray(workers, ray_address)
        # A Ray already running (an earlier call in this process, a cluster) may have fewer
        # CPUs than `workers`: an actor beyond them would never start and its items never end.
        cpus = int(ray.cluster_resources().get("CPU", workers))
        if cpus < workers:
            print(
                f"ray: {cpus} CPUs for {workers} workers; running {max(cpus, 1)}", file=sys.stderr
            )
        count = max(1, min(workers, cpus, most if most is not None else workers))
        self._actor_cls: Any = ray.remote(num_cpus=1, max_restarts=0)(cls)
        self._actors = [self._actor_cls.remote(*args) for _ in range(count)]
        self._gens = [0] * count

    @property
    def size(self) -> int:
        """The number of workers (actors, or 1 in this process)."""
        return len(self._actors) or 1

    def put(self, obj: Any) -> Any:
        """`obj` as the argument of every call of a `map`: stored once in Ray's object store
        (each actor fetches it once per call), or `obj` itself in this process."""
        if not self.remote:
            return obj
        import ray

        return ray.put(obj)

    def map(
        self,
        method: str,
        items: Sequence[Any],
        *shared: Any,
        lost: Callable[[int, str], Any] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """`(k, worker.<method>(items[k], *shared))` for every k, in index order."""
        if not self.remote:
            for k, item in enumerate(items):
                yield k, getattr(self.local, method)(item, *shared)
            return
        yield from self._map_on_ray(method, items, shared, lost)

    def _map_on_ray(
        self,
        method: str,
        items: Sequence[Any],
        shared: tuple[Any, ...],
        lost: Callable[[int, str], Any] | None,
    ) -> Iterator[tuple[int, Any]]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        n = len(items)
        queue = deque(range(n))
        attempts = [0] * n
        pending: dict[Any, tuple[int, int, int]] = {}  # ref -> (actor slot, its generation, item)
        load = [0] * len(self._actors)
        done: dict[int, Any] = {}
        next_out = 0

        def submit(slot: int) -> None:
            # A call queued behind another waits for that actor even when another actor is
            # free by then (in_flight 1 for long items); at the end of a phase that costs at
            # most the tail of one item (BENCHMARKS.md, issue 22: a free-actors-only rule for
            # the last items did not cut the idle share, so there is none).
            while queue and load[slot] < self.in_flight:
                k = queue.popleft()
                attempts[k] += 1
                load[slot] += 1
                ref = getattr(self._actors[slot], method).remote(items[k], *shared)
                pending[ref] = (slot, self._gens[slot], k)

        for slot in range(len(self._actors)):
            submit(slot)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)  # blocks: no polling
            slot, gen, k = pending.pop(ref)
            if gen == self._gens[slot]:
                load[slot] -= 1
            try:
                done[k] = ray.get(ref)
            except RayTaskError as exc:  # the method raised: the caller's error, as it is
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, BaseException) else exc) from None
            except RayActorError as exc:
                if gen == self._gens[slot]:  # the first of its calls to fail: a fresh worker
                    self._actors[slot] = self._actor_cls.remote(*self.args)
                    self._gens[slot] += 1
                    load[slot] = 0
                if attempts[k] < self.max_attempts:
                    queue.appendleft(k)  # the item again
                else:
                    reason = f"item {k} lost its worker {attempts[k]} times; last: {exc}"
                    if lost is None:
                        raise RuntimeError(reason) from None
                    done[k] = lost(k, reason)
            submit(slot)
            while next_out in done:
                yield next_out, done.pop(next_out)
                next_out += 1

    def close(self) -> None:
        """End the actors (nothing in this process: the caller owns `local`)."""
        if self.remote:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
