"""Revision ports: two data planes (two xdist workers) never hand out the same port, and a port
something else holds is skipped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cloudrun_emulator import ports
from cloudrun_emulator.ports import BLOCK_SIZE, FIRST_PORT, PortBlocks, bindable, ephemeral_floor

HOST = "127.0.0.1"


def test_two_holders_get_disjoint_blocks_below_the_ephemeral_range() -> None:
    a, b = PortBlocks(HOST), PortBlocks(HOST)
    try:
        ours = {a.take() for _ in range(20)}
        theirs = {b.take() for _ in range(20)}
        assert len(ours) == len(theirs) == 20
        assert not ours & theirs
        assert all(FIRST_PORT <= p < ephemeral_floor() for p in ours | theirs)
        blocks = (
            {(p - FIRST_PORT) // BLOCK_SIZE for p in ours},
            {(p - FIRST_PORT) // BLOCK_SIZE for p in theirs},
        )
        assert len(blocks[0]) == len(blocks[1]) == 1 and blocks[0] != blocks[1]  # one block each
    finally:
        a.close()
        b.close()


def test_another_process_holding_a_block_is_respected() -> None:
    """The lock lives as long as the process that took it: a child's block is not ours."""
    code = (
        "import sys; from cloudrun_emulator.ports import PortBlocks;"
        "p = PortBlocks('127.0.0.1'); print(p.take(), flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        theirs = int(child.stdout.readline())
        ours = PortBlocks(HOST)
        try:
            taken = {ours.take() for _ in range(BLOCK_SIZE + 5)}  # more than a block: a second one
            assert theirs not in taken
            assert (theirs - FIRST_PORT) // BLOCK_SIZE not in {(p - FIRST_PORT) // BLOCK_SIZE for p in taken}
        finally:
            ours.close()
    finally:
        child.communicate("")


def test_a_bound_port_is_skipped_and_a_released_one_comes_back_in_turn() -> None:
    blocks = PortBlocks(HOST)
    try:
        first = blocks.take()
        start = first - (first - FIRST_PORT) % BLOCK_SIZE
        after = start + (first - start + 1) % BLOCK_SIZE  # the next one in turn
        with socket.socket() as squatter:
            with contextlib.suppress(OSError):  # already bound by something else: skipped just the same
                squatter.bind((HOST, after))
            second = blocks.take()
            assert second not in (first, after)
        blocks.release(first)
        seen = [blocks.take() for _ in range(BLOCK_SIZE - 2)]
        assert first in seen and seen[0] != first  # handed out again once the round comes back to it
    finally:
        blocks.close()


def test_without_a_lock_directory_the_kernel_picks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A lock directory nobody may write (another user's): no block, yet a port that works."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setattr(ports, "LOCK_DIR", blocked / "locks")  # under a file: cannot be created
    holder = PortBlocks(HOST)
    try:
        port = holder.take()
        assert port >= ephemeral_floor() and bindable(HOST, port)
    finally:
        holder.close()
