"""The event queue of the ``Exchange`` facade: the events of each operation, coalesced where an
operation touches several levels or accounts, read with ``drain_events``.

``EventQueue`` is a mixin of ``Exchange`` (its snapshots of positions and margins are
``AccountAdmin``'s); ``silence`` and ``book_as_count`` let an in-process caller skip the
events nobody reads.
"""
from __future__ import annotations

from typing import Iterable

from .account_admin import _position_row_of
from .accounts import Account, Position
from .core import Core
from .engine import BUY, SELL
from .events import Event
from .market import ExchangeConfig
from .market_data import _Market
from .rows import level_delete_row, level_row, margin_row


class EventQueue(Core):
    """The queued events of an ``Exchange`` (see module doc)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]

    def __init__(self, config: ExchangeConfig) -> None:
        super().__init__(config)
        self._market_list: list[_Market] = list(self._markets.values())
        self._events: list[Event] = []
        # book_as_count: single-order book changes counted here instead of queued as events
        self._count_book = False
        self.book_changes = 0
        self._dirty_pos: dict[tuple[int, str, int], None] = {}
        self._dirty_margin: dict[tuple[int, str], None] = {}

    def _flush(self) -> None:
        """Queue the coalesced book, position and margin events of one operation."""
        events = self._events
        for mk in self._market_list:
            if mk.book.touched:
                self._flush_book(mk)
        if self._dirty_pos:
            accounts, markets = self._accounts, self._markets
            for aid, symbol, side in self._dirty_pos:
                acct = accounts[aid]
                pos = acct.positions.get((symbol, side))
                if pos is None:
                    pos = acct.position(symbol, side, markets[symbol].asset)
                events.append(Event("position", aid, symbol, None, "update", _position_row_of,
                                    self._position_snapshot(acct, pos)))
            self._dirty_pos.clear()
        if self._dirty_margin:
            accounts = self._accounts
            for aid, asset in self._dirty_margin:
                events.append(Event("margin", aid, None, None, "update", margin_row,
                                    self._margin_snapshot(accounts[aid], asset)))
            self._dirty_margin.clear()

    def _flush_book(self, m: _Market) -> None:
        events = self._events
        fmt, symbol, asset = m.fmt, m.symbol, m.asset
        book = m.book
        levels = book.levels
        touched = book.touched
        for key, existed in touched.items():
            level = levels.get(key)
            size = level.total if level is not None else 0
            if key > 0:
                side, ticks = BUY, key
            else:
                side, ticks = SELL, -key
            if size:
                events.append(Event("order_book", None, symbol, None,
                                    "update" if existed else "insert", level_row,
                                    (fmt, symbol, asset, side, ticks, size)))
            elif existed:
                events.append(Event("order_book", None, symbol, None, "delete",
                                    level_delete_row, (fmt, symbol, side, ticks)))
        touched.clear()

    @staticmethod
    def _level_event(m: _Market, side: int, ticks: int, placed: bool) -> Event:
        """The ``order_book`` event of one level after a single order was placed on it or left it."""
        level = m.book.levels.get(ticks if side == BUY else -ticks)
        if level is None:
            return Event("order_book", None, m.symbol, None, "delete", level_delete_row,
                         (m.fmt, m.symbol, side, ticks))
        return Event("order_book", None, m.symbol, None,
                     "insert" if placed and len(level.orders) == 1 else "update", level_row,
                     (m.fmt, m.symbol, m.asset, side, ticks, level.total))

    def _touch(self, acct: Account, asset: str, pos: Position | None = None) -> None:
        if acct.silent:
            return
        self._dirty_margin[(acct.id, asset)] = None
        if pos is not None:
            self._dirty_pos[(acct.id, pos.symbol, pos.side)] = None

    def drain_events(self) -> list[Event]:
        """Every event queued since the last call, in order."""
        events = self._events
        self._events = []
        return events

    def book_as_count(self) -> None:
        """Queue no ``order_book`` event for the book change of a single-order operation (an order
        resting without a fill, the cancel of one order): count it in ``book_changes`` instead.

        For an in-process caller that reads the book itself and only needs to know that it
        changed (a backtest): those events are most of a synthetic market's, and their rows
        would be snapshotted for nobody.  Matching operations still queue their book events.
        The real-time simulator publishes every book change."""
        self._count_book = True

    def silence(self, account_ids: Iterable[int]) -> None:
        """Queue no private event (order, execution, position, margin) of these accounts.

        For an in-process caller that reads only some accounts' events: a backtest reads the
        public tables and its bot's account, never the market's own accounts, whose rows would
        then be built for nobody (most of a synthetic market's cost).  Public events (book,
        trades), every state change and every answer stay as they were.  The real-time
        simulator silences nobody: any account may have a subscriber."""
        for account_id in account_ids:
            self._acct(account_id).silent = True
