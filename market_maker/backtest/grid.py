"""A sweep's grid and seeds, read from the command line and checked against the settings schema.

``--grid "INTERVAL=0.001,0.002"`` names a setting and the values to try; ``--seeds 1-20`` (or
``1,3,5``, or ``1-5,9``) the seeds each combination runs with. Every value is checked by the
settings' own validation, alone and in every combination, before anything runs: a bad grid is one
``SettingsError`` naming the setting, the value and what is allowed.
"""
from __future__ import annotations

import ast
import difflib
import itertools
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

from ..settings import RULES, Settings, SettingsError
from ..settings_file import SECRET_NAMES

MAX_SEED = 2 ** 63 - 1
MAX_RUNS = 1_000_000  # a typo such as --seeds 1-100000000 is refused, not started
NOT_SWEPT = {**{name: "a secret has no place in a sweep" for name in SECRET_NAMES},
             "SIM_SEED": "give the seeds with --seeds"}


@dataclass(frozen=True)
class Axis:
    """One swept setting: its name, the values as written (labels) and as the settings take them."""
    name: str
    labels: Tuple[str, ...]
    values: Tuple[Any, ...]


@dataclass(frozen=True)
class Combo:
    """One point of the grid: ``(name, label)`` pairs in grid order, and the settings changes they make."""
    index: int
    labels: Tuple[Tuple[str, str], ...]
    changes: Tuple[Tuple[str, Any], ...]

    def describe(self) -> str:
        return " ".join(f"{name}={label}" for name, label in self.labels) or "(base settings)"


def split_values(text: str) -> List[str]:
    """``"a,b,(1, 2)"`` -> ``["a", "b", "(1, 2)"]``: commas inside brackets or quotes separate nothing."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def literal(text: str) -> Any:
    """A grid value as the settings file would give it: ``6`` -> 6, ``True`` -> True, ``(1, 2)`` -> (1, 2).

    A number with a fraction stays text (``"0.001"``) so it reaches Decimal settings exactly; a word
    that is no Python literal (``cross``) is a string.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return text if isinstance(value, float) else value


def closest_setting(name: str) -> str:
    """The known setting whose name is nearest to ``name`` (case aside)."""
    upper = name.upper()
    if upper in RULES:
        return upper
    return (difflib.get_close_matches(upper, list(RULES), n=1, cutoff=0.0) or [sorted(RULES)[0]])[0]


def parse_axis(spec: str, base: Settings) -> Axis:
    """One ``--grid NAME=v1,v2`` against ``base``; each value alone must be allowed."""
    name, eq, values_text = spec.partition("=")
    name = name.strip()
    if not eq or not name:
        raise SettingsError(f"--grid {spec!r}: expected NAME=VALUE1,VALUE2,... (e.g. INTERVAL=0.001,0.002)")
    if name not in base or name not in RULES:
        raise SettingsError(f"--grid: unknown setting {name}; the closest known one is {closest_setting(name)}")
    if name in NOT_SWEPT:
        raise SettingsError(f"--grid: {name} cannot be swept: {NOT_SWEPT[name]}")
    labels = split_values(values_text)
    if any(not label for label in labels):
        raise SettingsError(f"--grid {name}: an empty value in {values_text!r}; give values separated by commas")
    values = []
    for label in labels:
        try:
            values.append(base.replace(**{name: literal(label)})[name])
        except SettingsError as exc:
            raise SettingsError(f"--grid {name}: {exc}") from None
    duplicate = next((label for i, label in enumerate(labels) if values[i] in values[:i]), None)
    if duplicate is not None:
        raise SettingsError(f"--grid {name}: the value {duplicate} is given twice")
    return Axis(name, tuple(labels), tuple(values))


def parse_grid(specs: Sequence[str], base: Settings) -> List[Axis]:
    axes: List[Axis] = []
    for spec in specs:
        axis = parse_axis(spec, base)
        if any(a.name == axis.name for a in axes):
            raise SettingsError(f"--grid: {axis.name} is given twice; put all its values in one --grid")
        axes.append(axis)
    return axes


def combos(axes: Sequence[Axis], base: Settings) -> List[Combo]:
    """Every combination, in grid order (the last axis varies fastest), each checked as a whole
    (settings that constrain each other, such as MIN_POSITION < MAX_POSITION)."""
    result = []
    for index, picks in enumerate(itertools.product(*(range(len(a.labels)) for a in axes))):
        combo = Combo(index, tuple((a.name, a.labels[i]) for a, i in zip(axes, picks)),
                      tuple((a.name, a.values[i]) for a, i in zip(axes, picks)))
        try:
            base.replace(**dict(combo.changes))
        except SettingsError as exc:
            raise SettingsError(f"--grid combination {combo.describe()}: {exc}") from None
        result.append(combo)
    return result


def parse_seeds(text: str) -> List[int]:
    """``"1-20"``, ``"1,3,5"`` or a mix (``"1-5,9"``) -> the seeds, in the order given, each once."""
    seeds: List[int] = []
    seen = set()
    for part in (p.strip() for p in text.split(",")):
        low_text, dash, high_text = part.partition("-")
        try:
            low = _seed(low_text)
            high = _seed(high_text) if dash else low
        except ValueError:
            raise SettingsError(f"--seeds {text!r}: {part!r} is not a seed or a range of seeds: give whole numbers "
                                f"from 0 to 2**63 - 1, as 1-20, 1,3,5 or 1-5,9") from None
        if high < low:
            raise SettingsError(f"--seeds {text!r}: the range {part} runs backwards; write {high}-{low}")
        if len(seeds) + high - low + 1 > MAX_RUNS:
            raise SettingsError(f"--seeds {text!r}: more than {MAX_RUNS} seeds")
        repeated = seen.intersection(range(low, high + 1)) if len(seen) < high - low else \
            [seed for seed in seen if low <= seed <= high]
        if repeated:
            raise SettingsError(f"--seeds {text!r}: seed {min(repeated)} is given twice")
        seeds.extend(range(low, high + 1))
        seen.update(range(low, high + 1))
    return seeds


def _seed(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 19 or int(text) > MAX_SEED:
        raise ValueError(text)
    return int(text)


def check_size(combo_count: int, seed_count: int) -> int:
    total = combo_count * seed_count
    if total > MAX_RUNS:
        raise SettingsError(f"the sweep would be {total} runs, more than {MAX_RUNS}: fewer values or seeds")
    return total
