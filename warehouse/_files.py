"""Which file a path names: by identity (device and inode), and the files no output may replace.

A file has many names: a hard link, a symlink, ``./x`` and ``x``, a folder mounted twice. Two
paths name the same file if they resolve to the same path (a file not made yet has only that)
or if `os.stat` gives the same device and inode (every name of an existing file, hard links
included). `file_keys` returns both, so that a set of keys compares files whichever way they
are named.
"""

from __future__ import annotations

import os
from pathlib import Path

from warehouse.errors import WarehouseError

__all__ = ["FileKey", "Protected", "file_keys", "identity"]

#: ("path", resolved path) or ("inode", device, inode).
FileKey = tuple[str, str] | tuple[str, int, int]


def identity(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of the file or folder ``path`` names, symlinks followed; None if none."""
    try:
        info = Path(path).stat()
    except (OSError, ValueError):  # missing, a dangling or looping link, a NUL in the name
        return None
    return info.st_dev, info.st_ino


def file_keys(path: str | Path) -> set[FileKey]:
    """The keys of the file ``path`` names: its resolved path, and its identity if it exists."""
    keys: set[FileKey] = {("path", _resolved(path))}
    found = identity(path)
    if found is not None:
        keys.add(("inode", *found))
    return keys


def _resolved(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop: no file behind it, the name is all
        return str(Path(path).absolute())


class Protected:
    """The files (and folders, with all they hold) that a command must not write over.

    `check` refuses an output path that names one of them by any name (a hard link or a
    symlink too), or that lies inside a protected folder, or in an archive by its layout (a
    ``date=...`` partition folder, a ``_manifest.json``), before anything is written.
    """

    def __init__(self) -> None:
        self._files: dict[FileKey, str] = {}
        self._folders: dict[FileKey, str] = {}

    @classmethod
    def around(
        cls,
        db: str | Path | None = None,
        *,
        archive: str | Path | None = None,
        inputs: list[Path] | tuple[Path, ...] = (),
    ) -> Protected:
        """A warehouse file (its WAL and journal too), its archive folder and input files."""
        protected = cls()
        if db is not None and str(db) != ":memory:":
            protected.add_file(db, f"the warehouse file {db}")
            protected.add_file(f"{db}.wal", f"the write-ahead log of {db}")
            protected.add_folder(f"{db}.journal", f"the journal of {db}")
        if archive is not None:
            protected.add_folder(archive, f"the archive {archive}")
        for path in inputs:
            protected.add_file(path, f"the input file {path}")
        return protected

    def add_file(self, path: str | Path, what: str) -> None:
        """Protect the file ``path`` names (described as ``what`` in the refusal)."""
        for key in file_keys(path):
            self._files.setdefault(key, what)

    def add_folder(self, path: str | Path, what: str) -> None:
        """Protect a folder: everything under it, and every file in it by its identity."""
        for key in file_keys(path):
            self._folders.setdefault(key, what)
        # A hard link elsewhere to a file inside shares only its identity.
        for root, _, names in os.walk(path):
            for name in names:
                found = identity(Path(root, name))
                if found is not None:
                    self._files.setdefault(("inode", *found), f"a file of {what}")

    def check(self, path: str | Path, option: str) -> None:
        """Refuse ``path``, given as ``option``, if writing there would replace what is protected.

        Raises
        ------
        WarehouseError
            Naming the option, the path and what it would write over.
        """
        what = self._over(Path(path))
        if what is not None:
            raise WarehouseError(f"{option} {path} would write over {what}; pass another "
                                 f"{option}")

    def _over(self, path: Path) -> str | None:
        for key in file_keys(path):
            if key in self._files:
                return self._files[key]
            if key in self._folders:
                return self._folders[key]
        resolved = Path(_resolved(path))
        for folder in resolved.parents:
            for key in file_keys(folder):
                if key in self._folders:
                    return self._folders[key]
        if resolved.name == "_manifest.json":
            return "an archive's manifest"
        partition = next((p for p in resolved.parents if p.name.startswith("date=")), None)
        if partition is not None:
            return f"an archive's partition {partition}"
        return None
