"""The action's sessions honour the environment's proxies as requests does, reading them once per origin
(deployer/sessions.py): checked on the wire, with a loopback proxy and a loopback service."""

from __future__ import annotations

import pytest

from deployer import sessions
from tests.unit.scripted import serving


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_requests_go_through_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving() as proxy, serving() as service:
        proxy.default = lambda req: (200, {"via": "proxy"})
        monkeypatch.setenv("http_proxy", proxy.url)
        reply = sessions.plain().get(f"{service.url}/health", timeout=5)
        assert reply.json() == {"via": "proxy"}
        assert [r.path for r in proxy.requests] == ["/health"]
        assert service.requests == []


def test_no_proxy_hosts_are_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving() as proxy, serving() as service:
        service.default = lambda req: (200, {"via": "direct"})
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert sessions.plain().get(f"{service.url}/health", timeout=5).json() == {"via": "direct"}
        assert proxy.requests == []


def test_the_environment_is_read_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The action's environment is fixed for its run: a later change is not looked up again for an
    origin already reached, and a caller changing the proxies it was given changes nothing."""
    with serving() as proxy, serving() as service, serving() as other:
        monkeypatch.setenv("http_proxy", proxy.url)
        session = sessions.plain()
        session.get(f"{service.url}/one", timeout=5)
        settings = session.merge_environment_settings(f"{service.url}/x", {}, None, None, None)
        settings["proxies"].clear()
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        session.get(f"{service.url}/two", timeout=5)
        assert [r.path for r in proxy.requests] == ["/one", "/two"]
        session.get(f"{other.url}/three", timeout=5)  # a new origin: read now, exempt now
        assert [r.path for r in other.requests] == ["/three"]
