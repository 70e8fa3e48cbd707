"""In-memory stand-ins for the REST client and the WebSocket client, for manager unit tests."""
import itertools
from decimal import Decimal

from market_maker.gte.errors import OrderInDoubt, OrderNotFound
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
        self.doubt = []  # settle times (ms) of the next creates whose outcome will be unknown
        self.in_flight = {}  # client_oid -> order of a create in doubt that has not landed (yet)

    def create_order(self, side, price, qty, close_flag=0, client_oid=None):
        order_id = str(next(self._ids))
        order = Order(order_id=order_id, client_oid=client_oid or f"{self.prefix}{order_id}", side=side,
                      close_flag=close_flag, price=price, qty=qty, filled_qty=0, status=2)
        self.calls.append(("create", side, price, qty, close_flag))
        if self.doubt:  # the answer is lost and the order not found yet: it may still land
            settles_at = self.doubt.pop(0)
            self.in_flight[order.client_oid] = order
            raise OrderInDoubt(order.client_oid, settles_at, "no answer")
        self.orders[order_id] = order
        return order

    def land(self, client_oid):
        """A create that was in doubt executes at the exchange (late)."""
        order = self.in_flight.pop(client_oid)
        self.orders[order.order_id] = order
        return order

    def find_order_by_client_oid(self, client_oid):
        self.calls.append(("lookup", client_oid))
        return next((o for o in self.orders.values() if o.client_oid == client_oid), None)

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
    """Serves a snapshot built from the fake REST orders (an ideal, instant socket).

    Like the exchange, the margin row's ``total`` is the wallet balance plus the
    unrealised PnL of the positions at the mark (see ``set_position``/``set_mark``).
    """

    def __init__(self, rest, bid="9999.5", ask="10000.5"):
        self.rest = rest
        self.book = Book(bids=((Decimal(bid), 10),), asks=((Decimal(ask), 10),))
        self.wallet_balance = Decimal("10")
        self.mark = Decimal("10000")
        self.legs = {}  # "long"/"short" -> (qty, entry price)
        self.connected = True
        self.synced = True
        self.last_update_ms = None
        self.stats = {"fills": 0}
        self.unsynced_since_ms = 0  # when ``synced`` went False (wall ms); 0: just now
        self.resyncs = []
        self.gone = set()
        self.lost = {}  # id -> the order as the socket last showed it  # ids of orders whose final update the socket lost (lagging mode)
        self.lagging = False  # True: created orders reach the order table only through ``echo``
        self.echoed = set()
        self.started = False
        self.fatal_error = None

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def echo(self, *order_ids):
        """The order table hears of these orders (``lagging``: only what was echoed is in it)."""
        self.echoed.update(order_ids or self.rest.orders)

    def _table(self):
        orders = list(self.rest.orders.values()) + [self.lost[i] for i in self.gone if i in self.lost]
        return tuple(o for o in orders if o.order_id in self.echoed) if self.lagging else tuple(orders)

    def _known(self, order_id):
        return order_id in self.echoed if self.lagging else order_id in self.rest.orders

    def known_order_ids(self, order_ids):
        return {i for i in order_ids if self._known(i)}

    def snapshot(self, depth=50, watch=()):
        import time
        return MarketSnapshot(instrument=INSTRUMENT, book=self.book, orders=self._table(),
                              positions=self.positions, margin=self.margin,
                              last_update_ms=self.last_update_ms or int(time.time() * 1000),
                              connected=self.connected, synced=self.synced, fill_count=self.stats["fills"],
                              echoed=frozenset(i for i in watch if self._known(i)),
                              unsynced_since_ms=0 if self.synced else (self.unsynced_since_ms or int(time.time() * 1000)))

    def set_position(self, side, qty, entry):
        """Hold ``qty`` contracts on the long or short leg, entered at ``entry``."""
        self.legs[side] = (qty, Decimal(entry))

    def set_mark(self, mark):
        self.mark = Decimal(mark)

    def _leg(self, side):
        qty, entry = self.legs.get(side, (0, Decimal(0)))
        if not qty:
            return Position(side)
        upnl = qty * (1 / entry - 1 / self.mark)  # inverse contract, face value 1
        if side == "short":
            upnl = -upnl
        return Position(side, qty=qty, avail_qty=qty, entry_price=entry, unrealised_pnl=upnl)

    @property
    def positions(self):
        return Positions(long=self._leg("long"), short=self._leg("short"))

    @property
    def margin(self):
        positions = self.positions
        total = self.wallet_balance + positions.long.unrealised_pnl + positions.short.unrealised_pnl
        return Margin("BTC", total=total, available=total)

    def top_of_book(self, depth=1):
        return self.book

    def resync(self, table, reason):
        self.resyncs.append((table, reason))
        if self.lagging:  # the fresh partial brings the table in line with the exchange
            self.echoed = set(self.rest.orders) | (self.echoed - set(self.rest.orders) - self.gone)
