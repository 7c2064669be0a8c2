"""The harness's fork server (devtools/forkserver.py, devtools/action_server.py) starts the action as a
plain ``python entrypoint.py`` does: same outputs, state, summary and log, same exit codes, same
answer to the runner's signals. Every other end-to-end test relies on it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from devtools import forkserver, harness
from tests.cloudrun import Api, routing
from tests.helpers import inputs, split_two_revisions

TIMINGS = re.compile(r"\(\d+\.\d s\)|in \d+\.\d s|\d+\.\d+s|http://127\.0\.0\.1:\d+")


def both(
    monkeypatch: pytest.MonkeyPatch, run: Callable[[str], harness.RunResult]
) -> tuple[harness.RunResult, harness.RunResult]:
    """``run(tag)`` once forked and once as a plain process."""
    forked = run("forked")
    monkeypatch.setenv("RUN_CANARY_ACTION_FORK", "0")
    plain = run("plain")
    return forked, plain


def same_log(text: str, forked: str, plain: str) -> str:
    return TIMINGS.sub("#", text.replace(forked, "SVC").replace(plain, "SVC"))


def test_a_forked_run_is_a_plain_run(
    emulator: Emulator, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(emulator.url, project)

    def run(tag: str) -> harness.RunResult:
        split_two_revisions(api, tag)
        return harness.run(
            inputs(emulator, project, service=tag, image="sample/hello:v3", suffix="v3", steps="50,100"),
            tmp_path=tmp_path / tag,
        )

    forked, plain = both(monkeypatch, run)
    assert forked.returncode == plain.returncode == 0, forked.log
    assert forked.post is not None and plain.post is not None
    assert forked.post.returncode == plain.post.returncode == 0
    assert set(forked.outputs) == set(plain.outputs) and forked.outputs["result"] == plain.outputs["result"]
    assert set(forked.state) == set(plain.state)
    assert same_log(forked.stdout, "forked", "plain") == same_log(plain.stdout, "forked", "plain")
    assert same_log(forked.post.stdout, "forked", "plain") == same_log(plain.post.stdout, "forked", "plain")
    assert forked.stderr == plain.stderr == ""
    assert routing(api.wait_routes("forked")) == [
        (name.replace("plain", "forked"), p, t) for name, p, t in routing(api.wait_routes("plain"))
    ]


def test_bad_inputs_exit_alike(
    emulator: Emulator, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(tag: str) -> harness.RunResult:
        return harness.run(inputs(emulator, project, steps="ten"), tmp_path=tmp_path / tag, post=False)

    forked, plain = both(monkeypatch, run)
    assert forked.returncode == plain.returncode == 1
    assert forked.stdout == plain.stdout and "steps" in forked.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_runners_signals_cancel_a_forked_run_as_a_plain_one(
    sig: signal.Signals, emulator: Emulator, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(emulator.url, project)
    outcomes = []
    for tag in ("forked", "plain"):
        if tag == "plain":
            monkeypatch.setenv("RUN_CANARY_ACTION_FORK", "0")
        name = f"{tag}-{sig.name.lower()}"
        split_two_revisions(api, name)
        args = inputs(
            emulator, project, service=name, image="sample/hello:v3", suffix="v3", step_interval="30s"
        )
        with harness.start(args, tmp_path=tmp_path / tag) as running:
            assert isinstance(running.proc, forkserver.Forked) == (tag == "forked")
            running.wait_for_output(r"Traffic \(10%\)", timeout=60)
            running.send_signal(sig)
            result = running.wait(timeout=30)
        outcomes.append((result.returncode, result.outputs.get("result")))
        assert "Cancelled" in result.log or "cancel" in result.log.lower(), result.log
    assert outcomes[0] == outcomes[1] and outcomes[0][0] != 0, outcomes


# What a started script sees of its process: open descriptors, the signal wake-up fd, SIGCHLD's handler.
PROBE = """
import json, os, signal
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
wakeup = signal.set_wakeup_fd(-1)
default = signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
print(json.dumps({"fds": fds, "wakeup_fd": wakeup, "sigchld_default": default}))
"""


def test_a_forked_child_holds_none_of_the_servers_plumbing(tmp_path: Path) -> None:
    """The server answers through a pipe and wakes on SIGCHLD through another; a run holds neither,
    keeps no handler of the server's and has no wake-up fd, as a fresh interpreter (a run that held
    the answers pipe would keep it open after the server has gone)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    server = forkserver.Server(sys.executable, forkserver.interpreter_env(env))
    out, err = tmp_path / "out", tmp_path / "err"
    try:
        pid = server.start([sys.executable, str(probe)], env, tmp_path, out, err)
        assert pid is not None
        ended = server.ended(pid, 30)
        assert ended is not None and ended.returncode == 0, err.read_text()
    finally:
        server.close()
    plain = subprocess.run(
        [sys.executable, str(probe)],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert json.loads(out.read_text()) == json.loads(plain.stdout)
