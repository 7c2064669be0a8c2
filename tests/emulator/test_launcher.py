"""A revision's process is the same whether its sample is forked from the zygote or started as a new
interpreter (``CLOUD_RUN_EMULATOR_FORK=0``): it serves on $PORT with only the environment it was given,
leads its own process group, writes its output to the log in order, and ends with the sample's code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cloudrun_emulator import launcher
from cloudrun_emulator.images import builtin_argv


@pytest.fixture(params=["forked", "exec"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CLOUD_RUN_EMULATOR_FORK", "1" if request.param == "forked" else "0")
    yield request.param


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serving(process: launcher.Process, port: int) -> requests.Response:
    """The first answer on ``port``, once the sample listens."""
    for _ in range(200):
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        except requests.ConnectionError:
            assert process.poll() is None, "the sample exited before listening"
            time.sleep(0.025)
    raise AssertionError("the sample never listened")


def test_a_sample_serves_with_only_its_environment_in_its_own_group(mode: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"PORT": str(port), "K_REVISION": "web-1", "EMULATOR_ENV_NAMES": "K_REVISION,HOME"}
    process = launcher.start(builtin_argv("hello"), env, tmp_path / "web.log")
    try:
        body = serving(process, port).json()
        assert body["revision"] == "web-1"
        assert body["env"] == {"K_REVISION": "web-1"}  # HOME is the emulator's, not the revision's
        assert os.getpgid(process.pid) == process.pid
        assert (mode == "forked") == isinstance(process, launcher._Forked)
    finally:
        launcher.signal_group(process, signal.SIGTERM)
    assert process.wait(5) == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM


def test_a_crash_is_its_exit_code_and_its_message_in_the_log(mode: str, tmp_path: Path) -> None:
    process = launcher.start(builtin_argv("crash"), {}, tmp_path / "crash.log")
    assert process.wait(5) == 1
    assert "simulated crash" in (tmp_path / "crash.log").read_text()


def test_a_job_task_logs_in_order_and_fails_with_its_code(mode: str, tmp_path: Path) -> None:
    """PYTHONUNBUFFERED is in every process's environment (dataplane._base_env); a forked sample is
    unbuffered whatever its environment says."""
    log = tmp_path / "task.log"
    process = launcher.start(
        [*builtin_argv("job"), "--ignored"],
        {"FAIL_RATE": "1", "CLOUD_RUN_TASK_INDEX": "2", "PYTHONUNBUFFERED": "1"},
        log,
    )
    assert process.wait(5) == 1
    assert log.read_text().splitlines() == ["Starting Task #2, Attempt #0...", "Task #2, Attempt #0 failed."]


def test_a_signal_right_after_the_start_ends_the_sample(mode: str, tmp_path: Path) -> None:
    process = launcher.start(builtin_argv("hello"), {"PORT": str(free_port())}, tmp_path / "web.log")
    launcher.signal_group(process, signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL


def test_a_wait_that_runs_out_raises_as_popen_does(mode: str, tmp_path: Path) -> None:
    process = launcher.start(builtin_argv("hello"), {"PORT": str(free_port())}, tmp_path / "web.log")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(0.05)
        assert process.poll() is None
    finally:
        launcher.signal_group(process, signal.SIGKILL)
    assert process.wait(5) == -signal.SIGKILL


def test_another_command_is_executed_with_its_output_in_the_log(mode: str, tmp_path: Path) -> None:
    log = tmp_path / "sh.log"
    process = launcher.start(["sh", "-c", 'echo "$GREETING"; exit 3'], {"GREETING": "hi"}, log)
    assert isinstance(process, subprocess.Popen)
    assert process.wait(5) == 3
    assert log.read_text() == "hi\n"


def test_a_missing_command_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        launcher.start([str(tmp_path / "nothing-here")], {}, tmp_path / "x.log")


def test_when_the_zygote_dies_its_samples_read_as_killed_and_the_next_start_brings_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUD_RUN_EMULATOR_FORK", "1")
    process = launcher.start(builtin_argv("hello"), {"PORT": str(free_port())}, tmp_path / "a.log")
    assert isinstance(process, launcher._Forked)
    zygote = launcher._zygote()
    assert zygote is not None
    zygote.process.kill()
    zygote.process.wait()
    try:
        assert process.wait(5) == -signal.SIGKILL  # its end can no longer be known: read as killed
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the orphan itself
    again = launcher.start(builtin_argv("crash"), {}, tmp_path / "b.log")
    assert isinstance(again, launcher._Forked)
    assert again.wait(5) == 1
    assert launcher._zygote() is not zygote


PID_REUSE_SERVER = """
import json, sys
for n, line in enumerate(sys.stdin):
    request = json.loads(line)
    # Both children get pid 4242: the first ends at once with code 0, the second keeps running.
    print(json.dumps({"id": request["id"], "pid": 4242}), flush=True)
    if n == 0:
        print(json.dumps({"pid": 4242, "returncode": 0}), flush=True)
"""


def test_a_reused_pid_is_not_read_as_ended_by_its_previous_childs_exit() -> None:
    """pids wrap around (32,768 by default): a new child with an old child's pid is running, even
    though an end was recorded under that pid (a revision once read as "exited with code 0 before
    listening", or -15: the code of the revision stopped before it)."""
    from cloudrun_emulator.forkclient import ForkClient

    client = ForkClient([sys.executable, "-c", PID_REUSE_SERVER], {}, "pid-reuse")
    try:
        first = client.spawn({})
        assert first == 4242 and client.ended(first, timeout=5) is not None
        second = client.spawn({})
        assert second == 4242
        assert client.ended(second, timeout=0.2) is None
    finally:
        assert client.process.stdin is not None
        client.process.stdin.close()
        client.process.wait(timeout=5)
