"""Typed, validated settings read from the action's inputs (``INPUT_*``) and the runner (``GITHUB_*``).

Everything the rest of the package needs from the environment is parsed here, once, so that bad
input is reported in full (every problem, each naming its input) before any API call is made.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import yaml


class Mode(enum.StrEnum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class SmokeAuth(enum.StrEnum):
    AUTO = "auto"
    ID_TOKEN = "id_token"  # noqa: S105 - a mode name, not a credential
    NONE = "none"


class UpdateStrategy(enum.StrEnum):
    MERGE = "merge"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class StatusRanges:
    """Accepted HTTP status codes, e.g. ``200,204,300-399``."""

    ranges: tuple[tuple[int, int], ...]

    def accepts(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


@dataclass(frozen=True)
class SmokeSettings:
    path: str = "/"
    statuses: StatusRanges = StatusRanges(((200, 399),))
    body: re.Pattern[str] | None = None
    timeout: float = 60.0
    auth: SmokeAuth = SmokeAuth.AUTO


@dataclass(frozen=True)
class SecretRef:
    """``ENV=secret-name:version`` -> ``valueFrom.secretKeyRef {name: secret, key: version}``."""

    secret: str
    version: str = "latest"


@dataclass(frozen=True)
class RevisionSettings:
    """Revision settings a user sets with ``gcloud run deploy`` flags; ``None`` keeps what the service has."""

    cpu: str | None = None
    memory: str | None = None
    concurrency: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    port: int | None = None
    request_timeout: int | None = None  # seconds
    service_account: str | None = None
    ingress: str | None = None  # all | internal | internal-and-cloud-load-balancing (service level)
    cpu_throttling: bool | None = None
    execution_environment: str | None = None  # gen1 | gen2
    vpc_connector: str | None = None
    vpc_egress: str | None = None  # all-traffic | private-ranges-only


@dataclass(frozen=True)
class AnalysisSettings:
    """Canary analysis on real traffic at each step (Cloud Monitoring and user checks)."""

    max_error_rate: float | None = None  # percent of 5xx
    max_latency_p99: float | None = None  # ms
    max_latency_p95: float | None = None  # ms
    min_requests: int = 0
    on_inconclusive: str = ""  # pass | fail | extend; "": fail when metric thresholds are set, else pass
    check_command: str | None = None
    check_webhook: str | None = None
    failure_threshold: int = 1

    @property
    def metric_thresholds(self) -> bool:
        return any(v is not None for v in (self.max_error_rate, self.max_latency_p99, self.max_latency_p95))

    @property
    def inconclusive_action(self) -> str:
        """on_inconclusive, or its default: a threshold with no data to judge it must not pass."""
        return self.on_inconclusive or ("fail" if self.metric_thresholds else "pass")


@dataclass(frozen=True)
class Config:
    service: str
    region: str = "us-central1"
    project_id: str | None = None
    mode: Mode = Mode.DEPLOY
    image: str | None = None
    tag: str = "canary"
    suffix: str | None = None  # None: derived from the run context
    steps: tuple[int, ...] = (10, 50, 100)
    step_interval: float = 60.0
    wait_timeout: float = 600.0
    smoke: SmokeSettings = SmokeSettings()
    dry_run: bool = False
    env_vars: Mapping[str, str] = field(default_factory=dict)
    env_vars_update_strategy: UpdateStrategy = UpdateStrategy.MERGE
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    secrets_update_strategy: UpdateStrategy = UpdateStrategy.MERGE
    labels: Mapping[str, str] = field(default_factory=dict)
    skip_default_labels: bool = False
    revision: RevisionSettings = RevisionSettings()
    allow_unauthenticated: bool | None = None
    metadata: Mapping[str, Any] | None = None  # parsed Knative Service YAML used as the base
    rollback_to: str | None = None
    api_endpoint: str | None = None
    monitoring_endpoint: str | None = None
    github_token: str | None = field(default=None, repr=False)
    environment: str | None = None
    takeover: bool = False  # take over (undo) another run's unfinished rollout
    analysis: AnalysisSettings = AnalysisSettings()
    container: str | None = None  # the container the inputs apply to; None: the ingress container
    production_environment: bool | None = None  # GitHub Deployment flag; None: from the environment name


@dataclass(frozen=True)
class RunContext:
    """What the runner tells us about the workflow run (all optional outside GitHub Actions)."""

    sha: str = ""
    ref: str = ""
    repository: str = ""
    run_id: str = ""
    run_attempt: str = "1"
    server_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    event_name: str = ""
    event_path: str = ""
    workflow: str = ""
    actor: str = ""
    pr_number: int | None = None  # from the event payload on pull_request events

    @property
    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}/attempts/{self.run_attempt}"


@dataclass(frozen=True)
class Problem:
    input: str
    message: str

    def __str__(self) -> str:
        return f"input '{self.input}': {self.message}"


class ConfigError(Exception):
    """Every problem found in the inputs, reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


