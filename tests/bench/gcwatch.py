"""The cyclic garbage collector's pauses during a timed run, from ``gc.callbacks``.

CPython calls each callback at the start and at the stop of every collection, with its
generation; `GcWatch` keeps both timestamps of each one, so a run reports how many collections
of each generation it caused, their total time and the longest pause.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

_clock = time.perf_counter_ns


@dataclass(frozen=True)
class Collection:
    """One collection: its generation (2 is a full collection) and when it started and stopped."""

    generation: int
    started_ns: int
    stopped_ns: int

    @property
    def seconds(self) -> float:
        """How long the collection held the interpreter."""
        return (self.stopped_ns - self.started_ns) / 1e9


class GcWatch:
    """Record every collection while on; isolate the run from the objects made before it.

    On entry, everything alive is collected and then frozen (``gc.freeze``), so a run does not
    pay for scanning objects it did not make (the other side's millions of bars, the feed), only
    for its own; the collector stays on, as users run it. Collections of any thread count.
    """

    def __init__(self) -> None:
        self.collections: list[Collection] = []
        self._started_ns = 0
        self._generation = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = _clock()
        if phase == "start":
            self._started_ns, self._generation = now, info["generation"]
        else:
            self.collections.append(Collection(self._generation, self._started_ns, now))

    def __enter__(self) -> GcWatch:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
        gc.unfreeze()

    # -- what was seen --------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        """The total time of every collection."""
        return sum(c.stopped_ns - c.started_ns for c in self.collections) / 1e9

    @property
    def longest(self) -> Collection | None:
        """The longest collection, or None if there was none."""
        return max(self.collections, key=lambda c: c.stopped_ns - c.started_ns, default=None)

    def count(self, generation: int) -> int:
        """The number of collections of ``generation`` (2: full collections)."""
        return sum(c.generation == generation for c in self.collections)

    @property
    def full(self) -> int:
        """The number of full (generation 2) collections."""
        return self.count(2)
