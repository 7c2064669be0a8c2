"""Hostile inputs through entrypoint.py: no injected workflow command, output or env line, and no
secret in the logs.

Inputs are untrusted text (a PR title in an image tag, a value from another step...). Whatever they
hold -- newlines, ``::error::``, ``::set-output``, ``::add-mask::``, ``::stop-commands::``, ``%0A``,
megabyte strings, unicode -- the runner must see only the commands the action meant to print, the
declared outputs and nothing in GITHUB_ENV / GITHUB_PATH. Bad values are input errors, reported before
any API call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from devtools import harness
from tests.cloudrun import Api, api_path

MARK = "PWNED"
INJECTIONS = [
    f"x\n::error::{MARK}",
    f"x\r\n::set-output name=hacked::{MARK}",
    f"::add-mask::{MARK}",
    f"::stop-commands::{MARK}",
    f"x%0A::error::{MARK}",
    f"x%0D%0A::warning::{MARK}",
    f"::set-env name=HACKED::{MARK}",
    f"x\n::add-path::/{MARK}",
    f"x\n::save-state name=finished::{MARK}",
]
OUTPUTS = {"url", "tag_url", "revision", "previous_revision", "result", "traffic"}
OUTPUTS |= {"job_execution", "job_result", "job_log_url"}  # empty without a job
EXPECTED_COMMANDS = {"group", "endgroup", "error", "warning", "notice", "add-mask", "debug"}


def base(emu: Emulator, project: str, **extra: str) -> dict[str, str]:
    return {
        "api_endpoint": emu.url,
        "project_id": project,
        "region": "us-central1",
        "service": "hostile",
        "image": "sample/hello:v1",
        "steps": "100",
        "step_interval": "0s",
        "wait_timeout": "20s",
        "smoke_timeout": "2s",
        **extra,
    }


def assert_not_injected(result: harness.RunResult) -> None:
    """Only the action's own commands, each carrying the hostile text inside it; nothing else set."""
    commands = result.commands
    names = {c.name for c in commands}
    assert names <= EXPECTED_COMMANDS, (names - EXPECTED_COMMANDS, result.log)
    for command in commands:
        if command.name == "add-mask":
            assert MARK not in command.data, result.log  # no mask forged from an input
        if command.name in ("group", "endgroup"):
            assert MARK not in command.data, result.log
    for stream in (result.stdout, result.stderr):
        for line in stream.splitlines():
            stripped = line.lstrip()
            # A forged command would start a line with a command carrying the marker.
            assert not re.match(rf"::[a-z-]+( [^:]*)?::.*{MARK}", stripped) or stripped.startswith(
                ("::error title=", "::error::", "::warning::", "::notice::")
            ), line
    assert set(result.outputs) <= OUTPUTS, result.outputs
    assert all(MARK not in key for key in result.outputs)
    assert result.env_file == {}, result.env_file
    assert result.path_file == [], result.path_file
    assert "finished" not in result.state or result.state["finished"] in ("true", "false")


def writes(emu: Emulator, project: str) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if re.search(api_path(project), r["path"]) and r["method"] != "GET"]


REJECTING = ["service", "tag", "suffix", "steps", "labels", "smoke_status", "region", "step_interval"]


def _printable(value: str) -> bool:
    return all(c.isascii() and c.isprintable() and not c.isspace() for c in value)


