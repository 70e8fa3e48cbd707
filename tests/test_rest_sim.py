"""The REST client against the local simulator over loopback: limits, lost responses, fills."""
import time
from decimal import Decimal

import pytest

from market_maker.gte.rest import GteRest
from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket
from market_maker.models import BUY, SELL
from market_maker.sim import SimConfig, run_simulator


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(port=0, seed=11, flow=False, balance=Decimal("100"))) as server:
        yield server


def rest_for(sim, prefix="t_"):
    return GteRest(sim.base_url, Credentials(sim.api_key, sim.api_secret), order_id_prefix=prefix, timeout=3)


def test_a_burst_of_100_creates_is_spread_and_never_rate_limited(sim):
    rest = rest_for(sim, "burst_")
    started = time.monotonic()
    orders = [rest.create_order(BUY, Decimal("5000") + i, 1) for i in range(100)]
    elapsed = time.monotonic() - started
    assert len({o.order_id for o in orders}) == 100
    assert elapsed >= 5.0  # 19 per window of 1.05 s (one in reserve): six windows
    assert rest.stats.errors.get("RateLimited", 0) == 0 and rest.stats.retries == 0
    rest.cancel_batch([o.order_id for o in orders[:50]])
    for order in orders[50:]:
        rest.cancel_order(order.order_id)
    assert [o for o in rest.open_orders() if o.client_oid.startswith("burst_")] == []


def test_lost_responses_never_duplicate_an_order(sim):
    rest = rest_for(sim, "lost_")
    sim.set_faults(lost_response_rate=Decimal("0.5"))
    try:
        oids = []
        for i in range(12):
            oid = rest.new_client_oid()
            oids.append(oid)
            rest.create_order(SELL, Decimal("20000") + i, 1, client_oid=oid)
    finally:
        sim.set_faults(lost_response_rate=Decimal("0"))
    assert sim.fault_counters().get("lost_response", 0) > 0
    per_oid = sim.call(lambda ex: [len(ex.orders_by_client_oid(sim.account_id, oid)) for oid in oids])
    assert per_oid == [1] * 12
    assert rest.stats.lost_responses_resolved > 0


def test_fills_show_in_order_execution_position_and_margin_tables(sim):
    maker = rest_for(sim, "mk_")
    key, secret = "taker-key-000001", "taker-secret-000001"
    sim.add_account(key, secret, Decimal("100"))
    taker = GteRest(sim.base_url, Credentials(key, secret), order_id_prefix="tk_")
    with GteWebSocket(sim.ws_url, "BTC_USD", "BTC", Credentials(sim.api_key, sim.api_secret)) as ws:
        before = ws.snapshot()
        order = maker.create_order(BUY, Decimal("9000"), 30)
        taker.create_order(SELL, Decimal("9000"), 30)

        def all_arrived(snap):  # order, execution, position and margin come in separate messages
            return (snap.contracts_traded - before.contracts_traded >= 30
                    and snap.positions.long.qty >= before.positions.long.qty + 30
                    and order.order_id not in {o.order_id for o in snap.orders}
                    and snap.margin.pos_margin > before.margin.pos_margin
                    and snap.fees_paid < before.fees_paid)
        deadline = time.monotonic() + 30  # generous: a loaded machine delays, it does not lose
        snap = ws.snapshot()
        while not all_arrived(snap) and time.monotonic() < deadline:
            time.sleep(0.05)
            snap = ws.snapshot()
        assert snap.contracts_traded - before.contracts_traded == 30
        assert snap.positions.long.qty == before.positions.long.qty + 30
        assert order.order_id not in {o.order_id for o in snap.orders}  # filled: no longer open
        assert snap.margin.pos_margin > before.margin.pos_margin
        assert snap.fees_paid < before.fees_paid  # a maker rebate
