"""Grammars of single input values: the ``Invalid`` verdict every parser raises, quoting, and the
scalar family (booleans, durations, bounded numbers, free text, percentage steps, status ranges, paths,
regular expressions).

Each parser returns a typed value or raises ``Invalid`` with messages that say what would be valid and
never echo a secret. Names, images and URLs are in ``parsers_names``; KEY=VALUE lines, YAML mappings
(env vars, secrets, labels) and the metadata file in ``parsers_yaml``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from deployer.errors import DeployerError
from deployer.settings import StatusRanges

MAX_DURATION = 7 * 24 * 3600.0  # longer than any GitHub job may run

T = TypeVar("T")

# re.ASCII everywhere: \d and \w would otherwise accept digits and letters from any script.
INTEGER = re.compile(r"[0-9]{1,9}", re.ASCII)  # a whole number as inputs take it
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?|\.[0-9]{1,9}", re.ASCII)
_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:ms|s|m|h))+", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(ms|s|m|h)", re.ASCII)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_STATUS_ITEM = re.compile(r"([0-9]{3})(?:-([0-9]{3}))?|([1-5])xx", re.ASCII | re.IGNORECASE)


class Invalid(DeployerError, ValueError):
    """A parser's verdict on one input; each message says what would be valid."""

    def __init__(self, *messages: str):
        self.messages = list(messages)
        super().__init__("; ".join(messages))


def show(value: str, limit: int = 60) -> str:
    """Quote a user value so control characters are visible and it cannot be read as a command."""
    body = "".join(_escape_char(c) for c in value[:limit])
    more = f"... ({len(value)} characters)" if len(value) > limit else ""
    return f'"{body}"{more}'


def _escape_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    return char if char.isprintable() else repr(char)[1:-1]


def choice(options: Sequence[str], aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Parser for one of a few words, case-insensitive (users type True/Deploy/ALL)."""

    def parse(text: str) -> str:
        word = text.lower()
        word = (aliases or {}).get(word, word)
        if word not in options:
            raise Invalid(f"{show(text)} is not one of: {', '.join(options)}")
        return word

    return parse


def optional(parser: Callable[[str], T]) -> Callable[[str], T | None]:
    """Empty means "not set": keep what the service has."""
    return lambda text: parser(text) if text else None


def escape_text(text: str) -> str:
    """Text (e.g. a YAML error) with control characters made visible, not quoted."""
    return "".join(_escape_char(c) for c in text).replace('\\"', '"')


# --------------------------------------------------------------------------------------------------
# Scalars


def parse_bool(text: str) -> bool:
    """YAML 1.2 core booleans only: "yes"/"on" are more often typos than intent."""
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    raise Invalid(f"{show(text)} is not a boolean; use true or false")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "1h30m", "1.5s", "500ms" (what users write in workflows)."""
    value = text.strip()
    hint = "use e.g. 90, 90s, 5m, 1h30m or 500ms"
    if value.startswith("-"):
        raise Invalid(f"{show(text)} is negative; {hint}")
    if _NUMBER.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))
    else:
        raise Invalid(f"{show(text)} is not a duration; {hint} (units: h, m, s, ms)")
    if not seconds <= MAX_DURATION:
        raise Invalid(f"{show(text)} is longer than 7 days; {hint}")
    return seconds


def positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise Invalid(f"{show(text)} must be longer than 0; use e.g. 30s or 5m")
    return seconds


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """Parser for a whole number within bounds (high None: no upper bound)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        if not INTEGER.fullmatch(text):
            raise Invalid(f"{show(text)} is not a whole number; use a number {span}")
        number = int(text)
        if number < low or (high is not None and number > high):
            raise Invalid(f"{number} is out of range; use a number {span}")
        return number

    return parse


def float_in(
    low: float, high: float | None, unit: str, *, exclusive_low: bool = False
) -> Callable[[str], float]:
    """Parser for a decimal number within bounds."""
    above = f"above {low:g}" if exclusive_low else f"of at least {low:g}"
    span = f"{above}{f' and at most {high:g}' if high is not None else ''}{unit}"

    def parse(text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise Invalid(f"{show(text)} is not a number; use a number {span}")
        number = float(text)
        too_low = number <= low if exclusive_low else number < low
        if too_low or (high is not None and number > high):
            raise Invalid(f"{text} is out of range; use a number {span}")
        return number

    return parse


def free_text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise Invalid(f"{show(text)} is too long; use at most {limit} characters")
        if any(not c.isprintable() for c in text):
            raise Invalid(f"{show(text)} contains control characters; use one line of printable text")
        return text

    return parse


def parse_steps(text: str) -> tuple[int, ...]:
    """Traffic percentages: "0" alone (tagged, no traffic) or strictly ascending 1..100."""
    hint = (
        "use ascending percentages from 1 to 100, e.g. 10,50,100, or 0 for a tagged revision with no traffic"
    )
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not tokens:
        raise Invalid(f"{show(text)} has no percentages; {hint}")
    numbers: list[int] = []
    for token in tokens:
        digits = token.removesuffix("%")
        if not INTEGER.fullmatch(digits):
            raise Invalid(f"{show(token)} in {show(text)} is not a whole number; {hint}")
        numbers.append(int(digits))
    if numbers == [0]:
        return (0,)
    if 0 in numbers:
        raise Invalid(f"{show(text)} mixes 0 with other steps; 0 must be alone; {hint}")
    if any(n > 100 for n in numbers):
        raise Invalid(f"{show(text)} has a percentage above 100; {hint}")
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise Invalid(f"{show(text)} is not ascending; {hint}")
    return tuple(numbers)


def parse_status_ranges(text: str) -> StatusRanges:
    hint = "use status codes and ranges from 100 to 599, e.g. 200,204,300-399"
    ranges: list[tuple[int, int]] = []
    for token in (t for t in re.split(r"[,\s]+", text) if t):
        match = _STATUS_ITEM.fullmatch(token)
        if not match:
            raise Invalid(f"{show(token)} is not a status code or range; {hint}")
        if match[3]:
            lo, hi = int(match[3]) * 100, int(match[3]) * 100 + 99
        else:
            lo = int(match[1])
            hi = int(match[2]) if match[2] else lo
        if not 100 <= lo <= hi <= 599:
            raise Invalid(f"{show(token)} is not a range within 100-599 with low <= high; {hint}")
        ranges.append((lo, hi))
    if not ranges:
        raise Invalid(f"{show(text)} lists no status codes; {hint}")
    return StatusRanges(tuple(ranges))


def parse_smoke_path(text: str) -> str:
    if not text.startswith("/") or any(not c.isprintable() or c.isspace() for c in text):
        raise Invalid(f"{show(text)} is not a path; use a path starting with '/', e.g. /healthz")
    return text


def parse_regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise Invalid(
            f"{show(text)} is not a valid regular expression ({exc}); use Python re syntax"
        ) from None