# --------------------------------------------------------------------------------------------------
# Defaults: action.yml declares exactly these (a test compares them), "" meaning "no default".

DEFAULTS: dict[str, str] = {
    "service": "",
    "region": "us-central1",
    "project_id": "",
    "mode": "deploy",
    "image": "",
    "tag": "canary",
    "suffix": "",
    "steps": "10,50,100",
    "step_interval": "60s",
    "wait_timeout": "10m",
    "smoke_path": "/",
    "smoke_status": "200-399",
    "smoke_body": "",
    "smoke_timeout": "60s",
    "smoke_auth": "auto",
    "dry_run": "false",
    "env_vars": "",
    "env_vars_update_strategy": "merge",
    "secrets": "",
    "secrets_update_strategy": "merge",
    "labels": "",
    "skip_default_labels": "false",
    "cpu": "",
    "memory": "",
    "concurrency": "",
    "min_instances": "",
    "max_instances": "",
    "port": "",
    "request_timeout": "",
    "service_account": "",
    "ingress": "",
    "cpu_throttling": "",
    "execution_environment": "",
    "vpc_connector": "",
    "vpc_egress": "",
    "allow_unauthenticated": "",
    "metadata": "",
    "rollback_to": "",
    "api_endpoint": "",
    "monitoring_endpoint": "",
    "github_token": "",
    "environment": "",
    "takeover": "false",
    "container": "",
    "production_environment": "",
    "max_error_rate": "",
    "max_latency_p99": "",
    "max_latency_p95": "",
    "min_requests": "0",
    "on_inconclusive": "",
    "check_command": "",
    "check_webhook": "",
    "failure_threshold": "1",
}

PROJECT_ENV_VARS = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GCLOUD_PROJECT")
RESERVED_ENV_NAMES = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})
MAX_DURATION = 7 * 24 * 3600.0  # longer than any GitHub job may run
MAX_METADATA_BYTES = 1 << 20

T = TypeVar("T")

# re.ASCII everywhere: \d and \w would otherwise accept digits and letters from any script.
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_REGION = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+", re.ASCII)
_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", re.ASCII)
_PROJECT_NUMBER = re.compile(r"[0-9]{1,30}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}", re.ASCII)
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}", re.ASCII)
_SM_NAME = r"[A-Za-z0-9_-]{1,255}"
_SECRET_REF = re.compile(
    rf"(?P<name>projects/[^/\s:]+/secrets/{_SM_NAME}|{_SM_NAME})"
    r"(?:(?::|/versions/)(?P<version>[^\s:/]*))?",
    re.ASCII,
)
_INTEGER = re.compile(r"[0-9]{1,9}", re.ASCII)
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?|\.[0-9]{1,9}", re.ASCII)
_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:ms|s|m|h))+", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(ms|s|m|h)", re.ASCII)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_STATUS_ITEM = re.compile(r"([0-9]{3})(?:-([0-9]{3}))?|([1-5])xx", re.ASCII | re.IGNORECASE)
_CPU = re.compile(r"(?:[0-9]{1,4}(?:\.[0-9]{1,3})?|[0-9]{1,6}m)", re.ASCII)
_MEMORY = re.compile(r"[0-9]{1,7}(?:Ki|Mi|Gi|K|M|G)", re.ASCII)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", re.ASCII)
_CONNECTOR = re.compile(
    r"(?:projects/[a-z0-9][a-z0-9:.-]*/locations/[a-z0-9-]+/connectors/)?[a-z]([-a-z0-9]*[a-z0-9])?",
    re.ASCII,
)
# "KEY: ..." (or a flow mapping) on the first line means YAML; "KEY=..." means lines.
_YAML_FIRST_LINE = re.compile(r"\{.*|[^=:\s][^=]*?:(\s.*)?", re.DOTALL)


class _Invalid(ValueError):
    """A parser's verdict on one input; each message says what would be valid."""

    def __init__(self, *messages: str):
        self.messages = list(messages)
        super().__init__("; ".join(messages))


def _show(value: str, limit: int = 60) -> str:
    """Quote a user value so control characters are visible and it cannot be read as a command."""
    body = "".join(_escape_char(c) for c in value[:limit])
    more = f"... ({len(value)} characters)" if len(value) > limit else ""
    return f'"{body}"{more}'


def _escape_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    return char if char.isprintable() else repr(char)[1:-1]


