"""What the report reads from one run of a journal (plain data, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, NamedTuple, Optional, Tuple


class Fill(NamedTuple):
    """One of our executions, as journaled (``price``/``fee`` kept as their exact text too)."""
    ts_ms: int
    exec_id: str
    order_id: str
    client_oid: Optional[str]
    side: int                   # +1 buy, -1 sell
    close_flag: int
    price_text: str
    qty: int
    fee_text: str
    maker: Optional[int]        # 1 maker, 0 taker, None unknown
    realised_pnl: Optional[str]
    source: str

    @property
    def price(self) -> Decimal:
        return Decimal(self.price_text)

    @property
    def fee(self) -> Decimal:
        return Decimal(self.fee_text)


@dataclass
class RunData:
    """One run of a journal: its row, the series the report needs and SQL-aggregated counts."""
    run: Dict[str, object]
    start_ms: int
    end_ms: int
    stopped: bool                                  # False: no stop recorded (still running, or crashed)
    mid_ts: List[int] = field(default_factory=list)
    mid_text: List[str] = field(default_factory=list)
    mark_ts: List[int] = field(default_factory=list)
    mark_text: List[str] = field(default_factory=list)
    fills: List[Fill] = field(default_factory=list)
    # requotes: (ts_ms, our best bid or None, our best ask or None), floats: for uptime and the plot
    quotes: List[Tuple[int, Optional[float], Optional[float]]] = field(default_factory=list)
    events: List[Tuple[int, str, str]] = field(default_factory=list)       # (ts_ms, kind, detail)
    # margins: (ts_ms, total as float, order margin + position margin as float), the exact first and last total
    margins: List[Tuple[int, float, float]] = field(default_factory=list)
    equity_first: Optional[Tuple[int, str]] = None                        # (ts_ms, total) of the first margins row
    equity_last: Optional[Tuple[int, str]] = None
    funding: List[Tuple[int, str]] = field(default_factory=list)          # (ts_ms, amount)
    position_end: Optional[int] = None            # long - short of the last positions rows (None: no rows)
    requests: Dict[str, int] = field(default_factory=dict)               # order_requests counts, see reader

    @property
    def run_id(self) -> int:
        return int(self.run["run_id"])  # type: ignore[call-overload]

    @property
    def settle(self) -> str:
        return str(self.run["settle_currency"])
