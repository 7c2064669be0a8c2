"""Grammars of single input values (durations, names, images, URLs, KEY=VALUE lines, YAML):
each parser returns a typed value or raises ``Invalid`` with messages that say what would be valid
and never echo a secret."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import yaml

from deployer.errors import DeployerError
from deployer.loopback import is_loopback_host
from deployer.settings import SecretRef, StatusRanges

RESERVED_ENV_NAMES = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})
MAX_DURATION = 7 * 24 * 3600.0  # longer than any GitHub job may run
MAX_METADATA_BYTES = 1 << 20
# Bounds on every YAML document read (inputs and the metadata file): a few kB of aliases can stand for
# billions of nodes ("billion laughs"), and deep nesting exhausts the stack of whatever walks it.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 20_000  # counted with every alias expanded
MAX_YAML_DEPTH = 64

T = TypeVar("T")

# re.ASCII everywhere: \d and \w would otherwise accept digits and letters from any script.
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_REGION = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+", re.ASCII)
PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", re.ASCII)
PROJECT_NUMBER = re.compile(r"[0-9]{1,30}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}", re.ASCII)
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}", re.ASCII)
_SM_NAME = r"[A-Za-z0-9_-]{1,255}"
_SECRET_REF = re.compile(
    rf"(?:projects/(?P<project>[^/\s:]+)/secrets/)?(?P<name>{_SM_NAME})"
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


class Invalid(DeployerError, ValueError):
    """A parser's verdict on one input; each message says what would be valid."""

    def __init__(self, *messages: str):
        self.messages = list(messages)
        super().__init__("; ".join(messages))


def show(value: str, limit: int = 60) -> str:
    """Quote a user value so control characters are visible and it cannot be read as a command."""
    body = "".join(_escape_char(c) for c in value[:limit])
    more = f"... ({len(value)} characters)" if len(value) > limit else ""
    return f'"{body}"{more}'


def _escape_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    return char if char.isprintable() else repr(char)[1:-1]


def choice(options: Sequence[str], aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Parser for one of a few words, case-insensitive (users type True/Deploy/ALL)."""

    def parse(text: str) -> str:
        word = text.lower()
        word = (aliases or {}).get(word, word)
        if word not in options:
            raise Invalid(f"{show(text)} is not one of: {', '.join(options)}")
        return word

    return parse


def optional(parser: Callable[[str], T]) -> Callable[[str], T | None]:
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
    raise Invalid(f"{show(text)} is not a boolean; use true or false")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "1h30m", "1.5s", "500ms" (what users write in workflows)."""
    value = text.strip()
    hint = "use e.g. 90, 90s, 5m, 1h30m or 500ms"
    if value.startswith("-"):
        raise Invalid(f"{show(text)} is negative; {hint}")
    if _NUMBER.fullmatch(value):
        seconds = float(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))
    else:
        raise Invalid(f"{show(text)} is not a duration; {hint} (units: h, m, s, ms)")
    if not seconds <= MAX_DURATION:
        raise Invalid(f"{show(text)} is longer than 7 days; {hint}")
    return seconds


def positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise Invalid(f"{show(text)} must be longer than 0; use e.g. 30s or 5m")
    return seconds


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """Parser for a whole number within bounds (high None: no upper bound)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        if not _INTEGER.fullmatch(text):
            raise Invalid(f"{show(text)} is not a whole number; use a number {span}")
        number = int(text)
        if number < low or (high is not None and number > high):
            raise Invalid(f"{number} is out of range; use a number {span}")
        return number

    return parse


def float_in(
    low: float, high: float | None, unit: str, *, exclusive_low: bool = False
) -> Callable[[str], float]:
    """Parser for a decimal number within bounds."""
    above = f"above {low:g}" if exclusive_low else f"of at least {low:g}"
    span = f"{above}{f' and at most {high:g}' if high is not None else ''}{unit}"

    def parse(text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise Invalid(f"{show(text)} is not a number; use a number {span}")
        number = float(text)
        too_low = number <= low if exclusive_low else number < low
        if too_low or (high is not None and number > high):
            raise Invalid(f"{text} is out of range; use a number {span}")
        return number

    return parse


def free_text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise Invalid(f"{show(text)} is too long; use at most {limit} characters")
        if any(not c.isprintable() for c in text):
            raise Invalid(f"{show(text)} contains control characters; use one line of printable text")
        return text

    return parse


# --------------------------------------------------------------------------------------------------
# Names


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


def parse_steps(text: str) -> tuple[int, ...]:
    """Traffic percentages: "0" alone (tagged, no traffic) or strictly ascending 1..100."""
    hint = (
        "use ascending percentages from 1 to 100, e.g. 10,50,100, or 0 for a tagged revision with no traffic"
    )
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not tokens:
        raise Invalid(f"{show(text)} has no percentages; {hint}")
    numbers: list[int] = []
    for token in tokens:
        digits = token.removesuffix("%")
        if not _INTEGER.fullmatch(digits):
            raise Invalid(f"{show(token)} in {show(text)} is not a whole number; {hint}")
        numbers.append(int(digits))
    if numbers == [0]:
        return (0,)
    if 0 in numbers:
        raise Invalid(f"{show(text)} mixes 0 with other steps; 0 must be alone; {hint}")
    if any(n > 100 for n in numbers):
        raise Invalid(f"{show(text)} has a percentage above 100; {hint}")
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise Invalid(f"{show(text)} is not ascending; {hint}")
    return tuple(numbers)


def parse_status_ranges(text: str) -> StatusRanges:
    hint = "use status codes and ranges from 100 to 599, e.g. 200,204,300-399"
    ranges: list[tuple[int, int]] = []
    for token in (t for t in re.split(r"[,\s]+", text) if t):
        match = _STATUS_ITEM.fullmatch(token)
        if not match:
            raise Invalid(f"{show(token)} is not a status code or range; {hint}")
        if match[3]:
            lo, hi = int(match[3]) * 100, int(match[3]) * 100 + 99
        else:
            lo = int(match[1])
            hi = int(match[2]) if match[2] else lo
        if not 100 <= lo <= hi <= 599:
            raise Invalid(f"{show(token)} is not a range within 100-599 with low <= high; {hint}")
        ranges.append((lo, hi))
    if not ranges:
        raise Invalid(f"{show(text)} lists no status codes; {hint}")
    return StatusRanges(tuple(ranges))


def parse_smoke_path(text: str) -> str:
    if not text.startswith("/") or any(not c.isprintable() or c.isspace() for c in text):
        raise Invalid(f"{show(text)} is not a path; use a path starting with '/', e.g. /healthz")
    return text


def parse_regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise Invalid(
            f"{show(text)} is not a valid regular expression ({exc}); use Python re syntax"
        ) from None


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


class YamlTooBig(DeployerError, yaml.YAMLError):
    """A YAML document beyond the bounds: too large, too many nodes once aliases expand, too deep."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def load_yaml(text: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """``yaml.load`` of one document within the bounds above, checked before anything is built.

    The node graph is composed first (aliases are shared nodes there, so this is cheap), measured
    with every alias expanded (memoised, so a bomb is measured in linear time), and only then
    constructed. Raises ``YamlTooBig`` (a YAMLError) when a bound is passed.
    """
    if len(text) > MAX_YAML_BYTES:
        raise YamlTooBig(f"longer than {MAX_YAML_BYTES // 1024} KiB")
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if node is None:
            return None
        _measure(node)
        return instance.construct_document(node)
    finally:
        instance.dispose()


def _measure(root: yaml.Node) -> None:
    """Raise YamlTooBig if ``root`` expands past MAX_YAML_NODES nodes or MAX_YAML_DEPTH levels."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth below)
    active: set[int] = set()

    def walk(node: yaml.Node, level: int) -> tuple[int, int]:
        if level > MAX_YAML_DEPTH:
            raise YamlTooBig(f"nested deeper than {MAX_YAML_DEPTH} levels")
        key = id(node)
        if key in sizes:
            size, depth = sizes[key]
            if level + depth > MAX_YAML_DEPTH:
                raise YamlTooBig(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return size, depth
        if key in active:
            raise YamlTooBig("recursive (an alias refers to a node that contains it)")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        active.add(key)
        size, depth = 1, 0
        for child in children:
            child_size, child_depth = walk(child, level + 1)
            size, depth = size + child_size, max(depth, child_depth + 1)
            if size > MAX_YAML_NODES:
                raise YamlTooBig(f"more than {MAX_YAML_NODES} values once its aliases are expanded")
        active.discard(key)
        sizes[key] = (size, depth)
        return size, depth

    walk(root, 0)


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
            errors.append(f"{show(key)} is given twice (line {number}); give each name once")
        else:
            pairs[key] = value.removesuffix("\r")
    return pairs, errors


def _yaml_pairs(text: str) -> tuple[dict[str, str], list[str]]:
    hint = "write a YAML mapping of KEY: value, or KEY=VALUE lines"
    try:
        data = load_yaml(text, _StringLoader)
    except YamlTooBig as exc:
        return {}, [f"is refused: its YAML is {exc.problem}; {hint}"]
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
                f"the value of {show(name)} is a {type(value).__name__}; give a string, number or boolean"
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


# PyYAML quotes what it found with %r: an alias name after `*`, a tag after `!`, a character. In an
# env_vars or secrets value that text may be (part of) a secret.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """The parser's complaint and position, never the offending text (it may hold a secret)."""
    problem = str(getattr(exc, "problem", None) or "syntax error")
    problem = _QUOTED.sub("(not shown)", problem)
    if "'" in problem or '"' in problem:  # an unbalanced quote: keep only the words before it
        problem = re.split(r"['\"]", problem, maxsplit=1)[0].rstrip() or "syntax error"
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{_escape_text(problem)[:80]}{where}"


def _escape_text(text: str) -> str:
    return "".join(_escape_char(c) for c in text).replace('\\"', '"')


def check_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name) or len(name) > 255:
        return (
            f"{show(name)} is not a valid variable name; use letters, digits and '_', "
            "not starting with a digit"
        )
    if name in RESERVED_ENV_NAMES or name.startswith("X_GOOGLE_"):
        return (
            f"{show(name)} is reserved by Cloud Run "
            "(PORT, K_SERVICE, K_REVISION, K_CONFIGURATION, X_GOOGLE_*); choose another name"
        )
    return None


