"""Grammars of mappings: KEY=VALUE lines or YAML (env vars, secrets, labels), the metadata file, and
the bounds on every YAML document read (no alias bombs, no deep nesting, no secret in an error)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import DeployerError
from deployer.parsers import INTEGER, Invalid, escape_text, show
from deployer.parsers_names import PROJECT_ID, PROJECT_NUMBER
from deployer.settings import SecretRef

RESERVED_ENV_NAMES = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})
MAX_METADATA_BYTES = 1 << 20
# Bounds on every YAML document read (inputs and the metadata file): a few kB of aliases can stand for
# billions of nodes ("billion laughs"), and deep nesting exhausts the stack of whatever walks it.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 20_000  # counted with every alias expanded
MAX_YAML_DEPTH = 64

# re.ASCII everywhere: \d and \w would otherwise accept digits and letters from any script.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}", re.ASCII)
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}", re.ASCII)
_SM_NAME = r"[A-Za-z0-9_-]{1,255}"
_SECRET_REF = re.compile(
    rf"(?:projects/(?P<project>[^/\s:]+)/secrets/)?(?P<name>{_SM_NAME})"
    r"(?:(?::|/versions/)(?P<version>[^\s:/]*))?",
    re.ASCII,
)
# "KEY: ..." (or a flow mapping) on the first line means YAML; "KEY=..." means lines.
_YAML_FIRST_LINE = re.compile(r"\{.*|[^=:\s][^=]*?:(\s.*)?", re.DOTALL)


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
    return f"{escape_text(problem)[:80]}{where}"


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
    if version != "latest" and not INTEGER.fullmatch(version):
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
