"""Prometheus metrics on METRICS_ADDRESS, path /metrics (needs the ``ops`` extra: prometheus_client).

Counts the bot already keeps (orders, fills, WebSocket reconnects, resyncs, seq gaps, REST
errors), its position, equity and PnL are read at scrape time from the last snapshot and
the counters; nothing is added to the decision path for them. Latencies are observed as
they happen: each decision (the runner's cycle), each REST request by endpoint (the REST
client's transport call), each rate-limiter wait. Money is exact in the bot; here it is a
float, as Prometheus samples are.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Deque, Iterator, Optional, Tuple

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..events import Event
from ..settings import SettingsError
from .state import BotView, counts

log = logging.getLogger("market_maker.ops")

PREFIX = "gte_mm_"
API_PREFIX = "/v1/api/"
DECISION_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PENDING_MAX = 100_000
REST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _f(value: Any) -> float:
    return float(value) if value is not None else float("nan")


class BotCollector(Collector):
    """Scrape-time values read from the running bot."""

    def __init__(self, view: BotView):
        self.view = view
        self.funding = 0.0  # summed from "funding" events (the only PnL part no snapshot carries)
        self.before_collect: Callable[[], None] = lambda: None
        self.funding_known = False

    def handle(self, event: Event) -> None:  # an event sink: return at once
        if event.kind == "funding" and event.fields.get("amount") is not None:
            self.funding += float(event.fields["amount"])

    def collect(self) -> Iterator[Metric]:
        self.before_collect()
        view = self.view
        exchange, manager = view.exchange, view.manager
        snap = manager.snap
        counters = exchange.counters
        ws_stats = exchange.ws.stats if hasattr(exchange.ws, "stats") else {}

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        yield counter("orders_created", "Order creations sent", counters.get("orders_sent", 0))
        yield counter("orders_cancelled", "Order cancels sent", counters.get("orders_cancelled", 0))
        yield counter("orders_rejected", "Order creations the exchange refused", counters.get("orders_rejected", 0))
        yield counter("orders_in_doubt", "Order creations with no answer", counters.get("orders_in_doubt", 0))
        yield counter("ws_reconnects", "WebSocket reconnects", ws_stats.get("reconnects", 0))
        yield counter("ws_disconnects", "WebSocket connections lost", ws_stats.get("disconnects", 0))
        yield counter("ws_resyncs", "WebSocket table resyncs", ws_stats.get("resyncs", 0))
        yield counter("ws_seq_gaps", "WebSocket sequence gaps seen", ws_stats.get("seq_gap", 0))
        errors = CounterMetricFamily(PREFIX + "rest_errors", "REST requests that failed, by error", labels=["error"])
        rest_stats = getattr(exchange.rest, "stats", None)
        if rest_stats is not None:
            for name, count in sorted(counts(rest_stats.errors).items()):
                errors.add_metric([name], count)
            yield counter("rest_retries", "REST requests resent", rest_stats.retries)
        yield errors
        connected = bool(snap is not None and snap.connected)
        yield gauge("ws_connected", "1 while the WebSocket is connected", 1 if connected else 0)
        yield gauge("ws_synced", "1 while every WebSocket table is in sync",
                    1 if snap is not None and snap.synced else 0)
        yield gauge("paused", "1 while the bot does not quote (operator or sanity pause)", 1 if view.paused() else 0)
        d = view.decisions
        yield counter("running_seconds", "Time covered by decisions", d.running_s)
        yield counter("quoting_seconds", "Of that, time with own orders on both sides", d.quoting_s)
        yield gauge("quote_uptime_ratio", "quoting_seconds / running_seconds since the start",
                    d.quoting_s / d.running_s if d.running_s else 0.0)
        yield gauge("open_orders", "Own open orders", len(view.own_orders()))
        if snap is None:
            return
        yield counter("fills", "Executions of own orders", snap.fill_count)
        yield counter("maker_fills", "Executions of own resting orders", snap.maker_fill_count)
        yield counter("volume_contracts", "Contracts filled on own orders", snap.contracts_traded)
        position = GaugeMetricFamily(PREFIX + "position_contracts", "Position in contracts", labels=["leg"])
        position.add_metric(["long"], snap.positions.long.qty)
        position.add_metric(["short"], snap.positions.short.qty)
        position.add_metric(["net"], snap.positions.net)
        yield position
        currency = view.settings.SETTLECURRENCY
        pnl = view.pnl()
        equity = GaugeMetricFamily(PREFIX + "equity", "Account equity (settle currency)", labels=["currency"])
        equity.add_metric([currency], _f(pnl["equity"]))
        yield equity
        drawdown = GaugeMetricFamily(PREFIX + "drawdown", "Start equity minus equity (settle currency)",
                                     labels=["currency"])
        drawdown.add_metric([currency], _f(pnl["drawdown"]))
        yield drawdown
        parts = GaugeMetricFamily(PREFIX + "pnl", "PnL since the start by component (settle currency; fees paid "
                                  "are positive)", labels=["component", "currency"])
        for component in ("realised", "unrealised", "fees"):
            parts.add_metric([component, currency], _f(pnl[component]))
        if self.funding_known:
            parts.add_metric(["funding", currency], self.funding)
        yield parts
        book = snap.book
        if book.best_bid is not None and book.best_ask is not None:
            yield gauge("mid_price", "Mid of the best bid and ask", float((book.best_bid + book.best_ask) / 2))


class Metrics:
    """The registry, the latency histograms and the HTTP endpoint."""

    def __init__(self, view: BotView, address: Tuple[str, int]):
        self.view = view
        self.registry = CollectorRegistry()
        self.collector = BotCollector(view)
        self.registry.register(self.collector)
        self.decision = Histogram(PREFIX + "decision_seconds", "Time of one decision (snapshot to last request)",
                                  buckets=DECISION_BUCKETS, registry=self.registry)
        self.rest = Histogram(PREFIX + "rest_request_seconds", "REST request time by endpoint",
                              ["endpoint"], buckets=REST_BUCKETS, registry=self.registry)
        self.waits = Histogram(PREFIX + "rate_limit_wait_seconds", "Waits of the client-side rate limiter "
                               "(only those that waited)", buckets=REST_BUCKETS, registry=self.registry)
        # (path, seconds) of REST requests and ("", seconds) of decisions, not yet in the histograms; bounded:
        # never scraped, the oldest are dropped
        self.pending: Deque[Tuple[str, float]] = deque(maxlen=PENDING_MAX)
        self._children: dict = {}
        self.address = address
        self.server: Any = None
        self.port: Optional[int] = None

    def instrument(self, listen: bool = False) -> None:
        """Observe decisions, REST requests and rate-limiter waits (installed only when metrics are on).

        The decision path only appends (a deque append, thread-safe); the histograms take the
        observations at scrape time, in the server's thread."""
        pending = self.pending
        self.view.observers.append(lambda seconds: pending.append(("", seconds)))
        if listen:  # funding: only from the bus's events
            self.view.exchange.events.subscribe(self.collector)
        self.collector.funding_known = listen
        rest = self.view.exchange.rest
        exchange_call = getattr(rest, "_exchange", None)
        if exchange_call is not None:
            perf = time.perf_counter

            def timed_exchange(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
                t0 = perf()
                try:
                    return exchange_call(method, path, *args, **kwargs)
                finally:
                    pending.append((path, perf() - t0))
            rest._exchange = timed_exchange
        limiter = getattr(rest, "rate_limiter", None)
        sleep = getattr(limiter, "_sleep", None)
        if sleep is not None:  # the limiter sleeps only when it must wait: nothing added to a call that does not
            waits = self.waits

            def counted_sleep(seconds: float) -> None:
                waits.observe(seconds)
                sleep(seconds)
            limiter._sleep = counted_sleep
        self.collector.before_collect = self.fold

    def fold(self) -> None:
        """Move the pending observations into the histograms (at scrape time)."""
        pending, decision, children = self.pending, self.decision, self._children
        while True:
            try:
                path, seconds = pending.popleft()
            except IndexError:
                return
            if not path:
                decision.observe(seconds)
                continue
            child = children.get(path)
            if child is None:
                endpoint = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else path
                child = children[path] = self.rest.labels(endpoint)
            child.observe(seconds)

    def start(self) -> None:
        host, port = self.address
        try:
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise SettingsError(f"METRICS_ADDRESS = '{host}:{port}' cannot be used: {exc.strerror or exc}") from None
        self.port = self.server.server_address[1]
        log.info("Prometheus metrics at http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