def _choice(options: Sequence[str], aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Parser for one of a few words, case-insensitive (users type True/Deploy/ALL)."""

    def parse(text: str) -> str:
        word = text.lower()
        word = (aliases or {}).get(word, word)
        if word not in options:
            raise _Invalid(f"{_show(text)} is not one of: {', '.join(options)}")
        return word

    return parse


def _optional(parser: Callable[[str], T]) -> Callable[[str], T | None]:
    """Empty means "not set": keep what the service has."""
    return lambda text: parser(text) if text else None


# --------------------------------------------------------------------------------------------------
# Scalars


def parse_bool(text: str) -> bool:
    """YAML 1.2 core booleans only: "yes"/"on" are more often typos than intent."""
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    raise _Invalid(f"{_show(text)} is not a boolean; use true or false")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "1h30m", "1.5s", "500ms" (what users write in workflows)."""
    value = text.strip()
    hint = "use e.g. 90, 90s, 5m, 1h30m or 500ms"
    if value.startswith("-"):
        raise _Invalid(f"{_show(text)} is negative; {hint}")
    if _NUMBER.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))
    else:
        raise _Invalid(f"{_show(text)} is not a duration; {hint} (units: h, m, s, ms)")
    if not seconds <= MAX_DURATION:
        raise _Invalid(f"{_show(text)} is longer than 7 days; {hint}")
    return seconds


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise _Invalid(f"{_show(text)} must be longer than 0; use e.g. 30s or 5m")
    return seconds


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """Parser for a whole number within bounds (high None: no upper bound)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        if not _INTEGER.fullmatch(text):
            raise _Invalid(f"{_show(text)} is not a whole number; use a number {span}")
        number = int(text)
        if number < low or (high is not None and number > high):
            raise _Invalid(f"{number} is out of range; use a number {span}")
        return number

    return parse


def _float_in(
    low: float, high: float | None, unit: str, *, exclusive_low: bool = False
) -> Callable[[str], float]:
    """Parser for a decimal number within bounds."""
    above = f"above {low:g}" if exclusive_low else f"of at least {low:g}"
    span = f"{above}{f' and at most {high:g}' if high is not None else ''}{unit}"

    def parse(text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise _Invalid(f"{_show(text)} is not a number; use a number {span}")
        number = float(text)
        too_low = number <= low if exclusive_low else number < low
        if too_low or (high is not None and number > high):
            raise _Invalid(f"{text} is out of range; use a number {span}")
        return number

    return parse


def _free_text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise _Invalid(f"{_show(text)} is too long; use at most {limit} characters")
        if any(not c.isprintable() for c in text):
            raise _Invalid(f"{_show(text)} contains control characters; use one line of printable text")
        return text

    return parse


# --------------------------------------------------------------------------------------------------
# Names


def parse_service(text: str) -> str:
    if not text:
        raise _Invalid("is required; give the Cloud Run service name, e.g. my-app")
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise _Invalid(
            f"{_show(text)} is not a valid service name; use at most 63 lowercase letters, digits "
            "and '-', starting with a letter and not ending with '-'"
        )
    return text


def parse_region(text: str) -> str:
    if len(text) > 63 or not _REGION.fullmatch(text):
        raise _Invalid(f"{_show(text)} is not a region; use a Cloud Run region such as us-central1")
    return text


def parse_project(text: str) -> str:
    if _PROJECT_ID.fullmatch(text) or _PROJECT_NUMBER.fullmatch(text):
        return text
    raise _Invalid(
        f"{_show(text)} is not a project ID; use 6 to 30 lowercase letters, digits and '-', starting "
        "with a letter (e.g. my-project-123), or a project number"
    )


def parse_image(text: str) -> str:
    if not text:
        raise _Invalid("is required in mode deploy; give an image, e.g. us-docker.pkg.dev/p/repo/app:v1")
    if len(text) > 1024:
        raise _Invalid(f"{_show(text)} is too long; an image reference has at most 1024 characters")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in text):
        raise _Invalid(f"{_show(text)} contains spaces or control characters; give one image reference")
    if not _IMAGE.fullmatch(text):
        raise _Invalid(
            f"{_show(text)} is not an image reference; use [registry/]path[:tag][@sha256:digest] with a "
            "lowercase path, e.g. us-docker.pkg.dev/my-project/app/web@sha256:..."
        )
    return text


# The distribution/reference grammar Docker and Cloud Run use for image references.
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
)
_IMAGE = re.compile(
    rf"(?:{_IMAGE_DOMAIN}/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def parse_container(text: str) -> str:
    """A container name as Cloud Run takes it: a DNS-1123 label."""
    if len(text) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", text, re.ASCII):
        raise _Invalid(f"{_show(text)} is not a container name (lowercase letters, digits, '-', at most 63)")
    return text


def parse_tag(text: str) -> str:
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise _Invalid(
            f"{_show(text)} is not a valid tag; use lowercase letters, digits and '-', starting with "
            "a letter and not ending with '-', e.g. canary"
        )
    return text


def check_tag_length(tag: str, service: str) -> str | None:
    """Cloud Run refuses a tag when len(tag) + len(service) > 46; say so before deploying."""
    total = len(tag) + len(service)
    if total <= 46:
        return None
    return (
        f"{_show(tag)} with service {_show(service)} is {total} characters together; Cloud Run "
        f"allows len(tag) + len(service) <= 46, so use a tag of at most {max(46 - len(service), 0)} "
        "characters"
    )


def check_revision_name(name: str, service: str) -> str | None:
    """Revision names: a DNS-1035 label of at most 63 characters starting with `<service>-`."""
    prefix = f"{service}-"
    if not name.startswith(prefix) or len(name) == len(prefix):
        return (
            f"{_show(name)} does not start with {_show(prefix)}; revisions of a service are named "
            "<service>-<suffix>"
        )
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        return (
            f"{_show(name)} is not a valid revision name; use at most 63 lowercase letters, digits and '-', "
            "not ending with '-'"
        )
    return None


def parse_steps(text: str) -> tuple[int, ...]:
    """Traffic percentages: "0" alone (tagged, no traffic) or strictly ascending 1..100."""
    hint = (
        "use ascending percentages from 1 to 100, e.g. 10,50,100, or 0 for a tagged revision with no traffic"
    )
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not tokens:
        raise _Invalid(f"{_show(text)} has no percentages; {hint}")
    numbers: list[int] = []
    for token in tokens:
        digits = token.removesuffix("%")
        if not _INTEGER.fullmatch(digits):
            raise _Invalid(f"{_show(token)} in {_show(text)} is not a whole number; {hint}")
        numbers.append(int(digits))
    if numbers == [0]:
        return (0,)
    if 0 in numbers:
        raise _Invalid(f"{_show(text)} mixes 0 with other steps; 0 must be alone; {hint}")
    if any(n > 100 for n in numbers):
        raise _Invalid(f"{_show(text)} has a percentage above 100; {hint}")
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise _Invalid(f"{_show(text)} is not ascending; {hint}")
    return tuple(numbers)


def parse_status_ranges(text: str) -> StatusRanges:
    hint = "use status codes and ranges from 100 to 599, e.g. 200,204,300-399"
    ranges: list[tuple[int, int]] = []
    for token in (t for t in re.split(r"[,\s]+", text) if t):
        match = _STATUS_ITEM.fullmatch(token)
        if not match:
            raise _Invalid(f"{_show(token)} is not a status code or range; {hint}")
        if match[3]:
            lo, hi = int(match[3]) * 100, int(match[3]) * 100 + 99
        else:
            lo = int(match[1])
            hi = int(match[2]) if match[2] else lo
        if not 100 <= lo <= hi <= 599:
            raise _Invalid(f"{_show(token)} is not a range within 100-599 with low <= high; {hint}")
        ranges.append((lo, hi))
    if not ranges:
        raise _Invalid(f"{_show(text)} lists no status codes; {hint}")
    return StatusRanges(tuple(ranges))


def parse_smoke_path(text: str) -> str:
    if not text.startswith("/") or any(not c.isprintable() or c.isspace() for c in text):
        raise _Invalid(f"{_show(text)} is not a path; use a path starting with '/', e.g. /healthz")
    return text


def parse_regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise _Invalid(
            f"{_show(text)} is not a valid regular expression ({exc}); use Python re syntax"
        ) from None


def parse_suffix(text: str, service: str) -> str:
    name = f"{service}-{text}"
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise _Invalid(
            f"{_show(text)} makes revision name {_show(name)} invalid; use lowercase letters, digits and "
            "'-', not ending with '-', with <service>-<suffix> at most 63 characters"
        )
    return text


# --------------------------------------------------------------------------------------------------
# Revision settings


def parse_cpu(text: str) -> str:
    if not _CPU.fullmatch(text) or float(text.removesuffix("m")) <= 0:
        raise _Invalid(f"{_show(text)} is not a CPU limit; use e.g. 1, 2, 4, 0.5 or 1000m")
    return text


def parse_memory(text: str) -> str:
    if not _MEMORY.fullmatch(text) or int(text.rstrip("KMGi")) <= 0:
        raise _Invalid(
            f"{_show(text)} is not a memory limit; use a number with Ki, Mi, Gi, K, M or G, e.g. 512Mi"
        )
    return text


def parse_request_timeout(text: str) -> int:
    seconds = parse_duration(text)
    if not 1 <= seconds <= 3600 or not seconds.is_integer():
        raise _Invalid(f"{_show(text)} is out of range; use whole seconds from 1s to 3600s (1h), e.g. 300")
    return int(seconds)


def parse_service_account(text: str) -> str:
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise _Invalid(
            f"{_show(text)} is not a service account email; "
            "use e.g. deployer@my-project.iam.gserviceaccount.com"
        )
    return text


def parse_vpc_connector(text: str) -> str:
    if len(text) > 512 or not _CONNECTOR.fullmatch(text):
        raise _Invalid(
            f"{_show(text)} is not a connector; use its name (e.g. my-connector) or "
            "projects/PROJECT/locations/REGION/connectors/NAME"
        )
    return text


# --------------------------------------------------------------------------------------------------
# URLs


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(text: str) -> str:
    """Base URL override; plain http only to loopback (an emulator) so tokens never cross the network."""
    hint = "use an https URL such as https://run.example.com (http only for 127.0.0.1, localhost or ::1)"
    parts = _split_url(text, hint)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise _Invalid(f"{_show(text)} has a query or fragment; {hint}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise _Invalid(f"{_show(text)} uses plain http for a host that is not loopback; {hint}")
    return text.rstrip("/")


def parse_webhook(text: str) -> str:
    """Webhook URL; may carry a token in its query, so it is never quoted back."""
    _split_url(text, "use an http(s) URL such as https://checks.example.com/canary", echo=False)
    return text


def _split_url(text: str, hint: str, *, echo: bool = True) -> SplitResult:
    shown = _show(text) if echo else "the value"
    if len(text) > 2048 or any(not c.isprintable() or c.isspace() for c in text):
        raise _Invalid(f"{shown} is not a URL (too long, spaces or control characters); {hint}")
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise _Invalid(f"{shown} is not a valid URL; {hint}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"{shown} is not an http(s) URL with a host; {hint}")
    return parts


# --------------------------------------------------------------------------------------------------
# KEY=VALUE lines or YAML mappings (env_vars, secrets, labels)


class _StringLoader(yaml.SafeLoader):
    """YAML where only true/false and null are typed: "010" or "1_000" stay the text the user wrote."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) != len(node.value):
            raise yaml.constructor.ConstructorError(None, None, "a key is given twice", node.start_mark)
        return mapping


