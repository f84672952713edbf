"""The result table: rows of ours vs a same-run baseline, the target, and whether it is met."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

_started = time.perf_counter()


def progress(message: str) -> None:
    """Print one progress line on stderr, stamped with the time since the start."""
    print(f"[bench {time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr,
          flush=True)


def format_time(seconds: float) -> str:
    """Format a duration in a unit that keeps about 3 significant digits."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_rate(per_second: float) -> str:
    """Format a rate of bars per second in millions."""
    return f"{per_second / 1e6:.2f} M bars/s"


@dataclass
class Row:
    """One line of the result table; ``ratio`` is a cost ratio, ours / baseline."""

    operation: str
    ours: str
    baseline: str
    base: str
    ratio: float | None
    target: str
    met: bool | None


@dataclass
class Report:
    """The rows and notes gathered so far; a failed sanity check becomes a note."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Add a row."""
        self.rows.append(row)

    def note(self, text: str) -> None:
        """Add a note, printed under the table."""
        self.notes.append(text)

    def check(self, ok: bool, what: str) -> None:
        """Record ``what`` as a failed check unless ``ok`` (the figures may then be wrong)."""
        if not ok:
            self.notes.append(f"CHECK FAILED: {what}")
            progress(f"CHECK FAILED: {what}")

    def print_table(self, header: str) -> None:
        """Print the header, the table, the count of targets met, and the notes to stdout."""
        titles = ("operation", "ours", "baseline (same run)", "baseline", "ours/base", "target",
                  "met")
        cells = [
            (
                r.operation, r.ours, r.baseline, r.base,
                "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
                "-" if r.met is None else ("yes" if r.met else "NO"),
            )
            for r in self.rows
        ]
        widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print(header)
        print(line.format(*titles))
        print("  ".join("-" * w for w in widths))
        for c in cells:
            print(line.format(*c).rstrip())
        met = [r.met for r in self.rows if r.met is not None]
        print(f"targets met: {sum(met)} of {len(met)}")
        for note in self.notes:
            print(f"note: {note}")
