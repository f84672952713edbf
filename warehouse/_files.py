"""Which file a path names: by identity (device and inode) and by resolved path.

A file has many names: a hard link, a symlink, ``./x`` and ``x``, a folder mounted twice. Two
paths name the same file if they resolve to the same path (a file not made yet has only that)
or if `os.stat` gives the same device and inode (every name of an existing file, hard links
included). `file_keys` returns both, so that a set of keys compares files whichever way they
are named.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FileKey", "file_keys", "identity"]

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
