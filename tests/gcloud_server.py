"""gcloud, imported once and forked for each command: the fast path of ``tests/gcloud.py``.

Run by gcloud's own Python, the way the ``gcloud`` launcher runs ``lib/gcloud.py`` (``-S``, the SDK's
``lib`` first on ``sys.path``), inside the mount namespace whose ``/etc/hosts`` names the emulator.
Importing gcloud costs about 1.5 s of CPU per command; a fork of a process that has already imported
it costs a few milliseconds, and each command still runs ``gcloud_main.main()`` in a process of its
own, with its own environment, arguments, stdout and stderr, so no state passes from one to the next.

Protocol, one JSON object per line: stdin gets ``{"argv", "env", "stdout", "stderr", "timeout"}``
(stdout and stderr are file paths); stdout answers ``{"returncode"}`` once the command has ended,
negative for a signal as with ``subprocess`` (SIGALRM when it ran past its timeout).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
from typing import Any

LIB = sys.argv[1]
sys.path.insert(0, LIB)
sys.argv = ["gcloud"]
import gcloud as launcher  # noqa: E402  (lib/gcloud.py: puts third_party on sys.path)

sys.path = launcher.reorder_sys_path(sys.path)
launcher._fix_google_module()
from googlecloudsdk import gcloud_main  # noqa: E402

# What every Cloud Run command imports anyway; a module missing from this SDK version is no matter.
WARM = (
    "googlecloudsdk.calliope.cli",
    "googlecloudsdk.command_lib.run.flags",
    "googlecloudsdk.command_lib.run.serverless_operations",
    "googlecloudsdk.command_lib.run.connection_context",
    "googlecloudsdk.generated_clients.apis.run.v1.run_v1_client",
    "googlecloudsdk.generated_clients.apis.run.v1.run_v1_messages",
    "googlecloudsdk.core.credentials.store",
    "googlecloudsdk.core.resource.resource_printer",
)
for name in WARM:
    with contextlib.suppress(ImportError):
        importlib.import_module(name)


def child(request: dict[str, Any]) -> None:
    """Become the gcloud command: its environment, arguments and files; never returns."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        sys.argv = ["gcloud", *request["argv"]]
        signal.alarm(max(1, int(request["timeout"])))
        code = gcloud_main.main() or 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed stream: nothing left to save
                stream.flush()
        os._exit(code)


def serve() -> None:
    """One command at a time, for as long as stdin stays open."""
    answers = os.fdopen(os.dup(1), "w")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


serve()
