"""Fan-out on Ray for training/: zshot/parallel.py (shared with hardware_bridge's
`zshot trials --workers`, which may not import training)."""

from zshot.parallel import (
    RAY_HINT,
    WorkerPool,
    add_workers_arguments,
    init_ray,
    ray_available,
    run_ordered,
    workers_error,
)

__all__ = [
    "RAY_HINT",
    "WorkerPool",
    "add_workers_arguments",
    "init_ray",
    "ray_available",
    "run_ordered",
    "workers_error",
]
