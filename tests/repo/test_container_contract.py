"""Static checks of the container-action contract (no rollout needed).

As GitHub's "Dockerfile support for GitHub Actions" asks: run as root (no USER), absolute ENTRYPOINT, nothing
relying on WORKDIR, the runtime closure installed from the hash lock, no credentials in the build
context, and an image whose Python has the runtime dependencies and nothing of the dev tools.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import harness

ROOT = harness.ROOT
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions (keyword, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (scripts/bootstrap installs it)")
    return found


def test_action_yml_is_valid_per_schema() -> None:
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ROOT / "action.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_pinned_by_digest() -> None:
    """FROM the build argument BASE_IMAGE, whose default (what the runner builds) is pinned."""
    instructions = _instructions()
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms == ["${BASE_IMAGE}"]
    assert instructions[0][0] == "ARG", "BASE_IMAGE must be declared before FROM"
    name, _, default = instructions[0][1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.11-slim(-bookworm)?@sha256:[0-9a-f]{64}", default), default


def test_app_is_byte_compiled() -> None:
    runs = " ".join(args for kw, args in _instructions() if kw == "RUN")
    assert re.search(r"python -m compileall \S.* /app/deployer", runs), runs


def test_entrypoint_is_absolute_exec_form() -> None:
    entrypoints = [args for kw, args in _instructions() if kw == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    argv = json.loads(entrypoints[0])  # exec form: signals reach the Python process directly
    assert argv == ["/app/entrypoint.py"]
    assert not [kw for kw, _ in _instructions() if kw == "CMD"]


def test_runs_as_root_and_does_not_rely_on_workdir() -> None:
    keywords = [kw for kw, _ in _instructions()]
    assert "USER" not in keywords
    assert "WORKDIR" not in keywords


def test_installs_runtime_lock_with_hashes() -> None:
    runs = [args for kw, args in _instructions() if kw == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "no pip install"
    for command in installs:
        assert "--require-hashes" in command
        assert "--no-deps" in command
        assert "-r /app/requirements.txt" in command
    copies = [args for kw, args in _instructions() if kw == "COPY"]
    assert "requirements.txt /app/" in copies
    assert any(c.startswith("entrypoint.py post.py") for c in copies)
    assert "deployer/ /app/deployer/" in copies


def test_entrypoints_are_made_executable() -> None:
    runs = " ".join(args for kw, args in _instructions() if kw == "RUN")
    assert re.search(r"chmod \S*(\+x|755)\S* /app/entrypoint\.py /app/post\.py", runs)


def test_env_matches_the_image_settings() -> None:
    env = " ".join(args for kw, args in _instructions() if kw == "ENV")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PIP_NO_CACHE_DIR=1",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
    ):
        assert setting in env


def test_lock_pins_every_requirement_with_hashes() -> None:
    lock = harness.REQUIREMENTS_LOCK.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    names = []
    for block in blocks:
        head = block.split()[0]
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s]+", head), head
        assert "--hash=sha256:" in block, head
        names.append(head.split("==")[0].lower())
    for wanted in ("google-auth", "requests", "pygithub", "pyyaml", "actions-toolkit"):
        assert wanted in names


def _ignored(patterns: list[str], path: str) -> bool:
    """Enough of Docker's .dockerignore matching for these checks (last match wins, ! re-includes)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = {pattern, pattern.replace("**/", "")}
        hit = any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in candidates) or (
            path.startswith(pattern + "/")
        )
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_credentials_and_tests_out() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "gha-creds-*.json" in patterns
    for path in (
        "gha-creds-0123abcd.json",
        "sub/gha-creds-0123abcd.json",
        "service-account.json",
        "tests/test_x.py",
        ".git/config",
        ".venv/bin/python",
        ".github/workflows/ci.yml",
        "docs/architecture.md",
        "deployer/__pycache__/x.pyc",
    ):
        assert _ignored(patterns, path), path
    for path in ("requirements.txt", "entrypoint.py", "post.py", "deployer/main.py", "Dockerfile"):
        assert not _ignored(patterns, path), path


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    try:
        return harness.make_runtime_venv()
    except (RuntimeError, subprocess.CalledProcessError) as exc:  # pragma: no cover - needs PyPI
        pytest.fail(f"could not build the runtime venv: {exc}")


def _imports(python: Path, module: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=harness.base_env(python),
        cwd=ROOT,
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "module",
    ["google.auth", "google.auth.transport.requests", "requests", "github", "yaml", "actions_toolkit"],
)
def test_runtime_venv_has_runtime_deps(runtime_python: Path, module: str) -> None:
    proc = _imports(runtime_python, module)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(600)
@pytest.mark.parametrize("module", ["pytest", "googleapiclient", "hypothesis", "mypy"])
def test_runtime_venv_lacks_dev_deps(runtime_python: Path, module: str) -> None:
    proc = _imports(runtime_python, module)
    assert proc.returncode != 0, f"{module} is importable in the runtime venv"
    assert "ModuleNotFoundError" in proc.stderr


@pytest.mark.timeout(600)
def test_runtime_venv_imports_every_deployer_module(runtime_python: Path) -> None:
    """The package imports with only the runtime closure: nothing in deployer/ needs a dev package."""
    modules = sorted(
        f"deployer.{p.stem}"
        for p in (ROOT / "deployer").glob("*.py")
        if p.stem not in {"__init__", "__main__"}
    )
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run(
        [str(runtime_python), "-c", code, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        env=harness.base_env(runtime_python),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", [harness.ENTRYPOINT, harness.POST], ids=lambda p: p.name)
def test_entrypoint_scripts_have_python3_shebang(script: Path) -> None:
    # The image runs them by path (ENTRYPOINT, post-entrypoint), so the shebang picks the interpreter.
    assert script.read_text(encoding="utf-8").splitlines()[0] == "#!/usr/bin/env python3"


@pytest.mark.timeout(600)
def test_entrypoint_runs_on_the_runtime_closure(runtime_python: Path, tmp_path: Path) -> None:
    """Bad inputs, run as the runner would with only the image's packages: reported as annotations
    naming the input, a failed step, and no traceback (so every import the entrypoint needs is there)."""
    result = harness.run({"service": "svc", "mode": "deploy"}, tmp_path=tmp_path, python=runtime_python)
    assert result.returncode != 0, result.log
    assert "Traceback" not in result.stdout + result.stderr, result.log
    assert any("image" in c.data for c in result.annotations("error")), result.log
    post = harness.run_post(result, {"service": "svc"}, tmp_path=tmp_path, python=runtime_python)
    assert post.returncode == 0, post.log
    assert "Traceback" not in post.stdout + post.stderr, post.log
