"""Thin client for the Cloud Run Admin API v1 (Knative style) and its IAM methods.

Every call goes through :meth:`CloudRun._retry`, which runs it under the shared
:class:`deployer.retry.Retrier` (the same policy the analysis and the smoke check use). Writes whose
outcome is unknown (the request was sent but no answer came back) are verified with a GET before
they are repeated, so a lost response never causes a second, different write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from deployer.api_errors import CANONICAL_CODES as CANONICAL_CODES
from deployer.api_errors import error_from_response as error_from_response
from deployer.endpoints import regional_endpoint as regional_endpoint
from deployer.endpoints import regional_host as regional_host
from deployer.errors import ApiError as ApiError
from deployer.errors import Cancelled as Cancelled
from deployer.errors import Conflict as Conflict
from deployer.errors import NotFound as NotFound
from deployer.errors import TransportError as TransportError
from deployer.landed import bindings as _bindings
from deployer.landed import carries_env as _carries_env
from deployer.landed import dig as _dig
from deployer.landed import write_landed as write_landed
from deployer.retry import (
    RETRYABLE_STATUSES,
    Retrier,
    Retry,
    RetryPolicy,
    never,
    parse_retry_after,
)

try:  # google-auth wraps transport failures during token refresh in its own exception
    from google.auth.exceptions import TransportError as _AuthTransportError
except ImportError:  # pragma: no cover - google-auth is a hard dependency of the action
    _AuthTransportError = requests.ConnectionError  # type: ignore[assignment,misc]

T = TypeVar("T")

DEFAULT_POLICY = RetryPolicy()
KNATIVE = "apis/serving.knative.dev/v1"
RUN_V1 = "apis/run.googleapis.com/v1"  # jobs, executions, tasks
LIST_PAGE_SIZE = 500  # items per page of a v1 list (gcloud asks 100)
MAX_PAGES = 1000  # a bound on a server whose continue tokens never end


def _short(url: str) -> str:
    """Last two path segments, for compact log lines."""
    path = url.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    return ".../" + "/".join(parts[-2:]) if len(parts) > 2 else path


# IAM policy version 3 is the only one that carries conditional role bindings: read with
# options.requestedPolicyVersion=3 and write back version 3 with the etag, or conditions are lost
# (https://cloud.google.com/iam/docs/policies#versions).
IAM_POLICY_VERSION = 3


_POLICY_V3 = {"options.requestedPolicyVersion": str(IAM_POLICY_VERSION)}


class CloudRun:
    """Admin API v1 client: services, revisions and IAM for one project and region."""

    page_size: int = LIST_PAGE_SIZE  # items per page of the lists read whole (executions, tasks)

    def __init__(
        self,
        session: requests.Session,
        *,
        region: str,
        project: str,
        api_endpoint: str | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] = never,
        clock: Callable[[], float] = time.monotonic,
        request_count: dict[str, int] | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.project = project
        self.api_endpoint = api_endpoint
        self.policy = policy
        self._sleep = sleep
        self._log = log
        self._should_stop = should_stop
        self._clock = clock
        base = api_endpoint.rstrip("/") if api_endpoint else None
        self.knative_base = base or f"https://{region}-run.googleapis.com"
        self.iam_base = base or "https://run.googleapis.com"
        # Jobs have no location path in v1: through an override they go to its regional form, or to
        # the address itself with the region named in the Host header.
        self.jobs_base = regional_endpoint(base, region) if base else self.knative_base
        self._jobs_headers = {"Host": host} if base and (host := regional_host(base, region)) else None
        self._jobs_prefix = f"{self.jobs_base}/{RUN_V1}/"
        self.request_count: dict[str, int] = (
            request_count if request_count is not None else {"read": 0, "write": 0}
        )

    def with_policy(self, policy: RetryPolicy, *, should_stop: Callable[[], bool] | None = None) -> CloudRun:
        """Same session, endpoints, hooks and counters with another policy (e.g. the fast rollback path,
        which also must not listen to the cancellation that sent it there)."""
        return CloudRun(
            self.session,
            region=self.region,
            project=self.project,
            api_endpoint=self.api_endpoint,
            policy=policy,
            sleep=self._sleep,
            log=self._log,
            should_stop=self._should_stop if should_stop is None else should_stop,
            clock=self._clock,
            request_count=self.request_count,
        )

    # ---- URLs -------------------------------------------------------------------------------

    def _ns(self, kind: str, name: str | None = None) -> str:
        """Services and revisions: by location through an override (one endpoint serves every
        region, as run.googleapis.com does), else Knative-style at the regional endpoint."""
        if self.api_endpoint:
            url = f"{self.knative_base}/v1/projects/{self.project}/locations/{self.region}/{kind}"
        else:
            url = f"{self.knative_base}/{KNATIVE}/namespaces/{self.project}/{kind}"
        return f"{url}/{name}" if name else url

    def _iam(self, service: str, verb: str) -> str:
        return f"{self.iam_base}/v1/projects/{self.project}/locations/{self.region}/services/{service}:{verb}"

    # ---- public API -------------------------------------------------------------------------

    def get_service(self, name: str) -> dict[str, Any] | None:
        """The service, or None if it does not exist."""
        return self._get_or_none(self._ns("services", name))

    def get_revision(self, name: str) -> dict[str, Any] | None:
        """The revision, or None if it does not exist."""
        return self._get_or_none(self._ns("revisions", name))

    def list_revisions(self, service: str) -> list[dict[str, Any]]:
        """Every revision of ``service`` (follows ``metadata.continue``)."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"labelSelector": f"serving.knative.dev/service={service}"}
        seen: set[str] = set()
        while True:
            page = self._call("GET", self._ns("revisions"), params=dict(params))
            items.extend(page.get("items") or [])
            token = _dig(page, "metadata", "continue")
            if not token or token in seen:  # guard against a server that repeats its token
                return items
            seen.add(token)
            params["continue"] = token

    def create_service(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """POST a new service; after an uncertain attempt, ALREADY_EXISTS with our revision is success."""
        url = self._ns("services")
        if dry_run:
            return self._call("POST", url, body=body, params={"dryRun": "all"})
        name = str(_dig(body, "metadata", "name") or "")
        revision = _dig(body, "spec", "template", "metadata", "name")

        def on_conflict(err: Conflict) -> dict[str, Any] | None:
            current = self._attempt("GET", self._ns("services", name)) if name else None
            if current and revision and _dig(current, "spec", "template", "metadata", "name") == revision:
                return current
            return None

        return self._write("POST", url, body, verify=None, on_conflict=on_conflict)

    def replace_service(self, name: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """PUT the whole service; a write whose answer was lost is checked by GET before repeating."""
        url = self._ns("services", name)
        if dry_run:
            return self._call("PUT", url, body=body, params={"dryRun": "all"})

        def verify() -> dict[str, Any] | None:
            current = self._attempt_or_none(url)
            return current if write_landed(body, current) else None

        def on_conflict(err: Conflict) -> dict[str, Any] | None:
            return verify()

        return self._write("PUT", url, body, verify=verify, on_conflict=on_conflict)

    def get_iam_policy(self, service: str) -> dict[str, Any]:
        """The service's IAM policy as version 3 (conditional bindings intact), with its etag."""
        return self._call("GET", self._iam(service, "getIamPolicy"), params=_POLICY_V3)

    def set_iam_policy(self, service: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Replace the IAM policy, written as version 3; the etag in ``policy`` makes a concurrent
        change a Conflict (without it IAM would let a v1 write drop every condition)."""
        url = self._iam(service, "setIamPolicy")
        policy = {**policy, "version": IAM_POLICY_VERSION}

        def verify() -> dict[str, Any] | None:
            current = self._attempt("GET", self._iam(service, "getIamPolicy"), params=_POLICY_V3)
            return current if _bindings(current) == _bindings(policy) else None

        def on_conflict(err: Conflict) -> dict[str, Any] | None:
            return verify()

        return self._write("POST", url, {"policy": policy}, verify=verify, on_conflict=on_conflict)

    # ---- jobs and executions (apis/run.googleapis.com/v1) -----------------------------------

    def _run_ns(self, kind: str, name: str | None = None) -> str:
        url = f"{self._jobs_prefix}namespaces/{self.project}/{kind}"
        return f"{url}/{name}" if name else url

    def get_job(self, name: str) -> dict[str, Any] | None:
        """The job, or None if it does not exist."""
        return self._get_or_none(self._run_ns("jobs", name))

    def create_job(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """POST a new job; after an uncertain attempt, ALREADY_EXISTS with our spec is success."""
        url = self._run_ns("jobs")
        if dry_run:
            return self._call("POST", url, body=body, params={"dryRun": "all"})
        name = str(_dig(body, "metadata", "name") or "")

        def on_conflict(err: Conflict) -> dict[str, Any] | None:
            current = self._attempt_or_none(self._run_ns("jobs", name))
            return current if current and _dig(current, "spec") == _dig(body, "spec") else None

        return self._write("POST", url, body, verify=None, on_conflict=on_conflict)

    def replace_job(self, name: str, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """PUT the whole job (``resourceVersion`` in the body makes a concurrent change a Conflict)."""
        url = self._run_ns("jobs", name)
        if dry_run:
            return self._call("PUT", url, body=body, params={"dryRun": "all"})

        def verify() -> dict[str, Any] | None:
            current = self._attempt_or_none(url)
            return current if current and _dig(current, "spec") == _dig(body, "spec") else None

        return self._write("PUT", url, body, verify=verify, on_conflict=lambda err: verify())

    def run_job(self, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST ``:run``: one new execution. An attempt whose answer was lost is checked against the job's
        latest execution before it is repeated, so one call never starts two executions; that execution
        is ours only if it carries our overrides' env (someone else may have run the job meanwhile)."""
        job_url = self._run_ns("jobs", name)
        before = _dig(self._call("GET", job_url), "status", "latestCreatedExecution", "name")

        def verify() -> dict[str, Any] | None:
            latest = _dig(self._attempt("GET", job_url), "status", "latestCreatedExecution", "name")
            if not latest or latest == before:
                return None
            found = self._attempt("GET", self._run_ns("executions", latest))
            return found if _carries_env(found, overrides) else None

        body = {"overrides": overrides} if overrides else {}
        return self._write("POST", f"{job_url}:run", body, verify=verify, on_conflict=lambda err: None)

    def get_execution(self, name: str) -> dict[str, Any]:
        return self._call("GET", self._run_ns("executions", name))

    def list_executions(self, job: str = "") -> list[dict[str, Any]]:
        """The job's executions ("": of every job), every page (the run's own may be on any page)."""
        return self._list_all(self._run_ns("executions"), f"run.googleapis.com/job={job}" if job else "")

    def list_tasks(self, execution: str) -> list[dict[str, Any]]:
        """The tasks of one execution, every page (an execution has up to 10,000)."""
        return self._list_all(self._run_ns("tasks"), f"run.googleapis.com/execution={execution}")

    def _list_all(self, url: str, selector: str) -> list[dict[str, Any]]:
        """Every item of a v1 list: ``limit`` per page, then ``continue`` with ``metadata.continue``
        until it is empty, as gcloud's list pager does."""
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            params = {"labelSelector": selector} if selector else {}
            params["limit"] = str(self.page_size)
            if token:
                params["continue"] = token
            page = self._call("GET", url, params=params)
            items += page.get("items") or []
            token = str(_dig(page, "metadata", "continue") or "")
            if not token:
                break
        return items

    def cancel_execution(self, name: str) -> dict[str, Any]:
        """POST ``:cancel`` (repeating it is harmless: a finished execution answers 400)."""
        return self._call("POST", f"{self._run_ns('executions', name)}:cancel", body={})

    # ---- writes with uncertain outcomes -------------------------------------------------------

    def _write(
        self,
        method: str,
        url: str,
        body: dict[str, Any],
        *,
        verify: Callable[[], dict[str, Any] | None] | None,
        on_conflict: Callable[[Conflict], dict[str, Any] | None],
    ) -> dict[str, Any]:
        """One write under the retry policy, never blindly repeated after an uncertain attempt.

        ``verify`` (a GET) runs before repeating a write whose answer was lost; a 409 after an
        uncertain attempt is resolved by ``on_conflict`` (the first attempt may have landed).
        """
        state = _WriteState()

        def attempt() -> dict[str, Any]:
            if state.uncertain and verify is not None:
                landed = verify()  # a retryable failure here keeps the write uncertain
                if landed is not None:
                    return landed
                state.uncertain = state.ever_uncertain = False  # a 409 from now on is genuine
            try:
                return self._attempt(method, url, body=body, uncertain_writes=state)
            except Conflict as err:
                if state.ever_uncertain:
                    resolved = on_conflict(err)
                    if resolved is not None:
                        return resolved
                raise

        return self._retry(method, url, attempt)

    # ---- the one retry loop -----------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self._retry(method, url, lambda: self._attempt(method, url, body=body, params=params))

    def _get_or_none(self, url: str) -> dict[str, Any] | None:
        """GET under the retry policy; None for 404."""
        return _none_if_missing(lambda: self._call("GET", url))

    def _attempt_or_none(self, url: str) -> dict[str, Any] | None:
        """One GET attempt (for verifying a write inside the retry loop); None for 404."""
        return _none_if_missing(lambda: self._attempt("GET", url))

    def _retry(self, method: str, url: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the policy's budget runs out."""
        self._budget_end = self._clock() + self.policy.total
        retrier = Retrier(self.policy, sleep=self._sleep, clock=self._clock, should_stop=self._should_stop)

        def log(error: Exception, delay: float, n: int) -> None:
            if self._log and isinstance(error, ApiError):
                self._log(
                    f"{_describe(error)} on {method} {_short(url)}; "
                    f"retrying in {delay:.1f} s (attempt {n + 1}/{self.policy.attempts})"
                )

        return retrier.run(attempt, cancelled=f"cancelled before {method} {_short(url)}", on_retry=log)

    # ---- one HTTP attempt -------------------------------------------------------------------

    _budget_end: float | None = None

    def _timeout(self) -> tuple[float, float]:
        read = self.policy.read_timeout
        if self._budget_end is not None:
            read = min(read, max(1.0, self._budget_end - self._clock()))
        return (self.policy.connect_timeout, read)

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        uncertain_writes: _WriteState | None = None,
    ) -> dict[str, Any]:
        """One HTTP request. Raises Retry for retryable failures, ApiError for final ones."""
        self.request_count["read" if method == "GET" else "write"] += 1
        headers = self._jobs_headers if url.startswith(self._jobs_prefix) else None
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=self._timeout(),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout, _AuthTransportError) as exc:
            sent = not isinstance(exc, requests.ConnectTimeout) and not _refused(exc)
            if uncertain_writes is not None and sent:
                uncertain_writes.mark()
            reason = "DEADLINE_EXCEEDED" if isinstance(exc, requests.Timeout) else "UNAVAILABLE"
            raise Retry(TransportError(0, reason, _transport_message(exc), method=method, url=url)) from None
        if resp.status_code >= 400:
            error = error_from_response(resp, method, url)
            if resp.status_code in RETRYABLE_STATUSES:
                if uncertain_writes is not None and resp.status_code != 429:
                    uncertain_writes.mark()
                raise Retry(error, parse_retry_after(resp.headers.get("Retry-After")))
            raise error
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            raise Retry(
                ApiError(resp.status_code, "INTERNAL", "answer is not JSON", method=method, url=url)
            ) from None
        return data if isinstance(data, dict) else {"value": data}


@dataclass
class _WriteState:
    """Whether a write may have landed without us seeing the answer."""

    uncertain: bool = False
    ever_uncertain: bool = False

    def mark(self) -> None:
        self.uncertain = True
        self.ever_uncertain = True


def _none_if_missing(get: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return get()
    except NotFound:
        return None


def _refused(exc: Exception) -> bool:
    """Connection refused / DNS failure: the request never left, so repeating it is safe."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "NameResolutionError", "ConnectionRefused"))


def _transport_message(exc: Exception) -> str:
    """Exception text without request objects (whose headers hold the bearer token)."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _describe(error: ApiError) -> str:
    if isinstance(error, TransportError):
        return f"{error.reason} ({error.message.split(':', 1)[0]})"
    return f"{error.status} {error.reason}"


__all__ = [
    "CANONICAL_CODES",
    "ApiError",
    "Cancelled",
    "CloudRun",
    "Conflict",
    "NotFound",
    "RetryPolicy",
    "TransportError",
    "error_from_response",
    "parse_retry_after",
    "write_landed",
]
