"""Types of the compiled `warehouse._derive` (see _derive.pyx)."""

from typing import Any

from warehouse._bar import Bar

def newest(
    window: list[Bar], anchor: int, step: int, close: int, symbol: str, kind: type[Any]
) -> Any: ...
