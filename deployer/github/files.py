"""The runner's file commands: step outputs (``$GITHUB_OUTPUT``), state for the post step
(``$GITHUB_STATE``) and the step summary (``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from actions_toolkit.file_command import prepare_key_value_message

from deployer.outputs import job_outputs as job_outputs
from deployer.outputs import outputs_for
from deployer.outputs import traffic_json as traffic_json
from deployer.result import RolloutResult
from deployer.text import cap_bytes

if TYPE_CHECKING:
    pass


SUMMARY_LIMIT = 1024 * 1024  # bytes per step summary
SUMMARY_BUDGET = 900_000  # stay well under the limit: other steps' masking can grow the text

# Outputs and state files
# ---------------------------------------------------------------------------------------------


def _append_key_values(path: str, values: Mapping[str, str]) -> None:
    """Append ``name<<ghadelimiter_<uuid>`` heredocs; the random delimiter makes values inert."""
    text = "".join(prepare_key_value_message(k, v) + os.linesep for k, v in values.items())
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)


def write_outputs(result: RolloutResult, path: str | None) -> None:
    """Append the contract outputs to ``$GITHUB_OUTPUT``; nothing to do outside Actions."""
    write_output_values(outputs_for(result), path)


def write_output_values(values: Mapping[str, str], path: str | None) -> None:
    """Append these outputs to ``$GITHUB_OUTPUT``; nothing to do outside Actions."""
    if path:
        _append_key_values(path, values)


_STATE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def save_state(name: str, value: str, path: str | None) -> None:
    """Append to ``$GITHUB_STATE``: the post entrypoint reads it back as ``STATE_<name>``."""
    if not _STATE_NAME.fullmatch(name):  # '=', '<<' or a newline would corrupt the file
        raise ValueError(f"invalid state name {name!r}")
    if path:
        _append_key_values(path, {name: value})


def append_summary(markdown: str, path: str | None) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` (truncated to stay under the 1 MiB step limit)."""
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(cap_bytes(markdown, SUMMARY_BUDGET) + "\n")


# ---------------------------------------------------------------------------------------------
