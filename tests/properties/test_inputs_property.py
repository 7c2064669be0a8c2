"""Properties of the inputs (deployer.inputs and its parsers), for any text Hypothesis can think of:
durations and steps parse to what they say, and arbitrary or hostile text in any input is at worst an
input error naming that input, on one line. The rules one by one: tests/unit/test_inputs.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.inputs import DEFAULTS, ConfigError, load
from deployer.parsers import MAX_DURATION, Invalid, parse_duration, parse_steps
from tests.config import BASE


@given(
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["h", "m", "s", "ms"])), min_size=1, max_size=5)
)
def test_parse_duration_composites(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit] for n, unit in parts)
    if expected > MAX_DURATION:  # longer than any job may run: refused, not silently accepted
        with pytest.raises(Invalid, match="longer than 7 days"):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(expected)


@given(st.sets(st.integers(1, 100), min_size=1), st.sampled_from([",", " ", ", "]))
def test_steps_round_trip(values: set[int], separator: str) -> None:
    steps = tuple(sorted(values))
    assert parse_steps(separator.join(map(str, steps))) == steps


HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("=:,-%\n\r\t #{}[]'\"!&*|>?@`0123456789aZ_./\\"))),
    st.sampled_from(
        ["::error::x", "%0A", "9" * 5000, "a" * 100_000, "A: &a [*a]", "!!python/object:os.system", "\x00"]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(DEFAULTS)), HOSTILE, max_size=12))
def test_arbitrary_text_in_any_input_only_raises_config_error(inputs: dict[str, str]) -> None:
    env = {f"INPUT_{k.upper()}": v for k, v in inputs.items() if k != "metadata"}
    try:
        load(env)
    except ConfigError as error:
        assert error.problems
        assert all(p.input in DEFAULTS for p in error.problems)
        assert all("\n" not in p.message for p in error.problems)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(DEFAULTS)), HOSTILE)
def test_one_arbitrary_input_only_raises_config_error(name: str, value: str) -> None:
    env = {**BASE, f"INPUT_{name.upper()}": value}
    try:
        load(env)
    except ConfigError as error:
        assert {p.input for p in error.problems} <= {name, "tag", "max_instances"}
