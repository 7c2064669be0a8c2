"""The README keeps its promises: the two commands first, every input and output documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

from deployer.input_table import BY_NAME, INPUTS
from devtools.harness import action_metadata

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ACTION = action_metadata()


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


def readme_inputs() -> dict[str, tuple[str, str]]:
    """Input name -> (the ``**Section**`` heading above its README table, its default cell), for the
    rows of the tables headed ``| input | default | meaning |``."""
    found: dict[str, tuple[str, str]] = {}
    section, inputs_table = "", False
    for line in README.splitlines():
        heading = re.fullmatch(r"\*\*(.+)\*\*", line.strip())
        if heading:
            section = heading.group(1)
        if line.startswith("| ") and not line.startswith("| `"):  # a table's header
            inputs_table = line.startswith("| input | default |")
        row = re.match(r"\| `([a-z_0-9]+)` \| (.*?) \|", line)
        if row and inputs_table:
            found.setdefault(row.group(1), (section, row.group(2)))
    return found


def test_readme_tables_are_the_input_table_s() -> None:
    """Each row of deployer.input_table is in the README's table of its section, with its default, and
    those tables list no input the table lacks."""
    found = readme_inputs()
    for spec in INPUTS:
        assert found.get(spec.name) == (spec.section, f"`{spec.default}`" if spec.default else ""), spec.name
    sections = {spec.section for spec in INPUTS}
    assert [name for name, (where, _) in found.items() if where in sections and name not in BY_NAME] == []


def test_readme_rows_say_what_the_table_says() -> None:
    """Each input's meaning in the README is its description in deployer.input_table (and so in
    action.yml and ``--help``), word for word; the README may only add code quotes."""
    said = {
        m[1]: m[2]
        for m in re.finditer(r"^\| `([a-z_0-9]+)` \| [^|]* \| (.*) \|$", README, re.M)
        if m[1] in BY_NAME
    }

    def words(text: str) -> str:
        return " ".join(text.replace("`", "").split())

    assert {n: words(said[n]) for n in BY_NAME} == {n: words(s.description) for n, s in BY_NAME.items()}
