"""SQL files, one statement each, named by their stem: the user's named queries and ours.

Two folders:

- ``sql/``: the named queries a user runs (``bars_between``, ``session_ohlcv``, ...), the ones
  `Warehouse.query` and ``warehouse queries`` offer. `load_queries` reads them, from this
  folder or from one of the user's own (``Warehouse(sql_dir=...)``, like aiosql's
  ``from_path``).
- ``sql/internal/``: the warehouse's own statements (DDL, flushes, exports, the ``history``
  view, its meta facts). `load_statements` reads them, always from the package, together with
  the package's named queries that the warehouse's own reads use (``frame``, ``last_n`` past
  the window): a user's folder can neither replace nor break them.

In a source checkout ``sql/`` is at the repository root; in an installed wheel it ships as
``warehouse/sql/``. Each file opens with a comment header: what it answers, then
``-- Parameters:`` (its ``$named`` parameters) and ``-- Columns:``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from warehouse.errors import QueryNotFoundError, WarehouseError

_PACKAGE = Path(__file__).resolve().parent
#: The named queries: inside the installed package, else beside it in a checkout.
SQL_DIR = _PACKAGE / "sql" if (_PACKAGE / "sql").is_dir() else _PACKAGE.parent / "sql"
#: The warehouse's own statements, never read from anywhere else.
INTERNAL_SQL_DIR = SQL_DIR / "internal"

_PARAMETERS_LINE = "Parameters:"
_PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")
_PARAMETER_OR_TYPE = re.compile(r"\$([A-Za-z_]\w*)|\(([^)]*)\)")


class Queries(Mapping[str, str]):
    """A read-only mapping of query name to SQL text.

    Looking up an unknown name raises `QueryNotFoundError`, which lists the known names.

    Attributes
    ----------
    directory
        The folder the texts were read from.
    """

    def __init__(self, texts: dict[str, str], directory: Path) -> None:
        self._texts = texts
        self.directory = directory

    def __getitem__(self, name: str) -> str:
        try:
            return self._texts[name]
        except KeyError:
            raise QueryNotFoundError(name, sorted(self._texts)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._texts))

    def __len__(self) -> int:
        return len(self._texts)

    def summary(self, name: str) -> str:
        """The first line of the query's comment header: what it answers."""
        first = self[name].lstrip().splitlines()[0]
        return first.removeprefix("--").strip()

    def parameters(self, name: str) -> tuple[str, ...]:
        """The names of the query's ``$named`` parameters, without the ``$``, in header order.

        They are read from the header's ``-- Parameters:`` line (``-- Parameters: none.`` names
        none); for a file whose header has no such line, from the statement's placeholders.

        Examples
        --------
        >>> load_queries().parameters("bars_between")
        ('symbols', 'start', 'end')
        >>> load_queries().parameters("session_ohlcv")
        ()
        """
        text = self[name]
        for line in text.splitlines():
            comment = line.strip()
            if not comment.startswith("--"):
                break  # the header ends at the statement
            comment = comment.removeprefix("--").strip()
            if comment.startswith(_PARAMETERS_LINE):
                return _unique(_PARAMETER.findall(comment))
        return _unique(_PARAMETER.findall(_statement(text)))

    def parameter_types(self, name: str) -> dict[str, str | None]:
        """Each ``$named`` parameter's type as the header gives it (None where it gives none).

        A type in parentheses belongs to every parameter listed since the previous type:
        ``$start, $end (TIMESTAMPTZ)`` types both.

        Examples
        --------
        >>> load_queries().parameter_types("bars_between")
        {'symbols': 'list of VARCHAR', 'start': 'TIMESTAMPTZ', 'end': 'TIMESTAMPTZ'}
        """
        types: dict[str, str | None] = dict.fromkeys(self.parameters(name))
        for line in self[name].splitlines():
            comment = line.strip()
            if not comment.startswith("--"):
                break
            comment = comment.removeprefix("--").strip()
            if not comment.startswith(_PARAMETERS_LINE):
                continue
            pending: list[str] = []
            for match in _PARAMETER_OR_TYPE.finditer(comment):
                if match.group(1):
                    pending.append(match.group(1))
                else:
                    for parameter in pending:
                        if parameter in types:
                            types[parameter] = match.group(2).strip()
                    pending = []
        return types


def load_queries(directory: str | Path | None = None) -> Queries:
    """Read the named queries: every ``*.sql`` file of a folder (not of its subfolders).

    Parameters
    ----------
    directory
        The folder to read; the package's ``sql/`` by default. Its ``internal/`` subfolder, the
        warehouse's own statements, is not read (see `load_statements`).

    Returns
    -------
    Queries
        Name (file stem) to SQL text.

    Raises
    ------
    WarehouseError
        If the folder is missing, or a file is empty, unreadable or lacks its comment header
        (the message gives the file's path).

    Examples
    --------
    >>> queries = load_queries()
    >>> "session_ohlcv" in queries, "create_bars_table" in queries
    (True, False)
    """
    folder = Path(directory) if directory is not None else SQL_DIR
    return Queries(_read_folder(folder), folder)


def load_statements() -> Queries:
    """Read the warehouse's own SQL: ``sql/internal/`` and the package's named queries.

    Always the package's files, whatever folder the user's named queries come from, so a
    user's ``sql_dir`` can never replace the warehouse's DDL or the queries its reads rely on.
    The files are read once per process; each call returns a mapping of its own.

    Returns
    -------
    Queries
        Name (file stem) to SQL text; ``directory`` is the package's ``sql/``.

    Raises
    ------
    WarehouseError
        If a file is missing, empty, unreadable or lacks its comment header, or a name is both
        an internal statement and a named query (the message gives the file's path).

    Examples
    --------
    >>> statements = load_statements()
    >>> "create_bars_table" in statements, "bars_between" in statements
    (True, True)
    """
    return Queries(dict(_package_statements()), SQL_DIR)


@functools.cache
def _package_statements() -> dict[str, str]:
    named = _read_folder(SQL_DIR)
    internal = _read_folder(INTERNAL_SQL_DIR)
    clashes = sorted(named.keys() & internal.keys())
    if clashes:
        name = clashes[0]
        raise WarehouseError(
            f"{INTERNAL_SQL_DIR / name}.sql: {name!r} is also a named query "
            f"({SQL_DIR / name}.sql); rename one of them"
        )
    return named | internal


def _read_folder(folder: Path) -> dict[str, str]:
    """Every ``*.sql`` file directly in ``folder``: stem to text, checked."""
    if not folder.is_dir():
        raise WarehouseError(f"SQL folder {folder} does not exist")
    texts: dict[str, str] = {}
    for path in sorted(folder.glob("*.sql")):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise WarehouseError(f"{path}: cannot read SQL file: {exc}") from exc
        if not text.startswith("--"):
            raise WarehouseError(f"{path}:1: a SQL file must open with a '--' comment header")
        if not _statement(text).strip():
            raise WarehouseError(f"{path}: holds no statement")
        texts[path.stem] = text
    return texts


def _statement(text: str) -> str:
    """``text`` without its comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
