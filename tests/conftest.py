"""Shared fixtures: a real emulator on loopback, and a fresh project (namespace) per test."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import settings

from cloudrun_emulator import Emulator
from tests import cloudrun
from tests.cloudrun import METRIC_LAG, METRIC_SAMPLING
from tests.order import interleaved

if TYPE_CHECKING:
    from tests.container.image import Image

_projects = itertools.count(1)
# Hypothesis' per-example deadline is a speed check; on a shared 2-core machine running the suite
# in parallel it fails examples for being slow, not wrong. Speed lives in the benchmark instead.
settings.register_profile("run-canary", deadline=None)
settings.load_profile("run-canary")


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


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (modules, test items, fixtures' definitions) lives until the session
    ends: moved out of the garbage collector's generations, it is not traversed again by every full
    collection the tests' allocations trigger."""
    gc.collect()
    gc.freeze()


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


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Image:
    """The action's image built from this checkout, for tests/container and tests/act (skipped, or failed
    in CI, without a Docker engine: tests/container/image.py). Under pytest-xdist built once for all
    workers: the first builds, the others read what it found (a cached rebuild still costs about half
    a CPU-second of docker build and pip, once per worker)."""
    from tests.container import image as container_image  # only the Docker suites pay for the import

    if worker_id == "master":
        return container_image.build()
    return container_image.build_once(tmp_path_factory.getbasetemp().parent / "image")
