"""Grammars of names and references: services, regions, projects, images, containers, tags, revision
names and suffixes, revision settings (CPU, memory, timeout, service account, VPC connector) and URLs."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from deployer.loopback import is_loopback_host
from deployer.parsers import Invalid, parse_duration, show

# re.ASCII everywhere: \d and \w would otherwise accept digits and letters from any script.
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_REGION = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+", re.ASCII)
PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", re.ASCII)
PROJECT_NUMBER = re.compile(r"[0-9]{1,30}", re.ASCII)
_CPU = re.compile(r"(?:[0-9]{1,4}(?:\.[0-9]{1,3})?|[0-9]{1,6}m)", re.ASCII)
_MEMORY = re.compile(r"[0-9]{1,7}(?:Ki|Mi|Gi|K|M|G)", re.ASCII)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", re.ASCII)
_CONNECTOR = re.compile(
    r"(?:projects/[a-z0-9][a-z0-9:.-]*/locations/[a-z0-9-]+/connectors/)?[a-z]([-a-z0-9]*[a-z0-9])?",
    re.ASCII,
)


def parse_service(text: str) -> str:
    if not text:
        raise Invalid("is required; give the Cloud Run service name, e.g. my-app")
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a valid service name; use at most 63 lowercase letters, digits "
            "and '-', starting with a letter and not ending with '-'"
        )
    return text


def parse_region(text: str) -> str:
    if len(text) > 63 or not _REGION.fullmatch(text):
        raise Invalid(f"{show(text)} is not a region; use a Cloud Run region such as us-central1")
    return text


def parse_project(text: str) -> str:
    if PROJECT_ID.fullmatch(text) or PROJECT_NUMBER.fullmatch(text):
        return text
    raise Invalid(
        f"{show(text)} is not a project ID; use 6 to 30 lowercase letters, digits and '-', starting "
        "with a letter (e.g. my-project-123), or a project number"
    )


def parse_image(text: str) -> str:
    if not text:
        raise Invalid("is required in mode deploy; give an image, e.g. us-docker.pkg.dev/p/repo/app:v1")
    if len(text) > 1024:
        raise Invalid(f"{show(text)} is too long; an image reference has at most 1024 characters")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in text):
        raise Invalid(f"{show(text)} contains spaces or control characters; give one image reference")
    if not _IMAGE.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not an image reference; use [registry/]path[:tag][@sha256:digest] with a "
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
        raise Invalid(f"{show(text)} is not a container name (lowercase letters, digits, '-', at most 63)")
    return text


def parse_tag(text: str) -> str:
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a valid tag; use lowercase letters, digits and '-', starting with "
            "a letter and not ending with '-', e.g. canary"
        )
    return text


def check_tag_length(tag: str, service: str) -> str | None:
    """Cloud Run refuses a tag when len(tag) + len(service) > 46; say so before deploying."""
    total = len(tag) + len(service)
    if total <= 46:
        return None
    return (
        f"{show(tag)} with service {show(service)} is {total} characters together; Cloud Run "
        f"allows len(tag) + len(service) <= 46, so use a tag of at most {max(46 - len(service), 0)} "
        "characters"
    )


def check_revision_name(name: str, service: str) -> str | None:
    """Revision names: a DNS-1035 label of at most 63 characters starting with `<service>-`."""
    prefix = f"{service}-"
    if not name.startswith(prefix) or len(name) == len(prefix):
        return (
            f"{show(name)} does not start with {show(prefix)}; revisions of a service are named "
            "<service>-<suffix>"
        )
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        return (
            f"{show(name)} is not a valid revision name; use at most 63 lowercase letters, digits and '-', "
            "not ending with '-'"
        )
    return None


def parse_suffix(text: str, service: str) -> str:
    name = f"{service}-{text}"
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise Invalid(
            f"{show(text)} makes revision name {show(name)} invalid; use lowercase letters, digits and "
            "'-', not ending with '-', with <service>-<suffix> at most 63 characters"
        )
    return text


# --------------------------------------------------------------------------------------------------
# Revision settings
# Like the name parsers above, each is "match a grammar or raise Invalid with a hint": alike in shape
# on purpose (one small parser per input, each with its own message), not shared logic.


def parse_cpu(text: str) -> str:
    if not _CPU.fullmatch(text) or float(text.removesuffix("m")) <= 0:
        raise Invalid(f"{show(text)} is not a CPU limit; use e.g. 1, 2, 4, 0.5 or 1000m")
    return text


def parse_memory(text: str) -> str:
    if not _MEMORY.fullmatch(text) or int(text.rstrip("KMGi")) <= 0:
        raise Invalid(
            f"{show(text)} is not a memory limit; use a number with Ki, Mi, Gi, K, M or G, e.g. 512Mi"
        )
    return text


def parse_request_timeout(text: str) -> int:
    seconds = parse_duration(text)
    if not 1 <= seconds <= 3600 or not seconds.is_integer():
        raise Invalid(f"{show(text)} is out of range; use whole seconds from 1s to 3600s (1h), e.g. 300")
    return int(seconds)


def parse_service_account(text: str) -> str:
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a service account email; "
            "use e.g. deployer@my-project.iam.gserviceaccount.com"
        )
    return text


def parse_vpc_connector(text: str) -> str:
    if len(text) > 512 or not _CONNECTOR.fullmatch(text):
        raise Invalid(
            f"{show(text)} is not a connector; use its name (e.g. my-connector) or "
            "projects/PROJECT/locations/REGION/connectors/NAME"
        )
    return text


# --------------------------------------------------------------------------------------------------


# URLs


def parse_endpoint(text: str) -> str:
    """Base URL override; plain http only to loopback (an emulator) so tokens never cross the network."""
    hint = (
        "use an https URL such as https://run.example.com "
        "(http only for loopback: 127.0.0.1, ::1, localhost, *.localhost)"
    )
    parts = _split_url(text, hint)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise Invalid(f"{show(text)} has a query or fragment; {hint}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise Invalid(f"{show(text)} uses plain http for a host that is not loopback; {hint}")
    return text.rstrip("/")


def parse_webhook(text: str) -> str:
    """Webhook URL; may carry a token in its query, so it is never quoted back."""
    _split_url(text, "use an http(s) URL such as https://checks.example.com/canary", echo=False)
    return text


def _split_url(text: str, hint: str, *, echo: bool = True) -> SplitResult:
    shown = show(text) if echo else "the value"
    if len(text) > 2048 or any(not c.isprintable() or c.isspace() for c in text):
        raise Invalid(f"{shown} is not a URL (too long, spaces or control characters); {hint}")
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise Invalid(f"{shown} is not a valid URL; {hint}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{shown} is not an http(s) URL with a host; {hint}")
    return parts
