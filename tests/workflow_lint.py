"""Checks of GitHub workflow files that the tests share: `uses:` pinning, actionlint, and the
workflow snippets of the Markdown documents.

Why a pinning rule of our own: actionlint checks that a `uses:` is well formed, zizmor (offline)
that it is not a branch; neither insists on a full commit SHA for every remote action.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_SHA = r"[0-9a-f]{40}"
_NAME = r"[A-Za-z0-9_.-]+"
_SEGMENT = r"(?!\.{1,2}(?:/|$))[A-Za-z0-9_.-]+"  # a path segment that is not . or ..
REMOTE_PINNED = re.compile(rf"{_NAME}/{_NAME}(/[^@\s]+)?@{_SHA}")
LOCAL = re.compile(rf"\./({_SEGMENT}(/{_SEGMENT})*/?)?")  # ./ or ./path: after a checkout
SELF_REPOSITORY = re.compile(rf"\$/{_SEGMENT}(/{_SEGMENT})*/?")  # $/path: the path is required
DOCKER_DIGEST = re.compile(r"docker://[^@\s]+@sha256:[0-9a-f]{64}")
# The project's own published action and reusable workflow at a major tag, as the README shows them.
OWN_PUBLISHED = re.compile(r"run-canary/run-canary(/\.github/workflows/deploy\.yml)?@v[0-9]+")


def uses_values(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, value) of every `uses:` of a workflow (jobs and steps) or an action (composite steps)."""
    for job_id, job in (document.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        if "uses" in job:
            yield f"jobs.{job_id}.uses", str(job["uses"])
        for index, step in enumerate(job.get("steps") or []):
            if isinstance(step, dict) and "uses" in step:
                yield f"jobs.{job_id}.steps[{index}].uses", str(step["uses"])
    runs = document.get("runs") or {}
    for index, step in enumerate(runs.get("steps") or []):
        if isinstance(step, dict) and "uses" in step:
            yield f"runs.steps[{index}].uses", str(step["uses"])


def pinning_problems(document: dict[str, Any], *, allow_own_published: bool = False) -> list[str]:
    """Every `uses:` that is neither local, nor pinned by a full commit SHA, nor a docker digest."""
    problems = []
    for where, value in uses_values(document):
        allowed = [LOCAL, SELF_REPOSITORY, REMOTE_PINNED, DOCKER_DIGEST]
        if allow_own_published:
            allowed.append(OWN_PUBLISHED)
        if not any(pattern.fullmatch(value) for pattern in allowed):
            problems.append(
                f"{where}: {value!r} is not ./path, $/path, owner/repo@<40-hex SHA> or docker://...@sha256:"
            )
    return problems


def actionlint_binary() -> str:
    """The actionlint of the dev requirements (a missing linter must fail, not skip)."""
    found = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(found).exists():
        raise AssertionError("actionlint is not installed: pip install -r requirements-dev.txt")
    return found


def actionlint(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run actionlint on workflow files (under cwd/.github/workflows) and return its result."""
    return subprocess.run(
        [actionlint_binary(), "-no-color", *[str(p) for p in paths]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def workflow_snippets(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each ```yaml block of a Markdown file that is a whole workflow (has `jobs:`)."""
    text = path.read_text(encoding="utf-8")
    snippets = []
    for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
        body = match.group(1)
        try:
            document = yaml.load(body, Loader=yaml.CSafeLoader)  # at collection
        except yaml.YAMLError:
            document = None
        if isinstance(document, dict) and "jobs" in document:
            snippets.append((text.count("\n", 0, match.start()) + 2, body))
    return snippets
