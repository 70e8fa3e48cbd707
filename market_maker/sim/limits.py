"""Connection caps of the simulator and refusals logged once per client, not once per attempt."""
from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("market_maker.sim.server")

MAX_REMEMBERED = 10_000  # refusal log marks kept; beyond that they are forgotten all at once


class OncePerClient:
    """Logs a refusal the first time it happens to a client; later ones are only counted.

    ``forget(client)`` re-arms the log line (e.g. when the client dropped below the cap)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def refuse(self, kind: str, client: str | None, text: str, *args: object) -> None:
        """Count one refusal of ``kind``; log ``text % args`` if this client has not seen one yet."""
        self.counts[kind] += 1
        mark = (kind, client or "?")
        if mark in self._logged:
            return
        if len(self._logged) >= MAX_REMEMBERED:
            self._logged.clear()
        self._logged.add(mark)
        log.warning(text + " (logged once per client)", *args)

    def forget(self, kind: str, client: str | None) -> None:
        """The next refusal of ``kind`` for ``client`` is logged again."""
        self._logged.discard((kind, client or "?"))


class ConnectionCaps:
    """Open WebSocket connections per client address and in total."""

    def __init__(self, per_address: int, total: int, refusals: OncePerClient) -> None:
        self.per_address = per_address
        self.total = total
        self.refusals = refusals
        self.open = 0
        self._by_address: Counter[str] = Counter()

    def admit(self, address: str | None) -> tuple[int, str] | None:
        """Reserve a slot for a new connection, or (HTTP status, reason) if it is refused."""
        address = address or "?"
        if self.open >= self.total:
            self.refusals.refuse("ws_total", address,
                                 "refusing WebSocket from %s: %d connections open (limit %d)",
                                 address, self.open, self.total)
            return 503, f"the simulator has {self.total} WebSocket connections open (limit)"
        if self._by_address[address] >= self.per_address:
            self.refusals.refuse("ws_per_address", address,
                                 "refusing WebSocket from %s: %d connections open from it (limit %d)",
                                 address, self._by_address[address], self.per_address)
            return 429, f"{self.per_address} WebSocket connections open from {address} (limit)"
        self.open += 1
        self._by_address[address] += 1
        return None

    def release(self, address: str | None) -> None:
        """A connection admitted by ``admit`` has ended."""
        address = address or "?"
        self.open -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
        self.refusals.forget("ws_per_address", address)
        self.refusals.forget("ws_total", address)

    def from_address(self, address: str | None) -> int:
        """Connections open from ``address``."""
        return self._by_address.get(address or "?", 0)
