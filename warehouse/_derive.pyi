"""Types of the compiled `warehouse._derive` (see _derive.pyx)."""

from collections.abc import Callable
from typing import Any

from warehouse._bar import Bar

def newest(
    window: list[Bar], anchor: int, step: int, close: int, symbol: str, kind: type[Any]
) -> Any: ...

class Latest:
    """`Warehouse.latest_derived`: the newest bar of a declared interval from its forming bucket."""

    anchored: bool
    def __init__(
        self,
        series: dict[str, Any],
        caches: list[dict[str, Any]],
        keys: tuple[int | str, ...],
        slots: dict[int | str, int],
        fallback: Callable[[str, int | str], Any],
        compute: Callable[[str, int | str], Any],
        refresh: Callable[[str, int], Any],
        kind: type[Any],
        finished: list[dict[str, Any]] | None = None,
        last_n: Callable[[str, int, int | str], list[Any]] | None = None,
    ) -> None: ...
    def last_n(self, symbol: str, n: int, interval: int | str) -> list[Any]: ...
    def latest(self, symbol: str, interval: int | str) -> Any: ...
    def latest_of(self, symbol: str, k: int) -> Any: ...
