"""Order queries of the ``Exchange`` facade: an account's orders, open or in its history.

``OrderQueries`` is a mixin of ``Exchange`` (whose ``_oid`` reads an order id given as str
or int).  Rows are ``rows.current_order_row`` of each order as it stands.

* ``query_orders``: newest first; with ``gt`` the ``count`` ids just above it (still
  returned newest first), else the newest ``count`` below ``lt``.
* ``orders_by_client_oid`` finds the orders still in the account's order history
  (open orders + the last ``history_limit`` final ones): the client_oid index is
  trimmed together with the history, so it stays bounded over a long run.
"""
from __future__ import annotations

from typing import KeysView

from .core import Core
from .engine import Order
from .market_data import _Market
from .rows import current_order_row


class OrderQueries(Core):
    """Rows and ids of an account's orders (a mixin of ``Exchange``)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]

    def query_orders(self, account_id: int, symbol: str | None, statuses: set[int] | None,
                     order_id: str | None, gt_order_id: str | None, lt_order_id: str | None,
                     count: int) -> list[dict]:
        """Order rows of the account, newest first (see module doc for gt/lt)."""
        acct = self._acct(account_id)

        def keep(o: Order) -> bool:
            return (symbol is None or o.symbol == symbol) and \
                (not statuses or o.status in statuses)

        if order_id is not None:
            o = acct.orders.get(self._oid(order_id))   # type: ignore[arg-type]
            found = [o] if o is not None and keep(o) else []
        elif gt_order_id is not None:
            gt = self._oid(gt_order_id)
            found = []
            if gt is not None:
                for o in acct.orders.values():
                    if o.oid > gt and keep(o):
                        found.append(o)
                        if len(found) >= count:
                            break
            found.reverse()
        else:
            lt = self._oid(lt_order_id) if lt_order_id is not None else None
            found = []
            for o in reversed(acct.orders.values()):
                if (lt is None or o.oid < lt) and keep(o):
                    found.append(o)
                    if len(found) >= count:
                        break
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in found]

    def open_orders_of(self, account_id: int) -> list[dict]:
        """Rows of the account's open orders, oldest first."""
        acct = self._acct(account_id)
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in acct.open_orders.values()]

    def open_order_ids(self, account_id: int) -> set[str]:
        """Ids of the account's open orders."""
        return {str(oid) for oid in self._acct(account_id).open_orders}

    def open_quote_ids(self, account_id: int) -> KeysView[int]:
        """Ids of the account's open orders as ``place_quote`` returns them: a live view, valid
        until the next operation (for in-process market models; no set is built)."""
        return self._acct(account_id).open_orders.keys()   # type: ignore[return-value]

    def orders_by_client_oid(self, account_id: int, client_oid: str) -> list[dict]:
        """Rows of every order ever accepted for the account with ``client_oid``."""
        acct = self._acct(account_id)
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in acct.by_client.get(client_oid, [])]
