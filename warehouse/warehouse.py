"""`Warehouse`: the facade that owns the buffer, the store, the flusher thread and the lifecycle."""

from __future__ import annotations

import functools
import logging
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, timedelta
from operator import index
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, SupportsIndex, overload

import polars as pl
import pyarrow as pa

from warehouse import quality as _quality
from warehouse._files import FileKey, file_keys
from warehouse.archive import (
    Compression,
    ExportResult,
    Progress,
    export_parquet,
    finish_interrupted_seals,
)
from warehouse.buffer import AppendBuffer, ExtendResult, OnInvalid
from warehouse.calendar import DEFAULT_CODE, Calendar, resolve_code
from warehouse.derive import (
    DEFAULT_DERIVED,
    DerivedBar,
    Deriver,
    Interval,
    derived_steps,
    resample_params,
)
from warehouse.errors import (
    ClosedError,
    EndpointError,
    ExportError,
    SessionError,
    StoreError,
    WarehouseError,
)
from warehouse.history import (
    FilesState,
    Trailing,
    files_state,
    history_files,
    publish_history,
    trailing_stats,
)
from warehouse.joins import AsofJoin, Known, sealed_sessions
from warehouse.journal import Journal, Recovery, has_segments
from warehouse.metrics import SessionMetrics
from warehouse.metrics import frame as metrics_frame
from warehouse.queries import load_queries
from warehouse.scan import Parts, Wanted, archive_days, scan_parts
from warehouse.schema import MAX_TS, MIN_TS, Bar, bars_from_table, frame_to_arrow, from_micros
from warehouse.session import META_KEYS, Session
from warehouse.sources import BarSource, as_source
from warehouse.store import BarStore, Params
from warehouse.upkeep import Upkeep, UpkeepStats

if TYPE_CHECKING:
    from warehouse.endpoint import Certificate, Endpoint, Limits

log = logging.getLogger("warehouse")

#: A prepared session: its window, its symbols' trailing statistics, and the state of the day
#: files they were computed from (`history.files_state`).
_Prepared = tuple[Session, dict[str, Trailing], FilesState | None]
#: The views of bars `Warehouse.asof` joins to.
View = Literal["bars_all", "bars", "history"]


def _calendar_of(
    path: str | Path, given: str | Calendar | None, recorded: Session | None
) -> str | Calendar:
    """The calendar a warehouse takes sessions from: ``given``, else its file's session's.

    Raises
    ------
    SessionError
        The file holds an open session of another exchange than ``given``'s.
    """
    if given is None:
        return DEFAULT_CODE if recorded is None else recorded.calendar
    if recorded is not None and recorded.status == "open":
        code = given.code if isinstance(given, Calendar) else resolve_code(given)
        if code != recorded.calendar:
            raise SessionError(
                f"{path} holds session {recorded.date} of {recorded.calendar}, still open; it "
                f"cannot go on with calendar={code!r}: open it without calendar= (or with "
                f"{recorded.calendar!r}), and end_session() before taking {code} sessions"
            )
    return given


