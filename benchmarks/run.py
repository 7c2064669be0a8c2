"""Benchmark full rollouts of ``entrypoint.py`` against the local Cloud Run emulator.

The action spends most of a rollout waiting on purpose (readiness, bake time). What it adds on top
-- polling lag, start-up, round trips -- is what users pay for, so each scenario reports wall time
against the ideal time and breaks the difference down (first API request, requests made, memory).

    python -m benchmarks.run [--scenarios single,fleet] [--json out.json] [--markdown out.md]
                             [--quick] [--strict] [--container]

The ``baseline`` scenario rolls out with ``baseline: revision`` (a baseline revision deployed beside
the candidate, compared at each step, ``load_rps`` giving both data): its physical limit adds only
Cloud Monitoring's ingestion after each bake (the emulator's, scaled down), since the baseline and
the candidate become ready side by side. Unless ``--quick``, the benchmark also prints the
comparison's detection rate: how often a 20 % and a 50 % latency shift is caught at 100 and 1,000
requests per side, and how often identical releases are failed (false alarms).

``--container`` builds the action's image (scripts/container) and adds the container rows: a rollout
run with ``docker run`` as the runner runs it, the time from ``docker run`` to the first API request,
and the image's size per layer.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from devtools import docker_action, harness

ROOT = Path(__file__).resolve().parent.parent
PROJECT, REGION, STEPS = "bench-project", "us-central1", "10,50,100"
KNATIVE = "apis/serving.knative.dev/v1"
API_PATHS = r"^/(apis|v1)/"  # Admin API and IAM, not /token nor the control endpoints
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
RUN_TIMEOUT = 300.0

# Targets (see README): overhead budget per phase, start-up, memory, latency scenario.
OVERHEAD_BASE, OVERHEAD_PER_PHASE = 1.0, 0.5
FIRST_REQUEST_MAX = 0.5
PEAK_RSS_MAX_MB = 80.0
LATENCY_OVERHEAD_MAX = 3.0
CONTAINER_FIRST_REQUEST_MAX = 0.4  # docker run -> first API request, with the image built
START_SAMPLES = 7
READS_PER_S_MAX = 2.0  # readiness polling, averaged over a rollout: 20 deploys at once stay near 2,400/min

_run_ids = itertools.count(1)


@dataclass(frozen=True)
class Scenario:
    """One measured situation; the figures only compare across runs of the same scenario."""

    name: str
    description: str
    ready_delay: float
    step_interval: float
    services: int = 1
    prior_revisions: int = 0  # tagged revisions (0 %) the service has before the measured rollout
    api_latency: float = 0.0  # seconds added by the emulator to every API call
    steps: str = STEPS
    container: bool = False  # run the image with `docker run` (--container) instead of entrypoint.py
    inputs: tuple[tuple[str, str], ...] = ()  # more inputs for the measured rollout
    metric_delay: float = 0.0  # the emulator's Cloud Monitoring sampling window and lag (each), if any

    @property
    def step_list(self) -> list[int]:
        return [int(p) for p in self.steps.split(",")]

    @property
    def phases(self) -> int:
        """deploy, wait, smoke, one per step, promote: what the overhead budget is counted in."""
        return 4 + len(self.step_list)

    @property
    def ideal(self) -> float:
        """Time a rollout cannot avoid: every change waits ready_delay, every step below 100 % bakes.

        Changes that must become ready: the deploy (new revision) and each traffic step. The promote
        write is not waited for. Smoke checks on loopback are counted as 0.
        """
        changes = 1 + len(self.step_list)
        bakes = sum(1 for p in self.step_list if p < 100)
        # With metric checks, a step's final verdict waits until its last requests are ingested: at
        # most one sampling window plus the lag after the bake.
        return changes * self.ready_delay + bakes * (self.step_interval + 2 * self.metric_delay)

    @property
    def overhead_budget(self) -> float:
        return OVERHEAD_BASE + OVERHEAD_PER_PHASE * self.phases


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("single", "one service, 10/50/100, ready 1 s, bake 2 s", 1.0, 2.0),
        Scenario(
            "many-revisions",
            "as single, the service already has 20 tagged revisions",
            1.0,
            2.0,
            prior_revisions=20,
        ),
        Scenario("fleet", "20 services rolled out at once against one emulator", 1.0, 2.0, services=20),
        Scenario("latency", "as single, +100 ms on every API call", 1.0, 2.0, api_latency=0.1),
        Scenario("slow-ready", "as single, every change takes 2 s to become ready", 2.0, 2.0),
        Scenario(
            "baseline",
            "as single, baseline: revision compared at each step, load_rps 20, metrics in 0.1 s + 0.1 s",
            1.0,
            2.0,
            inputs=(("baseline", "revision"), ("max_latency_increase", "50"), ("load_rps", "20")),
            metric_delay=0.1,
        ),
    )
}
BASELINE_RATIO_MAX = 1.1  # a baseline rollout against its physical limit
CONTAINER = Scenario(
    "container", "as single, the image run with docker run as the runner runs it", 1.0, 2.0, container=True
)
QUICK = Scenario("single", "one service, 10/50/100, ready 0.3 s, bake 0.5 s (--quick)", 0.3, 0.5)


# --------------------------------------------------------------------------------------------------
# The emulator, as a separate process (its threads must not share our GIL or the action's)


class EmulatorProcess:
    """``python -m cloudrun_emulator --port 0`` and its ``/_emulator`` control endpoints."""

    def __init__(self, ready_delay: float, log_dir: Path, metric_delay: float = 0.0) -> None:
        self._log = (log_dir / "emulator.log").open("wb")
        metrics = (
            ["--metric-sampling", f"{metric_delay:g}", "--metric-lag", f"{metric_delay:g}"]
            if metric_delay
            else []
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloudrun_emulator",
                "--port",
                "0",
                "--ready-delay",
                f"{ready_delay:g}",
                *metrics,
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self.url = self._read_url()
        threading.Thread(target=self._drain, daemon=True).start()
        self.http = requests.Session()

    def _read_url(self) -> str:
        """The first stdout line names the base URL."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode("utf-8", "replace")
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"emulator did not start: {line!r} (see {self._log.name})")
        return match.group(1).rstrip("/")

    def _drain(self) -> None:
        """Keep reading stdout so the emulator never blocks on a full pipe."""
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.http.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def add_latency(self, seconds: float) -> None:
        """Delay every API call, then serve it normally (status None, forever)."""
        self.control("POST", "faults", {"path": API_PATHS, "delay": seconds, "times": None})

    def requests(self) -> list[dict[str, Any]]:
        data = self.control("GET", "requests")
        return list(data["requests"] if isinstance(data, dict) else data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


# --------------------------------------------------------------------------------------------------
# Running entrypoint.py like the runner does (devtools.harness, as the tests and the demo do)


def rollout_inputs(scn: Scenario, service: str, url: str, *, image: str, suffix: str) -> dict[str, str]:
    return {
        "service": service,
        "region": REGION,
        "project_id": PROJECT,
        "image": image,
        "suffix": suffix,
        "steps": scn.steps,
        "step_interval": f"{scn.step_interval:g}s",
        "wait_timeout": "2m",
        "smoke_path": "/",
        "smoke_timeout": "30s",
        "api_endpoint": url,
    }


@dataclass
class Run:
    """One entrypoint.py run of one service (the harness's result once it has finished)."""

    service: str
    running: harness.RunningAction
    result: harness.RunResult | None = None

    def finish(self) -> None:
        self.result = self.running.wait(timeout=RUN_TIMEOUT)

    @property
    def done(self) -> harness.RunResult:
        if self.result is None:
            raise RuntimeError(f"{self.service}: entrypoint.py has not finished")
        return self.result

    def log_tail(self, chars: int = 3000) -> str:
        return self.done.log[-chars:]


@dataclass(frozen=True)
class Image:
    """The action's image, built by scripts/container, and the engine that has it."""

    id: str
    docker_host: str


def build_image() -> Image:
    script = str(ROOT / "scripts" / "container")
    built = subprocess.run([script, "build"], capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        raise RuntimeError(f"scripts/container build failed:\n{built.stderr}")
    host = subprocess.run([script, "env"], capture_output=True, text=True, timeout=60, check=True)
    return Image(built.stdout.split()[-1], host.stdout.strip().removeprefix("DOCKER_HOST="))


_image: list[Image] = []  # set by --container


def launch(service: str, inputs: Mapping[str, str], job_dir: Path, *, container: bool = False) -> Run:
    """Start entrypoint.py (or ``docker run`` of the image, as the runner runs it) with a run id of its
    own (the start is stamped just before spawning, on the epoch clock the emulator's log uses)."""
    github = {"GITHUB_RUN_ID": f"{int(time.time())}{next(_run_ids):04d}"}
    if container:
        image = _image[0]
        return Run(
            service, docker_action.start(image.id, image.docker_host, inputs, tmp_path=job_dir, github=github)
        )
    return Run(service, harness.start(inputs, tmp_path=job_dir, github=github))


def run_together(starts: Sequence[Callable[[], Run]]) -> list[Run]:
    """Start all processes back to back, wait for each in its own thread (exact end times)."""
    runs = [start() for start in starts]
    threads = [threading.Thread(target=r.finish, daemon=True) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RUN_TIMEOUT + 15)
    for r in runs:
        r.running.kill()
        if r.result is None:
            raise RuntimeError(f"{r.service}: entrypoint.py still running after {RUN_TIMEOUT}s")
    return runs


def check_promoted(runs: Iterable[Run], what: str) -> None:
    for r in runs:
        if r.done.returncode != 0 or r.done.outputs.get("result") != "promoted":
            raise RuntimeError(
                f"{what} of {r.service} did not promote (exit {r.done.returncode}, "
                f"outputs {r.done.outputs}):\n{r.log_tail()}"
            )


# --------------------------------------------------------------------------------------------------
# Preparing services directly through the API


def service_url(base: str, name: str = "") -> str:
    return f"{base}/{KNATIVE}/namespaces/{PROJECT}/services" + (f"/{name}" if name else "")


def seed_revisions(emu: EmulatorProcess, service: str, count: int) -> None:
    """Give the service ``count`` more revisions, each tagged at 0 %, one PUT each, then wait."""
    http = requests.Session()
    for i in range(1, count + 1):
        svc = http.get(service_url(emu.url, service), timeout=30).json()
        svc.pop("status", None)
        template = svc["spec"]["template"]
        template["metadata"]["name"] = f"{service}-old-{i:02d}"
        container = template["spec"]["containers"][0]
        env = [e for e in container.get("env", []) if e.get("name") != "SEED"]
        container["env"] = [*env, {"name": "SEED", "value": str(i)}]
        revision = template["metadata"]["name"]
        svc["spec"]["traffic"].append({"revisionName": revision, "percent": 0, "tag": f"old-{i:02d}"})
        resp = http.put(service_url(emu.url, service), json=svc, timeout=30)
        if resp.status_code != 200:
            raise RuntimeError(f"seeding revision {i} of {service}: {resp.status_code} {resp.text}")
    wait_ready(http, emu.url, service)


def wait_ready(http: requests.Session, base: str, service: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = http.get(service_url(base, service), timeout=30).json()
        status = svc.get("status") or {}
        ready = {c.get("type"): c.get("status") for c in status.get("conditions", [])}
        if status.get("observedGeneration") == svc["metadata"].get("generation") and ready.get("Ready"):
            if ready["Ready"] != "True":
                raise RuntimeError(f"seeded service {service} is not ready: {status}")
            return
        time.sleep(0.2)
    raise RuntimeError(f"seeded service {service} not ready after {timeout}s")


# --------------------------------------------------------------------------------------------------
# The request log


def belongs(entry: Mapping[str, Any], service: str) -> bool:
    """Was this API call about ``service`` (its object, its revisions, its IAM policy, its creation)?"""
    path, name = str(entry.get("path", "")), re.escape(service)
    if re.search(rf"/services/{name}(?:$|[/:])", path) or re.search(rf"/revisions/{name}-[^/]+$", path):
        return True
    selector = (entry.get("query") or {}).get("labelSelector", "")
    if isinstance(selector, list):
        selector = ",".join(selector)
    if re.search(rf"=\s*{name}(?:$|,)", str(selector)):
        return True
    body = entry.get("body")
    meta = body.get("metadata") if isinstance(body, dict) else None
    return path.endswith("/services") and isinstance(meta, dict) and meta.get("name") == service


def call_kind(entry: Mapping[str, Any]) -> str:
    """``GET service``, ``PUT service``, ``GET revision``, ``POST setIamPolicy``...: for the breakdown."""
    path = str(entry.get("path", ""))
    if ":" in path.rsplit("/", 1)[-1]:
        kind = path.rsplit(":", 1)[-1]
    elif re.search(r"/services/[^/]+$", path):
        kind = "service"
    elif path.endswith("/services"):
        kind = "services"
    elif re.search(r"/revisions/[^/]+$", path):
        kind = "revision"
    elif path.endswith("/revisions"):
        kind = "revisions"
    else:
        kind = path
    return f"{entry.get('method')} {kind}"


@dataclass
class RunStats:
    """One measured entrypoint.py run."""

    service: str
    wall_s: float
    first_request_s: float | None
    peak_rss_mb: float
    cpu_s: float  # user + system CPU of the process: what a fleet on few cores contends for
    reads: int
    writes: int
    errors: int  # API answers >= 400 (retries, conflicts, injected faults)
    reads_per_s: float = 0.0  # reads over the run's wall time: what readiness polling costs the quota
    by_call: dict[str, int] = field(default_factory=dict)
    result: str = ""


def run_stats(run: Run, log: Sequence[Mapping[str, Any]], api_latency: float) -> RunStats:
    """Figures for one run. The log's ``time`` is epoch seconds stamped after the call was served
    (after any injected delay), so the injected latency is taken off the first request's time."""
    p = run.done
    mine = [e for e in log if belongs(e, run.service) and p.started <= float(e.get("time", p.started))]
    times = [float(e["time"]) for e in mine if "time" in e]
    first = (min(times) - api_latency - p.started) if times else None
    reads = sum(1 for e in mine if e.get("method") == "GET")
    return RunStats(
        service=run.service,
        wall_s=p.wall_s,
        first_request_s=first,
        peak_rss_mb=p.peak_rss_mb,
        cpu_s=round(p.cpu_s, 3),
        reads=reads,
        writes=sum(1 for e in mine if e.get("method") in WRITE_METHODS),
        errors=sum(1 for e in mine if int(e.get("status") or 0) >= 400 or e.get("status") == 0),
        reads_per_s=round(reads / p.wall_s, 3),
        by_call=dict(sorted(Counter(call_kind(e) for e in mine).items())),
        result=p.outputs.get("result", ""),
    )


# --------------------------------------------------------------------------------------------------
# Scenarios


def measure(scn: Scenario, work: Path) -> dict[str, Any]:
    """Start an emulator, create the services (not measured), then measure the canary rollouts."""
    emu = EmulatorProcess(scn.ready_delay, work, scn.metric_delay)
    try:
        names = [f"bench-{scn.name}-{i:02d}" for i in range(scn.services)]
        firsts = run_together(
            [_starter(scn, emu.url, n, work / f"{n}-1", "sample/hello", "bench-1") for n in names]
        )
        check_promoted(firsts, "the initial deploy")
        for name in names:
            if scn.prior_revisions:
                seed_revisions(emu, name, scn.prior_revisions)
        if scn.api_latency:
            emu.add_latency(scn.api_latency)
        emu.control("DELETE", "requests")
        procs = run_together(
            [_starter(scn, emu.url, n, work / f"{n}-2", "sample/hello:v2", "bench-2") for n in names]
        )
        check_promoted(procs, "the measured rollout")
        log = emu.requests()
    finally:
        emu.close()
    return summarise(scn, [run_stats(p, log, scn.api_latency) for p in procs])


def _starter(
    scn: Scenario, url: str, service: str, job_dir: Path, image: str, suffix: str
) -> Callable[[], Run]:
    inputs = rollout_inputs(scn, service, url, image=image, suffix=suffix)
    if suffix != "bench-1":  # the measured rollout (the first deploy creates the service)
        inputs.update(dict(scn.inputs))
    return lambda: launch(service, inputs, job_dir, container=scn.container)


def summarise(scn: Scenario, runs: list[RunStats]) -> dict[str, Any]:
    """One scenario dict: the worst run for the gated figures, medians and totals beside them."""
    walls = [r.wall_s for r in runs]
    firsts = [r.first_request_s for r in runs if r.first_request_s is not None]
    wall = max(walls)
    out: dict[str, Any] = {
        "scenario": scn.name,
        "description": scn.description,
        "services": scn.services,
        "ready_delay_s": scn.ready_delay,
        "step_interval_s": scn.step_interval,
        "steps": scn.steps,
        "api_latency_s": scn.api_latency,
        "prior_revisions": scn.prior_revisions,
        "phases": scn.phases,
        "ideal_s": round(scn.ideal, 3),
        "wall_s": round(wall, 3),
        "ratio": round(wall / scn.ideal, 3),
        "overhead_s": round(wall - scn.ideal, 3),
        "first_request_s": round(max(firsts), 3) if firsts else None,
        # Of the docker CLI for the container scenario: not the action's, so not reported.
        "peak_rss_mb": None if scn.container else round(max(r.peak_rss_mb for r in runs), 1),
        "cpu_s": None if scn.container else round(max(r.cpu_s for r in runs), 3),
        "reads": sum(r.reads for r in runs),
        "reads_per_s": max(r.reads_per_s for r in runs),  # per process: each deploy's own rate
        "writes": sum(r.writes for r in runs),
        "errors": sum(r.errors for r in runs),
        "by_call": dict(sorted(sum((Counter(r.by_call) for r in runs), Counter()).items())),
        "results": sorted({r.result for r in runs}),
    }
    if len(runs) > 1:
        out["wall_median_s"] = round(statistics.median(walls), 3)
        out["overhead_median_s"] = round(statistics.median(walls) - scn.ideal, 3)
        out["first_request_median_s"] = round(statistics.median(firsts), 3) if firsts else None
        out["reads_per_run_median"] = statistics.median(r.reads for r in runs)
        out["writes_per_run_median"] = statistics.median(r.writes for r in runs)
        out["runs"] = [vars(r) | {"wall_s": round(r.wall_s, 3)} for r in runs]
    out["targets"] = targets(scn, out)
    return out


def targets(scn: Scenario, figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PASS/FAIL per target; a fleet is judged by its slowest / largest process."""
    first_max = CONTAINER_FIRST_REQUEST_MAX if scn.container else FIRST_REQUEST_MAX
    checks: list[tuple[str, float | None, float, bool]] = [
        (f"overhead <= {scn.overhead_budget:g} s", figures["overhead_s"], scn.overhead_budget, True),
        (f"first API request <= {first_max:g} s", figures["first_request_s"], first_max, True),
    ]
    if not scn.container:  # the docker CLI's memory is not the action's
        checks.append((f"peak RSS < {PEAK_RSS_MAX_MB:g} MB", figures["peak_rss_mb"], PEAK_RSS_MAX_MB, False))
    checks.append((f"reads/s <= {READS_PER_S_MAX:g}", figures.get("reads_per_s"), READS_PER_S_MAX, True))
    if scn.api_latency:
        checks.append(
            (f"overhead < {LATENCY_OVERHEAD_MAX:g} s", figures["overhead_s"], LATENCY_OVERHEAD_MAX, False)
        )
    if scn.metric_delay:
        checks.append((f"wall / limit <= {BASELINE_RATIO_MAX:g}", figures["ratio"], BASELINE_RATIO_MAX, True))
    out = []
    for name, value, limit, inclusive in checks:
        ok = value is not None and (value <= limit if inclusive else value < limit)
        out.append({"target": name, "value": value, "limit": limit, "pass": ok})
    return out


# --------------------------------------------------------------------------------------------------
# The container: start-up and image size


def measure_start(work: Path) -> dict[str, Any]:
    """Time to the first API request of a dry run: ``docker run`` of the image and entrypoint.py on
    the host, START_SAMPLES of each, alternating (the image is built; the first of each is not
    counted)."""
    emu = EmulatorProcess(0.2, work)
    scn = replace(QUICK, step_interval=0.0)
    service = "bench-start"
    try:
        setup = launch(
            service,
            rollout_inputs(scn, service, emu.url, image="sample/hello", suffix="setup"),
            work / "setup",
        )
        setup.finish()
        check_promoted([setup], "the initial deploy")
        times: dict[str, list[float]] = {"container": [], "host": []}
        for i in range(START_SAMPLES + 1):
            for where in ("container", "host"):
                inputs = rollout_inputs(scn, service, emu.url, image="sample/hello:v2", suffix=f"{where}-{i}")
                emu.control("DELETE", "requests")
                run = launch(
                    service,
                    {**inputs, "dry_run": "true"},
                    work / f"{where}-{i}",
                    container=where == "container",
                )
                run.finish()
                if run.done.returncode != 0 or run.done.outputs.get("result") != "planned":
                    raise RuntimeError(
                        f"dry run ({where}) failed (exit {run.done.returncode}):\n{run.log_tail()}"
                    )
                first = run_stats(run, emu.requests(), 0.0).first_request_s
                if i and first is not None:
                    times[where].append(first)
    finally:
        emu.close()
    figures: dict[str, Any] = {
        where: {
            "median_s": round(statistics.median(t), 3),
            "min_s": round(min(t), 3),
            "max_s": round(max(t), 3),
        }
        for where, t in times.items()
    }
    median = statistics.median(times["container"])
    figures["target"] = {
        "target": f"docker run to first API request <= {CONTAINER_FIRST_REQUEST_MAX:g} s (median)",
        "value": round(median, 3),
        "limit": CONTAINER_FIRST_REQUEST_MAX,
        "pass": median <= CONTAINER_FIRST_REQUEST_MAX,
    }
    return figures


def image_layers(image: Image) -> list[dict[str, Any]]:
    """The image's layers, oldest first, with their size (``docker history``)."""
    proc = subprocess.run(
        [
            "docker",
            "history",
            "--human=false",
            "--no-trunc",
            "--format",
            "{{.Size}}\t{{.CreatedBy}}",
            image.id,
        ],
        env={**os.environ, "DOCKER_HOST": image.docker_host},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # The classic builder records "COPY file:<hash> in /app/": name them from the Dockerfile, in order.
    dockerfile = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    copies = iter(re.findall(r"^(?:COPY|ADD)\s.*$", dockerfile, re.MULTILINE))
    layers = []
    for line in reversed(proc.stdout.splitlines()):
        size, _, created_by = line.partition("\t")
        if int(size) == 0 and created_by:
            continue  # metadata only (ENV, ARG, ENTRYPOINT)
        what = re.sub(r"^(\|\d+ \S+( \S+=\S+)* )?/bin/sh -c (#\(nop\) )?", "", created_by)
        if re.match(r"(COPY|ADD) ", what):
            what = next(copies, what)
        what = " ".join(what.split())
        layers.append({"layer": what[:90] or "base image (BASE_IMAGE)", "mb": round(int(size) / 1e6, 2)})
    return layers


# --------------------------------------------------------------------------------------------------
# Output


COLUMNS = (
    ("scenario", "scenario"),
    ("wall_s", "wall s"),
    ("ideal_s", "ideal s"),
    ("ratio", "ratio"),
    ("overhead_s", "overhead s"),
    ("first_request_s", "1st request s"),
    ("reads", "reads"),
    ("reads_per_s", "reads/s"),
    ("writes", "writes"),
    ("peak_rss_mb", "peak RSS MB"),
    ("cpu_s", "CPU s"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def container_markdown(start: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> str:
    """Start-up of the image against the host, and its size per layer."""
    lines = [
        f"Start to the first API request (dry run, {START_SAMPLES} runs each):",
        "",
        "| run | median s | min s | max s |",
        "|---|---|---|---|",
    ]
    for where, title in (("container", "`docker run` of the image"), ("host", "`python entrypoint.py`")):
        t = start[where]
        lines.append(f"| {title} | {t['median_s']:.2f} | {t['min_s']:.2f} | {t['max_s']:.2f} |")
    verdict = "PASS" if start["target"]["pass"] else "FAIL"
    lines += ["", f"{start['target']['target']}: {verdict}", "", "| layer | MB |", "|---|---|"]
    lines += [f"| {row['layer'].replace('|', '/')} | {row['mb']:.2f} |" for row in layers]
    lines.append(f"| total | {sum(row['mb'] for row in layers):.2f} |")
    return "\n".join(lines) + "\n"


def markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Results table, then fleet details and targets."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in results:
        lines.append("| " + " | ".join(_cell(r.get(key)) for key, _ in COLUMNS) + " |")
    for r in results:
        if "runs" in r:
            lines.append(
                f"\n{r['scenario']}: {r['services']} processes; wall max {_cell(r['wall_s'])} s, median "
                f"{_cell(r['wall_median_s'])} s; overhead max {_cell(r['overhead_s'])} s, median "
                f"{_cell(r['overhead_median_s'])} s; first request max {_cell(r['first_request_s'])} s, "
                f"median {_cell(r['first_request_median_s'])} s; requests {r['reads']} reads + "
                f"{r['writes']} writes in all ({r['reads_per_run_median']:g} + "
                f"{r['writes_per_run_median']:g} per process)."
            )
    lines += ["", "| scenario | target | value | result |", "|---|---|---|---|"]
    for r in results:
        for t in r["targets"]:
            verdict = "PASS" if t["pass"] else "FAIL"
            lines.append(f"| {r['scenario']} | {t['target']} | {_cell(t['value'])} | {verdict} |")
    lines += ["", "Requests by call:", ""]
    for r in results:
        calls = ", ".join(f"{k} {v}" for k, v in r["by_call"].items())
        lines.append(f"- {r['scenario']}: {calls}" + (f" ({r['errors']} errors)" if r["errors"] else ""))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The baseline comparison's statistics: how often it catches a shift, how often it cries wolf

DETECTION_DRAWS = 2000
DETECTION_SIGMA = 0.5  # lognormal spread of latencies (p95 about 2.3x the median)


def _latencies(rng: Any, n: int, median: float) -> Any:
    """``n`` latencies (ms) in Cloud Run's request_latencies buckets (the emulator's bucket options)."""
    import math

    from cloudrun_emulator.monitoring import BUCKETS
    from deployer import stats

    finite, growth, scale = int(BUCKETS["numFiniteBuckets"]), BUCKETS["growthFactor"], BUCKETS["scale"]
    bounds = stats.bucket_bounds({"exponentialBuckets": BUCKETS}, finite + 2)
    counts = [0] * len(bounds)
    for _ in range(n):
        value = median * math.exp(rng.gauss(0.0, DETECTION_SIGMA))
        index = 0 if value < scale else 1 + math.floor(math.log(value / scale, growth) + 1e-12)
        counts[min(finite + 1, index)] += 1
    return stats.Histogram(bounds, tuple(counts))


def detection(draws: int = DETECTION_DRAWS) -> list[dict[str, Any]]:
    """Per shift (0 %: identical releases) and requests per side: the share of seeded draws where the
    Mann-Whitney test is significant at 95 %, and where the judge fails the step with allowances of
    10 % and 20 % (significant, and the median or the p95 more than the allowance above the
    baseline's)."""
    import random

    from deployer import compare, stats

    rows = []
    for shift in (0.0, 0.2, 0.5):
        for n in (100, 1000):
            rng = random.Random(f"{shift}-{n}")
            significant = caught_10 = caught_20 = 0
            for _ in range(draws):
                candidate = compare.Side("candidate", {"2xx": n}, _latencies(rng, n, 100.0 * (1 + shift)))
                baseline = compare.Side("baseline", {"2xx": n}, _latencies(rng, n, 100.0))
                p = stats.mann_whitney_greater(candidate.latencies.counts, baseline.latencies.counts).p
                significant += p < 0.05
                caught_10 += (
                    compare.compare(compare.Rules(max_latency_increase=10), candidate, baseline).ok is False
                )
                caught_20 += (
                    compare.compare(compare.Rules(max_latency_increase=20), candidate, baseline).ok is False
                )
            rows.append(
                {
                    "shift_pct": round(100 * shift),
                    "requests_per_side": n,
                    "significant": round(significant / draws, 3),
                    "failed_allowance_10": round(caught_10 / draws, 3),
                    "failed_allowance_20": round(caught_20 / draws, 3),
                }
            )
    return rows


def detection_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"Baseline comparison, {DETECTION_DRAWS} seeded draws per row, lognormal latencies (sigma "
        f"{DETECTION_SIGMA:g}) in Cloud Run's buckets, confidence 95 %:",
        "",
        "| latency shift | requests per side | test significant | fails, allowance 10 % "
        "| fails, allowance 20 % |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| +{r['shift_pct']} % | {r['requests_per_side']} | {100 * r['significant']:.1f} % | "
            f"{100 * r['failed_allowance_10']:.1f} % | {100 * r['failed_allowance_20']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--json", type=Path, help="write the results (a list of scenario dicts) here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown tables here")
    parser.add_argument("--quick", action="store_true", help="the single scenario with short delays only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary job directories and logs")
    parser.add_argument(
        "--container",
        action="store_true",
        help="build the image (scripts/container) and add the container rows: a rollout with docker "
        "run, docker run to the first API request, size per layer (with --scenarios container: only those)",
    )
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> list[Scenario]:
    if args.quick:
        return [QUICK]
    if args.container and args.scenarios == "container":
        return []
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print and write the results; targets only decide the exit code with --strict."""
    args = parse_args(argv)
    # Figures of real starts (interpreter, imports): never through the test harness's fork server,
    # and the emulator's revisions start as new interpreters too (as the figures before its zygote).
    os.environ["RUN_CANARY_ACTION_FORK"] = "0"
    os.environ["CLOUD_RUN_EMULATOR_FORK"] = "0"
    scenarios = chosen(args)
    work = Path(tempfile.mkdtemp(prefix="run-canary-bench-"))
    results = []
    extra: dict[str, Any] = {}
    try:
        if args.container:
            print("== building the image (scripts/container build)", flush=True)
            _image.append(build_image())
            scenarios = [*scenarios, CONTAINER]
            print("== container start: docker run of the image and entrypoint.py, dry runs", flush=True)
            (work / "start").mkdir()
            extra = {"start": measure_start(work / "start"), "layers": image_layers(_image[0])}
        for scn in scenarios:
            print(f"== {scn.name}: {scn.description}", flush=True)
            (work / scn.name).mkdir()
            results.append(measure(scn, work / scn.name))
            print(f"   wall {results[-1]['wall_s']:.2f} s, ideal {results[-1]['ideal_s']:.2f} s", flush=True)
    finally:
        if args.keep:
            print(f"job directories kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(results)
    if not args.quick:
        print("== detection rate of the baseline comparison (seeded draws, no I/O)", flush=True)
        table += "\n" + detection_markdown(detection())
    if extra:
        table += "\n" + container_markdown(extra["start"], extra["layers"])
        results.append({"scenario": "container-start", **extra, "targets": [extra["start"]["target"]]})
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    missed = [t for r in results for t in r["targets"] if not t["pass"]]
    print(f"{len(missed)} target(s) missed" if missed else "all targets met")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
