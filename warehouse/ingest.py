"""Ingest: bars from the files users have (CSV, Parquet, NDJSON) and from frames, in batches.

`ingest` reads each input with DuckDB, in Arrow batches of ``batch_rows`` rows (never a row at
a time in Python, and never a whole file in memory), maps its columns onto the bar's, converts
its timestamps, validates every row, and only once every input was read and found good stores
the bars (`Warehouse.extend`, a flush per batch). Two steps, so that a bad row anywhere stores
nothing: `scan` reads and validates, keeping the valid rows in a `Staged` set (in memory up to
``spill_bytes``, beyond in an Arrow file on disk), and `Staged.store` feeds them in.

Columns are matched without regard to case (``Open``, ``OPEN``): each bar field takes the
column of its own name, else one of a few names vendors use (``datetime``/``date``/``time``/
``timestamp``/``t`` for ``ts``, ``ticker`` for ``symbol``, ``o h l c v vw n`` as in Polygon's
and Alpaca's files, ...), else the column named by an option (``symbol_col``, ``ts_col``,
``rename``). ``symbol`` gives the symbol of a single-symbol file. A date column and a time of
day column (``Date``/``Time``, ``TradeDate``/``TradeTime``, or ``ts_col`` and ``time_col``) are
read together as ts. Other columns are ignored (`IngestResult.ignored`).

Timestamps become UTC instants:

- timestamps with a zone (Parquet, Arrow): as they are;
- ISO 8601 strings with an offset (``2024-11-21T09:30:00-05:00``, ``...Z``): as they say;
- strings without an offset, dates, and naive timestamps: local times of ``tz`` (an IANA zone,
  ``America/New_York`` or ``UTC``), which must then be given; a string with an offset keeps
  its own offset even then. A local time the clocks pass twice (a daylight-saving change
  back) is a bad row naming both instants, unless ``ambiguous`` picks one; one they skip is a
  bad row;
- ``ts_format`` (strptime codes, ``%m/%d/%Y %H:%M``) for strings in another form;
- integers (and floats) are epochs in ``ts_unit`` (``s``, ``ms``, ``us`` or ``ns``). Without
  ``ts_unit`` they are refused, unless every value plainly is microseconds (the unit of
  `Bar.ts`): between 1973-03-03 and 2200-01-01 as microseconds. The four units' ranges over
  those years do not overlap, so a file's unit shows: epoch seconds (1,732,199,400) are never
  taken as microseconds of January 1970, and a ``ts_unit`` the values plainly contradict (seconds
  said to be milliseconds) is refused as well, naming the unit they look like.

A problem with the input as a whole (a missing file, a missing or mistyped column, naive times
without ``tz``, integers without their unit, a file DuckDB cannot parse, a date-only ts that
puts most of a file's rows on another's key) raises `IngestError` whatever ``on_invalid`` says.
A bad row (a value that does not parse, a crossed bar, a null price, a bar outside the open
session, two rows of one symbol and ts unless ``on_duplicate="last"``) follows
``on_invalid``: ``"raise"`` refuses the whole
ingest, naming the file, row and column; ``"skip"`` stores the other rows; ``"report"`` also
returns every rejected row (`INGEST_REJECTS_SCHEMA`). Rows are counted from 1, the header not
counted (in a CSV file with a header, row N is on line N + 1).
"""

from __future__ import annotations

import glob
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse._columns import (
    NAIVE_HINT,
    NO_OFFSET,
    Ambiguous,
    ColumnOptions,
    Plan,
    literal,
    match_columns,
    plan_select,
    resolve_local,
)
from warehouse._files import identity
from warehouse.archive import duckdb_path
from warehouse.buffer import OnInvalid
from warehouse.errors import ExportError, IngestError, InvalidBarError, SchemaMismatchError
from warehouse.schema import (
    BAR_SCHEMA,
    COLUMNS,
    MIN_TS,
    MINUTE,
    REJECTS_SCHEMA,
    TS_TYPE,
    TsUnit,
    describe_epoch,
    frame_to_arrow,
    partition,
    plain_unit,
)
from warehouse.warehouse import Warehouse

__all__ = [
    "BATCH_ROWS",
    "INGEST_REJECTS_SCHEMA",
    "Ambiguous",
    "IngestResult",
    "OnDuplicate",
    "Progress",
    "Staged",
    "ingest",
    "input_files",
    "scan",
]

#: Rows per batch read (a batch is validated and stored as one Arrow table).
BATCH_ROWS = 200_000
#: Rows per `Warehouse.extend` when the staged rows are stored: large tables, as extend is
#: cheapest per bar when each symbol has more bars in a table than its window holds.
STORE_ROWS = 1_000_000
#: Valid rows kept in memory until they are stored; beyond, they wait in an Arrow file.
SPILL_BYTES = 256 * 2**20
#: Called as an ingest goes: ("read", rows read so far) while inputs are read and checked,
#: then ("store", rows stored so far).
Progress = Callable[[str, int], None]
Format = Literal["csv", "parquet", "json"]
#: Two rows of one symbol and ts in one ingest: bad rows (``invalid``), or the last one stored.
OnDuplicate = Literal["invalid", "last"]

