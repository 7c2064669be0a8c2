"""The tests are laid out by what they prove, and share helpers only through helper modules: no test
module or conftest imports another test module or a conftest (a fixture in a conftest is visible without
an import; a helper lives once in a module named for what it holds), and ``tests/unit/`` mirrors
``deployer/``, one folder per subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def imports(source: str, module: str) -> set[str]:
    """Every module that ``module`` (a dotted name; not a package's ``__init__``) imports with this
    source; ``from a import b`` counts ``a.b`` too, as b may be a module, and relative imports resolve."""
    package = module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, node.module] if node.module else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def test_no_test_module_imports_another_or_a_conftest() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in TESTS.rglob("*.py")
        if path.name != "__init__.py"
        for name in imports(path.read_text(), ".".join(path.relative_to(ROOT).with_suffix("").parts))
        if is_test_module(name)
    )
    assert not offenders, (
        "move what is shared into a helper module named for what it holds (a fixture: into the nearest "
        f"conftest.py, which needs no import): {offenders}"
    )


def test_every_form_of_such_an_import_is_seen() -> None:
    forms = {
        "from tests.unit.test_client import make": "tests.unit.test_client",
        "from tests.e2e import test_analysis as shared": "tests.e2e.test_analysis",
        "import tests.container.conftest": "tests.container.conftest",
        "from .test_client import make": "tests.unit.test_client",
        "from . import conftest": "tests.unit.conftest",
        "from ..conftest import image": "tests.conftest",
    }
    for source, module in forms.items():
        found = imports(source, "tests.unit.test_sample")
        assert module in found and is_test_module(module), (source, found)
    helpers = (
        "from tests.unit.scripted import make\nfrom tests import helpers\nfrom tests.config import cfg\n"
    )
    assert not any(is_test_module(name) for name in imports(helpers, "tests.unit.test_sample"))


def test_unit_tests_mirror_the_package() -> None:
    """``deployer/github/*`` is tested in ``tests/unit/github/``, ``deployer/jobs/*`` in
    ``tests/unit/jobs/``: a folder for each subpackage, none for anything else."""
    unit = TESTS / "unit"
    folders = {p.name for p in unit.iterdir() if p.is_dir() and p.name != "__pycache__"}
    subpackages = {p.parent.name for p in (ROOT / "deployer").glob("*/__init__.py")}
    assert folders <= subpackages, (
        f"tests/unit/ folders with no deployer/ subpackage: {folders - subpackages}"
    )
    assert subpackages <= folders, (
        f"deployer/ subpackages with no tests/unit/ folder: {subpackages - folders}"
    )
    for name in sorted(folders):
        assert (unit / name / "__init__.py").exists(), f"tests/unit/{name}/ is not a package"
        assert list((unit / name).glob("test_*.py")), f"tests/unit/{name}/ holds no tests"
