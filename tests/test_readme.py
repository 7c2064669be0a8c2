"""The README keeps its promises: the two commands first, every input and output documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def test_readme_starts_with_the_demo_and_the_test_command() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None and README.index("```sh") < 200
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    for script in ("scripts/demo", "scripts/test", "scripts/bootstrap"):
        assert os.access(ROOT / script, os.X_OK), script
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_every_input_and_output_is_in_a_readme_table_with_its_default() -> None:
    for name, spec in ACTION["inputs"].items():
        default = spec.get("default", "")
        row = f"| `{name}` | `{default}` |" if default != "" else f"| `{name}` |  |"
        assert row in README, row
    for name in ACTION["outputs"]:
        assert f"| `{name}` |" in README, name
