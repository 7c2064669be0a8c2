"""The suite's fast path (tests/gcloud_server.py: gcloud imported once, forked per command) answers
exactly as the ``gcloud`` command does: same exit code, same stdout, same stderr."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.gcloud import Gcloud, _key, _server, _shared_socket, gcloud_python

pytestmark = pytest.mark.gcloud


def both(gc: Gcloud, *args: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """The same command through the fork server and through a fresh ``gcloud``."""
    argv = [*args, "--format", "json"]
    fast = gc.call(*args)
    plain = gc._spawn(argv, 120.0)
    return (fast.returncode, fast.stdout, fast.stderr), (plain.returncode, plain.stdout, plain.stderr)


def test_the_fork_server_answers_as_gcloud_does(gc: Gcloud) -> None:
    if gcloud_python() is None:
        pytest.skip("this gcloud has no bundled Python: every call starts gcloud itself")
    gc.run("run", "deploy", "hello", "--image", "sample/hello", "--no-allow-unauthenticated")
    fast, plain = both(gc, "run", "services", "describe", "hello")
    assert fast[0] == plain[0] == 0
    assert json.loads(fast[1]) == json.loads(plain[1])
    assert fast[2] == plain[2]
    fast, plain = both(gc, "run", "services", "describe", "missing")
    assert fast == plain and fast[0] == 1 and "Cannot find service [missing]" in fast[2]
    fast, plain = both(gc, "run", "services", "update-traffic", "hello", "--to-revisions", "nope=100")
    assert fast[0] == plain[0] != 0 and fast[2] == plain[2]


def test_calls_side_by_side_are_served_by_the_sessions_one_server(gc: Gcloud) -> None:
    """An operator's gcloud in a thread while another runs: both through the one server."""
    server = _server(gc.hosts_text)
    if server is None:
        pytest.skip("this gcloud has no bundled Python: every call starts gcloud itself")
    gc.run("run", "deploy", "hello", "--image", "sample/hello", "--no-allow-unauthenticated")
    argv = ["run", "services", "describe", "hello", "--format", "json"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: server.call(argv, gc.env(), 120.0), range(4)))
    assert all(r is not None and r.returncode == 0 for r in results), results
    assert len({json.loads(r.stdout)["metadata"]["name"] for r in results if r is not None}) == 1
    # Every process of this session finds that server by its socket instead of starting its own.
    assert _shared_socket(_key(gc.hosts_text)) == server.socket_path
