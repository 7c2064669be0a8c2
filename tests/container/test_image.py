"""The action's image, run as the GitHub runner runs it, against the emulator on the host.

What the venv-based tests cannot see: that the Dockerfile builds, that its ENTRYPOINT and the
post-entrypoint of action.yml exist and run as PID 1, that the runner's mounts and ``-e`` flags are
enough, and that signals delivered through docker (where PID 1 ignores any signal it has no handler
for) still restore the traffic.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cloudrun_emulator import Emulator
from deployer.state import STATE_ANNOTATION
from devtools import docker_action, harness
from tests.cloudrun import Api, routing
from tests.container.image import Image
from tests.e2e.cancellation import (
    BEFORE,
    GRACE,
    PHASES,
    SERVICE,
    assert_cancelled,
    assert_restored,
    candidate_share,
    inputs,
    reach_bake,
    split_service,
    wait_until,
    writes,
)

# The first start of a container on a cold engine can take a few seconds. The image is built once
# per session: the first xdist worker that needs it builds it, the others read its ID
# (tests/conftest.py, ``image``).
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def emu(own_emulator: Emulator, project: str) -> Emulator:
    """A split service on an emulator of the test's own (tests/e2e/cancellation.py)."""
    return split_service(own_emulator, project)


def _docker(image: Image, *args: str) -> subprocess.CompletedProcess[str]:
    return docker_action._docker(image.docker_host, *args)


# --------------------------------------------------------------------------------------------------
# The image itself


def test_post_entrypoint_of_action_yml_is_the_one_run_here() -> None:
    assert harness.action_metadata()["runs"]["post-entrypoint"] == docker_action.POST_ENTRYPOINT


def test_image_holds_only_the_action_byte_compiled(image: Image) -> None:
    """No emulator, tests or dev tools in the image; all of deployer/ is compiled, so no step compiles it."""
    script = (
        "import os, importlib.util as u\n"
        "print(sorted(os.listdir('/app')))\n"
        "missing = [os.path.join(d, f) for d, _, fs in os.walk('/app/deployer') for f in fs\n"
        "           if f.endswith('.py') and not os.path.exists(\n"
        "               os.path.join(d, '__pycache__', f[:-3] + '.cpython-311.pyc'))]\n"
        "print(missing)\n"
        "print([m for m in ('cloudrun_emulator', 'pytest', 'googleapiclient') if u.find_spec(m)])\n"
    )
    proc = _docker(image, "run", "--rm", "--workdir", "/", "--entrypoint", "python3", image.id, "-c", script)
    assert proc.returncode == 0, proc.stderr
    app, missing, dev = proc.stdout.splitlines()
    assert app == str(["LICENSE", "deployer", "entrypoint.py", "post.py", "requirements.txt"])
    assert missing == "[]", f"not byte-compiled: {missing}"
    assert dev == "[]", f"in the image: {dev}"


