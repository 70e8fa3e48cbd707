"""With every operations setting off, nothing of market_maker.ops (nor prometheus_client) is imported."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_with_ops_off_imports_none_of_it(tmp_path):
    code = textwrap.dedent("""
        import json, sys
        import market_maker.cli as cli
        from market_maker.settings import load_settings
        from pathlib import Path
        settings = load_settings(overrides={"SIM_FLOW": False}, environ={}, cwd=Path(sys.argv[1]))
        code = cli.run_bot(settings, duration=1.5, install_signals=False)
        loaded = sorted(m for m in sys.modules if m.startswith(("market_maker.ops", "prometheus_client")))
        print(json.dumps({"code": code, "loaded": loaded}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}
