"""action.yml declares exactly the contract's inputs and outputs, with deployer.inputs' defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployer import inputs
from tests import harness

CONTRACT = harness.ROOT.parent / "shared" / "docs" / "contract.md"

OUTPUTS = {"url", "tag_url", "revision", "previous_revision", "result", "traffic"}

# Inputs beyond the contract's table (canary analysis, labels, takeover).
EXTRA_INPUTS = {
    "skip_default_labels",
    "takeover",
    "max_error_rate",
    "max_latency_p99",
    "max_latency_p95",
    "min_requests",
    "on_inconclusive",
    "check_command",
    "check_webhook",
    "failure_threshold",
}


def _contract_table(heading: str) -> list[str]:
    """First-column names of the table under ``## heading`` in contract.md (comma lists split)."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("|"):
            first_cell = line.strip("|").split("|")[0]
            names.extend(n.strip() for n in first_cell.split(","))
    # Drops the header ("input", "output") and the separator row.
    return [n for n in names if re.fullmatch(r"[a-z][a-z0-9_]*", n) and n not in {"input", "output"}]


def test_inputs_and_defaults_equal_config_defaults() -> None:
    declared = {name: default or "" for name, default in harness.action_inputs().items()}
    assert declared == inputs.DEFAULTS


def test_no_default_means_no_default_key() -> None:
    # An input whose default is "" declares no default (the runner passes "" then).
    for name, spec in harness.action_metadata()["inputs"].items():
        if "default" in spec:
            assert spec["default"] != "", name
            assert isinstance(spec["default"], str), f"{name}: quote the default so YAML keeps it a string"


def test_input_names_are_snake_case_and_described() -> None:
    for name, spec in harness.action_metadata()["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert spec.get("description", "").strip(), name


def test_only_service_is_marked_required() -> None:
    required = {n for n, s in harness.action_metadata()["inputs"].items() if s.get("required")}
    assert required == {"service"}


def test_outputs_are_the_contract_outputs() -> None:
    outputs = harness.action_metadata()["outputs"]
    assert set(outputs) == OUTPUTS
    for name, spec in outputs.items():
        assert spec.get("description", "").strip(), name


@pytest.mark.skipif(not CONTRACT.is_file(), reason="shared/docs/contract.md is not beside the repository")
def test_contract_tables_match_action_yml() -> None:
    inputs = set(harness.action_inputs())
    contract_inputs = set(_contract_table("Inputs"))
    assert contract_inputs, "no inputs parsed from contract.md"
    assert inputs == contract_inputs | EXTRA_INPUTS
    assert set(_contract_table("Outputs")) == OUTPUTS


def test_runs_docker_with_post_entrypoint() -> None:
    runs = harness.action_metadata()["runs"]
    assert runs["using"] == "docker"
    assert runs["image"] == "Dockerfile"
    assert runs["post-entrypoint"] == "/app/post.py"
    assert "post-if" not in runs  # default always(): the post step must run after cancellation too
    assert Path(harness.ROOT / runs["image"]).is_file()
