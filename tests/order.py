"""The order the xdist workers take the tests in (``pytest_collection_modifyitems`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


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
