"""The layout the design names holds: data flows one way, the emulator stays a product of its own,
and docs/architecture.md describes the code as it is."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


# The flow, from where a run starts down to what everything stands on. A module imports only modules of
# its own layer or of a layer below (never back up the flow); in a layer of peers, no module imports
# another of the same layer (a sideways import), except inside one package (github.x -> github.y).
LAYERS: list[tuple[str, bool, set[str]]] = [
    ("entry", False, {"deployer.__main__", "deployer.cli", "deployer.main"}),
    (
        "inputs",
        False,
        {
            "deployer.inputs",
            "deployer.input_table",
            "deployer.jobs.inputs",
            "deployer.parsers",
            "deployer.parsers_names",
            "deployer.parsers_yaml",
            "deployer.context",
        },
    ),
    ("outputs", True, {"deployer.github", "deployer.terminal"}),
    ("runs", True, {"deployer.rollout", "deployer.jobs.runner", "deployer.analysis"}),
    # The rollout's parts, one built on the next: rollout.Rollout -> steps.Steps -> undo.WayBack -> writer.
    ("rollout parts", False, {"deployer.steps", "deployer.undo", "deployer.writer"}),
    (
        "rules",
        False,
        {
            "deployer.hooks",
            "deployer.readiness",
            "deployer.restore",
            "deployer.bake",
            "deployer.jobs.stop",
            "deployer.jobs.adopt",
            "deployer.takeover",
            "deployer.record",
            "deployer.promote",
            "deployer.modes",
        },
    ),
    (
        "services",
        True,
        {
            "deployer.client",
            "deployer.smoke",
            "deployer.auth",
            "deployer.checks",
            "deployer.compare",
            "deployer.httpcheck",
            "deployer.load",
            "deployer.monitoring",
        },
    ),
    (
        "model",
        False,
        {
            "deployer.knative",
            "deployer.traffic",
            "deployer.state",
            "deployer.result",
            "deployer.baseline",
            "deployer.scaling",
            "deployer.stats",
            "deployer.retry",
            "deployer.secretrefs",
            "deployer.jobs.spec",
            "deployer.console",
            "deployer.outputs",
            "deployer.text",
            "deployer.verdicts",
            "deployer.landed",
            "deployer.api_errors",
            "deployer.endpoints",
        },
    ),
    (
        "foundation",
        False,
        {
            "deployer",
            "deployer.jobs",
            "deployer.errors",
            "deployer.settings",
            "deployer.descriptions",
            "deployer.redact",
            "deployer.loopback",
            "deployer.sessions",
        },
    ),
]
# Exceptions used only as control flow inside one module, never seen by a caller.
PRIVATE_EXCEPTIONS = {"deployer.smoke._Fatal", "deployer.smoke._Failed", "deployer.retry.Retry"}


def _layer(module: str) -> int:
    for index, (_, _, members) in enumerate(LAYERS):
        if module in members or any(module.startswith(m + ".") for m in members if m != "deployer"):
            return index
    raise AssertionError(f"{module} is in no layer of the flow: add it to LAYERS")


def _package(module: str, layer: int) -> str:
    return next((m for m in LAYERS[layer][2] if module == m or module.startswith(m + ".")), module)


def _architecture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "scripts" / "architecture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def graph() -> dict[str, list[str]]:
    """Module -> its imports, read when a test of this file runs (not when every worker collects it)."""
    return {name: list(deps) for name, _, deps in _architecture().modules()}


def test_the_action_never_imports_the_emulator_and_back(graph: dict[str, list[str]]) -> None:
    for name, deps in graph.items():
        other = "cloudrun_emulator" if name.startswith("deployer") else "deployer"
        assert not [d for d in deps if d.split(".")[0] == other], name


def test_only_main_reads_inputs(graph: dict[str, list[str]]) -> None:
    for name, deps in graph.items():
        if name in INPUT_READERS or name in INPUT_MODULES:
            continue
        assert not set(deps) & INPUT_MODULES, f"{name} imports {set(deps) & INPUT_MODULES}"


def test_nothing_imports_main(graph: dict[str, list[str]]) -> None:
    importers = [n for n, deps in graph.items() if "deployer.main" in deps and n not in INPUT_READERS]
    assert importers == []


def test_no_import_cycles_in_the_package(graph: dict[str, list[str]]) -> None:
    modules = {n: [d for d in deps if d in graph] for n, deps in graph.items()}
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


def test_no_import_back_up_the_flow(graph: dict[str, list[str]]) -> None:
    for name, deps in graph.items():
        if not name.startswith("deployer"):
            continue
        here = _layer(name)
        up = [d for d in deps if d.startswith("deployer") and _layer(d) < here]
        assert not up, f"{name} ({LAYERS[here][0]}) imports {up} from higher up the flow"


def test_no_sideways_import_between_peers(graph: dict[str, list[str]]) -> None:
    for name, deps in graph.items():
        if not name.startswith("deployer"):
            continue
        here = _layer(name)
        if not LAYERS[here][1]:
            continue
        own = _package(name, here)
        sideways = [
            d for d in deps if d.startswith("deployer") and _layer(d) == here and _package(d, here) != own
        ]
        assert not sideways, f"{name} imports its peer(s) {sideways}"


def _class_names() -> list[str]:
    """Every class defined in deployer/, as module.Class."""
    found = []
    for path in sorted((ROOT / "deployer").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                found.append(f"{module}.{node.name}")
    return found


def test_one_exception_base() -> None:
    import deployer.errors
    from deployer.errors import DeployerError

    checked = 0
    for qualified in _class_names():
        module_name, _, name = qualified.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        checked += 1
        if qualified in PRIVATE_EXCEPTIONS:
            assert name.startswith("_") or qualified == "deployer.retry.Retry", qualified
            continue
        assert issubclass(cls, DeployerError), f"{qualified} does not derive from DeployerError"
    assert checked >= 20
    assert sorted(deployer.errors.__all__) == sorted(
        n for n, v in vars(deployer.errors).items() if isinstance(v, type) and issubclass(v, DeployerError)
    ), "every error of deployer.errors is in its __all__"