def test_build_context_holds_only_what_the_image_needs(image: Image) -> None:
    """.dockerignore as docker applies it: no emulator, tests, credentials or caches reach the build."""
    dockerfile = f"FROM {image.id}\nCOPY . /ctx\n"
    built = subprocess.run(
        ["docker", "build", "-q", "-f", "-", str(harness.ROOT)],
        input=dockerfile,
        env={**os.environ, "DOCKER_HOST": image.docker_host, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    context_image = built.stdout.split()[-1]
    try:
        listed = _docker(image, "run", "--rm", "--entrypoint", "find", context_image, "/ctx", "-type", "f")
    finally:
        _docker(image, "rmi", context_image)
    assert listed.returncode == 0, listed.stderr
    files = sorted(path.removeprefix("/ctx/") for path in listed.stdout.split())
    allowed = {"Dockerfile", ".dockerignore", "requirements.txt", "entrypoint.py", "post.py", "LICENSE"}
    unexpected = [f for f in files if f not in allowed and not re.fullmatch(r"deployer/[\w/]+\.(py|json)", f)]
    assert unexpected == [], unexpected
    assert "deployer/main.py" in files and "requirements.txt" in files


# --------------------------------------------------------------------------------------------------
# Runs to the end


def test_full_rollout(image: Image, emu: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emu.url, project)
    args = inputs(emu, project, step_interval="0s")
    result = docker_action.run(image.id, image.docker_host, args, tmp_path=tmp_path, timeout=90)
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "promoted", result.log
    assert result.outputs["revision"] == f"{SERVICE}-v3"
    assert result.outputs["previous_revision"] == f"{SERVICE}-v1"
    shares = [candidate_share(w["body"]) for w in writes(emu, project) if "traffic" in w["body"]["spec"]]
    assert list(dict.fromkeys(s for s in shares if s)) == [10, 50, 100], shares  # in that order
    assert candidate_share(api.service(SERVICE)) == 100
    assert result.state.get("finished") == "true"
    assert "promoted" in result.summary
    assert "Traceback" not in result.stderr, result.log
    # The runner's post step after a finished main step: nothing to do, and nothing written.
    before = len(writes(emu, project))
    post = docker_action.run_post(image.id, image.docker_host, result, args, tmp_path=tmp_path / "post")
    assert post.returncode == 0, post.log
    assert "nothing to clean up" in post.stdout, post.log
    assert len(writes(emu, project)) == before


def test_failed_rollout_rolls_back(image: Image, emu: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emu.url, project)
    args = inputs(emu, project, smoke_body="never-there", smoke_timeout="2s")
    result = docker_action.run(image.id, image.docker_host, args, tmp_path=tmp_path, timeout=90)
    assert result.returncode == 1, result.log
    assert result.outputs["result"] == "rolled_back", result.log
    errors = " ".join(a.data for a in result.annotations("error"))
    assert "never-there" in errors or "smoke" in errors.lower(), result.log
    assert routing(api.wait_routes(SERVICE)) == sorted([*BEFORE, (f"{SERVICE}-v3", 0, "canary")])
    assert STATE_ANNOTATION not in api.service(SERVICE)["metadata"].get("annotations", {})


def test_dry_run_changes_nothing(image: Image, emu: Emulator, project: str, tmp_path: Path) -> None:
    api = Api(emu.url, project)
    version = api.service(SERVICE)["metadata"]["resourceVersion"]
    args = inputs(emu, project, dry_run="true")
    started = time.time()
    result = docker_action.run(image.id, image.docker_host, args, tmp_path=tmp_path, timeout=90)
    assert result.returncode == 0, result.log
    assert result.outputs["result"] == "planned", result.log
    assert f"{SERVICE}-v3 10%" in result.log and f"{SERVICE}-v3 100%" in result.log
    assert api.service(SERVICE)["metadata"]["resourceVersion"] == version
    assert [w for w in writes(emu, project, since=started) if "dryRun" not in (w.get("query") or {})] == []


def test_bad_input_is_reported_before_any_call(image: Image, tmp_path: Path) -> None:
    result = docker_action.run(image.id, image.docker_host, {"service": "svc"}, tmp_path=tmp_path)
    assert result.returncode == 1, result.log
    assert any("image" in a.data for a in result.annotations("error")), result.log
    assert "Traceback" not in result.stderr, result.log


# --------------------------------------------------------------------------------------------------
# Cancelled: the runner's signals, delivered by docker to PID 1


@pytest.mark.parametrize("phase", list(PHASES))
def test_runner_cancel_in_each_phase_restores_the_traffic(
    image: Image, phase: str, emu: Emulator, project: str, tmp_path: Path
) -> None:
    """``docker kill --signal SIGINT``, SIGTERM 7.5 s later, SIGKILL 2.5 s after that."""
    api = Api(emu.url, project)
    reach, extra = PHASES[phase]
    if phase == "wait":
        emu.set_ready_delay(30.0)
    args = inputs(emu, project, **extra)
    with docker_action.start(image.id, image.docker_host, args, tmp_path=tmp_path) as running:
        reach(running, emu, api)
        signalled = time.time()
        emu.set_ready_delay(0.2)
        result = running.cancel_like_runner()
        exited = time.time() - signalled
    assert_cancelled(result)
    assert "SIGINT" in result.log
    assert exited < GRACE + 1, f"exited {exited:.1f}s after SIGINT"
    # Cancelled while waiting: the candidate turns Ready once the delay drops, before or after the
    # rollback looks at it (our tag stays on it only if it was Ready then).
    assert_restored(emu, api, project, signalled, ready=None if phase == "wait" else True)


def test_signal_to_the_docker_run_process_is_forwarded(
    image: Image, emu: Emulator, project: str, tmp_path: Path
) -> None:
    """The runner signals its ``docker run`` child; docker's signal proxy passes it to the action."""
    api = Api(emu.url, project)
    with docker_action.start(image.id, image.docker_host, inputs(emu, project), tmp_path=tmp_path) as running:
        reach_bake(10)(running, emu, api)
        signalled = time.time()
        running.signal_client(signal.SIGTERM)
        result = running.wait(timeout=GRACE + 5)
    assert_cancelled(result)
    assert "SIGTERM" in result.log
    assert_restored(emu, api, project, signalled)


def test_sigkill_then_the_post_entrypoint_restores(
    image: Image, emu: Emulator, project: str, tmp_path: Path
) -> None:
    api = Api(emu.url, project)
    args = inputs(emu, project)
    with docker_action.start(image.id, image.docker_host, args, tmp_path=tmp_path / "main") as running:
        reach_bake(10)(running, emu, api)
        running.kill()
        main = running.wait()
    assert main.returncode == 128 + signal.SIGKILL, main.log
    assert "finished" not in main.state
    svc = api.service(SERVICE)
    assert STATE_ANNOTATION in svc["metadata"]["annotations"]
    assert candidate_share(svc) == 10
    started = time.time()
    post = docker_action.run_post(image.id, image.docker_host, main, args, tmp_path=tmp_path / "post")
    assert post.returncode == 0, post.log
    assert "restoring the traffic" in post.stdout, post.log
    assert writes(emu, project, since=started), "the post step wrote nothing"
    assert_restored(emu, api, project, None)  # its last write; no grace period: no signal here
    again = docker_action.run_post(image.id, image.docker_host, main, args, tmp_path=tmp_path / "post2")
    assert again.returncode == 0 and "nothing to clean up" in again.stdout, again.log


def test_post_entrypoint_as_pid_1_stops_on_sigterm(
    image: Image, emu: Emulator, project: str, tmp_path: Path
) -> None:
    """Before it has anything to restore (here: its first read hangs), SIGTERM ends the post step at
    once; as PID 1 without a handler it would be ignored until the runner's SIGKILL."""
    hang = emu.faults.add(path=r"^/(apis|v1)/", delay=30.0, times=1)  # gone from the rules once it fired
    args = inputs(emu, project)
    with docker_action.start(
        image.id,
        image.docker_host,
        args,
        tmp_path=tmp_path,
        entrypoint=docker_action.POST_ENTRYPOINT,
        state={"finished": "false"},
    ) as running:
        # Its first read of the service hangs: it has installed its handlers and has restored nothing.
        wait_until(lambda: all(rule is not hang for rule in emu.faults.rules()), 60, "the post step's read")
        assert running.poll() is None, running.stdout_so_far() + running.stderr_so_far()
        signalled = time.monotonic()
        running.send_signal(signal.SIGTERM)
        result = running.wait(timeout=10)
        exited = time.monotonic() - signalled
    assert result.returncode == 1, result.log
    assert exited < 5.0, f"exited {exited:.1f}s after SIGTERM"  # not after the 30 s hang
    assert "cancelled (SIGTERM)" in result.log, result.log


def test_benchmark_reports_the_image_size_per_layer(image: Image) -> None:
    """The benchmark's layer table names each layer by its Dockerfile instruction."""
    from benchmarks import run as bench

    layers = bench.image_layers(bench.Image(image.id, image.docker_host))
    names = [row["layer"] for row in layers]
    assert names[0] == "base image (BASE_IMAGE)"
    assert "COPY deployer/ /app/deployer/" in names
    assert any(name.startswith("pip install") for name in names)
    pip = next(row for row in layers if row["layer"].startswith("pip install"))
    assert 10 < pip["mb"] < 100  # the locked runtime closure: tens of MB, never the dev tools
    app = sum(row["mb"] for row in layers if "/app/deployer" in row["layer"] or "compileall" in row["layer"])
    assert 0 < app < 5