@pytest.mark.parametrize("index", range(len(INJECTIONS) + 2))
def test_hostile_values_are_input_errors_with_no_api_call(
    index: int, emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """One hostile value in every input that cannot hold it: each reported as that input's problem
    (all at once), escaped, and no API call at all."""
    value = [*INJECTIONS, "x" * 100_000, "shöp-☃"][index]
    names = REJECTING + ([] if _printable(value) else ["image"])  # see test_printable_bogus_image
    hostile = {name: f"team={value}" if name == "labels" else value for name in names}
    before = len(emulator.requests())
    result = harness.run(base(emulator, project, **hostile), tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert_not_injected(result)
    errors = result.annotations("error")
    for name in names:
        assert any(f"input '{name}'" in c.data for c in errors), (name, result.log)
    assert all(c.properties.get("title") == "Invalid input" for c in errors), result.log
    assert len(emulator.requests()) == before, "an API call with bad inputs"
    assert {k: v for k, v in result.outputs.items() if v} == {"result": "failed"}  # nothing forged
    assert len(result.stdout) < 20_000, "a huge input is echoed in full"


def test_printable_bogus_image_is_refused_before_any_call(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """A printable but malformed image reference is an input error (checked against the reference
    grammar), reported escaped, with no API call and nothing forged."""
    before = len(emulator.requests())
    result = harness.run(base(emulator, project, image=f"::add-mask::{MARK}"), tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert_not_injected(result)
    assert any("input 'image'" in c.data for c in result.annotations("error")), result.log
    assert len(emulator.requests()) == before


def test_hostile_values_that_are_valid_are_deployed_and_never_injected(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """env_vars values and a smoke_body regex may legitimately hold any text: they reach the revision
    and the logs (the smoke check prints the body it got), escaped."""
    env_yaml = json.dumps({f"V{i}": value for i, value in enumerate(INJECTIONS)})  # YAML mapping
    smoke_body = "Hello|" + "|".join(re.escape(v) for v in INJECTIONS)
    result = harness.run(
        base(emulator, project, env_vars=env_yaml, smoke_body=smoke_body, suffix="v1"), tmp_path=tmp_path
    )
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted", result.log
    assert_not_injected(result)
    svc = Api(emulator.url, project).service("hostile")
    env = {e["name"]: e["value"] for e in svc["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {f"V{i}": value for i, value in enumerate(INJECTIONS)}

    # The same values, now failing the smoke check: the body (with the values) is not printed.
    failed = harness.run(
        base(emulator, project, env_vars=env_yaml, smoke_body=f"never{MARK}", suffix="v2"),
        tmp_path=tmp_path / "2",
    )
    assert failed.returncode == 1, failed.log
    assert failed.outputs["result"] == "rolled_back", failed.log
    assert_not_injected(failed)
    assert "body did not match" in failed.stdout


def test_hostile_multiline_env_var_line_is_rejected(emulator: Emulator, project: str, tmp_path: Path) -> None:
    """In KEY=VALUE form a newline starts a new line: the injected line is a bad entry, not a command."""
    before = len(emulator.requests())
    result = harness.run(
        base(emulator, project, env_vars=f"A=1\n::error::{MARK}\n::set-output name=x::{MARK}"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 1, result.log
    assert_not_injected(result)
    assert any("input 'env_vars'" in c.data for c in result.annotations("error")), result.log
    assert len(emulator.requests()) == before


# --------------------------------------------------------------------------------------------------
# Secrets: the GitHub token, the access token and the ID token never reach the logs


def test_tokens_never_appear_in_logs_outputs_or_summary(
    emulator: Emulator, project: str, tmp_path: Path, private_key_pem: str
) -> None:
    """A service-account key whose token endpoint is the emulator's: the API gets an access token and
    the smoke check an ID token; a github_token is given too. None is printed unmasked."""
    key = tmp_path / "gha-creds-hostile.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project,
                "private_key_id": "kid-1",
                "private_key": private_key_pem,
                "client_email": "deployer@proj.iam.gserviceaccount.com",
                "client_id": "1234",
                "token_uri": f"{emulator.url}/token",
            }
        )
    )
    github_token = "ghs_" + "S3cr3tT0k3n" * 4
    inputs = base(
        emulator, project, github_token=github_token, smoke_auth="id_token", smoke_body=f"never{MARK}"
    )
    result = harness.run(inputs, tmp_path=tmp_path, env={"GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert result.outputs.get("result") == "failed" or result.outputs.get("result") == "rolled_back", (
        result.log
    )
    assert_not_injected(result)
    assert github_token in result.masks, result.log
    assert not result.printed_before_masked(github_token), result.log
    id_tokens = [m for m in result.masks if m.startswith("eyJ")]
    assert id_tokens, f"the smoke check's ID token was not masked:\n{result.log}"
    everything = result.stdout + result.stderr + result.summary + json.dumps(result.outputs)
    unmasked = [line for line in everything.splitlines() if not line.startswith("::add-mask::")]
    for secret in [github_token, *id_tokens]:
        assert not any(secret in line for line in unmasked), result.log
    assert "emu-access-" not in everything, "an access token was printed"
    assert not re.search(r"eyJ[\w-]{20,}\.", "\n".join(unmasked)), "a JWT was printed"
    assert "Bearer" not in everything
