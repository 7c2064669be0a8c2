"""The README's gcloud session, command by command, against the emulator (it must stay true)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.gcloud import Gcloud

pytestmark = pytest.mark.gcloud

README = Path(__file__).resolve().parents[2] / "README.md"


def session() -> list[list[str]]:
    """The `g ...` lines of the README's gcloud block, as argument lists (redirections dropped)."""
    block = next(b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S) if "\ng run " in b)
    return [shlex.split(line.split(">")[0])[1:] for line in block.splitlines() if line.startswith("g run ")]


def test_readme_session_runs(gc: Gcloud, tmp_path: Path) -> None:
    commands = session()
    assert [c[:3] for c in commands][:2] == [["run", "deploy", "hello"]] * 2
    exported = tmp_path / "hello.yaml"
    for argv in commands:
        if argv[-1] == "hello.yaml":
            argv = [*argv[:-1], str(exported)]
        output = gc.text(*argv)
        if "--format" in argv:
            exported.write_text(output)
    assert gc.run("run", "services", "list") in (None, [])
