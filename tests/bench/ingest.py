"""Ingest from files: `warehouse.ingest` of the session as CSV and as Parquet, vs DuckDB.

The baseline is DuckDB alone reading the same file into the same table (``INSERT INTO
session_bars BY NAME SELECT * FROM read_csv(...)``, or ``read_parquet``), on a `BarStore` file with
the
warehouse's settings: no column mapping, no timestamp rules, no validation. Ours is what
``warehouse ingest FILE --db DB`` runs: read in batches, checked whole, then stored and flushed
(the data is committed in both cases; neither run includes the final checkpoint).
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warehouse.ingest import ingest
from warehouse.store import TABLE, BarStore
from warehouse.warehouse import Warehouse

from .report import Report, Row, format_rate, progress

#: (row label, file suffix, DuckDB's reader)
KINDS = (("ingest CSV file", "csv", "read_csv"), ("ingest Parquet file", "parquet", "read_parquet"))


def measure_ingest(report: Report, session: pa.Table, repeat: int, workdir: Path) -> None:
    """Add one row per file kind: our ingest rate, DuckDB's, and the cost ratio."""
    files = {"csv": workdir / "session.csv", "parquet": workdir / "session.parquet"}
    progress("ingest: writing the session as CSV and Parquet")
    pcsv.write_csv(session, files["csv"])
    pq.write_table(session, files["parquet"], compression="zstd")
    runs = 0
    for label, suffix, reader in KINDS:
        path = files[suffix]
        ours: list[float] = []
        base: list[float] = []
        for run in range(repeat):
            progress(f"{label}: warehouse and DuckDB {reader}, run {run + 1}/{repeat}")
            runs += 1
            with Warehouse(workdir / f"ingest-{runs}.duckdb", flush_interval=None) as wh:
                gc.collect()
                started = time.perf_counter()
                result = ingest(wh, path)
                ours.append(time.perf_counter() - started)
                report.check(
                    result.added == session.num_rows and not result.rejected,
                    f"{label}: every bar stored",
                )
            with BarStore(workdir / f"plain-ingest-{runs}.duckdb") as plain:
                gc.collect()
                started = time.perf_counter()
                plain.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM {reader}('{path}')")
                base.append(time.perf_counter() - started)
                report.check(
                    plain.stored_count() == session.num_rows, f"{label}: DuckDB read every bar"
                )
        rate = session.num_rows / statistics.median(ours)
        base_rate = session.num_rows / statistics.median(base)
        report.add(
            Row(
                label,
                format_rate(rate),
                f"DuckDB {reader} INSERT",
                format_rate(base_rate),
                base_rate / rate,
                "-",
                None,
            )
        )
    size = files["csv"].stat().st_size / 2**20, files["parquet"].stat().st_size / 2**20
    report.note(
        f"ingest: the session as a {size[0]:.1f} MiB CSV file and a {size[1]:.1f} MiB "
        "zstd Parquet file; ours reads, checks every row, then stores and flushes"
    )
