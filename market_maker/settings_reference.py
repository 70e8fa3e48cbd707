"""The settings reference page (docs/settings.md), generated from the comments of ``settings_base.py``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import settings_base


def reference_rows() -> List[Tuple[str, str, str]]:
    """(name, default as written, comment) for every setting of settings_base.py, in file order."""
    rows, comment = [], []
    for line in Path(settings_base.__file__).read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            comment.append(line[2:].strip())
        elif re.match(r"[A-Z0-9_]+ = ", line):
            name, default = line.split(" = ", 1)
            rows.append((name, default, " ".join(comment)))
            comment = []
        elif not line.startswith("#"):
            comment = []
    return rows


def reference_markdown() -> str:
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{default}` | {comment} |" for name, default, comment in reference_rows()]
    return "\n".join(lines) + "\n"


def reference_page() -> str:
    """docs/settings.md: every setting, its default and its meaning."""
    return ("# Settings reference\n\n"
            "Every setting, its default and its meaning. Set them in your `settings.py` (see\n"
            "`settings.example.py`); a bad value stops the bot at start with exit status 2 and a\n"
            "message naming the setting and what is allowed.\n\n"
            "This page is generated from `settings_base.py`: `python3 -m market_maker.settings > docs/settings.md`.\n\n"
            + reference_markdown())
