"""The emulator's data plane: revisions run as real local processes behind real loopback URLs.

Each revision is one process listening on its own ``PORT``; a watcher thread turns "accepts TCP
connections" into the revision's health. Each service gets a proxy listener that splits requests
across revisions by traffic percent (smooth weighted round-robin, so splits are exact and
repeatable) and each tag gets a listener that reaches one revision directly. Every proxied request
leaves a ``RequestSample`` for the Cloud Monitoring emulation.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import http
import http.client
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloudrun_emulator import launcher
from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.ports import PortBlocks

REPO_ROOT = Path(__file__).resolve().parents[1]  # holds the cloudrun_emulator package
POLL_SECONDS = 0.05
SERVE_POLL_SECONDS = 1.0  # a listener's select timeout: only a safety net, close_server wakes it
STOP_GRACE_SECONDS = 3.0
UPSTREAM_TIMEOUT_SECONDS = 300.0  # Cloud Run's default request timeout
IDLE_CLIENT_SECONDS = 600.0  # a kept-alive client connection idle this long is closed (a bound, not Google's)
MAX_SAMPLES = 200_000
LOG_TAIL_LINES = 10
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
START_FAILURE = (
    "The user-provided container failed to start and listen on the port defined provided by the "
    "PORT={port} environment variable within the allocated timeout. This can happen when the container "
    "port is misconfigured or if the timeout is too short. The health check timeout can be extended. "
    "Logs for this revision might contain more information."
)


@dataclass(frozen=True)
class RevisionRun:
    """What the control plane asks to run for one revision."""

    name: str
    service: str
    configuration: str
    image: str
    env: dict[str, str]
    namespace: str = ""  # projects are isolated: the same revision name may exist in two of them

    @property
    def key(self) -> str:
        return instance_key(self.namespace, self.name)


def instance_key(namespace: str, revision: str) -> str:
    """How the data plane names a revision's instance: ``namespace/revision`` (or just the name)."""
    return f"{namespace}/{revision}" if namespace else revision


@dataclass(frozen=True)
class Health:
    """A revision's container health, shaped like a Cloud Run condition."""

    status: str
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class RouteUrls:
    """The loopback URLs of one service: the split URL and one per tag."""

    url: str
    tags: dict[str, str]


@dataclass(frozen=True)
class RequestSample:
    """One request served through a proxy, for request_count / request_latencies."""

    revision: str
    service: str
    time: float
    status: int
    latency_ms: float
    # Where the revision lives, "<project number>/<region>" ("" for an instance started without one):
    # Cloud Monitoring keeps each project's series apart, and labels each with its region.
    namespace: str = ""


UNKNOWN = Health("Unknown")


