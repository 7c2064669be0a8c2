"""Imports that must stay lazy: the action's start does not pay for what a run may not need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_pygithub_is_imported_lazily() -> None:
    code = "import sys, deployer.github; print('github' in sys.modules)"
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
