"""Canary analysis on real traffic: a background load drives the service URL while the action rolls
out, and the emulator's Cloud Monitoring endpoint reports what its data plane really served."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudrun_emulator import Emulator
from cloudrun_emulator.projects import project_number
from devtools import harness
from tests.cloudrun import Api, routing
from tests.helpers import load

STEPS = {"steps": "50,100", "step_interval": "3s", "wait_timeout": "30s", "smoke_timeout": "5s"}


def rollout(
    emu: Emulator, project: str, tmp_path: Path, name: str, **inputs: Any
) -> tuple[harness.RunResult, list]:
    api = Api(emu.url, project)
    svc = api.create_service(name, "sample/hello:v1", f"{name}-v1")
    args = {
        "api_endpoint": emu.url,
        "project_id": project,
        "service": name,
        "suffix": "v2",
        **STEPS,
        **inputs,
    }
    with load(svc["status"]["url"]):
        result = harness.run(args, tmp_path=tmp_path)
    return result, routing(api.wait_routes(name))


def test_healthy_candidate_is_promoted(emulator: Emulator, project: str, tmp_path: Path) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "good",
        image="sample/hello:v2",
        max_error_rate="5",
        max_latency_p99="1000",
    )
    assert result.outputs["result"] == "promoted", result.log
    assert traffic == [("good-v1", 0, ""), ("good-v2", 100, "canary")] or traffic == [
        ("good-v2", 100, "canary")
    ]
    assert "metrics ok" in result.summary


def test_a_project_named_by_its_number_gets_its_metrics(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """Cloud Monitoring labels series with the project ID: the action's filter uses the ``project``
    selector, which takes the ID or the number, so ``project_id: <number>`` still finds its data."""
    api = Api(emulator.url, project)
    svc = api.create_service("numbered", "sample/hello:v1", "numbered-v1")
    args = {
        "api_endpoint": emulator.url,
        "project_id": project_number(project),
        "service": "numbered",
        "suffix": "v2",
        "image": "sample/hello:v2",
        "max_error_rate": "5",
        **STEPS,
    }
    with load(svc["status"]["url"]):
        result = harness.run(args, tmp_path=tmp_path)
    assert result.outputs["result"] == "promoted", result.log
    assert "metrics ok" in result.summary, result.summary


def test_candidate_answering_5xx_is_rolled_back_at_the_first_step(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "errs",
        image="sample/error",
        env_vars="ERROR_RATE=0.5",
        max_error_rate="5",
        smoke_path="/healthz",  # healthy to a probe; only real traffic shows the errors
    )
    assert result.returncode == 1
    assert result.outputs["result"] == "rolled_back", result.log
    assert "check failed at 50%: metrics: error rate" in result.log
    assert traffic == [("errs-v1", 100, ""), ("errs-v2", 0, "canary")]


def test_slow_candidate_is_rolled_back_on_latency(emulator: Emulator, project: str, tmp_path: Path) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "slow",
        image="sample/slow",
        env_vars="DELAY_MS=400",
        max_latency_p99="200",
        smoke_path="/healthz",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "p99" in result.log
    assert traffic == [("slow-v1", 100, ""), ("slow-v2", 0, "canary")]


@pytest.mark.long
def test_too_little_traffic_fails_or_passes_as_configured(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    strict, _ = rollout(
        emulator,
        project,
        tmp_path / "a",
        "quiet-a",
        image="sample/hello:v2",
        max_error_rate="5",
        min_requests="100000",
        on_inconclusive="fail",
    )
    assert strict.outputs["result"] == "rolled_back", strict.log
    assert "inconclusive at 50%" in strict.log
    lenient, traffic = rollout(
        emulator,
        project,
        tmp_path / "b",
        "quiet-b",
        image="sample/hello:v2",
        max_error_rate="5",
        min_requests="100000",
        on_inconclusive="pass",
    )
    assert lenient.outputs["result"] == "promoted", lenient.log
    assert ("quiet-b-v2", 100, "canary") in traffic


def test_failing_check_command_rolls_back(emulator: Emulator, project: str, tmp_path: Path) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "cmd",
        image="sample/hello:v2",
        check_command='test "$CANARY_STEP" -lt 50 || { echo "step $CANARY_STEP refused"; exit 3; }',
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert "step 50 refused" in result.log
    assert traffic == [("cmd-v1", 100, ""), ("cmd-v2", 0, "canary")]


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 500

    def do_POST(self) -> None:
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(Hook.status)
        self.end_headers()
        self.wfile.write(b"not today")

    def log_message(self, *args: object) -> None:
        pass


def test_failing_webhook_rolls_back(emulator: Emulator, project: str, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/verify"
        result, traffic = rollout(
            emulator, project, tmp_path, "hook", image="sample/hello:v2", check_webhook=url
        )
    finally:
        server.shutdown()
    assert result.outputs["result"] == "rolled_back", result.log
    assert "500" in result.log and "not today" in result.log
    assert Hook.received[0]["revision"] == "hook-v2" and Hook.received[0]["step"] == 50
    assert traffic == [("hook-v1", 100, ""), ("hook-v2", 0, "canary")]


@pytest.mark.long
def test_inconclusive_step_is_extended_until_the_data_comes(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """on_inconclusive: extend: no users yet, so the step bakes longer; users arrive, it is promoted."""
    api = Api(emulator.url, project)
    svc = api.create_service("ext", "sample/hello:v1", "ext-v1")
    args = {
        "api_endpoint": emulator.url,
        "project_id": project,
        "service": "ext",
        "suffix": "v2",
        "image": "sample/hello:v2",
        **STEPS,
        "max_error_rate": "5",
        "min_requests": "20",  # the smoke checks alone (one a round) never reach it
        "on_inconclusive": "extend",
    }
    with harness.start(args, tmp_path=tmp_path) as running:
        running.wait_for_output(r"Inconclusive at 50%: baking 3s more \(1/3\)", timeout=60)
        with load(svc["status"]["url"]):
            result = running.wait()
    assert result.outputs["result"] == "promoted", result.log
    assert "inconclusive at 50%" not in result.log
    assert ("ext-v2", 100, "canary") in routing(api.wait_routes("ext"))


@pytest.mark.long
def test_step_that_stays_inconclusive_fails_after_the_extensions(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "never",
        image="sample/hello:v2",
        step_interval="2s",
        max_error_rate="5",
        min_requests="100000",
        on_inconclusive="extend",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    assert [f"({n}/3)" in result.log for n in (1, 2, 3)] == [True] * 3  # every extension was used
    assert "inconclusive at 50%" in result.log
    assert traffic == [("never-v1", 100, ""), ("never-v2", 0, "canary")]


FIRST_ROUND_FAILS = (
    'test "$CANARY_ROUND" -gt 1 || { echo "round $CANARY_ROUND of step $CANARY_STEP: not yet"; exit 1; }'
)


def test_failure_threshold_tolerates_fewer_failed_rounds(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    """failure_threshold 2: one failed round is a warning; the step goes on and the rollout completes."""
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "flaky",
        image="sample/hello:v2",
        check_command=FIRST_ROUND_FAILS,
        failure_threshold="2",
    )
    assert result.outputs["result"] == "promoted", result.log
    warnings = [c.data for c in result.annotations("warning")]
    assert any("Check failed at 50% (1/2)" in w and "round 1 of step 50: not yet" in w for w in warnings), (
        warnings
    )
    assert ("flaky-v2", 100, "canary") in traffic


def test_failure_threshold_fails_the_step_on_the_nth_failed_round(
    emulator: Emulator, project: str, tmp_path: Path
) -> None:
    result, traffic = rollout(
        emulator,
        project,
        tmp_path,
        "strict",
        image="sample/hello:v2",
        check_command='echo "round $CANARY_ROUND refused"; exit 1',
        failure_threshold="2",
    )
    assert result.outputs["result"] == "rolled_back", result.log
    warnings = [c.data for c in result.annotations("warning")]
    errors = [c.data for c in result.annotations("error")]
    assert any("Check failed at 50% (1/2)" in w and "round 1 refused" in w for w in warnings), warnings
    assert any("check failed at 50%" in e and "round 2 refused" in e for e in errors), errors
    assert "round 3 refused" not in result.log  # it stopped at the second failure
    assert traffic == [("strict-v1", 100, ""), ("strict-v2", 0, "canary")]
