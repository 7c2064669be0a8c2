"""Shared fixtures: a real emulator on loopback, and a fresh project (namespace) per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import settings

from cloudrun_emulator import Emulator
from tests import cloudrun

_projects = itertools.count(1)
# Hypothesis' per-example deadline is a speed check; on a shared 2-core machine running the suite
# in parallel it fails examples for being slow, not wrong. Speed lives in the benchmark instead.
settings.register_profile("run-canary", deadline=None)
settings.load_profile("run-canary")
# Cloud Monitoring's timing (60 s sampling, up to 180 s ingestion lag) scaled by 1/60 so suites stay
# fast: 1 s windows, 3 s lag. The action does not know the scale: it waits for the data to arrive.
METRIC_SCALE = 1 / 60
METRIC_SAMPLING, METRIC_LAG = 60 * METRIC_SCALE, 180 * METRIC_SCALE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """gcloud tests: each gcloud call costs about a CPU second, so a loaded machine needs more time.

    Under pytest-xdist the items are also interleaved, one module after another, round-robin. The
    workers take them in order, and in file order the suite has long stretches of one kind: the gcloud
    suite (CPU-bound), then the canary analyses (mostly waiting for metrics), then the rollbacks.
    Mixed, the two cores stay busy (measured: about 10 % less wall time).
    """
    for item in items:
        if item.get_closest_marker("gcloud") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(600))
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller takes the order from it
        items[:] = interleaved(items)


def interleaved(items: list[pytest.Item]) -> list[pytest.Item]:
    """One test of each module in turn (modules in file order, tests in their order within each),
    with the tests marked ``long`` taken early, every other one: started late they would be the
    tail, and started side by side with the rest their waiting overlaps work that needs the CPU."""
    long: list[pytest.Item] = []
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("long"):
            long.append(item)
        else:
            modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    queues = list(modules.values())
    rest: list[pytest.Item] = []
    while queues:
        rest.extend(queue.pop(0) for queue in queues)
        queues = [queue for queue in queues if queue]
    mixed = [item for pair in zip(long, rest, strict=False) for item in pair]
    return mixed + long[len(rest) :] + rest[len(long) :]  # whichever is longer goes on alone


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator for the session; tests stay apart by project (namespaces isolate projects)."""
    with Emulator(
        port=0,
        ready_delay=0.2,
        images=cloudrun.TEST_IMAGES,
        metric_sampling=METRIC_SAMPLING,
        metric_lag=METRIC_LAG,
    ) as emu:
        yield emu


@pytest.fixture
def own_emulator() -> Iterator[Emulator]:
    """An emulator of the test's own, for fault injection that must not leak into other tests."""
    with Emulator(
        port=0,
        ready_delay=0.2,
        images=cloudrun.TEST_IMAGES,
        metric_sampling=METRIC_SAMPLING,
        metric_lag=METRIC_LAG,
    ) as emu:
        yield emu


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    """An RSA key for service-account key files whose token_uri is a loopback token endpoint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    return f"proj-{next(_projects)}-{abs(hash(request.node.nodeid)) % 100000}"