#: Each rejected row: where it was (``file``; ``row``, from 1; the source ``column`` at fault),
#: then what `warehouse.schema.REJECTS_SCHEMA` says of it (its ``row`` index left out).
INGEST_REJECTS_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("column", pa.string()),
        *(f for f in REJECTS_SCHEMA if f.name != "row"),
    ]
)

#: The bar columns, any of them null (as rejected rows hold them).
_BARS = pa.schema([pa.field(f.name, f.type) for f in BAR_SCHEMA])
#: File suffixes by format (a ``.gz`` after any of them is read too).
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "json",
    ".jsonl": "json",
    ".json": "json",
}
_UNIT_WORDS: dict[TsUnit, str] = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
}


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did.

    Attributes
    ----------
    files
        The inputs read, in order (a frame is ``"<frame>"``).
    rows
        Rows read from them.
    added
        Bars stored (a bar replacing an earlier one of its symbol and ts counts).
    rejected
        Rows refused: their number (``on_invalid`` ``"skip"`` or ``"report"``).
    rejects
        With ``"report"``, each refused row (`INGEST_REJECTS_SCHEMA`); empty otherwise.
    replaced
        Bars that replaced one of the same (symbol, ts) held before or earlier in the input.
    ignored
        Columns of the inputs no bar field took, by file.
    seconds
        Wall time, reading and storing.
    """

    files: tuple[str, ...]
    rows: int
    added: int
    rejected: int
    rejects: pa.Table
    replaced: int
    ignored: dict[str, tuple[str, ...]]
    seconds: float

    @property
    def rate(self) -> float:
        """Bars stored per second, reading included."""
        return self.added / self.seconds if self.seconds > 0 else 0.0

    def __repr__(self) -> str:
        # One line: the rejects are a table (its repr is a box of rows), counted here instead.
        ignored = sum(len(columns) for columns in self.ignored.values())
        return (f"IngestResult(files={len(self.files)}, rows={self.rows}, added={self.added}, "
                f"rejected={self.rejected}, replaced={self.replaced}, "
                f"ignored_columns={ignored}, seconds={self.seconds:.3f})")


def ingest(
    wh: Warehouse,
    source: str | Path | object | Sequence[str | Path],
    *,
    symbol: str | None = None,
    symbol_col: str | None = None,
    ts_col: str | None = None,
    time_col: str | None = None,
    rename: Mapping[str, str] | None = None,
    tz: str | None = None,
    ts_unit: TsUnit | None = None,
    ts_format: str | None = None,
    ambiguous: Ambiguous = "invalid",
    on_duplicate: OnDuplicate = "invalid",
    on_invalid: OnInvalid = "raise",
    batch_rows: int = BATCH_ROWS,
    spill_bytes: int = SPILL_BYTES,
    staging_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Read files (or a frame) of bars into a warehouse: `scan`, then `Staged.store`.

    Parameters
    ----------
    wh
        The warehouse the bars go to (open for writing).
    source
        A file, a folder (its ``.csv``, ``.parquet``, ``.ndjson``/``.jsonl``/``.json`` files,
        recursively), a glob pattern (``data/*.csv``, ``**`` too), a list of those, or a
        frame: a pyarrow Table or RecordBatch, a polars or pandas DataFrame.
    symbol
        The symbol of every row (a single-symbol file); the file's symbol column, if any, is
        then ignored.
    symbol_col, ts_col
        The column holding the symbol, the timestamp (matched without regard to case).
    time_col
        The column holding the time of day, where ts's column holds its date: the two are read
        as one timestamp (``"2025-11-21" "09:30:00"``). A date column and a time column (named
        ``Date``/``Time``, ``TradeDate``/``TradeTime``, ...) are found without it.
    rename
        More columns for bar fields, source name to field (``{"Vol": "volume"}``).
    tz
        The zone of timestamps without an offset (naive times, dates); see the module notes.
    ts_unit
        The unit of integer epoch timestamps: ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``.
    ts_format
        strptime codes for timestamp strings that are not ISO 8601 (``"%m/%d/%Y %H:%M"``).
    ambiguous
        A local time the clocks pass twice (they go back): ``"invalid"`` (default), a bad row
        that follows ``on_invalid``; ``"earliest"`` or ``"latest"``, the first or second
        instant it names. A local time they skip is always a bad row.
    on_duplicate
        Two rows of one symbol and ts in the inputs: ``"invalid"`` (default), both are bad
        rows that follow ``on_invalid``; ``"last"``, the last one read is stored. A bar held
        before the ingest is replaced by the ingest's, whatever this says.
    on_invalid
        ``"raise"`` (default): a bad row stores nothing of any input. ``"skip"``: the valid
        rows are stored. ``"report"``: as skip, with every refused row in the result.
    batch_rows
        Rows per batch read, validated and stored.
    spill_bytes
        Valid rows kept in memory before they wait in an Arrow file under ``staging_dir``.
    staging_dir
        Where that file goes (default: the system's temporary folder).
    progress
        Called as batches are read and stored (`Progress`).

    Returns
    -------
    IngestResult

    Raises
    ------
    IngestError
        Naming the file, row and column at fault; nothing is stored (see the module notes for
        which problems follow ``on_invalid``).

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"Date": ["2024-01-02"], "Open": [187.15], "High": [188.44],
    ...                       "Low": [183.89], "Close": [185.64], "Volume": [82_488_700]})
    >>> with Warehouse(":memory:") as wh:
    ...     result = ingest(wh, frame, symbol="AAPL", tz="America/New_York")
    ...     result.added, wh.latest("AAPL").time.isoformat()
    (1, '2024-01-02T05:00:00+00:00')
    """
    started = time.perf_counter()
    with scan(
        source,
        symbol=symbol,
        symbol_col=symbol_col,
        ts_col=ts_col,
        time_col=time_col,
        rename=rename,
        tz=tz,
        ts_unit=ts_unit,
        ts_format=ts_format,
        ambiguous=ambiguous,
        on_duplicate=on_duplicate,
        on_invalid=on_invalid,
        batch_rows=batch_rows,
        spill_bytes=spill_bytes,
        staging_dir=staging_dir,
        progress=progress,
    ) as staged:
        return staged.store(wh, progress=progress, started=started)


