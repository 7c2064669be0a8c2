"""Fault injection and the request log.

Retry policies and error handling can only be tested if the server misbehaves on demand, and
assertions about "which calls were made" need a record of them. Both live here, thread-safe,
because the HTTP server handles each request on its own thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("status", "reset", "hang")


@dataclass
class FaultRule:
    """One rule: requests matching method and path regex get the fault, ``times`` times.

    ``skip=N`` lets the first N matching requests through untouched (to fault "the third GET").
    ``times=None`` means forever. ``status=None`` with ``action="status"`` only adds ``delay``
    before the request is served normally.
    """

    method: str | None = None
    path: str | None = None
    status: int | None = None
    delay: float = 0.0
    retry_after: float | None = None
    action: str = "status"
    times: int | None = 1
    message: str | None = None
    skip: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Refuse rules that could never do what was meant, at the time they are added."""
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError(f"status must be an HTTP status code, not {self.status!r}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or null for forever)")
        if self.skip < 0:
            raise ValueError("skip must not be negative")
        self._pattern = re.compile(self.path) if self.path else None
        self.method = self.method.upper() if self.method else None

    def matches(self, method: str, path: str) -> bool:
        """Does this rule apply to a request?"""
        if self.method and self.method != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        """The rule as the control endpoint shows it."""
        data = asdict(self)
        data.pop("_pattern", None)
        return data


class Faults:
    """The active fault rules; the first matching rule fires and is used up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, **kwargs: Any) -> FaultRule:
        """Add a rule (same keywords as FaultRule); it applies to requests from now on."""
        rule = FaultRule(**kwargs)
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_json(self, data: Mapping[str, Any]) -> FaultRule:
        """Add a rule from the JSON body of ``POST /_emulator/faults``; ValueError when bad."""
        allowed = {"method", "path", "status", "delay", "retry_after", "action", "times", "message", "skip"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        try:
            return self.add(**dict(data))
        except (TypeError, re.error) as exc:
            raise ValueError(str(exc)) from exc

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def remove(self, rule: FaultRule) -> None:
        """Remove one rule if it is still active (a test's fault that must not outlive its phase)."""
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def rules(self) -> list[FaultRule]:
        """A snapshot of the active rules."""
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str) -> FaultRule | None:
        """Return the rule that fires for this request (counting it), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None


class RequestLog:
    """What the API was asked, in order, for tests that assert on the calls made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, method: str, path: str, query: Mapping[str, str], body: Any, status: int) -> None:
        """Append one entry; bodies are kept as parsed JSON."""
        entry = {
            "method": method,
            "path": path,
            "query": dict(query),
            "body": body,
            "status": status,
            "time": time.time(),
        }
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """A copy of the log."""
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        """Forget everything logged so far."""
        with self._lock:
            self._entries.clear()
