"""The project documents a publisher needs are there and hold together: license, security policy,
changelog, contributing guide, stability policy, and links between them that resolve."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from devtools import harness

ROOT = harness.ROOT
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "SECURITY.md",
    ROOT / "CHANGELOG.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def test_license_is_the_full_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n")
    assert "Version 2.0, January 2004" in text
    sections = ("1. Definitions.", "4. Redistribution.", "9. Accepting Warranty or Additional Liability.")
    for section in sections:
        assert section in text, section
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000  # the whole text, not a pointer to it


def test_changelog_keeps_a_changelog_with_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text and "semver.org" in text
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings and headings[0] == "[Unreleased]"
    for version in headings[1:]:  # released sections: ## [X.Y.Z] - YYYY-MM-DD
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", version), version
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## ", 1)[0]
    kinds = set(re.findall(r"^### (\w+)$", unreleased, re.M))
    assert kinds and kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_security_policy_says_how_to_report_and_what_is_needed() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert "Report a vulnerability" in text
    for needed in (
        "run.services.get",
        "run.services.update",
        "iam.serviceAccounts.actAs",
        "roles/monitoring.viewer",
        "id-token: write",
        "deployments: write",
        "pull-requests: write",
    ):
        assert needed in text, needed


def test_id_token_grant_is_the_same_in_security_policy_and_readme() -> None:
    # Under Workload Identity Federation google-auth calls generateIdToken as the federated principal.
    for doc in ("SECURITY.md", "README.md"):
        (row,) = [
            line
            for line in (ROOT / doc).read_text(encoding="utf-8").splitlines()
            if "ID tokens for smoke checks" in line
        ]
        assert "roles/iam.serviceAccountOpenIdTokenCreator" in row, doc
        assert "federated principal" in row and "on itself" not in row, doc


def test_contributing_describes_tests_emulator_benchmark_and_releases() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for needed in ("./scripts/test", "cloudrun_emulator", "benchmarks.run", "vX.Y.Z", "@sha256:<digest>"):
        assert needed in text, needed
    assert "post-entrypoint" in text  # the release's action.yml keeps the post step
    assert "docs/stability.md" in text


def test_stability_policy_covers_every_output_and_deprecations() -> None:
    text = (ROOT / "docs" / "stability.md").read_text(encoding="utf-8")
    for output in harness.action_metadata()["outputs"]:
        assert f"`{output}`" in text, output
    assert "## Deprecations" in text and "warning" in text


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{document.name}: {target}"


def test_every_used_by_pointer_of_the_cloud_run_facts_names_code_that_exists() -> None:
    """docs/cloud-run-facts.md says which code relies on each fact: a renamed function would leave the
    fact pointing nowhere."""
    words = {"project_id", "tag_limit"}  # a metric label and an emulator setting, not code
    inputs = set(harness.action_metadata()["inputs"])
    rows = [
        line for line in (ROOT / "docs" / "cloud-run-facts.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| #")
    ]  # fmt: skip
    missing = []
    for row in rows:
        where: list[Any] = []  # the module the previous pointer of the row was found in
        for ref in re.findall(r"`([^`]+)`", row.strip().strip("|").split("|")[-1]):
            found = _code(ref.split("(")[0], where)
            if found is None and ref not in inputs | words:
                missing.append(f"{row.split('|')[1].strip()}: {ref}")
    assert not missing, missing


def _code(ref: str, where: list[Any]) -> Any:
    """What ``ref`` names in deployer or cloudrun_emulator, else in the row's previous pointer's module."""
    candidates = [f"{package}.{ref}" for package in ("deployer", "cloudrun_emulator")] + [ref]
    for dotted in candidates:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                module = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            found = _attribute(module, parts[cut:])
            if found is not None:
                where[:] = [module]
                return found
            break
    return _attribute(where[0], ref.split(".")) if where else None


def _attribute(module: Any, names: list[str]) -> Any:
    """``names`` defined in ``module`` (not imported into it), the first also as a method of one of its
    classes (not inherited)."""
    classes = inspect.getmembers(module, inspect.isclass)
    owners = [module, *(c for _, c in classes if c.__module__ == module.__name__)]
    for owner in owners:
        found = owner
        for name in names:
            found = getattr(found, name, None)
            if found is None:
                break
        if found is not None and getattr(found, "__module__", module.__name__) == module.__name__:
            return found
    return None
