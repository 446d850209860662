"""Watchdog on the runtime's replies: a deadline per reply, a trip after K misses in a row."""

from __future__ import annotations

__all__ = ["Watchdog"]


class Watchdog:
    """Counts missed reply deadlines.

    A miss means the loop holds the robot for that period; `max_consecutive_misses` misses in
    a row trip the watchdog (the loop stops the robot and aborts the episode). One reply in
    time clears the streak.
    """

    def __init__(self, deadline_s: float, max_consecutive_misses: int) -> None:
        """`deadline_s`: how long a reply may take; `max_consecutive_misses`: K >= 1."""
        if not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
        if max_consecutive_misses < 1:
            raise ValueError(f"max_consecutive_misses must be >= 1, got {max_consecutive_misses}")
        self.deadline_s = deadline_s
        self.max_consecutive_misses = max_consecutive_misses
        self.consecutive = 0
        self.total_misses = 0
        self.total_replies = 0

    @property
    def tripped(self) -> bool:
        """K misses in a row have happened (and no reply since)."""
        return self.consecutive >= self.max_consecutive_misses

    def reply(self) -> None:
        """A reply arrived in time."""
        self.consecutive = 0
        self.total_replies += 1

    def miss(self) -> bool:
        """A reply missed its deadline (or never came); returns `tripped`."""
        self.consecutive += 1
        self.total_misses += 1
        return self.tripped

    def reset(self) -> None:
        """Forget the current streak (start of an episode, after a reconnect)."""
        self.consecutive = 0