def parse_env_vars(text: str) -> dict[str, str]:
    pairs, errors = split_pairs(text)
    errors += [e for e in map(check_env_name, pairs) if e]
    if errors:
        raise Invalid(*errors)
    return pairs


def parse_secret_ref(text: str) -> SecretRef:
    match = _SECRET_REF.fullmatch(text.strip())
    hint = "use secret-name:version (version: latest or a number), e.g. db-password:latest"
    if not match:
        raise Invalid(f"{show(text)} is not a secret reference; {hint}")
    version = match["version"] or "latest"
    if version != "latest" and not _INTEGER.fullmatch(version):
        raise Invalid(f"{show(text)} has version {show(version)}; {hint}")
    project = match["project"]
    if project is not None and not (PROJECT_ID.fullmatch(project) or PROJECT_NUMBER.fullmatch(project)):
        raise Invalid(
            f"{show(text)} names project {show(project)}, which is neither a project ID nor a number; "
            "a secret of another project is projects/PROJECT_NUMBER/secrets/NAME:VERSION"
        )
    return SecretRef(match["name"], version, project)


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
        except Invalid as exc:
            errors.extend(f"{show(name)}: {m}" for m in exc.messages)
    if errors:
        raise Invalid(*errors)
    return secrets


def parse_labels(text: str) -> dict[str, str]:
    labels, errors = split_pairs(text)
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            errors.append(
                f"label key {show(key)} is invalid; use 1 to 63 lowercase letters, digits, '_' and '-', "
                "starting with a letter"
            )
        if not _LABEL_VALUE.fullmatch(value):
            errors.append(
                f"label {show(key)} has value {show(value)}; "
                "use at most 63 lowercase letters, digits, '_' and '-'"
            )
    if errors:
        raise Invalid(*errors)
    return labels


# --------------------------------------------------------------------------------------------------
# Metadata file


def parse_metadata(text: str, service: str) -> dict[str, Any]:
    """A Knative Service YAML (path relative to the workspace) used as the base of the deploy."""
    path = Path(text)
    try:
        if not path.is_file():
            raise Invalid(
                f"{show(text)} is not a file; give a path relative to the workspace, e.g. service.yaml"
            )
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise Invalid(f"{show(text)} is larger than 1 MiB; give a Knative Service YAML")
        content = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        if isinstance(exc, Invalid):
            raise
        raise Invalid(
            f"{show(text)} cannot be read ({type(exc).__name__}); give a readable YAML file"
        ) from None
    try:
        data = load_yaml(content)
    except YamlTooBig as exc:
        raise Invalid(f"{show(text)} is refused: its YAML is {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise Invalid(f"{show(text)} is not valid YAML ({_yaml_reason(exc)})") from None
    return _check_knative_service(data, text, service)


def _check_knative_service(data: object, path: str, service: str) -> dict[str, Any]:
    expected = "use a Knative Service (apiVersion: serving.knative.dev/v1, kind: Service)"
    if not isinstance(data, dict):
        raise Invalid(f"{show(path)} is not a YAML mapping; {expected}")
    kind, api = data.get("kind"), data.get("apiVersion")
    if kind != "Service" or api != "serving.knative.dev/v1":
        raise Invalid(f"{show(path)} has kind {show(str(kind))}, apiVersion {show(str(api))}; {expected}")
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise Invalid(f"{show(path)}: metadata is not a mapping; {expected}")
    name = (meta or {}).get("name")
    if name and service and name != service:
        raise Invalid(
            f"{show(path)} names service {show(str(name))} but input service is {show(service)}; "
            "make them equal or remove metadata.name"
        )
    return data
