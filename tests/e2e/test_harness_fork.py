"""The harness's fork server (devtools/forkserver.py, devtools/action_server.py) starts the action as a
plain ``python entrypoint.py`` does: same outputs, state, summary and log, same exit codes, same
answer to the runner's signals. Every other end-to-end test relies on it."""

from __future__ import annotations

import re
import signal
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
