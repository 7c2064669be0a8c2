"""The layout the design names holds: data flows one way, the emulator stays a product of its own,
and docs/architecture.md describes the code as it is."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# Only these read the action's inputs; every other module gets typed settings (deployer.settings).
INPUT_READERS = {"deployer.main", "deployer.inputs", "deployer.cli", "deployer.__main__"}
INPUT_MODULES = {
    "deployer.inputs",
    "deployer.input_table",
    "deployer.parsers",
    "deployer.parsers_names",
    "deployer.parsers_yaml",
    "deployer.context",
    "deployer.jobs.inputs",
}


def _architecture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "scripts" / "architecture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRAPH = {name: deps for name, _, deps in _architecture().modules()}


def test_the_action_never_imports_the_emulator_and_back() -> None:
    for name, deps in GRAPH.items():
        other = "cloudrun_emulator" if name.startswith("deployer") else "deployer"
        assert not [d for d in deps if d.split(".")[0] == other], name


def test_only_main_reads_inputs() -> None:
    for name, deps in GRAPH.items():
        if name in INPUT_READERS or name in INPUT_MODULES:
            continue
        assert not set(deps) & INPUT_MODULES, f"{name} imports {set(deps) & INPUT_MODULES}"


def test_nothing_imports_main() -> None:
    importers = [n for n, deps in GRAPH.items() if "deployer.main" in deps and n not in INPUT_READERS]
    assert importers == []


def test_no_import_cycles_in_the_package() -> None:
    modules = {n: [d for d in deps if d in GRAPH] for n, deps in GRAPH.items()}
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for dep in modules[node]:
            if not (dep == "deployer.github" and node.startswith("deployer.github.")):
                visit(dep, (*path, node))
        done.add(node)

    for name in modules:
        visit(name, ())


def test_architecture_document_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "architecture.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
