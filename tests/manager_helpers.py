"""The order manager on the fake exchange (tests/fakes.py), for the tests of market_maker/market_maker.py."""
from market_maker.market_maker import ExchangeInterface
from market_maker.settings import load_settings
from tests.fakes import FakeRest, FakeWs


def make(tmp_path, text="", **overrides):
    path = tmp_path / "settings.py"
    path.write_text(text)
    settings = load_settings(str(path), overrides=overrides, environ={})
    rest = FakeRest(settings.ORDERID_PREFIX)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws)
    return settings, rest, ws, exchange
