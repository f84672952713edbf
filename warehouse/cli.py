"""The ``warehouse`` command: replay the sample session, run SQL, export, generate, benchmark.

Only this module prints. A `WarehouseError` becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from tqdm import tqdm

from warehouse.errors import WarehouseError
from warehouse.queries import load_queries
from warehouse.sample import generate_session
from warehouse.warehouse import Warehouse

_PACKAGE = Path(__file__).resolve().parent
#: The bundled sample: inside an installed wheel, else in the checkout's data/ folder.
SAMPLE = next(
    (p for p in (_PACKAGE / "data" / "sample_session.parquet",
                 _PACKAGE.parent / "data" / "sample_session.parquet") if p.exists()),
    _PACKAGE.parent / "data" / "sample_session.parquet",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        # The benchmark parses its own options (argparse cannot pass them through).
        from warehouse.bench import main as bench_main  # heavy imports only when asked

        return bench_main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except WarehouseError as exc:
        print(f"warehouse: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warehouse", description="A DuckDB-backed warehouse for a trading session's bars."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="replay a session bar by bar as a live feed, query it, export it",
        description="Replay a session file bar by bar into a new warehouse (any file at --db is "
        "replaced), then print throughput, latest bars, an SQL aggregate and the Parquet export.",
    )
    demo.add_argument("--data", type=Path, default=SAMPLE, help="session Parquet file to replay")
    demo.add_argument("--db", type=Path, default=Path("out/demo.duckdb"),
                      help="warehouse file to create (default: out/demo.duckdb)")
    demo.add_argument("--out", type=Path, default=Path("out/archive"),
                      help="Parquet archive directory (default: out/archive)")
    demo.set_defaults(run=_demo)

    sql = commands.add_parser("sql", help="run ad-hoc SQL over `bars` in a warehouse file")
    sql.add_argument("query", help="SQL text; the table is `bars`")
    _db_options(sql)
    sql.set_defaults(run=_sql)

    query = commands.add_parser("query", help="run a named query from sql/ on a warehouse file")
    query.add_argument("name", help="query name (see `warehouse queries`)")
    _db_options(query)
    query.set_defaults(run=_query)

    listing = commands.add_parser("queries", help="list the named queries and what they answer")
    listing.set_defaults(run=_queries)

    export = commands.add_parser("export", help="export a warehouse file to Parquet")
    export.add_argument("--db", type=Path, required=True, help="warehouse file")
    export.add_argument("--out", type=Path, required=True, help="archive directory")
    export.add_argument("--compression", choices=["zstd", "snappy", "uncompressed"],
                        default="zstd", help="Parquet codec (default: zstd)")
    export.set_defaults(run=_export)

    generate = commands.add_parser("generate", help="write a synthetic session to Parquet")
    generate.add_argument("--symbols", type=int, default=8000, help="number of symbols")
    generate.add_argument("--minutes", type=int, default=390, help="bars per symbol")
    generate.add_argument("--seed", type=int, default=7, help="random seed")
    generate.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    generate.set_defaults(run=_generate)

    # Listed for the help text; main() hands `bench ...` to warehouse.bench before parsing.
    commands.add_parser("bench", help="run the benchmark (`warehouse bench --help`)")
    return parser


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, required=True, help="warehouse file (opened read-only)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="bind $NAME; VALUE is JSON (numbers, lists, \"strings\"), an ISO "
                        "timestamp with offset, or else a plain string; repeatable")
    parser.add_argument("--rows", type=int, default=20, help="rows to print (default: 20)")
    parser.add_argument("--archive", type=Path, default=None,
                        help="Parquet archive to query as the view `history`")


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise WarehouseError(f"--param {item!r}: expected NAME=VALUE")
        value: Any
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            try:
                value = datetime.fromisoformat(raw)
                if value.tzinfo is None:
                    raise WarehouseError(f"--param {item!r}: timestamps need an offset (Z)")
            except ValueError:
                value = raw
        params[name] = value
    return params


def _print_frame(frame: pl.DataFrame, rows: int) -> None:
    with pl.Config(tbl_rows=rows, tbl_cols=-1, tbl_width_chars=160, fmt_str_lengths=40):
        print(frame)


def _open_read_only(args: argparse.Namespace) -> Warehouse:
    if not args.db.exists():
        raise WarehouseError(f"{args.db} does not exist")
    return Warehouse(args.db, read_only=True, archive=args.archive)


def _sql(args: argparse.Namespace) -> int:
    with _open_read_only(args) as wh:
        _print_frame(wh.sql_polars(args.query, _parse_params(args.param) or None), args.rows)
    return 0


def _query(args: argparse.Namespace) -> int:
    with _open_read_only(args) as wh:
        text = wh.queries[args.name]
        _print_frame(wh.sql_polars(text, _parse_params(args.param) or None), args.rows)
    return 0


def _queries(args: argparse.Namespace) -> int:
    queries = load_queries()
    width = max(len(name) for name in queries)
    for name in queries:
        print(f"{name:<{width}}  {queries.summary(name)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    with Warehouse(args.db, flush_interval=None) as wh, tqdm(
        desc="export", unit="day", file=sys.stderr
    ) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = wh.export_parquet(args.out, compression=args.compression, progress=progress)
    print(f"exported {result.rows:,} bars to {len(result.files)} file(s) under {result.directory}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    table = generate_session(args.symbols, args.minutes, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd")
    print(f"wrote {table.num_rows:,} bars ({args.symbols} symbols x {args.minutes} minutes) "
          f"to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if not args.data.exists():
        raise WarehouseError(f"{args.data} does not exist; `warehouse generate --out` makes one")
    table = pq.read_table(args.data)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (args.db, args.db.with_name(args.db.name + ".wal")):
        stale.unlink(missing_ok=True)
    columns = [table.column(name).to_pylist() for name in ("symbol", "open", "high", "low",
                                                            "close", "volume", "vwap",
                                                            "trade_count")]
    stamps = table.column("ts").cast("int64").to_pylist()
    rows = list(zip(columns[0], stamps, *columns[1:], strict=True))
    with Warehouse(args.db) as wh:
        append = wh.append
        step = max(1, len(rows) // 200)
        started = time.perf_counter()
        with tqdm(total=len(rows), desc="replay", unit="bar", unit_scale=True,
                  file=sys.stderr) as progress:
            for i in range(0, len(rows), step):
                for row in rows[i : i + step]:
                    append(*row)
                progress.update(min(step, len(rows) - i))
        elapsed = time.perf_counter() - started
        symbols = wh.symbols()
        print(f"replayed {len(rows):,} bars of {len(symbols)} symbols in {elapsed:.2f} s "
              f"({len(rows) / elapsed:,.0f} bars/s, flushed in the background)")
        print("\nlatest bars:")
        shown = [s for s in ("AAPL", "MSFT", "NVDA") if wh.has_bars(s)] or symbols[:3]
        for symbol in shown:
            bar = wh.latest(symbol)
            if bar is not None:
                print(f"  {symbol:<6} {bar.time:%Y-%m-%d %H:%M}Z  close {bar.close:>9.2f}  "
                      f"volume {bar.volume:>12,.0f}  last 20 closes avg "
                      f"{sum(b.close for b in wh.last_n(symbol, 20)) / 20:.2f}")
        print("\nsession leaders by traded value (SQL over `bars`, named query session_ohlcv):")
        leaders = wh.sql_polars(
            "SELECT symbol, open, high, low, close, volume, round(vwap, 4) AS vwap, "
            "round(volume * vwap / 1e6, 1) AS value_musd "
            f"FROM ({wh.queries['session_ohlcv']}) ORDER BY value_musd DESC LIMIT 5"
        )
        _print_frame(leaders, 5)
        result = wh.export_parquet(args.out)
    print(f"\nwarehouse file: {args.db}")
    print(f"parquet: {result.rows:,} bars in {', '.join(str(f) for f in result.files)}")
    print(f"try: python -m warehouse sql \"SELECT count(*) FROM bars\" --db {args.db}")
    return 0