class _Instance:
    """One running revision: its process, port, log file and current health."""

    def __init__(self, run: RevisionRun, port: int, log_path: Path) -> None:
        self.run = run
        self.port = port
        self.log_path = log_path
        self.process: launcher.Process | None = None
        self.health = UNKNOWN
        self.stopping = threading.Event()

    def log_tail(self) -> str:
        """The last lines the container wrote, to explain a failed start."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-LOG_TAIL_LINES:])

    def fail(self, detail: str) -> None:
        """Mark the start as failed the way Cloud Run reports it."""
        parts = [START_FAILURE.format(port=self.port), detail]
        tail = self.log_tail()
        if tail:
            parts.append(f"Last log lines:\n{tail}")
        parts.append(f"Logs: {self.log_path}")
        self.health = Health("False", "HealthCheckContainerError", "\n\n".join(p for p in parts if p))


class _Split:
    """Smooth weighted round-robin over (revision, percent): exact shares, evenly interleaved."""

    def __init__(self, split: Sequence[tuple[str, int]]) -> None:
        merged: dict[str, int] = {}
        for revision, percent in split:
            if percent > 0:
                merged[revision] = merged.get(revision, 0) + percent
        self.weights = list(merged.items())
        self._current = [0] * len(self.weights)
        self._lock = threading.Lock()

    def pick(self) -> str | None:
        """The next revision to serve, or None when nothing receives traffic."""
        with self._lock:
            if not self.weights:
                return None
            total = 0
            for i, (_, weight) in enumerate(self.weights):
                self._current[i] += weight
                total += weight
            best = max(range(len(self.weights)), key=self._current.__getitem__)
            self._current[best] -= total
            return self.weights[best][0]


class ServerOfClients(ThreadingHTTPServer):
    """A threading HTTP server whose clients may go away before their answer (a cancelled or killed
    run): that is no error of the server's, so only other failures print socketserver's traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _ProxyServer(ServerOfClients):
    """A listener whose target split can be swapped while it serves."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # socketserver's 5 drops SYNs under a burst (1 s retransmit)

    def __init__(self, address: tuple[str, int], plane: DataPlane, service: str, split: _Split) -> None:
        super().__init__(address, _ProxyHandler)
        self.plane = plane
        self.service = service
        self.split = split
        self._open: set[socket.socket] = set()  # client connections, kept alive between requests
        self._open_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": SERVE_POLL_SECONDS}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The loopback URL clients use."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def retarget(self, split: Sequence[tuple[str, int]]) -> None:
        """Point at a new split; keep the round-robin state when nothing changed."""
        new = _Split(split)
        if new.weights != self.split.weights:
            self.split = new

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close(self) -> None:
        """Stop accepting, release the port, and end the connections clients keep open: a removed
        URL (a tag moved away, a deleted service) answers nothing more, not even on them."""
        close_server(self)
        with self._open_lock:
            kept = list(self._open)
        for conn in kept:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def close_server(server: socketserver.TCPServer) -> None:
    """Stop a ``serve_forever`` loop at once and release the port.

    ``shutdown()`` only sets a flag the loop reads between selects, so alone it waits up to a poll
    interval; shutting the listening socket down makes the select return now. So the hundreds of
    idle listeners of a long-lived emulator (one per service and tag URL) can poll once a second
    instead of twenty times, and still close in a millisecond.
    """
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    with contextlib.suppress(OSError):
        server.socket.shutdown(socket.SHUT_RDWR)
    stopper.join()
    server.server_close()


@dataclass(frozen=True)
class _Reply:
    """A response ready to write back to the client."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    # Whether an instance got the request. Cloud Run's request_count and request_latencies count
    # "requests reaching the revision": the front end's own errors (no instance, connection refused)
    # are not in them.
    reached: bool = True