_StringLoader.yaml_implicit_resolvers = {}
_StringLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StringLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _looks_like_yaml(text: str) -> bool:
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return bool(_YAML_FIRST_LINE.fullmatch(stripped))
    return False


def split_pairs(text: str) -> tuple[dict[str, str], list[str]]:
    """`KEY=VALUE` lines (value verbatim after the first '=') or a YAML mapping of scalars.

    Returns the pairs that could be read and a message per part that could not, so both get
    checked. Values never appear in messages: env values may be secrets.
    """
    if _looks_like_yaml(text):
        return _yaml_pairs(text)
    pairs: dict[str, str] = {}
    errors: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(f"line {number} is not KEY=VALUE; write one KEY=VALUE per line")
        elif key in pairs:
            errors.append(f"{_show(key)} is given twice (line {number}); give each name once")
        else:
            pairs[key] = value.removesuffix("\r")
    return pairs, errors


def _yaml_pairs(text: str) -> tuple[dict[str, str], list[str]]:
    hint = "write a YAML mapping of KEY: value, or KEY=VALUE lines"
    try:
        data = yaml.load(text, Loader=_StringLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        return {}, [f"is not valid YAML ({_yaml_reason(exc)}); {hint}"]
    if not isinstance(data, dict):
        return {}, [f"is not a YAML mapping; {hint}"]
    pairs: dict[str, str] = {}
    errors: list[str] = []
    for key, value in data.items():
        name = _yaml_scalar(key)
        text_value = _yaml_scalar(value)
        if name is None:
            errors.append(f"a key is a {type(key).__name__}, not a name; {hint}")
        elif text_value is None:
            errors.append(
                f"the value of {_show(name)} is a {type(value).__name__}; give a string, number or boolean"
            )
        else:
            pairs[name] = text_value
    return pairs, errors


def _yaml_scalar(value: object) -> str | None:
    """A YAML scalar as the text Cloud Run stores (booleans lowercase, null empty); None if not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """The parser's complaint and line, never the offending text (it may hold a secret)."""
    problem = getattr(exc, "problem", None) or "syntax error"
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}" if mark is not None else ""
    return f"{_escape_text(str(problem))[:80]}{where}"


