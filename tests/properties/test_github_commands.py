"""Properties of what the action prints and files for the runner, for any text Hypothesis can think
of: a log line never becomes a workflow command, an annotation is exactly the intended command, escaped
data and saved state read back as written (parsed as the runner parses them: tests/runner_commands.py)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from deployer import github as gh
from tests.runner_commands import (
    REGISTERED,
    buffered_console,
    net_trim_start,
    parse_any,
    parse_v2,
    read_file_commands,
    unescape_data,
)

hostile = st.one_of(
    st.sampled_from([":", "::", "%", "\r", "\n", "\r\n", "##[", "]", ",", "=", " ", "\t", "\u2028", "\x85"]),
    st.sampled_from(["error", "warning", "add-mask", "stop-commands", "group", "set-output name=x", "%0A"]),
    st.text(max_size=8),
)


@st.composite
def hostile_text(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(hostile, max_size=6)))


@given(hostile_text())
@settings(max_examples=300, deadline=None)
def test_info_never_yields_a_command(text: str) -> None:
    console, out = buffered_console()
    console.info(text)
    for line in re.split(r"\r\n|\r|\n", out.getvalue()):
        assert parse_any(line) is None, line
        assert "##[" not in line
        assert not net_trim_start(line).startswith("::")


@given(hostile_text(), hostile_text(), st.sampled_from(["error", "warning", "notice"]))
@settings(max_examples=300, deadline=None)
def test_annotation_is_exactly_the_intended_command(text: str, title: str, kind: str) -> None:
    console, out = buffered_console()
    getattr(console, kind)(text, title=title)
    raw = out.getvalue()
    assert raw.endswith("\n") and raw.count("\n") == 1 and "\r" not in raw
    parsed = parse_v2(raw[:-1], REGISTERED)
    assert parsed is not None
    name, props, data = parsed
    assert name == kind
    assert data == text
    assert props.get("title", "") == title.strip()


@given(st.text())
def test_escape_data_round_trips(text: str) -> None:
    from actions_toolkit.command import escape_data

    escaped = escape_data(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert unescape_data(escaped) == text


@given(st.text().filter(lambda s: "ghadelimiter_" not in s))
@settings(max_examples=100, deadline=None)
def test_save_state_round_trip(tmp_path_factory, value: str) -> None:
    path = tmp_path_factory.mktemp("state") / "state"
    gh.save_state("rollout", value, str(path))
    gh.save_state("other", "x", str(path))
    assert read_file_commands(path.read_bytes().decode("utf-8")) == {"rollout": value, "other": "x"}