class Warehouse:
    """A trading session's bars: hot reads from memory, SQL and Polars over DuckDB, Parquet out.

    Parameters
    ----------
    path
        The DuckDB file (created if missing; reopening it restores the session), or
        ``":memory:"``.
    flush_rows
        Flush in the background once this many bars wait.
    flush_interval
        Flush in the background at least this often, in seconds; ``None`` flushes only by size
        and on `flush`/`close`.
    window
        Recent bars kept in memory per symbol; ``last_n(s, n)`` with ``n <= window`` and
        ``since`` within the window never touch DuckDB.
    checkpoint_rows
        Checkpoint the DuckDB file (from the flusher thread) after this many flushed bars.
    compact_rows
        Flushes append to a tail table in arrival order; once this many bars wait there, the
        flusher thread moves them into the session table sorted by (symbol, ts), so SQL over
        one symbol skips most of the table. Checkpoints compact too.
    read_only
        Open an existing file for reading only (SQL, Polars, hot reads of stored bars).
    journal
        Also record every bar in ``<path>.journal/`` before `append`/`extend` return, so a
        killed process loses no acknowledged bar; on open, bars journaled but not flushed are
        replayed.
    archive
        The Parquet archive: `export_parquet` writes there by default, and SQL sees its days
        as the view ``history`` (with a ``date`` column), next to today's ``bars``.
    sql_dir
        Read named queries from this folder instead of the package's ``sql/``.
    calendar
        The exchange calendar sessions are taken from (an ``exchange_calendars`` code, or a
        `Calendar`); used only by `start_session`, `prepare_session` and `roll`. By default
        the one of the session the file holds (its ``session.calendar``), else XNYS; another
        one while that session is open raises `SessionError`.
    history_sessions
        How many archived sessions the view ``history`` and the trailing statistics
        (`trailing`) cover: the last ones before the open session's date (None: every day).
    metrics
        Keep each symbol's session metrics as bars arrive (`metrics`, `metrics_frame`); False
        spares the append their small cost, and those reads then raise `WarehouseError`.
    derived
        The derived intervals kept as bars arrive (by default ``("5m", "15m")``; at most four;
        ``()`` for none): `latest_derived` of one of them is a hot read, about as fast as
        `latest`, for a few nanoseconds per appended bar, and so is `last_n_derived` once a
        symbol was read (its finished bars are then cached). Any other interval is computed
        when read (see `warehouse.derive`).

    Attributes
    ----------
    append(symbol, ts, open, high, low, close, volume, vwap=None, trade_count=None)
        Add one bar (`AppendBuffer.append`).
    latest(symbol) -> Bar | None
        The bar with the greatest ts of a symbol: one dict lookup.
    last_n(symbol, n) -> list[Bar]
        The last n bars in ts order.
    since(symbol, ts) -> list[Bar]
        The bars at or after ts, in ts order.
    count(symbol) -> int
        The number of bars of a symbol.
    latest_many(symbols) -> dict[str, Bar | None]
        The latest bar of each symbol.
    metrics(symbol) -> SessionMetrics | None
        The symbol's session open, high, low, close, volume, VWAP, bar count and first and
        last ts, kept as bars arrive (None for a symbol without bars).
    latest_derived(symbol, interval) -> DerivedBar | None
        The newest N-minute bar (``interval``: ``5``, ``"5m"``, ``"1h"``...) anchored to the
        open session's open, flagged ``partial`` while it forms (`warehouse.derive`): kept as
        bars arrive for the ``derived`` intervals, computed on read for any other.
    last_n_derived(symbol, n, interval) -> list[DerivedBar]
        The last n N-minute bars, oldest first: the finished ones cached per symbol read
        for the ``derived`` intervals, computed on read for any other.

    Examples
    --------
    >>> with Warehouse(":memory:") as wh:
    ...     wh.append("AAPL", "2025-11-21T14:30:00Z", 228.1, 228.6, 227.9, 228.4, 51_200)
    ...     wh.latest("AAPL").close, wh.sql("SELECT count(*) AS n FROM bars")["n"][0].as_py()
    (228.4, 1)
    """

    append: Callable[..., None]
    latest: Callable[[str], Bar | None]
    last_n: Callable[[str, int], list[Bar]]
    since: Callable[[str, Any], list[Bar]]
    count: Callable[[str], int]
    latest_many: Callable[[Iterable[str]], dict[str, Bar | None]]
    metrics: Callable[[str], SessionMetrics | None]
    latest_derived: Callable[[str, Interval], DerivedBar | None]
    last_n_derived: Callable[[str, int, Interval], list[DerivedBar]]

    def __init__(
        self,
        path: str | Path = "warehouse.duckdb",
        *,
        flush_rows: int = 100_000,
        flush_interval: float | None = 1.0,
        window: int = 64,
        checkpoint_rows: int = 2_000_000,
        compact_rows: int = 500_000,
        read_only: bool = False,
        journal: bool = False,
        archive: str | Path | None = None,
        sql_dir: str | Path | None = None,
        calendar: str | Calendar | None = None,
        history_sessions: int | None = None,
        metrics: bool = True,
        derived: Iterable[Interval] = DEFAULT_DERIVED,
    ) -> None:
        if flush_interval is not None and flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive or None, got {flush_interval}")
        if journal and (read_only or str(path) == ":memory:"):
            raise ValueError("journal=True needs a warehouse file opened for writing")
        derived = (derived,) if isinstance(derived, (str, int)) else tuple(derived)
        steps = derived_steps(derived)
        queries = load_queries(sql_dir)
        writer = None if read_only or str(path) == ":memory:" else _Writers.claim(path)
        try:
            if not journal and not read_only and has_segments(f"{path}.journal"):
                # Taking bars now would leave the journaled ones to be replayed later, over them.
                raise StoreError(
                    f"{path}.journal holds bars that a crash kept from the file; open it once "
                    "with journal=True to replay them"
                )
            self._store = BarStore(path, read_only=read_only, queries=queries,
                                   compact_rows=compact_rows)
        except BaseException:
            _Writers.release(writer)
            raise
        _Writers.bind(writer, self._store)
        self._writer = writer
        self.queries = self._store.queries
        self.read_only = read_only
        self._wake = threading.Event()
        self._since_checkpoint = 0
        self.flush_seconds: deque[float] = deque(maxlen=10_000)
        self._journal: Journal | None = None
        #: What reopening found in the journal (None without one): see `journal.Recovery`.
        self.recovery: Recovery | None = None
        self.archive = None if archive is None else Path(archive)
        self.history_sessions = history_sessions
        self._trailing: dict[str, Trailing] = {}
        self._prepared: tuple[date, bool, Future[_Prepared]] | None = None
        #: The gap-filling thread of `start_upkeep` (None: never started).
        self.upkeep: Upkeep | None = None
        #: The network endpoint of `serve` (None: never served).
        self.endpoint: Endpoint | None = None
        try:
            if journal:
                self._journal = Journal(f"{path}.journal", self._store.epoch())
            self._buffer = buffer = AppendBuffer(
                window=window, flush_rows=flush_rows, on_full=self._wake.set,
                deep_reader=self._deep_read, journal=self._journal, metrics=metrics,
                fresh_metrics=self._fresh_metrics, derived_steps=steps,
            )
            with self._store.lock:
                buffer.restore(self._store.stored_keys(), self._store.recent_bars(window),
                               self._store.symbol_totals(None) if metrics else None)
            self._deriver = Deriver(buffer.hot, buffer.lock, derived)
            recorded = Session.from_meta({k: self._store.meta(k) for k in META_KEYS})
            self._calendar = _calendar_of(path, calendar, recorded)
            #: The session the warehouse holds (None: no session was ever started; bars of any
            #: time are taken). See `start_session`.
            self.session: Session | None = None
            self._set_session(recorded)
            if self._journal is not None:
                self.recovery = self._journal.replay(
                    lambda table: self._buffer.extend(self._store.bars_not_stored(table)))
                if self.recovery is not None:
                    self._flush()  # seals the open segment; committed, every older one goes
            if self.archive is not None:
                if not read_only:
                    finish_interrupted_seals(self.archive)
                self._publish_history()
                if self.session is not None and self.session.status == "open":
                    self._trailing = self._trailing_before(self.session.date)[0]
        except BaseException:
            # A half-opened warehouse must not keep the file (and DuckDB's lock on it).
            if self._journal is not None:
                self._journal.close()
            self._store.close()
            _Writers.release(writer)
            raise
        # The hot path is the buffer's own bound methods: no extra call layer.
        self.append = self._refuse_writes if read_only else buffer.append
        self.latest = buffer.latest
        self.last_n = buffer.last_n
        self.since = buffer.since
        self.count = buffer.count
        self.latest_many = buffer.latest_many
        self.metrics = buffer.metrics
        # Separate methods, so that latest() stays a dict's bound get (see warehouse.derive).
        self.latest_derived = self._deriver.latest
        self.last_n_derived = self._deriver.last_n
        self._flush_interval = flush_interval
        self._checkpoint_rows = checkpoint_rows
        self.flush_error: WarehouseError | None = None
        self._closed = False
        self._closing = threading.Lock()
        self._stopping = False
        self._flusher: threading.Thread | None = None
        if not read_only:
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"warehouse-flusher:{path}", daemon=True
            )
            self._flusher.start()

    # -- commands ---------------------------------------------------------------------------

    @overload
    def extend(self, batch: object, *, on_invalid: Literal["raise", "skip"] = ...) -> int: ...
    @overload
    def extend(self, batch: object, *, on_invalid: Literal["report"]) -> ExtendResult: ...
    @overload
    def extend(self, batch: object, *, on_invalid: OnInvalid) -> int | ExtendResult: ...

    def extend(self, batch: object, *, on_invalid: OnInvalid = "raise") -> int | ExtendResult:
        """Add a batch of bars (see `AppendBuffer.extend`); returns how many were added.

        By default all or nothing: an invalid row raises `InvalidBarError` and nothing of the
        batch is stored. ``on_invalid="skip"`` adds the valid rows and drops the others;
        ``"report"`` also returns them, each with its field and reason (`ExtendResult`).
        """
        if self.read_only:
            self._refuse_writes()
        return self._buffer.extend(batch, on_invalid=on_invalid)

    @overload
    def fill(self, batch: object, *, on_invalid: Literal["raise", "skip"] = ...) -> int: ...
    @overload
    def fill(self, batch: object, *, on_invalid: Literal["report"]) -> ExtendResult: ...
    @overload
    def fill(self, batch: object, *, on_invalid: OnInvalid) -> int | ExtendResult: ...

    def fill(self, batch: object, *, on_invalid: OnInvalid = "raise") -> int | ExtendResult:
        """Add bars that fill gaps: stored at once, marked ``origin = 'filled'`` in SQL.

        A bar is added only if its symbol has no bar yet in its minute, so filling never
        replaces or duplicates a bar; a live bar that arrives later for the same (symbol, ts)
        replaces the filled one (as any correction does) and shows ``'live'``. Filled bars are
        late bars to the hot state: reads, metrics, quality and derived bars include them at
        once. They are written to DuckDB in their own transaction (not the journal), so they
        are durable when this returns. The upkeep thread (`start_upkeep`) calls this with
        what its `BarSource` returns; call it yourself to fill from anywhere.

        Parameters
        ----------
        batch
            Bars in any form `extend` takes.
        on_invalid
            As for `extend`: an invalid row (or one outside the session's window) refuses the
            batch, is dropped, or is dropped and reported.

        Returns
        -------
        int or ExtendResult
            How many bars were added (rows in minutes already held are left out, unreported).

        Raises
        ------
        StoreError
            DuckDB refused; nothing was added.
        """
        if self.read_only:
            self._refuse_writes()
        with self._store.lock:  # the order a flush takes the locks in: store, then buffer
            self._check_open()
            return self._buffer.fill(batch, self._store.write_filled, on_invalid=on_invalid)

    def start_upkeep(
        self,
        source: BarSource | Callable[[str, datetime, datetime], object],
        *,
        interval: float = 60.0,
        timeout: float = 30.0,
        delay: float = 60.0,
        retry_base: float = 5.0,
        retry_max: float = 60.0,
        symbols: Iterable[str] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> Upkeep:
        """Fill the open session's gaps from ``source`` in a thread, every ``interval`` seconds.

        See `warehouse.upkeep`: each round asks the source for each symbol's missing span
        (minutes ended at least ``delay`` seconds ago), adds what it returns with `fill`, and
        retries what is still missing with backoff (``retry_base`` doubling up to
        ``retry_max`` seconds). Failures, timeouts and malformed answers are logged and
        counted (`Upkeep.stats`), never raised here. `end_session`, `close` and `stop_upkeep`
        stop it; a new session needs a new call.

        Parameters
        ----------
        source
            A `BarSource` (`ArchiveSource`, `DuckDBSource`, ...) or a function
            ``(symbol, start, end) -> bars``.
        symbols
            Symbols to fill even without any bar this session.
        now
            The clock (aware datetimes); the wall clock by default.

        Returns
        -------
        Upkeep
            The running upkeep (its ``stats``).

        Raises
        ------
        SessionError
            An upkeep runs already (stop it first).
        ValueError
            An option is not a finite number of seconds (``delay``: 0 or more; the others:
            more than 0).
        """
        self._check_writable()
        with self._closing:
            if self.upkeep is not None and self.upkeep.running:
                raise SessionError("an upkeep runs already; stop_upkeep() first")
            self.upkeep = Upkeep(
                self, as_source(source), interval=interval, timeout=timeout, delay=delay,
                retry_base=retry_base, retry_max=retry_max, symbols=symbols, now=now,
            )
            self.upkeep.start()
            return self.upkeep

    def fill_gaps(
        self,
        source: BarSource | Callable[[str, datetime, datetime], object],
        *,
        timeout: float = 30.0,
        delay: float = 60.0,
        symbols: Iterable[str] | None = None,
        now: datetime | None = None,
    ) -> UpkeepStats:
        """One round of gap filling from ``source``, in this thread (see `start_upkeep`).

        Returns
        -------
        UpkeepStats
            What the round did: ``filled`` bars, ``failures``, ``timeouts``, ``rejected`` rows
            and the minutes still ``missing`` (``requests`` is 0 without an open session). A
            symbol's failure is counted there, never raised.

        Raises
        ------
        ValueError
            ``timeout`` or ``delay`` is not a finite number of seconds (``delay``: 0 or more).
        """
        self._check_writable()
        at = now
        upkeep = Upkeep(self, as_source(source), timeout=timeout, delay=delay, symbols=symbols,
                        now=None if at is None else (lambda: at))
        upkeep.run_once()
        return upkeep.stats

    def stop_upkeep(self) -> None:
        """Stop the upkeep thread, if one runs, and wait for it.

        A question in flight is given up; its bars are not added.
        """
        if self.upkeep is not None:
            self.upkeep.stop()

    def flush(self) -> int:
        """Write every waiting bar to DuckDB in one transaction; returns how many.

        Raises
        ------
        StoreError
            DuckDB refused; the bars stay on the log, to be retried.
        ClosedError
            The warehouse is closed.
        """
        self._check_open()
        return self._flush()

    def clear(self) -> None:
        """Delete every bar, stored or not, to start a new session in the same file.

        Export the session first: this cannot be undone. Memory and file space are reclaimed.
        Atomic: killed anywhere inside, the file reopens with the whole session or none of it.
        An `append` racing it lands in the new session (or, once `close` began, is refused).
        """
        self._check_open()
        self._clear()

    def _clear(self, meta: Mapping[str, str] | None = None) -> None:
        """`clear`, recording ``meta`` in the same transaction."""
        with self._store.lock:
            with self._buffer.lock:
                self._check_open()
                epoch = self._store.epoch() + 1
                # One DuckDB transaction deletes the bars and bumps the epoch; journal segments
                # of the old epoch are then stale wherever a kill strikes.
                self._store.clear(epoch, meta)
                self._buffer.clear()
                if self._journal is not None:
                    self._journal.cleared(epoch)
            self._store.checkpoint()
            self._since_checkpoint = 0

    def start_session(
        self, day: date | None = None, *, extended_hours: bool = False,
        now: datetime | None = None,
    ) -> Session:
        """Start a trading session: from now on, only bars inside its window are taken.

        Parameters
        ----------
        day
            The session's trading date; by default the session in progress at ``now``, or the
            next one.
        extended_hours
            Take pre- and post-market bars too (see `Calendar`); otherwise regular hours.
        now
            The instant that picks the default session (an aware datetime; the wall clock).

        Returns
        -------
        Session
            The open session (also `session`).

        Raises
        ------
        SessionError
            A session is open already (end it, or `roll`), or bars the warehouse holds fall
            outside the new session's window (export and `clear` them first).
        CalendarError
            ``day`` is not a session of the calendar, or the calendar does not exist.
        """
        self._check_writable()
        prepared = self._prepared
        if prepared is not None and prepared[1] == extended_hours and day in (None, prepared[0]):
            self._prepared = None
            session, trailing, seen = prepared[2].result()  # waits if the prefetch still runs
            if seen is None or seen != self._archive_state(session.date):
                # A session was sealed (or sealed again) since: the prefetch did not see it.
                trailing = self._trailing_before(session.date)[0]
        else:
            session, trailing, _ = self._prepare(day, extended_hours, now)
        with self._store.lock, self._buffer.lock:
            self._check_open()
            if self.session is not None and self.session.status == "open":
                raise SessionError(f"session {self.session.date} is open; end_session() or "
                                   "roll() first")
            span = self._buffer.hot.ts_span()
            if span is not None and not (session.open <= span[0] and span[1] < session.close):
                raise SessionError(
                    f"the warehouse holds bars from {from_micros(span[0])} to "
                    f"{from_micros(span[1])}, outside session {session.date} "
                    f"({session.open_time} to {session.close_time}); export and clear() them "
                    "first"
                )
            self._store.set_metas(session.meta())
            self._set_session(session)
            self._trailing = trailing
            if self.archive is not None:
                self._publish_history()
        return session

    def prepare_session(
        self, day: date | None = None, *, extended_hours: bool = False,
        now: datetime | None = None,
    ) -> Future[Session]:
        """Prefetch a session before its open, in a background thread.

        The session's window comes from the calendar and its trailing statistics (`trailing`)
        from the archive, so that `start_session` for it (or for the default session, which
        then is this one) is a matter of milliseconds. The returned future gives the session
        (or raises what `start_session` would raise for it: a `CalendarError`, say). If a
        session was sealed into the archive since (say, `roll` ended the open one), the
        statistics are computed again when the session starts.
        """
        self._check_writable()
        if day is None:
            day = self.calendar(extended_hours=extended_hours).current_or_next(now)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-prefetch")
        future = pool.submit(self._prepare, day, extended_hours, now)
        pool.shutdown(wait=False)
        self._prepared = (day, extended_hours, future)
        session: Future[Session] = Future()

        def settle(done: Future[_Prepared]) -> None:
            error = done.exception()
            if error is None:
                session.set_result(done.result()[0])
            else:
                session.set_exception(error)

        future.add_done_callback(settle)
        return session

    def end_session(self, *, compression: Compression = "zstd") -> ExportResult:
        """Seal the open session: flush, export it to the archive, then clear the warehouse.

        Bars are refused from the moment it begins. The session's bars go to the archive's
        partition of its trading date, recorded in the manifest; the bars leave the warehouse
        and the session is marked sealed in one DuckDB transaction. Killed anywhere, a reopen
        finds the session open and whole (and `end_session` can run again: the export is
        idempotent), or sealed in the archive and cleared.

        Raises
        ------
        SessionError
            No session is open, or the warehouse has no ``archive``.
        ExportError
            The export failed: the session stays open and whole, taking bars again.
        """
        self._check_writable()
        with self._closing:  # one lifecycle step at a time (close waits for it)
            self.stop_upkeep()
            session = self.session
            if session is None or session.status != "open":
                raise SessionError("no session is open; start_session() first")
            if self.archive is None:
                raise SessionError("end_session() exports to the archive: open the warehouse "
                                   "with archive=...")
            with self._buffer.lock:
                self._set_session(session.with_status("ending"))
            try:
                with self._store.lock:
                    self._flush()
                    result = export_parquet(self._store, self.archive, compression=compression,
                                            session=session)
                    sealed = session.with_status("sealed")
                    self._clear(sealed.meta())
                    self._set_session(sealed)
                    self._publish_history()
            except BaseException:
                if self.session is not None and self.session.status == "ending":
                    with self._buffer.lock:
                        self._set_session(session)
                raise
            return result

    def roll(self, *, extended_hours: bool | None = None) -> Session:
        """End the open session (`end_session`) and start the calendar's next one.

        Crash-safe as `end_session` is: killed before the new session starts, a reopen finds
        the old one sealed and no session open; `start_session` then starts the next one.
        """
        ended = self.session
        self.end_session()
        assert ended is not None
        extended = ended.extended_hours if extended_hours is None else extended_hours
        nxt = self.calendar(extended_hours=extended).next_session(ended.date)
        return self.start_session(nxt, extended_hours=extended)

    def checkpoint(self) -> None:
        """Flush, then fold DuckDB's write-ahead log into the file."""
        self._check_open()
        self._checkpoint()

    def export_parquet(
        self,
        directory: str | Path | None = None,
        *,
        compression: Compression = "zstd",
        progress: Progress | None = None,
    ) -> ExportResult:
        """Flush, then write the bars to Parquet by UTC date (`warehouse.archive.export_parquet`).

        ``directory`` defaults to the warehouse's ``archive``; exporting there refreshes the
        ``history`` view.

        Raises
        ------
        SessionError
            A session is open and ``directory`` is the warehouse's ``archive``: its days are
            sealed sessions by trading date, and only `end_session` writes the open session
            there (or export to another folder).
        ExportError
            The export failed (see `warehouse.archive.export_parquet`), or ``directory``
            holds sealed sessions.
        """
        target = directory if directory is not None else self.archive
        if target is None:
            raise SessionError("export_parquet() needs a directory: pass one "
                               "(export_parquet(directory)), or open the warehouse with "
                               "archive=...")
        self._check_open()
        into_archive = self.archive is not None and \
            Path(target).resolve() == self.archive.resolve()
        with self._store.lock:
            session = self.session
            if into_archive and session is not None and session.status != "sealed":
                raise SessionError(
                    f"session {session.date} is open: export_parquet() would write its bars "
                    f"by UTC date among the trading-date partitions of its archive "
                    f"{self.archive}; end_session() seals it there, or export it to another "
                    "folder (export_parquet(directory))"
                )
            self._flush()
            result = export_parquet(self._store, target, compression=compression,
                                    progress=progress)
            if into_archive:
                self._publish_history()
            return result

    def close(self) -> None:
        """Refuse new bars, stop the flusher, flush, checkpoint and close the file. Idempotent.

        From the moment `close` begins, every `append` or `extend` (bound methods included)
        either was accepted before and is stored by this close, or raises `ClosedError`.

        Raises
        ------
        StoreError
            The last flush failed: the warehouse stays open (refusing bars) with the bars on
            its log (and journal), and `close` may be called again to retry.
        """
        with self._closing:
            if self._closed:
                return
            if self.endpoint is not None:
                self.endpoint.stop()
            self.stop_upkeep()
            self._buffer.close()
            self.append = self._refuse_writes
            self._stopping = True
            self._wake.set()
            if self._flusher is not None:
                self._flusher.join()
            if not self.read_only:
                self._checkpoint()  # raises with everything still open: close can be retried
            self._closed = True
            if self._journal is not None:
                # Every bar is in the file: no segment is needed.
                self._journal.retire(released=not self.read_only)
            self._store.close()
            _Writers.release(self._writer)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        tls: Certificate | None = None,
        insecure: bool = False,
        limits: Limits | None = None,
    ) -> Endpoint:
        """Serve the warehouse to other processes over Arrow Flight SQL, read-only.

        Other processes cannot open a file this process writes; they query it here instead,
        with `warehouse.connect`, ADBC, JDBC or Polars (see `warehouse.endpoint`). A query sees
        what `sql` would see at that instant, unflushed bars included, without holding up the
        feed. The endpoint runs on background threads until its ``stop()`` or `close`. For a
        warehouse file, ``<file>.endpoint`` (mode 0600) holds its uri and token meanwhile, so
        ``warehouse sql --db FILE`` finds it.

        Parameters
        ----------
        host, port
            Where to listen; port 0 picks a free one. Loopback by default.
        token
            The bearer token clients must send; a random 256-bit one by default.
        tls
            ``(certificate, private key)``: PEM files (or their bytes). Required to listen on
            any other address than loopback, unless ``insecure``.
        insecure
            Listen on a non-loopback address without TLS (logged as a warning).
        limits
            Each query's timeout and result caps, and how many run at once (`Limits`).

        Returns
        -------
        Endpoint
            Its ``uri``, ``token`` and ``stop()``.

        Raises
        ------
        EndpointError
            The address cannot be used, TLS is missing, or the warehouse is served already.
        """
        from warehouse import __version__
        from warehouse.endpoint import Endpoint, Source  # pyarrow.flight loads only to serve

        with self._closing:
            self._check_open()
            if self.endpoint is not None and self.endpoint.running:
                raise EndpointError(f"{self._store.path} is served already at "
                                    f"{self.endpoint.uri}; stop() that endpoint first")
            source = Source(
                path=self._store.path, readers=self._store.readers(self._buffer.snapshot),
                queries=self.queries, unflushed=self._buffer.unflushed_count,
                latest=self.latest, last_n=self.last_n,
                latest_many=self.latest_many, metrics=self.metrics,
                latest_derived=self.latest_derived,
            )
            self.endpoint = Endpoint(source, host=host, port=port, token=token, tls=tls,
                                     insecure=insecure, limits=limits, version=__version__)
            return self.endpoint

    # -- queries ----------------------------------------------------------------------------

    def sql(
        self, query: str, params: Params = None, *, tables: Mapping[str, object] | None = None
    ) -> pa.Table:
        """Run SQL over ``bars`` (every bar, flushed or not) and return a pyarrow Table.

        Parameters are bound (``$name`` with a mapping, ``?`` with a sequence), never formatted
        into the text. Meant for reading: a statement that writes to ``session_bars`` behind the
        warehouse's back leaves the hot reads (and counts) out of step with the table.
        ``tables`` are the caller's own frames (polars, pandas or pyarrow) that the query reads
        by their names, for this query only (the named query ``asof_bars`` reads ``events``).
        """
        registered = _registered(tables)
        with self._store.lock:
            return self._store.arrow(query, params, self._buffer.snapshot(), registered)

    def sql_polars(
        self, query: str, params: Params = None, *, tables: Mapping[str, object] | None = None
    ) -> pl.DataFrame:
        """`sql`, returning a polars DataFrame."""
        registered = _registered(tables)
        with self._store.lock:
            return self._store.polars(query, params, self._buffer.snapshot(), registered)

    def query(
        self, name: str, params: Mapping[str, Any] | None = None, *,
        tables: Mapping[str, object] | None = None,
    ) -> pa.Table:
        """Run a named query from ``sql/`` (e.g. ``"session_ohlcv"``) with bound parameters."""
        return self.sql(self.queries[name], params, tables=tables)

    def frame(
        self,
        symbols: Iterable[str] | None = None,
        start: datetime | int | str | None = None,
        end: datetime | int | str | None = None,
    ) -> pl.DataFrame:
        """Bars as a polars DataFrame in (symbol, ts) order, optionally filtered.

        ``start`` is inclusive, ``end`` exclusive; both take what `append` takes for ``ts``.
        """
        with self._store.lock:
            return self._store.bars_between(symbols, start, end, self._buffer.snapshot())

    def lazy_frame(
        self,
        symbols: Iterable[str] | None = None,
        start: datetime | int | str | None = None,
        end: datetime | int | str | None = None,
    ) -> pl.LazyFrame:
        """Deprecated: `scan` reads every day lazily; ``frame(...).lazy()`` is what this gave."""
        warnings.warn(
            "Warehouse.lazy_frame() is deprecated: scan() is a lazy scan of every day (the "
            "archive and today, with a date column, filters pushed down), and "
            "frame(...).lazy() is what lazy_frame() returned (today's bars, taken now)",
            DeprecationWarning, stacklevel=2,
        )
        return self.frame(symbols, start, end).lazy()

    def scan(
        self,
        symbols: str | Iterable[str] | None = None,
        start: datetime | int | str | None = None,
        end: datetime | int | str | None = None,
    ) -> pl.LazyFrame:
        """Every bar of ``bars_all``, the archive's days and today's, as a lazy Polars scan.

        The rows are those of the SQL view ``bars_all`` at the moment the frame is collected
        (collected again later, it sees the bars and days added since): the archived days
        ``history`` covers, then today's bars, each with its session ``date``, in (date,
        symbol, ts) order. Filters on ``date``, ``symbol`` and ``ts`` and the columns selected
        are pushed down (`warehouse.scan`): a day not asked for is never opened, and today's
        bars are read only if asked for. A day is never counted twice, also while
        `end_session` seals today into the archive: the day is today's bars or an archived day.

        ``symbols`` (a string: one symbol), ``start`` (inclusive) and ``end`` (exclusive) bound
        the scan as `frame` does; ``start`` and ``end`` take what `append` takes for ``ts``.

        Raises
        ------
        ClosedError
            When collected: the warehouse is closed.
        ExportError
            When collected: a day file the query reads cannot be read (named), or the archive
            cannot be listed.
        """
        return scan_parts(functools.partial(self._bars_of, "bars_all"), symbols=symbols,
                          start=start, end=end, name=str(self._store.path))

    def asof(
        self,
        events: object,
        *,
        on: str = "ts",
        by: str = "symbol",
        bars: View = "bars_all",
        known: Known = "end",
        tolerance: timedelta | str | None = None,
        interval: Interval | None = None,
    ) -> pl.DataFrame:
        """Each event with the latest bar of its symbol known at its time (no look-ahead).

        `warehouse.asof` over the warehouse's bars: the view ``bars`` names (today's
        ``bars``, the archive's ``history``, or ``bars_all``, both), read as `scan` reads them,
        only the events' symbols and the bars before their last time. By default a bar is
        known at its end (``known="end"``: its ts plus a minute, or plus ``interval``, whose
        bars are anchored to each session's open and cut at its close), so no event sees a bar
        that had not finished; ``known="start"`` looks ahead, knowingly.

        Returns
        -------
        polars.DataFrame
            The events in their order (sorted or not), then ``bar_ts`` (the bar's start),
            open, high, low, close, volume, vwap, trade_count: null where no bar is known.

        Raises
        ------
        SchemaMismatchError
            The events lack the ``on`` or ``by`` column, or their times have no zone.
        ValueError
            ``bars``, ``known``, ``tolerance`` or ``interval`` is not one of the values taken.
        """
        if bars not in ("bars_all", "bars", "history"):
            raise ValueError(f"bars={bars!r}: join to 'bars_all' (the default), 'bars' (today) "
                             "or 'history' (the archive)")
        join = AsofJoin(events, on=on, by=by, known=known, tolerance=tolerance,
                        interval=interval)
        lazy = scan_parts(functools.partial(self._bars_of, bars), name=str(self._store.path))
        sessions = []
        if interval is not None:
            sessions = [] if self.archive is None else sealed_sessions(self.archive)
            session = self.session
            if session is not None and session.status != "sealed":
                sessions.append((session.date, session.open_time, session.close_time))
        return join.run(lazy, sessions)

    def metrics_frame(self) -> pl.DataFrame:
        """Every symbol's session metrics, one row per symbol in symbol order.

        The columns and their order are those of the named query ``session_ohlcv``: symbol,
        first_ts, last_ts, bar_count, open, high, low, close, volume, vwap. Taken from memory
        without a lock, like `metrics`: each row is one symbol's metrics at one instant (a batch
        being added may show in some rows and not yet in others).

        Raises
        ------
        WarehouseError
            The warehouse was opened with ``metrics=False``.
        """
        names, counts, first, last, values, stale = self._buffer.metrics_columns()
        if stale.any():
            with self._store.lock, self._buffer.lock:
                self._buffer.refresh_metrics_locked(
                    [name for name, old in zip(names, stale.tolist(), strict=True) if old],
                    self._store.symbol_totals,
                )
                names, counts, first, last, values, stale = self._buffer.metrics_columns()
        return metrics_frame(names, counts, first, last, values)

    def symbols(self) -> list[str]:
        """The symbols that have bars, sorted."""
        return self._buffer.symbols()

    def has_bars(self, symbol: str) -> bool:
        """Whether ``symbol`` has any bar."""
        return self._buffer.has_bars(symbol)

    def trailing(self, symbol: str) -> Trailing | None:
        """A symbol's trailing sessions from the archive (previous close, average daily volume).

        Computed when the session starts (or by `prepare_session` before it) over the last
        ``history_sessions`` archived sessions before it; a dict lookup. None for a symbol
        without archived bars, and without a session or an archive.
        """
        return self._trailing.get(symbol)

    def prev_close(self, symbol: str) -> float | None:
        """The close of a symbol's last archived session before the open one (see `trailing`)."""
        found = self._trailing.get(symbol)
        return None if found is None else found.prev_close

    def history(self, symbol: str | None = None, *, sessions: int | None = None) -> pl.DataFrame:
        """Archived bars (the view ``history``) of one symbol or all, of the last ``sessions``.

        A polars DataFrame in (symbol, ts) order, with the trading ``date`` of each bar; read
        from the archive's Parquet files, never loaded into the warehouse.

        Raises
        ------
        SessionError
            The warehouse was opened without an ``archive``.
        ValueError
            ``symbol`` is not a string (or None), or ``sessions`` not a whole number, 0 or
            more (or None).
        """
        if self.archive is None:
            raise SessionError("history() reads the archive: open the warehouse with "
                               "archive=...")
        if symbol is not None and not isinstance(symbol, str):
            raise ValueError(f"history(symbol, *, sessions): symbol must be a string or None, "
                             f"got {symbol!r}; the number of sessions is given as "
                             f"sessions={symbol!r}")
        # Any integer (numpy's too), not 2.5, "x" or True.
        if sessions is not None and (isinstance(sessions, bool) or not isinstance(
                sessions, SupportsIndex) or index(sessions) < 0):
            raise ValueError(f"history(): sessions must be a whole number of sessions, 0 or "
                             f"more (or None for all), got {sessions!r}")
        with self._store.lock:
            return self._store.history_bars(symbol, None if sessions is None else index(sessions))

    def stats(self) -> dict[str, Any]:
        """Counters: bars, symbols, unflushed and uncompacted bars, replacements, flushes."""
        seconds = sorted(self.flush_seconds)
        return {
            "bars": self._buffer.total_count(),
            "symbols": len(self._buffer.symbols()),
            "unflushed": self._buffer.unflushed_count(),
            "uncompacted": self._store.tail_rows,
            "replacements": self._buffer.replacements,
            "flushes": len(seconds),
            "flush_p99_ms": seconds[int(0.99 * (len(seconds) - 1))] * 1e3 if seconds else None,
            "flush_error": None if self.flush_error is None else str(self.flush_error),
        }

    def quality(
        self, *, now: datetime | int | str | None = None, symbols: Iterable[str] | None = None
    ) -> pl.DataFrame:
        """How complete the open session's one-minute bars are, per symbol (`warehouse.quality`).

        Parameters
        ----------
        now
            The instant the expected minutes run to (those whose bar is complete by then, up
            to the close); by default the wall clock.
        symbols
            Symbols expected besides those with bars this session (one without any bar is
            reported with ``has_bars`` false).

        Returns
        -------
        polars.DataFrame
            Per symbol, in symbol order: ``expected``, ``present``, ``missing``, ``quality``
            (percent), ``gaps`` and ``ranges`` (the missing minutes as ``[start, end)``).

        Raises
        ------
        SessionError
            No session is open.
        """
        expected = self._expected("quality()", now)
        return _quality.scan(self._buffer.hot, self._buffer.lock, expected, symbols)

    def gaps_params(
        self, *, now: datetime | int | str | None = None, symbols: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """The parameters of the named query ``gaps`` for the question `quality` answers."""
        return _quality.gaps_params(self._expected("gaps_params()", now), symbols)

    def resample_params(self, minutes: Interval) -> dict[str, Any]:
        """The parameters of the named query ``resample_bars`` anchored to the open session.

        Its bars are then those of `latest_derived` and `last_n_derived`. Without an open
        session ``open`` is None: each UTC day is anchored to its first bar.
        """
        return resample_params(self.session, minutes)

    def _expected(self, what: str, now: datetime | int | str | None) -> _quality.Expected:
        session = _quality.open_session(self.session, what)
        calendar = _quality.session_calendar(self._calendar, session)
        return _quality.expected_minutes(calendar, session, now)

    @property
    def replacements(self) -> int:
        """How many bars replaced an earlier bar of the same (symbol, ts)."""
        return self._buffer.replacements

    @property
    def window(self) -> int:
        """Recent bars kept in memory per symbol: `last_n` of up to this many never waits."""
        return self._buffer.hot.keep

    # -- internals --------------------------------------------------------------------------

    def _flush(self) -> int:
        with self._store.lock:
            started = time.perf_counter()
            bars, replaced = self._buffer.drain()
            mark = self._buffer.journal_mark
            if bars.num_rows or replaced.num_rows:
                try:
                    self._store.write(bars, replaced)
                except BaseException:
                    # Whatever went wrong, the drained bars go back: nothing is lost.
                    self._buffer.requeue(bars, replaced)
                    raise
                self.flush_seconds.append(time.perf_counter() - started)
                self._since_checkpoint += bars.num_rows
            if self._journal is not None:
                self._journal.committed(mark)
        return int(bars.num_rows)

    def _checkpoint(self) -> None:
        with self._store.lock:
            self._flush()
            self._store.checkpoint()
            self._since_checkpoint = 0

    def _prepare(self, day: date | None, extended_hours: bool, now: datetime | None) -> _Prepared:
        """A session's window and its trailing statistics (no lock: the archive only)."""
        calendar = self.calendar(extended_hours=extended_hours)
        chosen = calendar.current_or_next(now) if day is None else day
        session = Session.of(calendar.window(chosen), calendar.code, extended_hours)
        return session, *self._trailing_before(session.date)

    def _trailing_before(self, day: date) -> tuple[dict[str, Trailing], FilesState | None]:
        """The trailing statistics of the sessions archived before ``day``, and their files.

        The files' state (`files_state`; None: unknown) tells later whether they changed since.
        A session's bars never depend on them: an archive that cannot be read gives none (a
        warning says why), and a damaged day is left out (`trailing_stats`).
        """
        try:
            files = self._history_files(day)
            state = files_state(files)  # before reading: a seal meanwhile then shows
            return trailing_stats(files), state
        except (OSError, ExportError) as exc:
            log.warning("no trailing statistics for session %s: the archive %s cannot be "
                        "read: %s", day, self.archive, exc)
            return {}, None

    def _archive_state(self, day: date) -> FilesState | None:
        """`files_state` of the day files the trailing statistics before ``day`` read."""
        try:
            return files_state(self._history_files(day))
        except OSError:
            return None

    def _bars_of(self, view: View, wanted: Wanted) -> Parts:
        """What ``view`` holds now, for `scan`: its day files and today's bars (dated).

        Today's session and its bars are taken together under the store's lock, which
        `end_session` holds from its export to its clear: the day is then either today's (and
        left out of the days listed) or sealed (and today holds no bar).
        """
        with self._store.lock:
            self._check_open()
            session = self.session
            day = None if session is None else session.date
            bars = None
            if view != "history" and (day is None or wanted.days([day])):
                held = self._buffer.symbols()
                symbols = wanted.symbols_among(held)
                if symbols:
                    bars = self.frame(None if len(symbols) == len(held) else symbols,
                                      wanted.start, wanted.end)
                    dated = pl.col("ts").dt.date() if day is None else pl.lit(day, pl.Date())
                    bars = bars.with_columns(date=dated)
        if self.archive is None or view == "bars":
            return [], bars
        before = day if session is not None and session.status != "sealed" else None
        return archive_days(self.archive, before=before, sessions=self.history_sessions), bars

    def _history_files(self, before: date) -> list[Path]:
        if self.archive is None:
            return []
        return history_files(self.archive, before=before, sessions=self.history_sessions)

    def _publish_history(self) -> None:
        """(Re)define ``history`` and ``bars_all`` for the session held (if any)."""
        assert self.archive is not None
        session = self.session
        today = None if session is None else session.date
        before = today if session is not None and session.status == "open" else None
        publish_history(self._store, self.archive, before=before,
                        sessions=self.history_sessions, today=today)

    def _set_session(self, session: Session | None) -> None:
        """Hold ``session`` and take only the bars it takes (caller holds the buffer's lock)."""
        self.session = session
        self._deriver.set_session(session)
        if session is None:
            self._buffer.set_window(MIN_TS, MAX_TS, None)
        elif session.status == "open":
            self._buffer.set_window(session.open, session.close, session.refusal)
        else:
            self._buffer.set_window(MIN_TS, MIN_TS, session.refusal)

    def calendar(self, *, extended_hours: bool = False) -> Calendar:
        """The exchange calendar sessions are taken from (regular or extended hours)."""
        calendar = self._calendar
        if isinstance(calendar, Calendar) and calendar.extended_hours == extended_hours:
            return calendar
        code = calendar.code if isinstance(calendar, Calendar) else calendar
        return Calendar(code, extended_hours=extended_hours)

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            self._refuse_writes()

    def _check_open(self) -> None:
        if self._closed or self._stopping:
            raise ClosedError(f"the warehouse {self._store.path} is closed")

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self._journal is not None:
                    self._journal.sync()  # group commit against power loss
                self._flush()
                if self._since_checkpoint >= self._checkpoint_rows:
                    self._checkpoint()
                elif self._store.compact_due:
                    self._store.compact()
                if self.flush_error is not None:
                    log.info("background flush of %s succeeded again", self._store.path)
                self.flush_error = None
            except Exception as exc:  # any error: the thread must live to retry
                # Bars stay on the log; the next interval retries. Readers see them meanwhile.
                error = (
                    exc if isinstance(exc, WarehouseError)
                    else StoreError(f"background flush failed: {exc!r}")
                )
                if str(error) != str(self.flush_error):  # once per failure, not per retry
                    log.warning("background flush of %s failed; its bars stay in memory and "
                                "the flush is retried: %s", self._store.path, error)
                self.flush_error = error
                time.sleep(self._flush_interval or 1.0)

    def _deep_read(self, symbol: str, n: int | None, since: int | None) -> list[Bar]:
        """A read past a symbol's window: down to the store, over `bars` (the log included)."""
        with self._store.lock:
            log = self._buffer.snapshot()
            if n is not None:
                table = self._store.last_bars(symbol, n, log)
            else:
                start = from_micros(MIN_TS if since is None else since)
                table = self._store.symbol_bars_between(symbol, start, from_micros(MAX_TS), log)
        return bars_from_table(table)

    def _fresh_metrics(self, symbol: str) -> SessionMetrics | None:
        """A symbol's metrics after recomputing its stale totals from all its bars (rare path).

        The store's lock first, then the buffer's (the order a flush takes them): while both are
        held no bar arrives and none moves between the log and the table, so one SQL aggregate
        over `bars` is exact; appends wait for it (one query over the symbol's bars).
        """
        with self._store.lock, self._buffer.lock:
            self._buffer.refresh_metrics_locked([symbol], self._store.symbol_totals)
            return self._buffer.hot.metrics_locked(symbol)

    def _refuse_writes(self, *args: object, **kwargs: object) -> None:
        if not self.read_only:
            raise ClosedError(f"the warehouse {self._store.path} is closed; it takes no bars")
        raise WarehouseError(f"the warehouse {self._store.path} is read-only; it takes no bars")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({self._store.path!r}, bars={self._buffer.total_count()})"


def _registered(tables: Mapping[str, object] | None) -> dict[str, pa.Table] | None:
    """The caller's frames a query reads by name, as Arrow tables (`Warehouse.sql`)."""
    if not tables:
        return None
    return {name: frame_to_arrow(frame) for name, frame in tables.items()}


class _Writers:
    """The warehouse files open for writing in this process, so that a second handle is refused.

    DuckDB's file lock keeps other processes out, but not a second connection in this one: two
    handles would store the same keys twice and, with the journal, release each other's
    segments. A file is known by every key of `file_keys`: its real path (all a file not made
    yet has) and, once it exists, its device and inode, which a hard link shares with it. A
    handle whose store is closed no longer counts.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _open: ClassVar[dict[FileKey, _Claim]] = {}

    @classmethod
    def claim(cls, path: str | Path) -> _Claim:
        claim = _Claim(path)
        with cls._lock:
            for key in claim.keys:
                held = cls._open.get(key)
                if held is not None and held.holds():
                    raise StoreError(
                        f"{path} is already open for writing in this process; use that "
                        "Warehouse (or close it first): two writers would store bars twice"
                    )
            for key in claim.keys:
                cls._open[key] = claim
        return claim

    @classmethod
    def bind(cls, claim: _Claim | None, store: BarStore) -> None:
        if claim is not None:
            with cls._lock:
                claim.store = weakref.ref(store)
                claim.keys |= file_keys(claim.path)  # the open made the file: its identity
                for key in claim.keys:
                    cls._open[key] = claim

    @classmethod
    def release(cls, claim: _Claim | None) -> None:
        if claim is not None:
            with cls._lock:
                for key in claim.keys:
                    if cls._open.get(key) is claim:  # not a later handle's
                        del cls._open[key]


class _Claim:
    """One handle's hold on a file in `_Writers`: the file's keys, and its store once open."""

    __slots__ = ("keys", "path", "store")

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.keys = file_keys(path)
        # None while the claiming handle is still opening its store.
        self.store: weakref.ref[BarStore] | None = None

    def holds(self) -> bool:
        store = None if self.store is None else self.store()
        return self.store is None or (store is not None and not store.closed)
