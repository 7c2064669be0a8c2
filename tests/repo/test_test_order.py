"""The xdist order (tests/order.py ``interleaved``): a reordering, never a selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.order import interleaved


@dataclass
class Item:
    nodeid: str
    long: bool = False

    def get_closest_marker(self, name: str) -> Any:
        return object() if name == "long" and self.long else None


def order(items: list[Item]) -> list[str]:
    return [i.nodeid for i in interleaved(cast(list[pytest.Item], items))]


def test_only_long_tests_all_run() -> None:
    """Selecting only long tests (e.g. ``pytest tests/act``) once ran nothing at all."""
    items = [Item(f"a.py::t{i}", long=True) for i in range(3)]
    assert order(items) == [i.nodeid for i in items]


def test_long_tests_start_early_every_other_one() -> None:
    items = [
        Item("a.py::x"),
        Item("a.py::y"),
        Item("b.py::z"),
        Item("c.py::l1", True),
        Item("c.py::l2", True),
    ]
    assert order(items) == ["c.py::l1", "a.py::x", "c.py::l2", "b.py::z", "a.py::y"]
    assert sorted(order(items)) == sorted(i.nodeid for i in items)


def test_interleaving_keeps_every_test() -> None:
    """The xdist order (tests/order.py) used to drop the long tests beyond the others' count."""
    from types import SimpleNamespace

    def item(nodeid: str, long: bool) -> Any:
        return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: long and name == "long")

    items = [item(f"a.py::long{i}", True) for i in range(5)] + [item("b.py::short", False)]
    assert sorted(i.nodeid for i in interleaved(items)) == sorted(i.nodeid for i in items)
