"""The repository stands alone: no file names a path of the machine it was written on, and nothing
reads outside the repository (a sibling ``shared`` folder, say)."""

from __future__ import annotations

import re
import subprocess

from devtools import harness

# Spelled in pieces so that this file does not match itself.
MACHINE_PATH = re.compile("/" + "work/|/" + "farm/")
OUTSIDE = re.compile(r"\.\./" + "shared|ROOT\\.parent\\b")


def tracked_text_files() -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=harness.ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    texts: dict[str, str] = {}
    for raw in filter(None, names):
        path = harness.ROOT / raw.decode()
        if not path.is_file():
            continue
        try:
            texts[raw.decode()] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def test_no_machine_path_and_no_read_outside_the_repository() -> None:
    files = tracked_text_files()
    assert "action.yml" in files and "devtools/harness.py" in files  # really listed the repository
    found = [
        f"{name}:{n}: {line.strip()}"
        for name, text in files.items()
        for n, line in enumerate(text.splitlines(), 1)
        if MACHINE_PATH.search(line) or OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)
