"""The runner's log of a real run (entrypoint.py as the runner runs it, against the emulator): every
phase a group. The log for a person, line by line: tests/unit/test_terminal.py."""

from __future__ import annotations

import re
from pathlib import Path

from cloudrun_emulator import Emulator
from devtools import harness


def test_on_github_each_phase_s_lines_are_inside_its_group(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """The runner's log: every phase is a group holding its traffic lines and its result line, and
    nothing but the final annotation is printed outside a group."""
    inputs = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "service": "grouped",
        "image": "sample/hello:v1",
        "steps": "100",
        "smoke_timeout": "3s",
    }
    harness.run(inputs, tmp_path=tmp_path)
    result = harness.run({**inputs, "image": "sample/error", "suffix": "bad"}, tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    groups: list[tuple[str, list[str]]] = []
    outside: list[str] = []
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        if line.startswith("::group::"):
            assert current is None, f"nested group: {line}"
            current = []
            groups.append((line.removeprefix("::group::"), current))
        elif line == "::endgroup::":
            current = None
        elif current is not None:
            current.append(line)
        else:
            outside.append(line)
    assert [name for name, _ in groups] == ["deploy", "wait", "smoke", "rollback"], result.log
    for name, lines in groups:
        assert lines and re.match(rf"[✅❌] {name} \(", lines[-1]), (name, lines)
    deploy, smoke, rollback = groups[0][1], groups[2][1], groups[3][1]
    assert any(line.startswith("Traffic (deployed): ") for line in deploy), deploy
    assert any("-> 500" in line for line in smoke[:-1]), smoke
    assert any(line.startswith("Traffic (rolled back): ") for line in rollback), rollback
    assert [line.split(" ", 1)[0] for line in outside] == ["::error"], outside
