"""``Event``: one change the ``Exchange`` facade publishes (a wire table row, or an internal
record such as a funding payment), its row built lazily."""
from __future__ import annotations

from typing import Any


class Event:
    """One change to publish: table ``kind``, owner (None = public), symbol, row, action.

    Behaves like the 5-tuple ``(kind, account_id, symbol, row, action)`` (attributes,
    unpacking, indexing, equality) but ``row`` is built on first access from a
    snapshot taken when the event happened, then cached: events nobody reads
    (e.g. of market-flow accounts) cost no formatting.  Treat rows as read-only.
    """
    __slots__ = ("kind", "account_id", "symbol", "action", "_row", "_build", "_args")
    _fields = ("kind", "account_id", "symbol", "row", "action")

    def __init__(self, kind: str, account_id: int | None, symbol: str | None,
                 row: dict | None, action: str, build: Any = None, args: tuple = ()) -> None:
        self.kind = kind
        self.account_id = account_id
        self.symbol = symbol
        self.action = action
        self._row = row
        self._build = build
        self._args = args

    @property
    def row(self) -> dict:
        """The wire row (built once, then cached)."""
        row = self._row
        if row is None:
            row = self._row = self._build(*self._args)
            self._build = None
            self._args = ()
        return row

    def _tuple(self) -> tuple:
        return (self.kind, self.account_id, self.symbol, self.row, self.action)

    def __iter__(self) -> Any:
        return iter(self._tuple())

    def __getitem__(self, index: Any) -> Any:
        return self._tuple()[index]

    def __len__(self) -> int:
        return 5

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Event, tuple)):
            return self._tuple() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Event(kind={self.kind!r}, account_id={self.account_id!r}, "
                f"symbol={self.symbol!r}, row={self.row!r}, action={self.action!r})")
