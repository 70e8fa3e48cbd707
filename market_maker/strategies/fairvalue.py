"""Fair value: the price the strategies quote around.

``mid`` and ``microprice`` are pure functions of the GTE book. ``microprice`` weighs each side's
best price by the size on the *other* side: ``(bid * ask_size + ask * bid_size) / (bid_size +
ask_size)``, so it leans towards the side about to be eaten. An external venue's book ticker
(``binance:SYMBOL``, ``gateio:SYMBOL``) is read by :mod:`.external`; its mid is used only while it
is fresh and close to the GTE mid (FAIR_VALUE_STALE_S, FAIR_VALUE_MAX_DEVIATION).
"""
from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Optional, Sequence, Tuple

from ..models import BUY, Book, Order

__all__ = ["mid", "microprice", "check_external", "others_book", "parse_spec"]

LOCAL = ("mid", "microprice")
VENUES = ("binance", "gateio")


def others_book(book: Book, own_orders: Sequence[Order]) -> Book:
    """The book without our own resting quantity: the market our quotes should be centred on.

    Left in, our own quotes would move the mid we quote around, and a skewed quote would keep
    dragging it further (the fair value chasing itself)."""
    own = Counter()
    for o in own_orders:
        if o.is_open:
            own[(o.side == BUY, o.price)] += o.remaining
    if not own:
        return book

    def strip(levels, is_bid):
        return tuple((price, size - own[(is_bid, price)]) for price, size in levels
                     if size - own[(is_bid, price)] > 0)
    return Book(bids=strip(book.bids, True), asks=strip(book.asks, False))


def mid(book: Book) -> Optional[Decimal]:
    if book.best_bid is None or book.best_ask is None:
        return None
    return (book.best_bid + book.best_ask) / 2


def microprice(book: Book) -> Optional[Decimal]:
    if not book.bids or not book.asks:
        return None
    (bid, bid_size), (ask, ask_size) = book.bids[0], book.asks[0]
    if bid_size + ask_size <= 0:
        return mid(book)
    return (bid * ask_size + ask * bid_size) / (bid_size + ask_size)


def parse_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"mid"`` -> ("mid", None); ``"binance:BTCUSDT"`` -> ("binance", "BTCUSDT"); ValueError otherwise."""
    if spec in LOCAL:
        return spec, None
    venue, sep, symbol = spec.partition(":")
    if sep and venue in VENUES and symbol and symbol.replace("_", "").isalnum():
        return venue, symbol
    raise ValueError(spec)


def check_external(price: Optional[Decimal], age_s: Optional[float], gte_mid: Optional[Decimal],
                   stale_s: float, max_deviation: Decimal) -> Optional[str]:
    """Why an external price must not be quoted around, or None when it may."""
    if price is None or age_s is None:
        return "no price from the external source yet"
    if age_s > stale_s:
        return f"the external price is {age_s:.1f}s old (FAIR_VALUE_STALE_S {stale_s:g})"
    if gte_mid is None:
        return "the GTE book has no mid to compare the external price with"
    deviation = abs(price - gte_mid) / gte_mid
    if deviation > max_deviation:
        return (f"the external price {price} is {deviation:.2%} from the GTE mid {gte_mid} "
                f"(FAIR_VALUE_MAX_DEVIATION {max_deviation})")
    return None
