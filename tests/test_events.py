from decimal import Decimal

from market_maker.events import CallbackSink, EventBus


class FixedClock:
    def time(self):
        return 12.5

    def monotonic(self):
        return 0.0

    def sleep(self, seconds):
        pass


def test_events_reach_every_sink_with_the_clock_time():
    bus = EventBus(FixedClock())
    seen_a, seen_b = [], []
    bus.subscribe(CallbackSink(seen_a.append))
    bus.subscribe(CallbackSink(seen_b.append))
    bus.emit("execution", qty=3, price=Decimal("100.5"))
    assert [(e.kind, e.ts, e.fields) for e in seen_a] == [("execution", 12.5, {"qty": 3, "price": Decimal("100.5")})]
    assert seen_b == seen_a


def test_a_failing_sink_is_counted_and_the_others_still_get_the_event():
    bus = EventBus(FixedClock())
    seen = []

    def broken(event):
        raise RuntimeError("disk full")

    bus.subscribe(CallbackSink(broken))
    bus.subscribe(CallbackSink(seen.append))
    bus.emit("pause", reason="x", cancel=True)
    assert bus.failures == 1 and len(seen) == 1


def test_unsubscribed_sink_gets_nothing_and_an_empty_bus_is_false():
    bus = EventBus(FixedClock())
    seen = []
    sink = CallbackSink(seen.append)
    bus.subscribe(sink)
    assert bus
    bus.unsubscribe(sink)
    bus.emit("decision", kept=1)
    assert not bus and seen == []