def _escape_text(text: str) -> str:
    return "".join(_escape_char(c) for c in text).replace('\\"', '"')


def check_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name) or len(name) > 255:
        return (
            f"{_show(name)} is not a valid variable name; use letters, digits and '_', "
            "not starting with a digit"
        )
    if name in RESERVED_ENV_NAMES or name.startswith("X_GOOGLE_"):
        return (
            f"{_show(name)} is reserved by Cloud Run "
            "(PORT, K_SERVICE, K_REVISION, K_CONFIGURATION, X_GOOGLE_*); choose another name"
        )
    return None


def parse_env_vars(text: str) -> dict[str, str]:
    pairs, errors = split_pairs(text)
    errors += [e for e in map(check_env_name, pairs) if e]
    if errors:
        raise _Invalid(*errors)
    return pairs


def parse_secret_ref(text: str) -> SecretRef:
    match = _SECRET_REF.fullmatch(text.strip())
    hint = "use secret-name:version (version: latest or a number), e.g. db-password:latest"
    if not match:
        raise _Invalid(f"{_show(text)} is not a secret reference; {hint}")
    version = match["version"] or "latest"
    if version != "latest" and not _INTEGER.fullmatch(version):
        raise _Invalid(f"{_show(text)} has version {_show(version)}; {hint}")
    return SecretRef(match["name"], version)


