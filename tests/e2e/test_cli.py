"""The command line (``python -m deployer``) against the emulator, held against the action itself.

Each scenario runs twice on twin services: once as the GitHub runner runs the action (``INPUT_*``,
``GITHUB_ACTIONS=true``, tests/harness.py) and once from the command line with flags and no runner at
all; results, traffic and exit codes must be the same. The command line's log is for a person: no
line may start with ``::`` (a workflow command), errors are marked, colour only on a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudrun_emulator import Emulator
from deployer import cli
from deployer.input_table import BY_NAME
from deployer.inputs import DEFAULTS
from devtools import harness
from tests import helpers
from tests.cloudrun import Api, routing

FAST = {
    **helpers.FAST,
    "smoke_timeout": "3s",
}  # every scenario runs twice: a failing smoke check gives up sooner


def cli_env(tmp_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A terminal's environment, not a runner's: no GITHUB_* at all, nothing of ours leaking in."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = harness.base_env(sys.executable)
    env.update({"HOME": str(home), "PYTHONPATH": str(harness.ROOT), **(extra or {})})
    return env


def run_cli(
    args: list[str], *, tmp_path: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        env=cli_env(tmp_path, env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def flags(values: Mapping[str, str]) -> list[str]:
    """``{"step_interval": "1s"}`` -> ``["--step-interval", "1s"]``."""
    out: list[str] = []
    for name, value in values.items():
        out += [cli.flag(name), value]
    return out


def assert_no_workflow_commands(*streams: str) -> None:
    for stream in streams:
        for line in stream.splitlines():
            assert not line.lstrip().startswith("::"), line
            assert "%0A" not in line and "%25" not in line, line  # no workflow-command escaping


def normalised(outputs: Mapping[str, str], service: str) -> dict[str, Any]:
    """Outputs with the service name replaced and the (port-specific) URLs dropped."""
    traffic = [
        {k: v.replace(service, "SVC") if isinstance(v, str) else v for k, v in t.items() if k != "url"}
        for t in json.loads(outputs.get("traffic") or "[]")
    ]
    plain = {
        k: v.replace(service, "SVC") for k, v in outputs.items() if k not in ("url", "tag_url", "traffic")
    }
    return {**plain, "traffic": traffic, "has_url": bool(outputs.get("url"))}


def routed(api: Api, service: str) -> list[tuple[str, int, str]]:
    return [(r.replace(service, "SVC"), p, t) for r, p, t in routing(api.wait_routes(service))]


SCENARIOS: dict[str, tuple[dict[str, str], int, str]] = {
    "rollout": ({"image": "sample/hello:v2", "suffix": "v2", "steps": "10,50,100"}, 0, "promoted"),
    "failed": ({"image": "sample/error", "suffix": "bad"}, 1, "rolled_back"),
    "dry run": ({"image": "sample/hello:v3", "suffix": "v3", "dry_run": "true"}, 0, "planned"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_cli_matches_the_action(scenario: str, emulator: Emulator, project: str, tmp_path: Path) -> None:
    extra, code, outcome = SCENARIOS[scenario]
    api = Api(emulator.url, project)
    common = {"api_endpoint": emulator.url, "project_id": project, **FAST, **extra}
    for name in ("act", "cmd"):
        api.create_service(name, "sample/hello:v1", f"{name}-v1")
    action = harness.run({"service": "act", **common}, tmp_path=tmp_path / "action")
    command = run_cli(["deploy", "--service", "cmd", *flags(common), "--output", "json"], tmp_path=tmp_path)
    log = f"exit {command.returncode}\n--- stdout\n{command.stdout}\n--- stderr\n{command.stderr}"
    assert action.returncode == code, action.log
    assert command.returncode == code, log
    outputs = json.loads(command.stdout)  # stdout holds only the outputs; the log went to stderr
    assert outputs["result"] == outcome, log
    assert normalised(outputs, "cmd") == normalised(action.outputs, "act")
    assert routed(api, "cmd") == routed(api, "act")
    assert api.revisions("cmd") == [r.replace("act", "cmd") for r in api.revisions("act")]
    assert_no_workflow_commands(command.stdout, command.stderr)
    assert "── deploy " in command.stderr, log
    if code:
        assert "error: Cloud Run rollout rolled back: cmd: smoke check failed" in command.stderr, log


def test_flags_override_input_variables_which_still_work(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """INPUT_* still configures the command line (service, image from the environment), a flag wins
    over its variable (steps), and the text log shows phases as headings and the outputs at the end."""
    env = {
        "INPUT_SERVICE": "env-svc",
        "INPUT_IMAGE": "sample/hello:v1",
        "INPUT_PROJECT_ID": project,
        "INPUT_STEPS": "not-steps",
        "INPUT_SMOKE_PATH": "/healthz",
    }
    args = ["--steps", "100", "--api-endpoint", emulator.url, "--step_interval", "0s", "--suffix", "one"]
    result = run_cli(args, tmp_path=tmp_path, env=env)
    log = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, log
    assert routing(Api(emulator.url, project).service("env-svc")) == [("env-svc-one", 100, "canary")]
    assert "/healthz -> 200" in result.stdout, log  # INPUT_SMOKE_PATH from the environment
    headings = re.findall(r"^── (\S+) ─+$", result.stdout, re.M)
    assert headings == ["deploy", "wait", "smoke", "promote", "result"], log
    assert re.search(r"^result +promoted$", result.stdout, re.M), log
    assert re.search(r"^revision +env-svc-one$", result.stdout, re.M), log
    assert "\x1b" not in result.stdout  # not a terminal: no colour
    assert_no_workflow_commands(result.stdout, result.stderr)


def test_invalid_flags_are_the_action_s_input_errors(tmp_path: Path) -> None:
    """Validation is the action's: every problem at once, each naming its input, exit 1, no `::`."""
    hostile = "x\x1b]0;pwned\x07\x1b[2J\n::error::forged"
    args = ["deploy", "--service", "Bad_Name", "--steps", "50,10", "--dry-run=maybe", "--output", "json"]
    result = run_cli([*args, "--tag", hostile], tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr  # shown, not sent to the terminal
    assert "input 'tag': \"x\\x1b]0;pwned" in result.stderr, result.stderr  # quoted as an escape
    assert {k: v for k, v in json.loads(result.stdout).items() if v} == {"result": "failed"}
    for name in ("service", "steps", "dry_run", "tag"):
        assert re.search(rf"^error: Invalid input: input '{name}': ", result.stderr, re.M), result.stderr
    assert "nothing was changed" in result.stderr
    assert_no_workflow_commands(result.stdout, result.stderr)


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["deploy", "--no-such-input", "x"], tmp_path=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-input" in result.stderr


def test_help_lists_every_input_with_its_default(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path=tmp_path, env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for name, default in DEFAULTS.items():
        if name == "mode":
            assert "{deploy,promote,rollback,job}" in text and "[default: deploy]" in text
            continue
        found = re.search(rf" {cli.flag(name)} (VALUE|LINE|\[BOOL\]) ", text)
        assert found, f"{cli.flag(name)} missing from --help"
        start = found.start()
        described = " ".join(BY_NAME[name].description.split())
        entry = text[start : start + len(cli.flag(name)) + 300 + len(described)]
        assert described.split(".")[0] in entry, name
        if default:
            assert f"[default: {default}]" in entry, (name, entry)


def test_every_input_has_a_flag_and_both_spellings_work() -> None:
    parser = cli.build_parser()
    for name in DEFAULTS:
        if name == "mode":
            continue
        value = "true" if DEFAULTS[name] in cli.BOOLEAN_DEFAULTS else "x"
        for spelling in {cli.flag(name), f"--{name}"}:
            args = parser.parse_args([spelling, value])
            env = cli.input_env(args, {}, parser)
            assert env == {f"INPUT_{name.upper()}": value}, spelling
    assert not cli.CLI_OPTIONS & set(DEFAULTS), "an input shadows an option of the command line"


def test_mode_booleans_and_repeated_lines() -> None:
    parser = cli.build_parser()
    env = cli.input_env(
        parser.parse_args(["rollback", "--dry-run", "--env-vars", "A=1", "--env-vars", 'B={"x": 2}']),
        {"INPUT_MODE": "deploy", "INPUT_DRY_RUN": "false"},
        parser,
    )
    assert env == {"INPUT_MODE": "rollback", "INPUT_DRY_RUN": "true", "INPUT_ENV_VARS": 'A=1\nB={"x": 2}'}
    assert cli.input_env(parser.parse_args(["--mode", "promote"]), {}, parser) == {"INPUT_MODE": "promote"}
    assert cli.input_env(parser.parse_args([]), {"INPUT_MODE": "promote"}, parser) == {
        "INPUT_MODE": "promote"
    }
    with pytest.raises(SystemExit):
        cli.input_env(parser.parse_args(["deploy", "--mode", "rollback"]), {}, parser)


def test_descriptions_are_action_yml_s() -> None:
    """--help shows action.yml's text: the table's copy (the image has no action.yml) is word for word
    action.yml's, for every input and no other."""
    declared = yaml.safe_load((harness.ROOT / "action.yml").read_text(encoding="utf-8"))["inputs"]
    for name, spec in declared.items():
        assert BY_NAME[name].description == " ".join(str(spec["description"]).split()), name
    assert set(BY_NAME) == set(declared) == set(DEFAULTS)


def _run_in_pty(args: list[str], env: Mapping[str, str]) -> str:
    """Run the command line with a terminal as its stdout and stderr; return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployer", *args], env=dict(env), stdin=subprocess.DEVNULL,
        stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    args = ["deploy", "--service", "Bad_Name", "--image", "sample/hello"]
    coloured = _run_in_pty(args, cli_env(tmp_path, {"TERM": "xterm"}))
    assert "\x1b[" in coloured and "error:" in coloured, coloured
    plain = _run_in_pty(args, cli_env(tmp_path, {"TERM": "xterm", "NO_COLOR": "1"}))
    assert "\x1b" not in plain and "error: Invalid input: input 'service'" in plain, plain
    piped = run_cli(args, tmp_path=tmp_path, env={"TERM": "xterm"})
    assert "\x1b" not in piped.stdout + piped.stderr


def test_the_image_s_entrypoint_with_arguments_is_the_command_line(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """`docker run IMAGE deploy --service ...` (Cloud Build's `args:`): entrypoint.py with arguments
    runs the command line, with only the image's runtime dependencies installed."""
    python = harness.make_runtime_venv()
    Api(emulator.url, project).create_service("img", "sample/hello:v1", "img-v1")
    args = ["deploy", "--service=img", "--image=sample/hello:v2", "--suffix=v2", "--dry-run"]
    args += [f"--project-id={project}", f"--api-endpoint={emulator.url}", "--output=json"]
    env = cli_env(tmp_path)
    env["PATH"] = harness.base_env(python)["PATH"]
    del env["PYTHONPATH"]
    proc = subprocess.run(
        [str(python), str(harness.ENTRYPOINT), *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "planned"
    assert "Planned traffic: img-v1 90%, img-v2 10% (tag canary)" in proc.stderr
    assert_no_workflow_commands(proc.stdout, proc.stderr)


def test_console_script_is_the_command_line() -> None:
    """pyproject's `run-canary` script calls the same function as `python -m deployer`."""
    import tomllib

    project = tomllib.loads((harness.ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    module, _, function = project["scripts"]["run-canary"].partition(":")
    assert (module, function) == ("deployer.cli", "run") and callable(cli.run)


def _readme_commands() -> list[list[str]]:
    """Every command line the README shows: shell lines, GitLab script items, Cloud Build args."""
    readme = (harness.ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "deployer"]:
                commands.append(words[3:])
            elif words[:1] == ["run-canary"]:
                commands.append(words[1:])
    for block in re.findall(r"```yaml\n(.*?)```", readme, re.S):
        data = yaml.safe_load(block)
        for step in data.get("steps", []) if isinstance(data, dict) else []:
            if "run-canary" in step.get("name", ""):
                commands.append([str(a) for a in step["args"]])
        for job in data.values() if isinstance(data, dict) else []:
            for item in job.get("script", []) if isinstance(job, dict) else []:
                if item.startswith("run-canary "):
                    commands.append(shlex.split(item.split(">", 1)[0])[1:])
    return commands


def test_readme_command_lines_parse() -> None:
    """The README's rehearsal, GitLab CI and Cloud Build examples use flags that exist."""
    parser = cli.build_parser()
    commands = _readme_commands()
    assert len(commands) >= 8, commands
    for args in commands:
        if args == ["--help"]:
            continue
        args = [a.replace("REF", "sample/hello") for a in args if a != "[--INPUT"]
        args = [a for a in args if a not in ("VALUE", "...]")]
        parsed = parser.parse_args(args)
        assert parsed.mode in ("deploy", "promote", "rollback"), args


def test_ctrl_c_in_a_terminal_rolls_back(emulator: Emulator, project: str, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) mid-bake: traffic back where it was, one reason, exit 1, a person's log."""
    api = Api(emulator.url, project)
    api.create_service("ctrlc", "sample/hello:v1", "ctrlc-v1")
    args = ["deploy", "--service=ctrlc", "--image=sample/hello:v2", "--suffix=v2", "--step-interval=60s"]
    args += [f"--project-id={project}", f"--api-endpoint={emulator.url}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployer", *args], env=cli_env(tmp_path), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Traffic (10%)"):
            break
    else:
        raise AssertionError("".join(seen))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    log = "".join(seen) + rest
    assert proc.returncode == 1, log
    assert re.search(r"^error: Cloud Run rollout rolled back: ctrlc: cancelled by SIGINT$", log, re.M), log
    assert re.search(r"^result +rolled_back$", log, re.M), log
    assert routed(api, "ctrlc") == [("SVC-v1", 100, ""), ("SVC-v2", 0, "canary")]
    assert_no_workflow_commands(log)
