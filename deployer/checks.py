"""The user's own checks at each canary step: ``check_command`` (bash, with ``run-canary-http`` on
its PATH) and ``check_webhook`` (a POST of the step as JSON). Each gives one ``Verdict``; nothing
here raises on a failed check."""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import requests

from deployer.redact import scrub, url_origin
from deployer.result import StepInfo, Verdict
from deployer.sessions import plain as plain_session

OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_CHARS = 2000
BODY_EXCERPT = 200


def _tail(output: str) -> str:
    """The last lines of a command's output, short enough for a summary."""
    lines = output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:]
    return "\n".join(lines)[-OUTPUT_TAIL_CHARS:]


def check_env(step: StepInfo) -> dict[str, str]:
    """What check_command sees on top of the action's environment: the step, plain and prefixed."""
    facts = {
        "TAG_URL": step.tag_url,
        "SERVICE_URL": step.url,
        "REVISION": step.candidate,
        "PREVIOUS_REVISION": step.previous or "",
        "STEP": str(step.percent),
        "ROUND": str(step.round),
    }
    return {**facts, **{f"CANARY_{name}": value for name, value in facts.items()}}


HELPER = "run-canary-http"
_helper_dir: str | None = None


def helper_dir() -> str:
    """A directory holding ``run-canary-http`` (made once per process), to put first on PATH.

    A shim that runs :mod:`deployer.httpcheck` with this very interpreter, so it works wherever the
    action runs (the image, a checkout, a test) without relying on file modes or another Python.
    """
    global _helper_dir
    if _helper_dir is None or not os.path.isfile(os.path.join(_helper_dir, HELPER)):
        directory = tempfile.mkdtemp(prefix="run-canary-bin-")
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        shim = os.path.join(directory, HELPER)
        with open(shim, "w", encoding="utf-8") as handle:
            handle.write(
                "#!/bin/sh\n"
                f"PYTHONPATH={shlex.quote(package_root)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                "export PYTHONPATH\n"
                f'exec {shlex.quote(sys.executable)} -m deployer.httpcheck "$@"\n'
            )
        os.chmod(shim, 0o755)  # noqa: S103 - a shim that must be executable by the command
        atexit.register(shutil.rmtree, directory, True)
        _helper_dir = directory
    return _helper_dir


def command_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: the action's, without its inputs and saved state (INPUT_* hold
    the GitHub token, env var values and the webhook URL: a check that prints its environment
    must not print them), plus ``extra``, with ``run-canary-http`` first on PATH."""
    env = {k: v for k, v in base.items() if not k.startswith(("INPUT_", "STATE_"))}
    env.update(extra)
    env["PATH"] = os.pathsep.join(p for p in (helper_dir(), env.get("PATH", os.defpath)) if p)
    return env


def run_command(command: str, env: Mapping[str, str], timeout: float) -> Verdict:
    """``bash -c command`` in the workspace; exit 0 passes. Its own session, so a timeout kills it all."""
    try:
        process = subprocess.Popen(
            ["bash", "-c", command],
            env=command_environment(os.environ, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return Verdict("command", False, f"check_command could not start bash: {exc}")
    try:
        raw, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        raw, _ = process.communicate()
        return Verdict("command", False, _with_output(f"check_command timed out after {timeout:g} s", raw))
    code = process.returncode
    if code == 0:
        return Verdict(
            "command", True, _with_output("check_command passed (exit 0)", raw), {"exit_code": 0.0}
        )
    return Verdict(
        "command", False, _with_output(f"check_command failed (exit {code})", raw), {"exit_code": code}
    )


def _with_output(head: str, raw: bytes) -> str:
    tail = _tail(raw.decode("utf-8", "replace"))
    return f"{head}; last output:\n{tail}" if tail else f"{head}; no output"


def post_webhook(url: str, payload: Mapping[str, Any], timeout: float) -> Verdict:
    """POST the step as JSON; 2xx passes. A plain session: the user's endpoint gets no Google token."""
    try:
        with plain_session() as plain:
            resp = plain.post(url, json=payload, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        # requests quotes the URL (or its path and query) in its messages: the URL is a secret.
        reason = scrub(f"{type(exc).__name__}: {exc}", url)
        return Verdict("webhook", False, f"check_webhook request to {url_origin(url)} failed: {reason}")
    figures = {"status": float(resp.status_code)}
    if 200 <= resp.status_code < 300:
        return Verdict("webhook", True, f"check_webhook answered {resp.status_code}", figures)
    excerpt = " ".join(scrub(resp.text[: BODY_EXCERPT * 4], url).split())[:BODY_EXCERPT]
    detail = f"check_webhook answered {resp.status_code}" + (f": {excerpt}" if excerpt else "")
    return Verdict("webhook", False, detail, figures)


def webhook_payload(step: StepInfo) -> dict[str, Any]:
    """The JSON body check_webhook receives."""
    return {
        "service_url": step.url,
        "tag_url": step.tag_url,
        "revision": step.candidate,
        "previous_revision": step.previous,
        "step": step.percent,
        "round": step.round,
        "phase": "step",
    }
