"""gcloud, imported once and forked for each command: the fast path of ``tests/gcloud.py``.

Run by gcloud's own Python, the way the ``gcloud`` launcher runs ``lib/gcloud.py`` (``-S``, the SDK's
``lib`` first on ``sys.path``), inside the mount namespace whose ``/etc/hosts`` names the emulator.
Importing gcloud costs about 1.5 s of CPU per command; a fork of a process that has already imported
it costs a few milliseconds, and each command still runs ``gcloud_main.main()`` in a process of its
own, with its own environment, arguments, stdout and stderr, so no state passes from one to the next.

    python -S gcloud_server.py LIB SOCKET WATCHED_PID

One server serves every process of a test session (the xdist workers): it listens on the Unix socket
``SOCKET``, prints ``ready`` once it does, and ends when the process ``WATCHED_PID`` (the session's
main process) has gone, removing the socket and its siblings (``.hosts``, ``.lock``). Each
connection carries one command, so commands run side by side: a line ``{"argv", "env", "stdout",
"stderr", "timeout"}`` (stdout and stderr are file paths), answered by a line ``{"returncode"}`` once
the command has ended, negative for a signal as with ``subprocess`` (SIGALRM when it ran past its
timeout).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
from typing import Any

LIB, SOCKET, WATCHED = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
    # Imported by most commands on their way (found by comparing sys.modules before and after
    # `run services describe/list/update-traffic`, `run revisions list`, `run deploy`, `run jobs list`).
    "googlecloudsdk.core.credentials.google_auth_credentials",
    "googlecloudsdk.core.credentials.p12_service_account",
    "googlecloudsdk.command_lib.concepts.concept_managers",
    "googlecloudsdk.calliope.parser_completer",
    "googlecloudsdk.generated_clients.apis.run.v1.resources",
    "googlecloudsdk.command_lib.run.commands",
    "googlecloudsdk.command_lib.run.container_parser",
    "googlecloudsdk.command_lib.run.resource_change_validators",
    "googlecloudsdk.command_lib.run.printers.export_printer",
    "googlecloudsdk.command_lib.run.printers.revision_printer",
    "googlecloudsdk.command_lib.run.printers.service_printer",
    "googlecloudsdk.command_lib.run.printers.traffic_printer",
    "googlecloudsdk.api_lib.run.traffic_pair",
    "proto",
    "netrc",
)
for name in WARM:
    with contextlib.suppress(ImportError):
        importlib.import_module(name)

# The command tree's loader, built as `gcloud_main.main()` builds it for every command (it walks the
# SDK's surface directories, reads no environment and no property), so each child starts from it.
CLI = gcloud_main.CreateCLI([])
# The commands the tests run, loaded as a command loads them (its module, its parser and flags: a
# quarter of a command's CPU); a command whose element is already loaded uses it as it is.
COMMANDS = (
    "run deploy",
    "run services describe",
    "run services list",
    "run services update",
    "run services update-traffic",
    "run services replace",
    "run services delete",
    "run services get-iam-policy",
    "run services add-iam-policy-binding",
    "run services remove-iam-policy-binding",
    "run revisions list",
    "run revisions describe",
    "run revisions delete",
    "run jobs create",
    "run jobs update",
    "run jobs describe",
    "run jobs delete",
    "run jobs execute",
    "run jobs executions list",
    "run jobs executions describe",
    "run jobs executions cancel",
)
for command in COMMANDS:
    with contextlib.suppress(Exception):  # a command missing from this SDK version is no matter
        CLI._TopElement().LoadSubElementByPath(command.split())
# Everything imported so far lives as long as the server: out of the collector's generations, a
# child's collections neither walk it nor touch (and so copy) the pages it shares with the server.
gc.collect()
gc.freeze()


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
        code = gcloud_main.main(gcloud_cli=CLI) or 0
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


def handle(conn: socket.socket) -> None:
    """One connection, in a process of its own: run its command, answer its exit code; never returns."""
    try:
        with conn, conn.makefile("rw") as stream:
            request = json.loads(stream.readline())
            pid = os.fork()
            if pid == 0:
                child(request)
            _, status = os.waitpid(pid, 0)
            stream.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
    finally:
        os._exit(0)


def watched_alive() -> bool:
    try:
        os.kill(WATCHED, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def serve() -> None:
    """Accept until the watched process is gone; a forked handler per connection."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET)
    listener.listen(64)
    listener.settimeout(1.0)
    print("ready", flush=True)
    try:
        while watched_alive():
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:  # reap the handlers that have answered
                    pass
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                listener.close()
                conn.settimeout(None)
                handle(conn)
            conn.close()
    finally:
        stem = os.path.splitext(SOCKET)[0]  # the socket and its siblings, the hosts file and the lock
        for path in (SOCKET, f"{stem}.hosts", f"{stem}.lock"):
            with contextlib.suppress(OSError):
                os.unlink(path)


serve()
