"""action.yml declares exactly the contract's inputs and outputs, as the rows of deployer.input_table
declare them (default, description); the settings' defaults are the table's."""

from __future__ import annotations

import re
from pathlib import Path

from deployer import inputs
from deployer.input_table import INPUTS
from deployer.settings import Config
from devtools import harness

# The inputs and outputs of the action's public contract ("The action's public contract", the
# interface document the project was specified with), copied here so the repository stands alone.
CONTRACT_INPUTS = {
    "service", "region", "project_id", "image", "mode", "steps", "step_interval", "suffix", "tag",
    "rollback_to", "wait_timeout", "dry_run", "smoke_path", "smoke_status", "smoke_body",
    "smoke_timeout", "smoke_auth", "env_vars", "env_vars_update_strategy", "secrets",
    "secrets_update_strategy", "labels", "cpu", "memory", "concurrency", "min_instances",
    "max_instances", "port", "request_timeout", "service_account", "vpc_connector", "vpc_egress",
    "ingress", "execution_environment", "cpu_throttling", "allow_unauthenticated", "metadata",
    "api_endpoint", "monitoring_endpoint", "github_token", "environment",
}  # fmt: skip
OUTPUTS = {"url", "tag_url", "revision", "previous_revision", "result", "traffic"}
JOB_OUTPUTS = {"job_execution", "job_result", "job_log_url"}


def test_inputs_and_defaults_equal_config_defaults() -> None:
    declared = {name: default or "" for name, default in harness.action_inputs().items()}
    assert declared == inputs.DEFAULTS


def test_descriptions_are_the_tables() -> None:
    """--help shows the table's description (the image has no action.yml): action.yml's, word for word."""
    declared = harness.action_metadata()["inputs"]
    for spec in INPUTS:
        assert " ".join(str(declared[spec.name]["description"]).split()) == spec.description, spec.name


def test_settings_defaults_are_the_parsed_table_defaults() -> None:
    """An input left out gets the table's default; Config built in code (tests, the benchmark) gets the
    same value from its field's default."""
    config = Config(service="")
    for spec in INPUTS:
        if spec.uses:  # parsed against other inputs: its default is "" and its field's None or ""
            assert spec.default == "" and spec.fallback in (None, ""), spec.name
            continue
        value: object = config
        for part in spec.field.split("."):
            value = getattr(value, part)
        assert spec.parser(spec.default) == value, spec.name


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
    assert set(outputs) == OUTPUTS | JOB_OUTPUTS
    for name, spec in outputs.items():
        assert spec.get("description", "").strip(), name


def test_action_yml_declares_the_contract_and_exactly_the_tables_inputs() -> None:
    """The contract's inputs are all there; beyond them, whatever the table declares (one row each)."""
    declared = set(harness.action_inputs())
    assert declared >= CONTRACT_INPUTS, sorted(CONTRACT_INPUTS - declared)
    assert declared == {spec.name for spec in INPUTS}


def test_runs_docker_with_post_entrypoint() -> None:
    runs = harness.action_metadata()["runs"]
    assert runs["using"] == "docker"
    assert runs["image"] == "Dockerfile"
    assert runs["post-entrypoint"] == "/app/post.py"
    assert "post-if" not in runs  # default always(): the post step must run after cancellation too
    assert Path(harness.ROOT / runs["image"]).is_file()
