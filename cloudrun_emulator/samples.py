"""Built-in sample apps that stand in for container images in the emulator.

Run as ``python cloudrun_emulator/samples.py KIND`` (or ``-m cloudrun_emulator.samples``). Stdlib
only and no imports from the rest of the emulator, so a revision starts in milliseconds. They
follow Cloud Run's container contract: listen on ``$PORT`` and read ``K_SERVICE``, ``K_REVISION``
and ``K_CONFIGURATION``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("hello", "crash", "error", "slow", "job")
DEFAULT_ERROR_RATE = {"error": 1.0}
DEFAULT_DELAY_MS = {"slow": 1500.0}


class ErrorBudget:
    """Deterministic error injection: exactly ``rate`` of requests fail, spread evenly."""

    def __init__(self, rate: float) -> None:
        self.rate = min(max(rate, 0.0), 1.0)
        self._acc = 0.0
        self._lock = threading.Lock()

    def should_fail(self) -> bool:
        """Accumulate the rate; fail whenever it crosses one (epsilon absorbs float drift)."""
        with self._lock:
            self._acc += self.rate
            if self._acc >= 1.0 - 1e-9:
                self._acc -= 1.0
                return True
            return False


def env_float(name: str, default: float) -> float:
    """A float env setting, falling back to the default when unset or malformed."""
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def hello_body() -> dict[str, object]:
    """What a hello revision reports: who it is and the env vars the revision defines."""
    revision = os.environ.get("K_REVISION", "")
    names = [n for n in os.environ.get("EMULATOR_ENV_NAMES", "").split(",") if n]
    return {
        "revision": revision,
        "service": os.environ.get("K_SERVICE", ""),
        "configuration": os.environ.get("K_CONFIGURATION", ""),
        "image": os.environ.get("EMULATOR_IMAGE", ""),
        "message": f"Hello from {revision}",
        "env": {n: os.environ[n] for n in names if n in os.environ},
    }


class SampleServer(ThreadingHTTPServer):
    """Threaded server with a backlog deep enough for load tests through the proxy."""

    daemon_threads = True
    request_queue_size = 128


def make_handler(budget: ErrorBudget, delay_s: float) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to this process's error budget and delay."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "emulator-sample/1"
        protocol_version = "HTTP/1.1"  # keep-alive: the front end reuses its connections to an instance
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet: per-request logs would flood the revision log."""

        def _send(self, status: int, payload: dict[str, object]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.split("?", 1)[0] == "/healthz":
                self._send(200, {"status": "ok"})
                return
            if delay_s > 0:
                time.sleep(delay_s)
            if budget.should_fail():
                revision = os.environ.get("K_REVISION", "")
                self._send(500, {"error": "injected error", "revision": revision})
                return
            self._send(200, hello_body())

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    return Handler


def serve(kind: str) -> None:
    """Listen on $PORT until terminated."""
    rate = env_float("ERROR_RATE", DEFAULT_ERROR_RATE.get(kind, 0.0))
    delay_ms = env_float("DELAY_MS", DEFAULT_DELAY_MS.get(kind, 0.0))
    port = int(os.environ.get("PORT", "8080"))
    server = SampleServer(("127.0.0.1", port), make_handler(ErrorBudget(rate), delay_ms / 1000.0))
    server.serve_forever(poll_interval=3600)  # never shut down, only signalled: no idle wake-ups


def run_job_task() -> int:
    """Google's sample job: sleep ``SLEEP_MS``, then fail with probability ``FAIL_RATE`` (0 to 1)."""
    index = os.environ.get("CLOUD_RUN_TASK_INDEX", "0")
    attempt = os.environ.get("CLOUD_RUN_TASK_ATTEMPT", "0")
    print(f"Starting Task #{index}, Attempt #{attempt}...")
    time.sleep(max(env_float("SLEEP_MS", 0.0), 0.0) / 1000.0)
    rate = env_float("FAIL_RATE", 0.0)
    if rate > 0 and random.random() < rate:
        print(f"Task #{index}, Attempt #{attempt} failed.", file=sys.stderr)
        return 1
    print(f"Completed Task #{index}.")
    return 0


def main(argv: list[str]) -> int:
    """Entry point: pick the sample kind from argv (a job sample ignores extra args, like Google's)."""
    if argv[:1] == ["job"]:
        return run_job_task()
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m cloudrun_emulator.samples {{{'|'.join(KINDS)}}}", file=sys.stderr)
        return 2
    if argv[0] == "crash":
        print("sample/crash: fatal error during start-up (simulated crash)", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        serve(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
