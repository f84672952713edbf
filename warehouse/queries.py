"""Named SQL queries, loaded from the ``sql/`` folder: one statement per file, named by its stem.

In a source checkout the folder is ``sql/`` at the repository root; in an installed wheel it
ships as ``warehouse/sql/``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from warehouse.errors import QueryNotFoundError, WarehouseError

_PACKAGE = Path(__file__).resolve().parent
#: Where the SQL files are: inside the installed package, else beside it in a checkout.
SQL_DIR = _PACKAGE / "sql" if (_PACKAGE / "sql").is_dir() else _PACKAGE.parent / "sql"


class Queries(Mapping[str, str]):
    """A read-only mapping of query name to SQL text.

    Looking up an unknown name raises `QueryNotFoundError`, which lists the known names.
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


def load_queries(directory: str | Path | None = None) -> Queries:
    """Read every ``*.sql`` file of a folder into a `Queries` mapping.

    Parameters
    ----------
    directory
        The folder to read; the package's own SQL folder by default.

    Raises
    ------
    WarehouseError
        If the folder is missing, or a file is empty, unreadable or lacks its comment header
        (the message gives the file's path).

    Examples
    --------
    >>> "session_ohlcv" in load_queries()
    True
    """
    folder = Path(directory) if directory is not None else SQL_DIR
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
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        if not body.strip():
            raise WarehouseError(f"{path}: holds no statement")
        texts[path.stem] = text
    return Queries(texts, folder)
