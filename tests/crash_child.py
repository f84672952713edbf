"""The process that test_crash.py kills: it ingests a generated session into a warehouse file.

Run as ``python crash_child.py DB ARCHIVE CONFIG_JSON``. It reopens DB (resuming after the bars
already stored), then feeds the session's bars chunk by chunk (single appends and batches
alternating), flushes after each chunk and exports every few chunks, and reports on stdout, each
line flushed as soon as its step is complete:

    START <n>       reopened; n bars of the session are stored, feeding resumes at bar n
    APPENDED <n>    appends of the first n bars have returned (what a journal would acknowledge)
    FLUSHING <n>    about to flush; FLUSHED <n>: the flush returned, the first n bars are durable
    EXPORTING       about to export; EXPORTED <rows>: the export returned, <rows> rows in all
    DONE <n>        the whole session is in, flushed, exported and the file closed; with
                    "hold" in the config the child then waits to be killed instead of exiting

Bars are numbered in arrival order. Besides its own bar, bar j brings a correction (a
replacement with volume + 0.5) of bar j - CORRECT_LAG when j is a multiple of CORRECT_EVERY:
right after bar j when appended singly, after its chunk when it came in a batch. On resuming at
n, the corrections due by bars n - CHUNK .. n - 1 are applied again (they may have been lost
with the unflushed tail); re-applying one is idempotent.

The parent imports this module for the same session and the same rules.
"""

from __future__ import annotations

import faulthandler
import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa

CORRECT_EVERY = 50
CORRECT_LAG = 1_000
CHUNK = 600

DEFAULTS: dict[str, Any] = {
    "symbols": 50,
    "minutes": 260,
    "days": 2,
    "seed": 7,
    "export_every": 2,
    # Warehouse options: a busy background flusher, frequent compactions and checkpoints, so
    # kills land in those too. A journal variant adds {"journal": True} here.
    "options": {"flush_rows": 300, "flush_interval": 0.01, "checkpoint_rows": 2_500,
                "compact_rows": 900, "window": 16},
}


def session(config: dict[str, Any]) -> pa.Table:
    """The session of ``config``: its days one after the other, each in arrival order."""
    from warehouse.sample import SAMPLE_DAY, generate_session

    days = [
        generate_session(config["symbols"], config["minutes"],
                         day=SAMPLE_DAY + timedelta(days=d), seed=config["seed"] * 10 + d)
        for d in range(config["days"])
    ]
    return pa.concat_tables(days).combine_chunks()


def correction_targets(start: int, stop: int) -> Iterator[tuple[int, int]]:
    """(j, t): bar j (start <= j < stop) brings the correction of bar t."""
    first = max(start, CORRECT_LAG)
    first += -first % CORRECT_EVERY
    for j in range(first, stop, CORRECT_EVERY):
        yield j, j - CORRECT_LAG


def rows(table: pa.Table, start: int, stop: int) -> list[tuple[Any, ...]]:
    """Bars start..stop-1 as tuples in `Bar` field order, ts as integer microseconds."""
    part = table.slice(start, stop - start)
    columns = [part.column(i).to_pylist() for i in range(part.num_columns)]
    columns[1] = part.column(1).cast(pa.int64()).to_pylist()
    return list(zip(*columns, strict=True))


def corrected(table: pa.Table, t: int) -> tuple[Any, ...]:
    bar = rows(table, t, t + 1)[0]
    return (*bar[:6], bar[6] + 0.5, *bar[7:])


def feed(wh: Any, table: pa.Table, start: int, stop: int, batch: bool) -> None:
    """Append bars start..stop-1 (one batch or one by one) and the corrections they bring."""
    if batch:
        wh.extend(table.slice(start, stop - start))
        for _, t in correction_targets(start, stop):
            wh.append(*corrected(table, t))
        return
    due = dict(correction_targets(start, stop))
    for j, bar in enumerate(rows(table, start, stop), start):
        wh.append(*bar)
        if j in due:
            wh.append(*corrected(table, due[j]))


def resume(wh: Any, table: pa.Table) -> int:
    """After a reopen: how many bars are stored (a prefix of the session), corrections redone."""
    stored = int(wh.stats()["bars"])
    for _, t in correction_targets(max(0, stored - CHUNK), stored):
        wh.append(*corrected(table, t))
    return stored


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def export(wh: Any, archive: str) -> None:
    say("EXPORTING")
    result = wh.export_parquet(archive)
    say(f"EXPORTED {result.rows}")


def main(argv: list[str]) -> int:
    # The parent sends SIGUSR1 to a child that went silent: every thread's stack to stderr.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from warehouse import Warehouse

    db, archive = argv[0], argv[1]
    config = {**DEFAULTS, **json.loads(argv[2])}
    table = session(config)
    wh = Warehouse(db, **config["options"])
    done = resume(wh, table)
    say(f"START {done}")
    chunks = 0
    while done < table.num_rows:
        stop = min(done + CHUNK, table.num_rows)
        feed(wh, table, done, stop, batch=chunks % 2 == 1)
        done = stop
        chunks += 1
        say(f"APPENDED {done}")
        say(f"FLUSHING {done}")
        wh.flush()
        say(f"FLUSHED {done}")
        if chunks % config["export_every"] == 0:
            export(wh, archive)
    export(wh, archive)
    wh.close()
    say(f"DONE {done}")
    if config.get("hold"):
        threading.Event().wait()  # a run the parent kills never ends on its own: the kill lands
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
