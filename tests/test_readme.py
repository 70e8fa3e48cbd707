import re
from pathlib import Path

from market_maker.settings import defaults, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in defaults() if f"`{name}`" not in readme]
    assert not missing
    # the table is generated: python -m market_maker.settings > table; paste it at the end of README.md
    assert reference_markdown() in readme


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (python3 -m pip install .*)$", readme, re.M)
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