def _error_reply(status: int, code: str, message: str, *, reached: bool = True) -> _Reply:
    """A JSON error in Google's shape."""
    body = json.dumps({"error": {"code": status, "status": code, "message": message}}).encode()
    reason = http.HTTPStatus(status).phrase
    return _Reply(status, reason, [("Content-Type", "application/json")], body, reached)


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one request to the revision its listener picks."""

    server: _ProxyServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Google's front ends: a client reuses its connection
    timeout = IDLE_CLIENT_SECONDS  # an idle kept-alive connection is closed after this
    disable_nagle_algorithm = True  # no delayed-ACK stall between headers and body (see server.Handler)
    server_version = "emulator-proxy/1"

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the emulator's own output is for API traffic."""

    def _proxy(self) -> None:
        started = time.perf_counter()
        server = self.server
        try:
            body = self._read_body()
        except ValueError as exc:
            self._write(_error_reply(400, "INVALID_ARGUMENT", str(exc)))
            return
        revision = server.split.pick()
        if revision is None:
            message = f"Service '{server.service}' has no revision receiving traffic."
            self._write(_error_reply(503, "UNAVAILABLE", message))
            return
        reply = self._forward(revision, body)
        latency_ms = (time.perf_counter() - started) * 1000.0
        # Recorded before the client sees the answer, so a caller that got a response finds its sample.
        if reply.reached:
            namespace, _, name = revision.rpartition("/")  # an instance key: "namespace/revision"
            sample = RequestSample(name, server.service, time.time(), reply.status, latency_ms, namespace)
            server.plane._record(sample)
        self._write(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _proxy

    def _read_body(self) -> bytes:
        """The request body, de-chunked, so it can be re-sent with a Content-Length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        if not raw.strip().isdigit():
            raise ValueError(f"invalid Content-Length: {raw!r}")
        return self.rfile.read(int(raw))

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(65537).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError as exc:
                raise ValueError("invalid chunked request body") from exc
            if size == 0:
                while self.rfile.readline(65537).strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _forward(self, revision: str, body: bytes) -> _Reply:
        """Send the request to the revision's port and collect its answer."""
        port, problem = self.server.plane._upstream(revision)
        if port is None:
            return _error_reply(503, "UNAVAILABLE", problem, reached=False)
        plane = self.server.plane
        conn, reused = plane._connection(port)
        try:
            try:
                resp, data = self._exchange(conn, body)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                conn.close()  # an idle kept-alive connection the instance closed: once more, afresh
                conn, reused = plane._connection(port, fresh=True)
                resp, data = self._exchange(conn, body)
        except TimeoutError:
            return _error_reply(504, "DEADLINE_EXCEEDED", f"Revision '{revision}' did not answer in time.")
        except (OSError, http.client.HTTPException) as exc:
            # Refused or reset before an answer: no instance handled it (counted only once it did).
            reached = not isinstance(exc, ConnectionRefusedError)
            return _error_reply(
                503, "UNAVAILABLE", f"Revision '{revision}' is unreachable: {exc}", reached=reached
            )
        except BaseException:
            conn.close()
            raise
        else:
            if resp.will_close:
                conn.close()
            else:
                plane._idle(port, conn)
        head = self.command == "HEAD"
        headers = [
            (name, value)
            for name, value in resp.getheaders()
            if name.lower() not in HOP_BY_HOP and (head or name.lower() != "content-length")
        ]
        return _Reply(resp.status, resp.reason, headers, data)

    def _exchange(
        self, conn: http.client.HTTPConnection, body: bytes
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self._upstream_headers():
            conn.putheader(name, value)
        if body or self.command in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp, resp.read()

    def _upstream_headers(self) -> list[tuple[str, str]]:
        """Client headers minus hop-by-hop ones, plus the forwarding headers a front end adds."""
        listed = {t.strip().lower() for t in self.headers.get("Connection", "").split(",") if t.strip()}
        drop = HOP_BY_HOP | listed | {"content-length", "x-forwarded-for", "x-forwarded-proto"}
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        if "Host" not in self.headers:
            headers.append(("Host", self.server.url.removeprefix("http://")))
        forwarded = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers.append(("X-Forwarded-For", f"{forwarded}, {client}" if forwarded else client))
        headers.append(("X-Forwarded-Proto", "http"))
        return headers

    def _write(self, reply: _Reply) -> None:
        """Write status, headers and body back to the client (no body for HEAD)."""
        self.send_response_only(reply.status, reply.reason)
        for name, value in reply.headers:
            self.send_header(name, value)
        head = self.command == "HEAD"
        if not head and reply.status >= 200 and reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)


@dataclass
class _Route:
    service: _ProxyServer
    tags: dict[str, _ProxyServer]


def _accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _base_env() -> dict[str, str]:
    """The little a container inherits from the host; the revision's own env goes on top."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.setdefault("PATH", os.defpath)
    existing = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + existing if existing else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class DataPlane:
    """Runs revisions as processes and serves service and tag URLs on loopback."""

    def __init__(self, images: ImageCatalogue, host: str = "127.0.0.1", start_timeout: float = 10.0) -> None:
        self.images = images
        self.host = host
        self.start_timeout = start_timeout
        self._lock = threading.RLock()
        self._ports = PortBlocks(host)
        self._instances: dict[str, _Instance] = {}
        self._routes: dict[str, _Route] = {}
        self._samples: collections.deque[RequestSample] = collections.deque(maxlen=MAX_SAMPLES)
        self._samples_lock = threading.Lock()
        self._pool: dict[int, list[http.client.HTTPConnection]] = {}
        self._pool_lock = threading.Lock()
        self._closed = False
        self._log_dir = Path(tempfile.mkdtemp(prefix="cloud-run-emulator-"))
        self._atexit = _close_later(self)
        atexit.register(self._atexit)

    # ---- connections to instances -------------------------------------------------------------

    def _connection(self, port: int, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """An idle kept-alive connection to the instance on ``port`` (True), or a new one (False)."""
        if not fresh:
            with self._pool_lock:
                idle = self._pool.get(port)
                if idle:
                    return idle.pop(), True
        return http.client.HTTPConnection(self.host, port, timeout=UPSTREAM_TIMEOUT_SECONDS), False

    def _idle(self, port: int, conn: http.client.HTTPConnection) -> None:
        """Keep a connection whose exchange ended cleanly for the next request to that instance."""
        with self._pool_lock:
            self._pool.setdefault(port, []).append(conn)

    def _forget_connections(self, port: int | None = None) -> None:
        """Close the idle connections to one instance (its port may serve another next), or all."""
        with self._pool_lock:
            ports = [port] if port is not None else list(self._pool)
            idle = [conn for p in ports for conn in self._pool.pop(p, [])]
        for conn in idle:
            conn.close()

    # ---- revisions -------------------------------------------------------------------------

    def start_revision(self, run: RevisionRun) -> None:
        """Spawn the revision's process and watch it become healthy; a repeat call is a no-op."""
        with self._lock:
            if self._closed:
                raise RuntimeError("data plane is closed")
            if run.key in self._instances:
                return
            log_name = run.key.replace("/", "_")
            instance = _Instance(run, self._ports.take(), self._log_dir / f"{log_name}.log")
            self._instances[run.key] = instance
            argv = self.images.resolve(run.image)
            if argv is None:
                instance.health = Health("False", "ContainerMissing", f"Image '{run.image}' not found.")
                return
            if not self._spawn(instance, argv):
                return
        threading.Thread(target=self._watch, args=(instance,), daemon=True, name=f"watch-{run.name}").start()

    def _spawn(self, instance: _Instance, argv: list[str]) -> bool:
        """Start the process in its own session with output in the revision log."""
        run = instance.run
        env = {
            **_base_env(),
            **run.env,
            "PORT": str(instance.port),
            "K_SERVICE": run.service,
            "K_REVISION": run.name,
            "K_CONFIGURATION": run.configuration,
            "EMULATOR_IMAGE": run.image,
            "EMULATOR_ENV_NAMES": ",".join(run.env),
        }
        try:
            instance.process = launcher.start(argv, env, instance.log_path)
        except OSError as exc:
            instance.fail(f"The container command {argv[0]!r} could not be started: {exc}.")
            return False
        return True

    def _watch(self, instance: _Instance) -> None:
        """Poll until the process listens on PORT, exits, or runs out of start time."""
        process = instance.process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while not instance.stopping.is_set():
            code = process.poll()
            if code is not None:
                if not instance.stopping.is_set():  # a stop reaps it: the pid may be reused since
                    launcher.signal_group(process, signal.SIGKILL)  # orphans it left behind
                instance.fail(f"The container exited with code {code} before listening on the port.")
                return
            if _accepts(self.host, instance.port):
                instance.health = Health("True")
                return
            if time.monotonic() >= deadline:
                instance.fail(f"Nothing listened on port {instance.port} within {self.start_timeout:g}s.")
                self._stop_processes([instance])
                return
            instance.stopping.wait(POLL_SECONDS)

    def health(self, revision: str) -> Health:
        """Unknown while starting, True once listening, False with a Cloud Run reason."""
        instance = self._instances.get(revision)
        return instance.health if instance else UNKNOWN

    def log_path(self, revision: str) -> str | None:
        """Where the revision's stdout/stderr go, for a logUrl."""
        instance = self._instances.get(revision)
        return str(instance.log_path) if instance else None

    def stop_revision(self, revision: str) -> None:
        """Terminate the revision's process group, killing it if it lingers."""
        with self._lock:
            instance = self._instances.pop(revision, None)
        if instance:
            self._stop_processes([instance])
            self._forget_connections(instance.port)
            self._ports.release(instance.port)

    def _stop_processes(self, instances: Sequence[_Instance]) -> None:
        """SIGTERM every group, wait out the grace period together, then SIGKILL what is left."""
        # A reaped leader's pid may already belong to another process: never signal it again.
        running = [i.process for i in instances if i.process is not None and i.process.returncode is None]
        for instance in instances:
            instance.stopping.set()
        for process in running:
            launcher.signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in running:
            launcher.signal_group(process, signal.SIGKILL)
            process.wait()

    def _upstream(self, revision: str) -> tuple[int | None, str]:
        """The port to forward to, or None with the reason the revision cannot serve."""
        instance = self._instances.get(revision)
        if instance is None:
            return None, f"Revision '{revision}' is not running."
        health = instance.health
        if health.status != "True":
            detail = f" ({health.reason})" if health.reason else ""
            return None, f"Revision '{revision}' is not ready: {health.status}{detail}."
        return instance.port, ""

    # ---- routes ----------------------------------------------------------------------------

    def _resolve(self, namespace: str, revision: str) -> str:
        """The instance a route's revision means: the namespace's own, else one started without one."""
        key = instance_key(namespace, revision)
        return key if key in self._instances or revision not in self._instances else revision

    def route(self, key: str, split: Sequence[tuple[str, int]], tags: Mapping[str, str]) -> RouteUrls:
        """Create or reconfigure the service listener and one listener per tag, keeping ports."""
        namespace, _, service = key.rpartition("/")
        with self._lock:
            split = [(self._resolve(namespace, revision), percent) for revision, percent in split]
            tags = {tag: self._resolve(namespace, revision) for tag, revision in tags.items()}
            if self._closed:
                raise RuntimeError("data plane is closed")
            route = self._routes.get(key)
            if route is None:
                route = _Route(self._listen(service, split), {})
                self._routes[key] = route
            else:
                route.service.retarget(split)
            stale = [route.tags.pop(tag) for tag in list(route.tags) if tag not in tags]
            for tag, revision in tags.items():
                if tag in route.tags:
                    route.tags[tag].retarget([(revision, 100)])
                else:
                    route.tags[tag] = self._listen(service, [(revision, 100)])
            urls = RouteUrls(route.service.url, {tag: srv.url for tag, srv in route.tags.items()})
        for server in stale:
            server.close()
        return urls

    def routing(self, key: str) -> tuple[dict[str, int], dict[str, str]] | None:
        """Where a service's requests go now, as its listeners split them: revision -> percent over the
        service URL, tag -> revision over each tag URL (None before its first route). Tests judge the
        data plane with it, not the spec (a change still pending keeps the previous split)."""
        with self._lock:
            route = self._routes.get(key)
            if route is None:
                return None
            split = {
                revision.rpartition("/")[2]: percent for revision, percent in route.service.split.weights
            }
            tags = {
                tag: server.split.weights[0][0].rpartition("/")[2]
                for tag, server in route.tags.items()
                if server.split.weights
            }
        return split, tags

    def _listen(self, service: str, split: Sequence[tuple[str, int]]) -> _ProxyServer:
        return _ProxyServer((self.host, 0), self, service, _Split(split))

    def remove_route(self, key: str) -> None:
        """Close the service's listener and all its tag listeners."""
        with self._lock:
            route = self._routes.pop(key, None)
        if route:
            for server in [route.service, *route.tags.values()]:
                server.close()

    # ---- metrics ---------------------------------------------------------------------------

    def _record(self, sample: RequestSample) -> None:
        with self._samples_lock:
            self._samples.append(sample)

    def samples(self, since: float = 0.0) -> list[RequestSample]:
        """Requests served at or after ``since`` (epoch seconds), oldest first."""
        with self._samples_lock:
            return [s for s in self._samples if s.time >= since]

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every proxy and process and remove the logs; safe to call twice and at exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            routes = list(self._routes.values())
            instances = list(self._instances.values())
            self._routes.clear()
            self._instances.clear()
        for route in routes:
            for server in [route.service, *route.tags.values()]:
                server.close()
        self._stop_processes(instances)
        self._forget_connections()
        self._ports.close()
        shutil.rmtree(self._log_dir, ignore_errors=True)
        atexit.unregister(self._atexit)

    def __enter__(self) -> DataPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_later(plane: DataPlane) -> Callable[[], None]:
    """An atexit hook that does not keep the data plane alive."""
    ref = weakref.ref(plane)

    def hook() -> None:
        target = ref()
        if target is not None:
            target.close()

    return hook