def parse_secrets(text: str) -> dict[str, SecretRef]:
    pairs, errors = split_pairs(text)
    secrets: dict[str, SecretRef] = {}
    for name, ref in pairs.items():
        problem = check_env_name(name)
        if problem:
            errors.append(problem)
            continue
        try:
            secrets[name] = parse_secret_ref(ref)
        except _Invalid as exc:
            errors.extend(f"{_show(name)}: {m}" for m in exc.messages)
    if errors:
        raise _Invalid(*errors)
    return secrets


def parse_labels(text: str) -> dict[str, str]:
    labels, errors = split_pairs(text)
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            errors.append(
                f"label key {_show(key)} is invalid; use 1 to 63 lowercase letters, digits, '_' and '-', "
                "starting with a letter"
            )
        if not _LABEL_VALUE.fullmatch(value):
            errors.append(
                f"label {_show(key)} has value {_show(value)}; "
                "use at most 63 lowercase letters, digits, '_' and '-'"
            )
    if errors:
        raise _Invalid(*errors)
    return labels


# --------------------------------------------------------------------------------------------------
# Metadata file


def parse_metadata(text: str, service: str) -> dict[str, Any]:
    """A Knative Service YAML (path relative to the workspace) used as the base of the deploy."""
    path = Path(text)
    try:
        if not path.is_file():
            raise _Invalid(
                f"{_show(text)} is not a file; give a path relative to the workspace, e.g. service.yaml"
            )
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise _Invalid(f"{_show(text)} is larger than 1 MiB; give a Knative Service YAML")
        content = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        if isinstance(exc, _Invalid):
            raise
        raise _Invalid(
            f"{_show(text)} cannot be read ({type(exc).__name__}); give a readable YAML file"
        ) from None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise _Invalid(f"{_show(text)} is not valid YAML ({_yaml_reason(exc)})") from None
    return _check_knative_service(data, text, service)


def _check_knative_service(data: object, path: str, service: str) -> dict[str, Any]:
    expected = "use a Knative Service (apiVersion: serving.knative.dev/v1, kind: Service)"
    if not isinstance(data, dict):
        raise _Invalid(f"{_show(path)} is not a YAML mapping; {expected}")
    kind, api = data.get("kind"), data.get("apiVersion")
    if kind != "Service" or api != "serving.knative.dev/v1":
        raise _Invalid(f"{_show(path)} has kind {_show(str(kind))}, apiVersion {_show(str(api))}; {expected}")
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise _Invalid(f"{_show(path)}: metadata is not a mapping; {expected}")
    name = (meta or {}).get("name")
    if name and service and name != service:
        raise _Invalid(
            f"{_show(path)} names service {_show(str(name))} but input service is {_show(service)}; "
            "make them equal or remove metadata.name"
        )
    return data


# --------------------------------------------------------------------------------------------------
# Reading inputs


class _Inputs:
    """The INPUT_* values and the problems found so far, so every problem is reported at once."""

    _EXPECTED = (ValueError, TypeError, OverflowError, RecursionError, re.error, yaml.YAMLError, UnicodeError)

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[Problem] = []

    def raw(self, name: str) -> str:
        """Missing or blank means the default, as for an input without `with:`."""
        value = self.env.get(f"INPUT_{name.upper()}", "").strip()
        return value or DEFAULTS[name]

    def get(self, name: str, parser: Callable[[str], T], fallback: T) -> T:
        """Parse one input, recording its problems and returning fallback when it is bad."""
        try:
            return parser(self.raw(name))
        except _Invalid as exc:
            for message in exc.messages:
                self.add(name, message)
        except self._EXPECTED as exc:  # a parser bug must still not echo the value
            self.add(
                name, f"could not be parsed ({type(exc).__name__}); see the action's README for the format"
            )
        return fallback

    def add(self, name: str, message: str) -> None:
        self.problems.append(Problem(name, message))


