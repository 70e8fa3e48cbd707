import re
from pathlib import Path

from market_maker.settings import defaults, reference_page

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_page_lists_every_setting():
    page = (ROOT / "docs" / "settings.md").read_text()
    missing = [name for name in defaults() if f"`{name}`" not in page]
    assert not missing
    # the page is generated: python3 -m market_maker.settings > docs/settings.md
    assert page == reference_page()
    assert "(docs/settings.md)" in (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (python3 -m pip install .*)$", readme, re.M)
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
