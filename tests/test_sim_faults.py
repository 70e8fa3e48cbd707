"""Fault injection: pure decisions (fake clock) and their effect on real connections."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests

from market_maker.sim import SimConfig, run_simulator
from market_maker.sim.faults import DROP, DUP, SEND, FaultConfig, FaultInjector

from .sim_helpers import Rest, Ws, expires_ms, new_account
from tests.waiting import wait_until


@pytest.fixture
def sim():
    with run_simulator(SimConfig(port=0, flow=False, rate_limits=False, seed=7)) as s:
        yield s


def book_ws(sim) -> Ws:
    conn = Ws(sim.ws_url)
    conn.sub("order_book")
    assert conn.table("order_book", "partial")["seq"] == 1
    return conn


def collect_seqs(conn: Ws, window: float) -> list[int]:
    seqs, end = [], time.monotonic() + window
    while True:
        try:
            seqs.append(conn.table("order_book", timeout=max(0.05, end - time.monotonic()))["seq"])
        except Exception:
            return seqs


# --- pure decisions --------------------------------------------------------------------------

def test_injector_is_deterministic_and_off_by_default():
    quiet = FaultInjector()
    assert {quiet.push_fate() for _ in range(1000)} == {SEND}
    assert quiet.http_5xx() is None and not quiet.lose_response() and quiet.latency_s() == 0
    assert not quiet.rate_limit_burst() and not quiet.ws_disconnect_due()
    assert set(quiet.snapshot().values()) == {0}
    cfg = FaultConfig(drop_rate=Decimal("0.3"), dup_rate=Decimal("0.2"))
    a, b = FaultInjector(cfg, seed=5), FaultInjector(cfg, seed=5)
    fates = [a.push_fate() for _ in range(2000)]
    assert fates == [b.push_fate() for _ in range(2000)]
    assert 450 < fates.count(DROP) < 750 and 200 < fates.count(DUP) < 400
    assert a.snapshot()["drop"] == fates.count(DROP) and a.snapshot()["dup"] == fates.count(DUP)


def test_injector_latency_and_5xx():
    inj = FaultInjector(FaultConfig(latency_ms=(20, 40), http_5xx_rate=Decimal(1)), seed=1)
    delays = {inj.latency_s() for _ in range(200)}
    assert min(delays) >= Decimal("0.02") and max(delays) <= Decimal("0.04") and len(delays) > 5
    assert {inj.http_5xx()[0] for _ in range(100)} == {502, 503}
    assert inj.snapshot()["http_5xx"] == 100 and inj.snapshot()["latency"] == 200


def test_injector_periodic_windows_with_fake_clock():
    now = [100.0]
    inj = FaultInjector(FaultConfig(rate_limit_every_s=Decimal(10), rate_limit_duration_s=Decimal(2),
                                    ws_disconnect_every_s=Decimal(5)), clock=lambda: now[0])
    timeline = {}
    for t in (0, 5, 9.9, 10, 11.9, 12, 20.5, 22.5):
        now[0] = 100 + t
        timeline[t] = inj.rate_limit_burst()
    assert timeline == {0: False, 5: False, 9.9: False, 10: True, 11.9: True, 12: False, 20.5: True, 22.5: False}
    now[0] = 104.9
    assert not inj.ws_disconnect_due()
    now[0] = 105
    assert inj.ws_disconnect_due() and not inj.ws_disconnect_due()
    now[0] = 110
    assert inj.ws_disconnect_due()


def test_fault_config_rejects_nonsense():
    with pytest.raises(ValueError):
        FaultConfig(drop_rate=Decimal("1.5"))
    with pytest.raises(ValueError):
        FaultConfig(latency_ms=(50, 10))
    with pytest.raises(ValueError):
        SimConfig(fault_dup_rate="-0.1")


# --- applied by the server -------------------------------------------------------------------

def test_drop_creates_seq_gaps_and_counts(sim):
    conn, acct = book_ws(sim), new_account(sim)
    sim.set_faults(drop_rate="0.5")
    for i in range(40):
        acct.order(1, f"{9000 + i}.0", 1)
    seqs = collect_seqs(conn, 1.0)
    conn.close()
    dropped = sim.fault_counters()["drop"]
    assert dropped > 5 and len(seqs) == 40 - dropped
    assert seqs == sorted(seqs) and seqs[-1] > len(seqs) + 1  # gaps: dropped ones consumed their seq
    assert requests.get(sim.base_url + "/sim/stats", timeout=5).json()["faults"]["drop"] == dropped


def test_dup_repeats_the_same_seq(sim):
    conn, acct = book_ws(sim), new_account(sim)
    sim.set_faults(fault_dup_rate=1)
    for i in range(3):
        acct.order(1, f"{9000 + i}.0", 1)
    assert collect_seqs(conn, 0.7) == [2, 2, 3, 3, 4, 4]
    assert sim.fault_counters()["dup"] == 3
    conn.close()


def test_http_5xx_before_executing(sim):
    acct = new_account(sim)
    sim.set_faults(http_5xx_rate=1)
    statuses = set()
    for _ in range(20):
        r = acct.http.post(acct.base + "/v1/api/pc/order/create", timeout=5,
                           data='{"asset":"BTC","symbol":"BTC_USD","side":"1","close_flag":"0","price":"9000.0","qty":"1"}',
                           headers=acct.headers({"asset": "BTC", "symbol": "BTC_USD", "side": "1", "close_flag": "0",
                                                 "price": "9000.0", "qty": "1"}))
        statuses.add(r.status_code)
    assert statuses == {502, 503}
    assert sim.fault_counters()["http_5xx"] == 20
    sim.set_faults(http_5xx_rate=0)
    assert acct.orders() == []


def test_latency(sim):
    public = Rest(sim.base_url)
    sim.set_faults(latency_ms=(150, 200))
    start = time.monotonic()
    assert public.get("/v1/api/pc/asset/query", signed=False)["code"] == 0
    assert time.monotonic() - start >= 0.15
    assert sim.fault_counters()["latency"] == 1


def test_lost_response_but_order_exists(sim):
    acct = new_account(sim)
    sim.set_faults(lost_response_rate=1)
    with pytest.raises((requests.ConnectionError, requests.Timeout)):
        acct.order(1, "9000.0", 2, client_oid="lost-1")
    sim.set_faults(lost_response_rate=0)
    [row] = acct.orders()
    assert row["client_oid"] == "lost-1" and row["qty"] == "2"
    assert sim.fault_counters()["lost_response"] == 1
    assert acct.order(1, "9000.0", 1)["code"] == 0  # the session recovers


def test_forced_rate_limit_bursts(sim):
    acct = new_account(sim)
    sim.set_faults(rate_limit_every_s="0.2", rate_limit_duration_s="1000")  # on from 0.2 s, for good
    assert acct.get("/v1/api/account/pc/query")["code"] == 0
    time.sleep(0.3)
    assert acct.get("/v1/api/account/pc/query")["code"] == -10053
    assert Rest(sim.base_url).get("/v1/api/pc/asset/query", signed=False)["code"] == 0  # public: unaffected
    sim.set_faults(rate_limit_every_s=0)
    assert acct.get("/v1/api/account/pc/query")["code"] == 0
    assert sim.fault_counters()["rate_limit_burst"] == 1


def test_rate_limit_burst_windows_start_every_n_seconds_and_last_d_seconds():
    now = [100.0]
    faults = FaultInjector(FaultConfig(rate_limit_every_s=Decimal("0.6"), rate_limit_duration_s=Decimal("0.4")),
                           clock=lambda: now[0])
    seen = []
    for t in ("0.1", "0.59", "0.61", "0.98", "1.02", "1.19", "1.21", "1.58", "1.62"):
        now[0] = 100.0 + float(t)
        seen.append(faults.rate_limit_burst())
    assert seen == [False, False, True, True, False, False, True, True, False]
    assert faults.counters["rate_limit_burst"] == 4


def test_ws_disconnect_every_n_seconds(sim):
    conns = [Ws(sim.ws_url) for _ in range(2)]
    sim.set_faults(ws_disconnect_every_s="0.4")
    assert all(c.wait_closed(2) for c in conns)
    assert sim.fault_counters()["ws_disconnect"] == 2
    sim.set_faults(ws_disconnect_every_s=0)
    fresh = Ws(sim.ws_url)
    fresh.send({"op": "ping"})
    assert fresh.recv() == {"op": "pong"}
    fresh.close()


def test_manual_disconnect_and_faults_from_config():
    cfg = SimConfig(port=0, flow=False, fault_dup_rate="1")
    with run_simulator(cfg) as sim:
        conn = Ws(sim.ws_url)
        conn.sub("order_book")
        assert [conn.table("order_book")["seq"] for _ in range(2)] == [1, 1]
        assert sim.disconnect_websockets() == 1
        assert conn.wait_closed(2)


# --- late creates and the api-expires rule -------------------------------------------------------------------------

CREATE = "/v1/api/pc/order/create"
ORDER = {"asset": "BTC", "symbol": "BTC_USD", "side": "1", "close_flag": "0", "price": "9000.0", "qty": "1",
         "order_type": "1"}


def test_injector_late_create_decision():
    assert FaultInjector().late_create_s() == 0
    inj = FaultInjector(FaultConfig(late_create_rate=Decimal("0.5"), late_create_ms=(100, 300)), seed=3)
    holds = [inj.late_create_s() for _ in range(400)]
    late = [h for h in holds if h]
    assert 150 < len(late) < 250 and min(late) >= Decimal("0.1") and max(late) <= Decimal("0.3")
    with pytest.raises(ValueError):
        FaultConfig(late_create_ms=(300, 100))
    with pytest.raises(ValueError):
        SimConfig(fault_late_create_ms="soon")


def test_late_create_executes_after_the_client_gave_up(sim):
    """Authenticated on arrival, held 2.5 s, executed although the client timed out and closed."""
    acct = new_account(sim)
    sim.set_faults(late_create_rate=1, late_create_ms=(2500, 2500))
    params = {**ORDER, "client_oid": "late-1"}
    with pytest.raises(requests.Timeout):
        requests.post(acct.base + CREATE, params=params, headers=acct.headers(params), timeout=0.3)
    assert acct.orders() == [] and sim.fault_counters()["late_create"] == 0  # held, not executed yet
    assert wait_until(lambda: acct.orders() != [])
    [row] = acct.orders()
    assert row["client_oid"] == "late-1" and row["status"] == "2"
    assert sim.fault_counters()["late_create"] == 1 and sim.fault_counters()["late_create_expired"] == 0
    sim.set_faults(late_create_rate=0)
    assert acct.order(1, "9000.0", 1)["code"] == 0  # the server is fine afterwards


def test_late_create_is_checked_on_arrival(sim):
    acct = new_account(sim)
    sim.set_faults(late_create_rate=1, late_create_ms=(50, 50))
    bad = acct.post(CREATE, ORDER, headers=acct.headers({**ORDER, "qty": "2"}))
    assert bad["code"] == -10051
    good = acct.post(CREATE, ORDER)  # a client that waits gets its answer, late
    assert good["code"] == 0 and [r["order_id"] for r in acct.orders()] == [good["data"]["order_id"]]
    assert sim.fault_counters()["late_create"] == 1


def test_held_create_past_its_expiry_is_never_executed(sim):
    acct = new_account(sim)
    sim.set_faults(late_create_rate=1, late_create_ms=(1000, 1000))
    reply = acct.post(CREATE, ORDER, headers=acct.headers(ORDER, expires=expires_ms(400)))
    assert reply["code"] == -10052  # valid on arrival, expired when its turn came
    assert sim.fault_counters()["late_create_expired"] == 1 and sim.fault_counters()["late_create"] == 0
    assert acct.orders() == []


def test_latency_past_expiry_is_refused_never_executed(sim):
    acct = new_account(sim)
    sim.set_faults(latency_ms=(800, 800))
    reply = acct.post(CREATE, ORDER, headers=acct.headers(ORDER, expires=expires_ms(300)))
    assert reply["code"] == -10052
    sim.set_faults(latency_ms=(0, 0))
    assert acct.orders() == []