def _project(inputs: _Inputs, env: Mapping[str, str]) -> str | None:
    if inputs.raw("project_id"):
        return inputs.get("project_id", parse_project, None)
    for var in PROJECT_ENV_VARS:
        value = env.get(var, "").strip()
        if value:
            if _PROJECT_ID.fullmatch(value) or _PROJECT_NUMBER.fullmatch(value):
                return value
            inputs.add("project_id", f"is empty and {var}={_show(value)} is not a project ID; set project_id")
            return None
    return None


def _smoke(inputs: _Inputs) -> SmokeSettings:
    return SmokeSettings(
        path=inputs.get("smoke_path", parse_smoke_path, "/"),
        statuses=inputs.get("smoke_status", parse_status_ranges, StatusRanges(((200, 399),))),
        body=inputs.get("smoke_body", _optional(parse_regex), None),
        timeout=inputs.get("smoke_timeout", _positive_duration, 60.0),
        auth=SmokeAuth(inputs.get("smoke_auth", _choice([a.value for a in SmokeAuth]), "auto")),
    )


def _revision(inputs: _Inputs) -> RevisionSettings:
    settings = RevisionSettings(
        cpu=inputs.get("cpu", _optional(parse_cpu), None),
        memory=inputs.get("memory", _optional(parse_memory), None),
        concurrency=inputs.get("concurrency", _optional(_int_in(1, 1000)), None),
        min_instances=inputs.get("min_instances", _optional(_int_in(0)), None),
        max_instances=inputs.get("max_instances", _optional(_int_in(1)), None),
        port=inputs.get("port", _optional(_int_in(1, 65535)), None),
        request_timeout=inputs.get("request_timeout", _optional(parse_request_timeout), None),
        service_account=inputs.get("service_account", _optional(parse_service_account), None),
        ingress=inputs.get(
            "ingress", _optional(_choice(["all", "internal", "internal-and-cloud-load-balancing"])), None
        ),
        cpu_throttling=inputs.get("cpu_throttling", _optional(parse_bool), None),
        execution_environment=inputs.get("execution_environment", _optional(_choice(["gen1", "gen2"])), None),
        vpc_connector=inputs.get("vpc_connector", _optional(parse_vpc_connector), None),
        vpc_egress=inputs.get(
            "vpc_egress",
            _optional(_choice(["all-traffic", "private-ranges-only"], {"all": "all-traffic"})),
            None,
        ),
    )
    low, high = settings.min_instances, settings.max_instances
    if low is not None and high is not None and high < low:
        inputs.add("max_instances", f"{high} is below min_instances {low}; use a number of at least {low}")
    return settings


def _analysis(inputs: _Inputs) -> AnalysisSettings:
    return AnalysisSettings(
        max_error_rate=inputs.get("max_error_rate", _optional(_float_in(0, 100, " (percent)")), None),
        max_latency_p99=inputs.get(
            "max_latency_p99", _optional(_float_in(0, None, " (ms)", exclusive_low=True)), None
        ),
        max_latency_p95=inputs.get(
            "max_latency_p95", _optional(_float_in(0, None, " (ms)", exclusive_low=True)), None
        ),
        min_requests=inputs.get("min_requests", _int_in(0), 0),
        on_inconclusive=inputs.get("on_inconclusive", _optional(_choice(["pass", "fail", "extend"])), None)
        or "",
        check_command=inputs.raw("check_command") or None,
        check_webhook=inputs.get("check_webhook", _optional(parse_webhook), None),
        failure_threshold=inputs.get("failure_threshold", _int_in(1), 1),
    )


def _pairs_inputs(inputs: _Inputs) -> tuple[dict[str, str], dict[str, SecretRef], dict[str, str]]:
    env_vars: dict[str, str] = inputs.get("env_vars", parse_env_vars, {})
    secrets: dict[str, SecretRef] = inputs.get("secrets", parse_secrets, {})
    for name in sorted(env_vars.keys() & secrets.keys()):
        inputs.add("secrets", f"{_show(name)} is also set in env_vars; give each variable in one of the two")
    labels: dict[str, str] = inputs.get("labels", parse_labels, {})
    return env_vars, secrets, labels