def scan(
    source: str | Path | object | Sequence[str | Path],
    *,
    symbol: str | None = None,
    symbol_col: str | None = None,
    ts_col: str | None = None,
    time_col: str | None = None,
    rename: Mapping[str, str] | None = None,
    tz: str | None = None,
    ts_unit: TsUnit | None = None,
    ts_format: str | None = None,
    ambiguous: Ambiguous = "invalid",
    on_duplicate: OnDuplicate = "invalid",
    on_invalid: OnInvalid = "raise",
    batch_rows: int = BATCH_ROWS,
    spill_bytes: int = SPILL_BYTES,
    staging_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> Staged:
    """Read and validate every input, storing nothing: the first step of `ingest`.

    Takes `ingest`'s arguments but the warehouse; returns the valid rows as a `Staged` set
    (close it, or use it as a context manager, to free its memory and file).

    Raises
    ------
    IngestError
        As `ingest` does.
    """
    if on_invalid not in ("raise", "skip", "report"):
        raise ValueError(f"on_invalid must be 'raise', 'skip' or 'report', got {on_invalid!r}")
    if on_duplicate not in get_args(OnDuplicate):
        raise ValueError(f"on_duplicate must be 'invalid' or 'last', got {on_duplicate!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    columns = ColumnOptions.of(
        symbol=symbol,
        symbol_col=symbol_col,
        ts_col=ts_col,
        time_col=time_col,
        rename=rename,
        tz=tz,
        ts_unit=ts_unit,
        ts_format=ts_format,
        ambiguous=ambiguous,
    )
    options = _Options(columns, on_invalid, batch_rows)
    inputs = _inputs(source)
    staged = Staged(on_invalid, spill_bytes, staging_dir, keyed=on_duplicate == "invalid")
    try:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")  # DESIGN.md: pin it; epochs are UTC
            for index, item in enumerate(inputs):
                _read_input(con, item, index, options, staged, progress)
        finally:
            con.close()
        staged.seal()
        staged.refuse_duplicates(tz)
    except BaseException:
        staged.close()
        raise
    return staged


def input_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files that paths name: files as they are, folders' data files, glob matches.

    Each file once, whatever names reach it (a hard link, a symlink, a folder and a pattern
    over it): files are told apart by device and inode, the first name in path order is kept.
    Folders are read recursively, a folder symlink followed only to a folder not walked yet,
    so a link back up the tree (a loop) is never followed and no folder is read twice. In a
    folder, file names starting with ``.`` or ``_`` are skipped (as dataset readers do).

    Raises
    ------
    IngestError
        A path that does not exist, a pattern or folder that holds no data file, or a file of
        a format not known by its suffix.
    """
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for folder in _folders(path)
                for p in _listing(folder)
                if p.is_file() and _format_of(p) and not p.name.startswith((".", "_"))
            )
            if not found:
                raise IngestError(str(path), "holds no .csv, .parquet or .ndjson file")
        elif path.is_file():
            if _format_of(path) is None:
                raise IngestError(
                    str(path),
                    "is not a .csv, .parquet, .ndjson or .jsonl file "
                    "(optionally .gz); rename it to say its format",
                )
            found = [path]
        elif glob.has_magic(str(item)):
            found = sorted(p for p in _glob(str(item)) if p.is_file() and _format_of(p))
            if not found:
                raise IngestError(str(item), "matches no .csv, .parquet or .ndjson file")
        else:
            raise IngestError(str(path), "does not exist")
        for file in found:
            key = identity(file)
            if key is not None and key not in seen:
                seen.add(key)
                files.append(file)
    return files


def _folders(top: Path, *, hidden: bool = True) -> Iterator[Path]:
    """``top`` and the folders under it, in name order, each real folder once (see input_files).

    ``hidden=False`` leaves out folders whose names start with a dot, as a ``**`` of glob does.
    """
    seen: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        key = identity(folder)
        if key is None or key in seen:  # gone, or reached again through a symlink
            continue
        seen.add(key)
        yield folder
        inner = [p for p in _listing(folder)
                 if (hidden or not p.name.startswith(".")) and p.is_dir()]
        stack.extend(reversed(inner))


def _listing(folder: Path) -> list[Path]:
    """A folder's entries in name order; none if it cannot be listed."""
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _glob(pattern: str) -> Iterator[Path]:
    """What a glob pattern matches, ``**`` walking folders as `_folders` does (no loops).

    glob.glob follows every folder symlink under ``**``: a link back up the tree makes it read
    the same files again down to the kernel's 40 links, and two such links never end. A
    pattern without ``**`` reads each part one level deep, so glob.glob is used for it.
    """
    parts = Path(pattern).parts
    if "**" not in parts:
        # glob.glob, not Path.glob: a pattern may be absolute (/data/*.csv).
        yield from map(Path, glob.glob(pattern))  # noqa: PTH207
        return
    at = parts.index("**")
    head = str(Path(*parts[:at])) if at else "."
    rest = parts[at + 1 :]
    bases = glob.glob(head) if glob.has_magic(head) else [head]  # noqa: PTH207
    for base in map(Path, bases):
        if not base.is_dir():
            continue
        for folder in _folders(base, hidden=False):
            below = glob.escape(str(folder))
            if rest:
                yield from _glob(str(Path(below, *rest)))
            else:  # a trailing ** matches what the folders hold
                yield from _glob(str(Path(below, "*")))


# -- the staged rows ------------------------------------------------------------------------------


class Staged:
    """The valid rows of a `scan`, waiting to be stored, and the rows it refused.

    In memory up to ``spill_bytes``; beyond, in an Arrow IPC file in ``staging_dir``, read back
    memory-mapped. Each staged table holds the bar columns and where each row came from.
    """

    def __init__(
        self,
        on_invalid: OnInvalid,
        spill_bytes: int,
        staging_dir: str | Path | None,
        *,
        keyed: bool = False,
    ) -> None:
        self.on_invalid: OnInvalid = on_invalid
        self.files: list[str] = []
        self.ts_columns: list[str | None] = []
        #: Per input: every ts of it is a date without a time of day (local midnight).
        self.date_only: list[bool] = []
        self.ignored: dict[str, tuple[str, ...]] = {}
        self.rows = 0
        self.staged = 0
        self.rejected = 0
        self._rejects: list[pa.Table] = []
        self._tables: list[pa.Table] = []
        self._bytes = 0
        self._spill_bytes = spill_bytes
        self._staging_dir = staging_dir
        self._folder: str | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sealed = False
        # keyed: a hash of each staged row's (symbol, ts), in staging order, to find the rows
        # of one key (8 bytes a row, while the rows may wait on disk).
        self._keys: list[np.ndarray] | None = [] if keyed else None
        self._file_rows: dict[int, int] = {}  # rows staged per input
        self._dropped: np.ndarray | None = None  # staged positions refused after staging
        self.started = time.perf_counter()

    @property
    def rejects(self) -> pa.Table:
        """The rows refused so far (with ``"report"``; empty otherwise)."""
        if not self._rejects:
            return INGEST_REJECTS_SCHEMA.empty_table()
        return pa.concat_tables(self._rejects)

    def add(self, table: pa.Table) -> None:
        """Stage valid rows (bar columns, then ``_file`` and ``_row``)."""
        if not table.num_rows:
            return
        self.staged += table.num_rows
        index = table.column("_file")[0].as_py()
        self._file_rows[index] = self._file_rows.get(index, 0) + table.num_rows
        if self._keys is not None:
            self._keys.append(pl.DataFrame(table.select(["symbol", "ts"])).hash_rows().to_numpy())
        if self._writer is None and self._bytes + table.nbytes <= self._spill_bytes:
            self._tables.append(table)
            self._bytes += table.nbytes
            return
        if self._writer is None:
            self._folder = tempfile.mkdtemp(prefix="warehouse-ingest-", dir=self._staging_dir)
            self._writer = pa.ipc.new_stream(f"{self._folder}/staged.arrow", _STAGED_SCHEMA)
            for held in self._tables:
                self._writer.write_table(held)
            self._tables = []
        self._writer.write_table(table)

    def refuse(self, rejects: pa.Table) -> None:
        """Count refused rows; keep them with ``"report"``."""
        self.rejected += rejects.num_rows
        if self.on_invalid == "report" and rejects.num_rows:
            self._rejects.append(rejects)

    def seal(self) -> None:
        """Every input is read: close the spill file for reading."""
        if self._writer is not None:
            self._writer.close()
        self._sealed = True

    def tables(self, rows: int = STORE_ROWS) -> Iterator[pa.Table]:
        """The staged rows, in input order, in tables of even size, at most about ``rows``.

        Even: a small last table would cost more than its share, since each symbol's recent
        bars are rebuilt per table that holds few of its bars (see `HotState.apply`).
        """
        if not self.staged:
            return
        size = -(-self.staged // max(1, -(-self.staged // rows)))  # staged / ceil(staged / rows)
        waiting: list[pa.Table] = []
        count = 0
        for start, table in self._sources():
            if self._dropped is not None:
                dropped = self._dropped[
                    np.searchsorted(self._dropped, start) : np.searchsorted(
                        self._dropped, start + table.num_rows
                    )
                ]
                if len(dropped):
                    kept = np.ones(table.num_rows, dtype=bool)
                    kept[dropped - start] = False
                    table = table.filter(pa.array(kept))
            waiting.append(table)
            count += table.num_rows
            while count >= size:
                joined = pa.concat_tables(waiting)
                yield joined.slice(0, size)
                waiting, count = [joined.slice(size)], count - size
        if count:
            yield pa.concat_tables(waiting)

    def _sources(self) -> Iterator[tuple[int, pa.Table]]:
        """Each table staged, as it was added, with the staged position of its first row."""
        if self._folder is None:
            tables: Iterable[pa.Table] = self._tables
        else:
            reader = pa.ipc.open_stream(pa.memory_map(f"{self._folder}/staged.arrow"))
            tables = (pa.Table.from_batches([b], _STAGED_SCHEMA) for b in reader)
        start = 0
        for table in tables:
            yield start, table
            start += table.num_rows

    def _take(self, positions: np.ndarray) -> pa.Table:
        """The staged rows at ``positions`` (sorted), in that order."""
        parts = [_STAGED_SCHEMA.empty_table()]
        for start, table in self._sources():
            low, high = np.searchsorted(positions, [start, start + table.num_rows])
            if high > low:
                parts.append(table.take(pa.array(positions[low:high] - start)))
        return pa.concat_tables(parts)

    def refuse_duplicates(self, tz: str | None) -> None:
        """Refuse the rows of a symbol and ts another row has, as ``on_invalid`` says.

        A date-only ts whose dates put most of its input's rows on the key of another is the
        input's problem (a time of day in another column, most likely) and raises.

        Raises
        ------
        IngestError
            With ``"raise"``, at the first such row; whatever ``on_invalid`` says, for a date
            column that collapses its input's rows.
        """
        if not self._keys:
            return
        keys = np.concatenate(self._keys)
        ordered = np.sort(keys)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(twice):
            return
        # The rows whose hash another row has, grouped by the key itself (a hash may collide).
        positions = np.flatnonzero(np.isin(keys, twice))
        rows = self._take(positions)
        groups = [
            np.array(g)
            for g in pl.DataFrame(rows.select(["symbol", "ts"]))
            .with_row_index("at")
            .group_by(["symbol", "ts"], maintain_order=True)
            .agg("at")
            .filter(pl.col("at").list.len() > 1)["at"]
            .to_list()
        ]
        if not groups:
            return
        files = rows.column("_file").to_numpy()
        numbers = rows.column("_row").to_numpy()
        self._refuse_collapse(groups, rows, files, numbers, tz)
        reasons: dict[int, str] = {}
        for group in groups:
            for at in group:
                here = [str(numbers[o]) for o in group if o != at and files[o] == files[at]]
                places = [f"row{'s' if len(here) > 1 else ''} {_listed(here)}"] if here else []
                places += [
                    f"row {numbers[o]} of {self.files[files[o]]}"
                    for o in group
                    if files[o] != files[at]
                ]
                reasons[int(at)] = (
                    f"is also on {_listed(places)} (one symbol and ts twice in one ingest); keep "
                    "the last with --on-duplicate last, or correct the input"
                )
        refused = np.array(sorted(reasons))
        out = rows.take(pa.array(refused))
        errors = [
            InvalidBarError(symbol, ts, "ts", text, reasons[int(at)])
            for symbol, ts, text, at in zip(
                out.column("symbol").to_pylist(),
                out.column("ts").cast(pa.int64()).to_pylist(),
                out.column("ts").cast(pa.string()).to_pylist(),
                refused,
                strict=True,
            )
        ]
        self._refuse_ts(out, errors, raising=self.on_invalid == "raise")
        self._dropped = positions[refused]
        self.staged -= len(refused)

    def _refuse_collapse(
        self,
        groups: list[np.ndarray],
        rows: pa.Table,
        files: np.ndarray,
        numbers: np.ndarray,
        tz: str | None,
    ) -> None:
        """Raise if a date-only ts puts at least half of its input's rows on another's key."""
        for index, date_only in enumerate(self.date_only):
            if not date_only:
                continue
            mine = [g[files[g] == index] for g in groups]
            mine = [g for g in mine if len(g) > 1]
            shared = sum(len(g) for g in mine)
            if not mine or 2 * shared < self._file_rows.get(index, 0):
                continue
            first = mine[0]
            symbol = rows.column("symbol")[int(first[0])].as_py()
            ts = rows.column("ts")[int(first[0])].as_py()
            day = ts.astimezone(ZoneInfo(tz or "UTC")).date()
            name = self.files[index]
            clocks = [c for c in self.ignored.get(name, ()) if "time" in c.lower()]
            column = clocks[0] if len(clocks) == 1 else "NAME"
            raise IngestError(
                name,
                f"column {self.ts_columns[index]!r} holds dates without a time of day, and "
                f"{shared} of its {self._file_rows[index]} rows share their symbol and date with "
                f"another (rows {numbers[first[0]]} and {numbers[first[1]]}: {symbol!r} on "
                f"{day}); if the time of day is in a column of its own, pass it: --time-col "
                f"{column}",
            )

    def store(
        self, wh: Warehouse, *, progress: Progress | None = None, started: float | None = None
    ) -> IngestResult:
        """Feed the staged rows into ``wh`` (`Warehouse.extend`, then a flush, per batch).

        Rows outside the window of a session ``wh`` holds open are refused as ``on_invalid``
        says; with ``"raise"`` that is found before anything is stored.

        Raises
        ------
        IngestError
            With ``"raise"``, a row outside the open session (nothing is stored).
        WarehouseError
            What `Warehouse.extend` or `Warehouse.flush` raise (a closed warehouse, a full
            disk): the batches before it are stored.
        """
        if not self._sealed:
            raise ValueError("Staged.store: the scan has not finished")
        session = wh.session
        window: tuple[int, int] | None = None
        if session is not None:
            window = (session.open, session.close) if session.status == "open" else (MIN_TS, MIN_TS)
            if self.on_invalid == "raise":
                for table in self.tables():
                    self._split_window(table, window, session.refusal, raising=True)
        replaced = wh.replacements
        added = 0
        for table in self.tables():
            if window is not None and session is not None:
                table = self._split_window(table, window, session.refusal, raising=False)
            if table.num_rows:
                added += wh.extend(table.select(list(COLUMNS)))
                wh.flush()
            if progress is not None:
                progress("store", added)
        wh.flush()
        begun = self.started if started is None else started
        return IngestResult(
            files=tuple(self.files),
            rows=self.rows,
            added=added,
            rejected=self.rejected,
            rejects=self.rejects,
            replaced=wh.replacements - replaced,
            ignored=self.ignored,
            seconds=time.perf_counter() - begun,
        )

    def _split_window(
        self,
        table: pa.Table,
        window: tuple[int, int],
        refusal: Callable[[str, int], InvalidBarError],
        *,
        raising: bool,
    ) -> pa.Table:
        """The rows inside the session's window; the others raise or are refused."""
        ts = table.column("ts").cast(pa.int64())
        inside = pc.and_(pc.greater_equal(ts, window[0]), pc.less(ts, window[1]))
        if pc.all(inside).as_py():
            return table
        rows = np.flatnonzero(~inside.to_numpy(zero_copy_only=False))
        out = table.take(pa.array(rows))
        symbols = out.column("symbol").to_pylist()
        stamps = out.column("ts").cast(pa.int64()).to_pylist()
        errors = [refusal(s, t) for s, t in zip(symbols, stamps, strict=True)]
        self._refuse_ts(out, errors, raising=raising)
        return table.filter(inside)

    def _refuse_ts(self, out: pa.Table, errors: list[InvalidBarError], *, raising: bool) -> None:
        """Refuse staged rows for their ts, each with its error; or raise the first one's."""
        inputs = out.column("_file").to_pylist()
        columns = [self.ts_columns[i] for i in inputs]
        if raising:
            raise IngestError(
                self.files[inputs[0]],
                str(errors[0]),
                row=out.column("_row")[0].as_py(),
                column=columns[0],
            )
        self.refuse(
            pa.Table.from_arrays(
                [
                    pa.array([self.files[i] for i in inputs], pa.string()),
                    out.column("_row"),
                    pa.array(columns, pa.string()),
                    pa.array(["ts"] * len(errors), pa.string()),
                    pa.array([str(e.value) for e in errors], pa.string()),
                    pa.array([e.reason for e in errors], pa.string()),
                    *out.select(list(COLUMNS)).cast(_BARS).columns,
                ],
                schema=INGEST_REJECTS_SCHEMA,
            )
        )

    def close(self) -> None:
        """Free the staged rows and remove the spill file. Idempotent."""
        if self._writer is not None and not self._sealed:
            self._writer.close()
        self._writer = None
        self._tables = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> Staged:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_STAGED_SCHEMA = pa.schema(
    [
        *BAR_SCHEMA,
        pa.field("_file", pa.int32(), nullable=False),
        pa.field("_row", pa.int64(), nullable=False),
    ]
)


# -- options and inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    columns: ColumnOptions
    on_invalid: OnInvalid
    batch_rows: int


@dataclass(frozen=True)
class _Input:
    name: str  # for messages
    format: Format | Literal["frame"]
    path: Path | None = None
    frame: pa.Table | None = None


def _inputs(source: object) -> list[_Input]:
    if isinstance(source, str | Path):
        paths: list[str | Path] = [source]
    elif isinstance(source, Sequence) and all(isinstance(p, str | Path) for p in source):
        paths = list(source)
    else:
        try:
            frame = frame_to_arrow(source)
        except SchemaMismatchError as exc:
            raise IngestError(
                None,
                f"cannot ingest a {type(source).__name__}: pass files, "
                "folders or glob patterns, or a pyarrow, polars or pandas "
                "frame",
            ) from exc
        return [_Input("<frame>", "frame", frame=frame)]
    if not paths:
        raise IngestError(None, "no input: pass files, folders or glob patterns")
    files = input_files(paths)
    return [_Input(str(p), _format_of(p) or "csv", path=p) for p in files]


def _format_of(path: Path) -> Format | None:
    name = path.name.lower().removesuffix(".gz")
    return _SUFFIXES.get(Path(name).suffix)


# -- reading one input ----------------------------------------------------------------------------


def _read_input(
    con: duckdb.DuckDBPyConnection,
    item: _Input,
    index: int,
    options: _Options,
    staged: Staged,
    progress: Progress | None,
) -> None:
    staged.files.append(item.name)
    if item.path is not None and item.path.stat().st_size == 0:
        raise IngestError(item.name, "is empty")
    try:
        described = con.sql(f"DESCRIBE SELECT * FROM {_relation(con, item)}").fetchall()
    except duckdb.Error as exc:
        raise IngestError(item.name, f"cannot be read as {item.format}: {_one_line(exc)}") from exc
    types = {row[0]: str(row[1]) for row in described}
    if item.format == "csv" and len(types) == 1:
        (only,) = types
        if any(mark in only for mark in ",;\t|"):
            raise IngestError(
                item.name,
                f"cannot be split into columns: its header is "
                f"{only!r}, but no delimiter splits every row alike (a row with "
                "more or fewer fields?)",
            )
    columns = match_columns(item.name, list(types), options.columns)
    text = item.format in ("csv", "json")
    # A text file is read as text: its values are converted by the SELECT (see plan_select).
    relation = _relation(con, item, [c for c in columns.values() if c] if text else None)
    plan = plan_select(item.name, relation, types, columns, options.columns, text=text)
    staged.ts_columns.append(plan.columns["ts"])
    staged.date_only.append(plan.local)
    if plan.ignored:
        staged.ignored[item.name] = plan.ignored
    first = 1
    try:
        reader = con.sql(plan.sql).to_arrow_reader(options.batch_rows)
        for batch in reader:
            _check_batch(item, batch, first, plan, options, index, staged)
            first += batch.num_rows
            staged.rows += batch.num_rows
            if progress is not None:
                progress("read", staged.rows)
    except duckdb.Error as exc:
        raise IngestError(item.name, f"cannot be read: {_one_line(exc)}") from exc
    except pa.ArrowException as exc:  # DuckDB's errors can surface through the Arrow stream
        raise IngestError(item.name, f"cannot be read: {_one_line(exc)}") from exc


def _relation(
    con: duckdb.DuckDBPyConnection, item: _Input, as_text: list[str] | None = None
) -> str:
    """The table function (or registered frame) that reads an input, as SQL.

    ``as_text``: read a CSV or NDJSON file's values as text, these columns at least.
    """
    if item.frame is not None:
        con.register("ingest_frame", item.frame)
        return "ingest_frame"
    assert item.path is not None
    try:
        path = literal(duckdb_path(item.path))
    except ExportError as exc:
        raise IngestError(item.name, str(exc)) from exc
    if item.format == "parquet":
        return f"read_parquet({path})"
    if item.format == "json":
        columns = ""
        if as_text is not None:
            listed = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in as_text)
            columns = f", columns = {{{listed}}}"
        return f"read_json({path}, format = 'auto'{columns})"
    # The header is the first line (skip = 0): DuckDB's sniffer may otherwise skip lines to
    # find a steadier layout, and take a row of data for the header.
    text = "" if as_text is None else ", all_varchar = true"
    return f"read_csv({path}, header = true, skip = 0{text})"


# -- checking one batch ---------------------------------------------------------------------------


def _check_batch(
    item: _Input,
    batch: pa.RecordBatch,
    first: int,
    plan: Plan,
    options: _Options,
    index: int,
    staged: Staged,
) -> None:
    """Validate one batch read: stage its valid rows, refuse (or raise for) the others."""
    n = batch.num_rows
    if not n:
        return
    rows = np.arange(first, first + n, dtype=np.int64)  # each row's number in the file
    if plan.epoch:
        _check_unit(item.name, batch.column("ts_number"), rows, plan)
    if plan.local:
        assert options.columns.tz is not None
        if staged.date_only[index]:
            walls = pc.fill_null(batch.column("ts"), 0).to_numpy()
            staged.date_only[index] = not np.any(walls % (24 * 60 * MINUTE))
        batch = resolve_local(batch, options.columns.tz, options.columns.ambiguous)
    reasons = batch.column("_bad_reason")
    if reasons.null_count < n:
        naive = pc.fill_null(pc.equal(reasons, NO_OFFSET), False)
        if pc.any(naive).as_py():
            at = int(pc.index(naive, True).as_py())
            value = batch.column("_bad_value")[at].as_py()
            raise IngestError(
                item.name,
                f"{value!r} {NO_OFFSET}; {NAIVE_HINT}",
                row=int(rows[at]),
                column=plan.columns["ts"],
            )
    table = pa.Table.from_batches([batch]).select(list(COLUMNS))
    table = table.set_column(1, "ts", table.column("ts").cast(TS_TYPE))
    # Rows with a value that did not parse are refused as such; the rest is validated.
    failed = np.flatnonzero(pc.is_valid(batch.column("_bad_field")).to_numpy(zero_copy_only=False))
    parts = []
    if len(failed):
        taken = pa.array(failed)
        values = batch.column("_bad_value").take(taken).to_pylist()
        why = batch.column("_bad_reason").take(taken).to_pylist()
        parts.append(
            pa.Table.from_arrays(
                [
                    taken,
                    batch.column("_bad_field").take(taken).cast(pa.string()),
                    batch.column("_bad_value").take(taken).cast(pa.string()),
                    pa.array([f"{v!r} {r}" for v, r in zip(values, why, strict=True)], pa.string()),
                    *table.take(taken).cast(_BARS).columns,
                ],
                schema=REJECTS_SCHEMA,
            )
        )
        others = np.flatnonzero(np.isin(np.arange(n), failed, invert=True))
        table = table.take(pa.array(others))
    else:
        others = np.arange(n)
    valid, invalid = partition(table)
    if invalid.num_rows:
        parts.append(
            invalid.set_column(0, "row", pa.array(others[invalid.column("row").to_numpy()]))
        )
    if parts:
        rejected = pa.concat_tables(parts).sort_by("row")
        if options.on_invalid == "raise":
            raise _row_error(item.name, rejected, rows, plan, parsed=set(failed.tolist()))
        positions = rejected.column("row").to_numpy()
        staged.refuse(
            pa.Table.from_arrays(
                [
                    pa.array([item.name] * rejected.num_rows, pa.string()),
                    pa.array(rows[positions]),
                    pa.array(
                        [plan.columns.get(f) for f in rejected.column("field").to_pylist()],
                        pa.string(),
                    ),
                    *rejected.drop_columns(["row"]).columns,
                ],
                schema=INGEST_REJECTS_SCHEMA,
            )
        )
        kept = np.ones(n, dtype=bool)
        kept[positions] = False
        rows = rows[kept]
    staged.add(
        valid.append_column(
            pa.field("_file", pa.int32(), nullable=False),
            pa.array(np.full(valid.num_rows, index, dtype=np.int32)),
        ).append_column(pa.field("_row", pa.int64(), nullable=False), pa.array(rows))
    )


def _check_unit(name: str, number: pa.Array, rows: np.ndarray, plan: Plan) -> None:
    """Refuse integer epochs whose unit is not said, or that plainly are another unit.

    The unit is judged on the finite values alone: an infinity or a NaN is its row's problem
    (refused as not a finite number), and never hides the unit the other values plainly are.
    """
    finite = pc.fill_null(pc.is_finite(number), False)
    bounds = pc.min_max(number.filter(finite))
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return  # no number here: each row is refused as not one
    looks = plain_unit(int(low), int(high))
    said = plan.unit
    if said is None and looks == "us":
        return
    if said is not None and (looks is None or looks == said):
        return
    at = int(rows[int(pc.index(number, low).as_py())])
    shown = int(low)
    if said is None:
        guess = (
            ""
            if looks is None
            else (
                f"; they look like epoch {_UNIT_WORDS[looks]} ({shown} is "
                f"{describe_epoch(shown, looks)} in {_UNIT_WORDS[looks]}): --ts-unit {looks}"
            )
        )
        reason = (
            f"holds integer timestamps and no unit was said (--ts-unit s, ms, us or "
            f"ns); integers are taken as microseconds only where they plainly are{guess}"
        )
    else:
        assert looks is not None
        reason = (
            f"--ts-unit {said} does not fit the values: {shown} is "
            f"{describe_epoch(shown, said)} in {_UNIT_WORDS[said]}; they look like epoch "
            f"{_UNIT_WORDS[looks]} (--ts-unit {looks})"
        )
    raise IngestError(name, reason, row=at, column=plan.columns["ts"])


def _row_error(
    name: str, rejected: pa.Table, rows: np.ndarray, plan: Plan, *, parsed: set[int]
) -> IngestError:
    """The raise-mode error of a batch's first rejected row."""
    first = rejected.slice(0, 1).to_pylist()[0]
    if first["row"] in parsed:
        reason = first["reason"]  # a value that did not parse: its text and why
    else:
        ts = rejected.column("ts").cast(pa.int64())[0].as_py()
        reason = str(
            InvalidBarError(first["symbol"], ts, first["field"], first["value"], first["reason"])
        )
    return IngestError(
        name, reason, row=int(rows[first["row"]]), column=plan.columns.get(first["field"])
    )


def _listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip("^ \t"))
