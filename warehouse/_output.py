"""Query results in the formats the command line writes: table, CSV, JSON, NDJSON, Parquet.

Numbers stay numbers (a volume prints as ``200170974.0``, never ``2.00170974e8``); timestamps
are ISO 8601 with their offset (``2025-11-21T14:30:00+00:00``), so that polars, DuckDB and
pandas read every format back to the same values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

import polars as pl

from warehouse.errors import WarehouseError

OutputFormat = Literal["table", "csv", "json", "ndjson", "parquet"]
FORMATS: tuple[OutputFormat, ...] = ("table", "csv", "json", "ndjson", "parquet")
#: Rows the table format shows unless told otherwise; the others write every row.
TABLE_ROWS = 20
#: chrono's format: the fraction only when there is one, the offset as +00:00.
_DATETIME = "%Y-%m-%dT%H:%M:%S%.f%:z"
_BY_SUFFIX: dict[str, OutputFormat] = {
    ".csv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".txt": "table",
}


def format_of(path: Path) -> OutputFormat | None:
    """The format a file's suffix names (``.csv``, ``.json``, ``.ndjson``, ``.parquet``)."""
    return _BY_SUFFIX.get(path.suffix.lower())


def output_format(
    path: Path | None, fmt: OutputFormat | None, *, flag: str, default: OutputFormat,
    format_flag: bool = True,
) -> OutputFormat:
    """The format to write ``path`` in: ``fmt``, else its suffix's, else ``default``.

    Raises
    ------
    WarehouseError
        The suffix names no format (``-o bars.xlsx``): refused rather than written as a table
        the name would belie; the message names the known suffixes (and --format where
        ``format_flag``).
    """
    if fmt is not None:
        return fmt
    if path is None:
        return default
    known = format_of(path)
    if known is None:
        suffix = f"the suffix {path.suffix!r}" if path.suffix else "a name without a suffix"
        hint = ", or pass --format" if format_flag else ""
        raise WarehouseError(f"{flag} {path}: {suffix} names no format; end the name with "
                             f"{', '.join(_BY_SUFFIX)}{hint}")
    return known


def write_frame(
    frame: pl.DataFrame,
    fmt: OutputFormat,
    *,
    rows: int | None = None,
    output: Path | None = None,
    stream: TextIO | None = None,
) -> None:
    """Write ``frame`` in ``fmt`` to ``output`` (a file) or ``stream`` (stdout by default).

    Parameters
    ----------
    rows
        At most this many rows (None: all). The table format shows the first and last of the
        rows beyond, and the frame's shape.
    output
        A file to write instead of the stream; Parquet needs one.

    Raises
    ------
    WarehouseError
        Parquet without ``output``, or ``output`` cannot be written.
    """
    if rows is not None and fmt != "table":
        frame = frame.head(rows)
    if fmt == "parquet":
        if output is None:
            raise WarehouseError("--format parquet writes a file: pass --output FILE.parquet")
        _write_file(output, lambda: frame.write_parquet(output, compression="zstd"))
        return
    text = _render(frame, fmt, -1 if rows is None else rows)
    if output is None:
        # print: the text, then its newline, as a second write (a reader gone by then shows).
        print(text, file=stream or sys.stdout)
        return
    _write_file(output, lambda: output.write_text(f"{text}\n", encoding="utf-8"))


def _render(frame: pl.DataFrame, fmt: OutputFormat, rows: int) -> str:
    """The frame as text, without a final newline."""
    if fmt == "table":
        with pl.Config(
            tbl_rows=rows, tbl_cols=-1, tbl_width_chars=160, fmt_str_lengths=40, fmt_float="full"
        ):
            return str(frame)
    if fmt == "csv":
        text = frame.write_csv(datetime_format=_DATETIME)
    elif fmt == "json":
        text = frame.write_json()
    else:
        text = frame.write_ndjson()
    return text.removesuffix("\n")


def _write_file(path: Path, write: Callable[[], object]) -> None:
    try:
        write()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise WarehouseError(f"cannot write {path}: {exc}") from exc
