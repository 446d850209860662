"""Insertion tasks: a plug plus the hidden parameters the policy must adapt to.

A task is data (pydantic, JSON-serialisable) so it travels in checkpoints and recordings:

    task = InsertionTask(plug="UK-AC-plug", dx=0.0012, dy=-0.0005, dyaw=0.02)
    InsertionTask.model_validate(task.model_dump()) == task

`TaskFamily(config, seed)` draws seeded train/test splits over (plug × hidden parameters);
the plugs in `held_out` appear only in the test split.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim.config import InsertionEnvConfig
from sim.plugs import NAMED_PLUGS, PlugSpecError, is_plug_file, list_plugs, load_plug

__all__ = ["InsertionTask", "TaskFamily", "check_plug", "is_plug_file", "plug_label"]


def check_plug(ref: str) -> str:
    """`ref` (a shipped name or a spec file) if its spec loads and its socket can be built;
    else PlugSpecError / GeometryError (both ValueError) naming the file and the problem."""
    from sim.geometry import socket_geometry

    spec = load_plug(ref)
    socket_geometry(spec, spec.clearance)
    return ref


def plug_label(plug: str) -> str:
    """How results name a plug: its spec's `name` (a file's, or the shipped name)."""
    return load_plug(plug).name


class InsertionTask(BaseModel):
    """One task: which plug, and where the socket really is relative to where it is believed.

    Units: m and rad (SI), like the config. `clearance` and `friction` of None mean the
    plug spec's nominal values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    plug: str = "UK-AC-plug"
    """A shipped plug name or a path to a spec file."""
    dx: float = Field(default=0.0, ge=-0.05, le=0.05)
    """m, true socket x minus believed socket x."""
    dy: float = Field(default=0.0, ge=-0.05, le=0.05)
    """m, true socket y minus believed."""
    dyaw: float = Field(default=0.0, ge=-0.8, le=0.8)
    """rad, true socket yaw minus believed."""
    clearance: float | None = Field(default=None, gt=0, le=0.005)
    """m per side; None = the spec's nominal clearance."""
    friction: float | None = Field(default=None, gt=0, le=2.0)
    """Coulomb coefficient; None = the spec's."""
    socket_plug: str | None = None
    """Build the socket from another spec (a wrong or mis-sized socket); None = `plug`."""
    task_id: str = ""
    """Free-form label, e.g. `train/UK-AC-plug/3`."""

    @field_validator("plug", "socket_plug")
    @classmethod
    def _known_plug(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            load_plug(v)
        except PlugSpecError as exc:
            raise ValueError(str(exc)) from None
        return v

    def clearance_mm(self) -> float:
        """Per-side clearance in mm (the spec's when unset)."""
        if self.clearance is not None:
            return self.clearance * 1000.0
        return load_plug(self.socket_plug or self.plug).clearance

    def friction_value(self) -> float:
        """The friction coefficient (the spec's when unset)."""
        if self.friction is not None:
            return self.friction
        return load_plug(self.plug).friction


class TaskFamily:
    """Seeded train/test tasks over (plug × hidden parameters).

    Training tasks use every plug not held out; test tasks cover every plug (held-out ones
    included, flagged by `is_held_out`). Same config and seed -> the same tasks.
    """

    def __init__(self, config: InsertionEnvConfig | None = None, seed: int = 0) -> None:
        self.config = config or InsertionEnvConfig()
        self.seed = int(seed)
        ts = self.config.tasks
        plugs = list(ts.include_plugs) if ts.include_plugs is not None else list_plugs()
        for name in plugs:
            load_plug(name)  # an unknown name or a bad spec file fails here, naming it
        held = list(ts.held_out) if ts.held_out is not None else list(NAMED_PLUGS)
        unknown = [h for h in held if not is_plug_file(h) and h not in list_plugs()]
        if unknown:
            raise PlugSpecError(f"tasks.held_out names unknown plugs: {', '.join(unknown)}")
        # A held-out spec file outside the family is a test-only plug of its own, drawn after
        # every other plug (so adding one leaves the other plugs' tasks as they were).
        for h in held:
            if is_plug_file(h) and h not in plugs:
                load_plug(h)
                plugs.append(h)
        names: dict[str, str] = {}
        for ref in plugs:
            name = load_plug(ref).name
            if names.setdefault(name, ref) != ref:
                raise PlugSpecError(
                    f"two plugs named {name!r} in one task family: {names[name]} and {ref} "
                    "(results are labelled by name: rename one)"
                )
        self.held_out: list[str] = [p for p in plugs if p in held]
        self.train_plugs: list[str] = [p for p in plugs if p not in held]
        self.test_plugs: list[str] = list(plugs)
        rng = np.random.default_rng(self.seed)
        self.train_tasks: list[InsertionTask] = [
            self._draw(rng, plug, f"train/{plug}/{k}")
            for plug in self.train_plugs
            for k in range(ts.n_train_per_plug)
        ]
        self.test_tasks: list[InsertionTask] = [
            self._draw(rng, plug, f"test/{plug}/{k}")
            for plug in self.test_plugs
            for k in range(ts.n_test_per_plug)
        ]

    def _draw(self, rng: np.random.Generator, plug: str, task_id: str) -> InsertionTask:
        ts = self.config.tasks
        spec = load_plug(plug)
        e, ey = ts.socket_xy_error, ts.socket_yaw_error
        return InsertionTask(
            plug=plug,
            dx=float(rng.uniform(-e, e)),
            dy=float(rng.uniform(-e, e)),
            dyaw=float(rng.uniform(-ey, ey)),
            clearance=float(spec.clearance * rng.uniform(*ts.clearance_scale)) / 1000.0,
            friction=float(spec.friction * rng.uniform(*ts.friction_scale)),
            task_id=task_id,
        )

    def is_held_out(self, task: InsertionTask) -> bool:
        """Is the task's plug held out of training?"""
        return task.plug in self.held_out

    def tasks_for(self, plug: str, split: str = "test") -> list[InsertionTask]:
        """The tasks of one plug in `split` ("train" or "test"): `plug` a shipped name, a spec
        path as listed in the config, or a plug's `name`."""
        pool = self.train_tasks if split == "train" else self.test_tasks
        return [t for t in pool if t.plug == plug or plug_label(t.plug) == plug]

    def with_test_plugs(self, plugs: list[str]) -> TaskFamily:
        """This family with `plugs` (spec paths or shipped names not in it) added as held-out,
        test-only plugs, drawn after the others: every task already here stays the same."""
        held = list(self.config.tasks.held_out or NAMED_PLUGS)
        new = [p for p in plugs if p not in held]
        if not new:
            return self
        tasks = self.config.tasks.model_copy(update={"held_out": [*held, *new]})
        if tasks.include_plugs is not None:
            tasks = tasks.model_copy(update={"include_plugs": [*tasks.include_plugs, *new]})
        return TaskFamily(self.config.model_copy(update={"tasks": tasks}), seed=self.seed)
