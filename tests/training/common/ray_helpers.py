"""Light Ray worker classes for tests/training/common/test_parallel.py: a fresh Ray worker
imports only this module (no torch), so replacing a killed one is quick."""

from __future__ import annotations

import os


class Echo:
    """A worker that returns its item."""

    def run(self, i: int) -> int:
        return i


class Failing:
    """A worker whose method raises: the caller's error, not a lost worker."""

    def run(self, i: int) -> int:
        if i == 2:
            raise ValueError(f"task {i} is bad")
        return i


class DiesOnOdd:
    """A worker whose process dies on every odd item."""

    def run(self, i: int) -> int:
        if i % 2:
            os._exit(1)
        return i


class Offset:
    """A worker that adds a shared offset to its item and says which process it ran in."""

    def run(self, i: int, offset: int) -> tuple[int, int]:
        return i + offset, os.getpid()


class Niceness:
    """A worker that says its process's nice value."""

    def run(self, i: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)