def _names(inputs: _Inputs, service: str) -> tuple[str, str | None, str | None]:
    """tag, suffix and rollback_to: all checked against the service name."""
    tag = inputs.get("tag", parse_tag, "canary")
    if service and inputs.raw("tag") == tag:
        problem = check_tag_length(tag, service)
        if problem:
            inputs.add("tag", problem)
    suffix = inputs.get("suffix", _optional(lambda s: parse_suffix(s, service or "x")), None)
    rollback_to = inputs.get("rollback_to", _optional(lambda s: _revision_name(s, service)), None)
    return tag, suffix, rollback_to


def _revision_name(text: str, service: str) -> str:
    problem = check_revision_name(text, service) if service else None
    if problem:
        raise _Invalid(problem)
    return text


def load(env: Mapping[str, str]) -> tuple[Config, RunContext]:
    """Parse and validate every input; raise ConfigError listing all problems."""
    inputs = _Inputs(env)
    service = inputs.get("service", parse_service, "")
    mode = Mode(inputs.get("mode", _choice([m.value for m in Mode]), "deploy"))
    tag, suffix, rollback_to = _names(inputs, service)
    env_vars, secrets, labels = _pairs_inputs(inputs)
    strategy = _choice([s.value for s in UpdateStrategy])
    config = Config(
        service=service,
        region=inputs.get("region", parse_region, "us-central1"),
        project_id=_project(inputs, env),
        mode=mode,
        image=inputs.get("image", parse_image, None) if mode is Mode.DEPLOY else None,
        tag=tag,
        suffix=suffix,
        steps=inputs.get("steps", parse_steps, (10, 50, 100)),
        step_interval=inputs.get("step_interval", parse_duration, 60.0),
        wait_timeout=inputs.get("wait_timeout", _positive_duration, 600.0),
        smoke=_smoke(inputs),
        dry_run=inputs.get("dry_run", parse_bool, False),
        env_vars=env_vars,
        env_vars_update_strategy=UpdateStrategy(inputs.get("env_vars_update_strategy", strategy, "merge")),
        secrets=secrets,
        secrets_update_strategy=UpdateStrategy(inputs.get("secrets_update_strategy", strategy, "merge")),
        labels=labels,
        skip_default_labels=inputs.get("skip_default_labels", parse_bool, False),
        revision=_revision(inputs),
        allow_unauthenticated=inputs.get("allow_unauthenticated", _optional(parse_bool), None),
        metadata=inputs.get("metadata", _optional(lambda s: parse_metadata(s, service)), None),
        rollback_to=rollback_to,
        api_endpoint=inputs.get("api_endpoint", _optional(parse_endpoint), None),
        monitoring_endpoint=inputs.get("monitoring_endpoint", _optional(parse_endpoint), None),
        github_token=inputs.raw("github_token") or None,
        environment=inputs.get("environment", _optional(_free_text(255)), None),
        takeover=inputs.get("takeover", parse_bool, False),
        analysis=_analysis(inputs),
        container=inputs.get("container", _optional(parse_container), None),
        production_environment=inputs.get("production_environment", _optional(parse_bool), None),
    )
    if inputs.problems:
        raise ConfigError(inputs.problems)
    return config, load_context(env)


# --------------------------------------------------------------------------------------------------
# Run context


def load_context(env: Mapping[str, str]) -> RunContext:
    """What the runner says about this run; every field tolerates being absent (local runs)."""

    def var(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    event_name, event_path = var("GITHUB_EVENT_NAME"), var("GITHUB_EVENT_PATH")
    return RunContext(
        sha=var("GITHUB_SHA"),
        ref=var("GITHUB_REF"),
        repository=var("GITHUB_REPOSITORY"),
        run_id=var("GITHUB_RUN_ID"),
        run_attempt=var("GITHUB_RUN_ATTEMPT", "1"),
        server_url=var("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        api_url=var("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        event_name=event_name,
        event_path=event_path,
        workflow=var("GITHUB_WORKFLOW"),
        actor=var("GITHUB_ACTOR"),
        pr_number=_pr_number(event_name, event_path),
    )


def _pr_number(event_name: str, event_path: str) -> int | None:
    """`pull_request.number` from the event payload; None when absent or unreadable."""
    if event_name not in ("pull_request", "pull_request_target") or not event_path:
        return None
    try:
        with open(event_path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError, RecursionError):
        return None
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    number = pull.get("number") if isinstance(pull, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else None


def derive_suffix(ctx: RunContext, now: datetime | None = None) -> str:
    """A revision suffix that is stable across re-runs of one attempt and unique across attempts."""
    sha = ctx.sha.lower()
    if re.fullmatch(r"[0-9a-f]{7,64}", sha):
        attempt = ctx.run_attempt if re.fullmatch(r"[0-9]{1,6}", ctx.run_attempt) else "1"
        return f"{sha[:7]}-{attempt}"
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
