"""In-memory stand-ins for the REST client and the WebSocket client, for manager unit tests."""
import itertools
from decimal import Decimal

from market_maker.gte.errors import OrderNotFound
from market_maker.models import Book, Instrument, Margin, MarketSnapshot, Order, Position, Positions

INSTRUMENT = Instrument(symbol="BTC_USD", settle_currency="BTC", tick_size=Decimal("0.5"), price_precision=1,
                        face_value=Decimal(1), symbol_id=1)


class FakeLimiter:
    def __init__(self):
        self.batch_wait = 0.0

    def time_until_available(self, endpoint):
        return self.batch_wait if "batch" in endpoint else 0.0


class FakeRest:
    def __init__(self, prefix="mm_"):
        self.prefix = prefix
        self.orders = {}
        self.calls = []
        self.rate_limiter = FakeLimiter()
        self._ids = itertools.count(1000)

    def create_order(self, side, price, qty, close_flag=0, client_oid=None):
        order_id = str(next(self._ids))
        order = Order(order_id=order_id, client_oid=client_oid or f"{self.prefix}{order_id}", side=side,
                      close_flag=close_flag, price=price, qty=qty, filled_qty=0, status=2)
        self.orders[order_id] = order
        self.calls.append(("create", side, price, qty, close_flag))
        return order

    def cancel_order(self, order_id):
        self.calls.append(("cancel", order_id))
        if self.orders.pop(order_id, None) is None:
            raise OrderNotFound(-20002, "order not found")
        return order_id

    def cancel_batch(self, order_ids):
        self.calls.append(("cancel_batch", tuple(order_ids)))
        for order_id in order_ids:
            self.orders.pop(order_id, None)

    def open_orders(self):
        self.calls.append(("open_orders",))
        return list(self.orders.values())

    def change_leverage(self, leverage, mode, long_flag=None):
        self.calls.append(("leverage", leverage, mode, long_flag))

    def count(self, kind):
        return sum(1 for c in self.calls if c[0] == kind)


class FakeWs:
    """Serves a snapshot built from the fake REST orders (an ideal, instant socket)."""

    def __init__(self, rest, bid="9999.5", ask="10000.5"):
        self.rest = rest
        self.book = Book(bids=((Decimal(bid), 10),), asks=((Decimal(ask), 10),))
        self.positions = Positions()
        self.margin = Margin("BTC", total=Decimal("10"), available=Decimal("10"))
        self.connected = True
        self.synced = True
        self.last_update_ms = None
        self.stats = {"fills": 0}
        self.started = False
        self.fatal_error = None

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def known_order_ids(self, order_ids):
        return {i for i in order_ids if i in self.rest.orders}

    def snapshot(self, depth=50):
        import time
        return MarketSnapshot(instrument=INSTRUMENT, book=self.book, orders=tuple(self.rest.orders.values()),
                              positions=self.positions, margin=self.margin,
                              last_update_ms=self.last_update_ms or int(time.time() * 1000),
                              connected=self.connected, synced=self.synced)

    def top_of_book(self, depth=1):
        return self.book

    def set_unrealised(self, pnl):
        self.positions = Positions(long=Position("long", qty=100, avail_qty=100, entry_price=Decimal("10000"),
                                                 unrealised_pnl=Decimal(pnl)))
