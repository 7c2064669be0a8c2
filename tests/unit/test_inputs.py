"""Tests for deployer.inputs (with the parsers and the run context it uses): every input's rule,
messages as users see them, and hostile values."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from deployer import parsers_yaml
from deployer.context import load_context
from deployer.inputs import DEFAULTS, ConfigError, load
from deployer.parsers import parse_duration
from deployer.settings import (
    AnalysisSettings,
    Config,
    Mode,
    RevisionSettings,
    RunContext,
    SecretRef,
    SmokeAuth,
    StatusRanges,
    UpdateStrategy,
)
from tests.config import BASE, cfg, problems


def only_problem(name: str, value: str) -> str:
    found = problems(**{name: value})
    assert len(found) == 1, found
    assert found[0].startswith(f"input '{name}': ")
    return found[0]


# ---------------------------------------------------------------------------------------------
# Defaults


def test_defaults_cover_the_contract_and_extensions() -> None:
    assert DEFAULTS["region"] == "us-central1"
    assert DEFAULTS["steps"] == "10,50,100"
    assert DEFAULTS["wait_timeout"] == "10m"
    assert DEFAULTS["failure_threshold"] == "1"
    assert DEFAULTS["service"] == "" and DEFAULTS["image"] == ""
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in DEFAULTS)


def test_defaults_round_trip_to_typed_values() -> None:
    config_, ctx = load(BASE)
    assert config_ == Config(service="my-app", image="us-docker.pkg.dev/p/r/app:v1")
    assert config_.steps == (10, 50, 100)
    assert config_.step_interval == 60.0 and config_.wait_timeout == 600.0
    assert config_.smoke.statuses == StatusRanges(((200, 399),)) and config_.smoke.timeout == 60.0
    assert config_.smoke.auth is SmokeAuth.AUTO and config_.mode is Mode.DEPLOY
    assert config_.env_vars_update_strategy is UpdateStrategy.MERGE
    assert config_.allow_unauthenticated is None and config_.revision.cpu_throttling is None
    assert config_.analysis == AnalysisSettings()
    assert ctx == RunContext()


def test_container_production_environment_and_inconclusive_default() -> None:
    assert cfg().container is None and cfg(container="collector").container == "collector"
    assert cfg().production_environment is None
    assert cfg(production_environment="false").production_environment is False
    assert problems(container="Web_1") == [
        """input 'container': "Web_1" is not a container name (lowercase letters, digits, '-', at most 63)"""
    ]
    assert cfg().analysis.inconclusive_action == "pass"  # nothing to judge: nothing to fail
    assert cfg(max_error_rate="5").analysis.inconclusive_action == "fail"  # no data must not pass
    assert cfg(max_error_rate="5", on_inconclusive="pass").analysis.inconclusive_action == "pass"


def test_empty_and_blank_inputs_mean_default() -> None:
    assert cfg(steps="", region="   ", tag="\n").steps == (10, 50, 100)
    assert cfg(region="  europe-west1 \n").region == "europe-west1"


def test_several_bad_inputs_are_all_reported_each_naming_its_input() -> None:
    found = problems(
        steps="10,5,100", region="Moon", tag="Bad_Tag", dry_run="yes", port="0", smoke_path="health"
    )
    names = [re.match(r"input '(\w+)'", p)[1] for p in found]  # type: ignore[index]
    assert sorted(names) == ["dry_run", "port", "region", "smoke_path", "steps", "tag"]


def test_config_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load({"INPUT_SERVICE": "", "INPUT_IMAGE": ""})
    assert "input 'service': is required" in str(info.value)
    assert "input 'image': is required in mode deploy" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Names


def test_service() -> None:
    assert cfg(service="a-1").service == "a-1"
    assert "is not a valid service name" in only_problem("service", "My_App")
    assert "is not a valid service name" in only_problem("service", "app-")
    assert "is not a valid service name" in only_problem("service", "a" * 64)


def test_region() -> None:
    assert cfg(region="europe-west1").region == "europe-west1"
    assert "input 'region': \"US Central\" is not a region" in only_problem("region", "US Central")


def test_project_id_input_and_fallbacks() -> None:
    assert cfg(project_id="my-project-1").project_id == "my-project-1"
    assert cfg(project_id="123456789012").project_id == "123456789012"
    assert "is not a project ID" in only_problem("project_id", "Prj")
    env = {**BASE, "CLOUDSDK_CORE_PROJECT": "from-sdk", "GCLOUD_PROJECT": "from-gcloud"}
    assert load(env)[0].project_id == "from-sdk"
    assert load({**env, "GOOGLE_CLOUD_PROJECT": "from-google"})[0].project_id == "from-google"
    assert load(BASE)[0].project_id is None


def test_mode_and_image() -> None:
    assert cfg(mode="Promote").mode is Mode.PROMOTE
    assert cfg(mode="rollback", image="").image is None
    assert load({"INPUT_SERVICE": "a", "INPUT_MODE": "promote"})[0].image is None
    assert "is not one of: deploy, promote, rollback" in only_problem("mode", "undo")
    assert "contains spaces" in only_problem("image", "app v1")
    assert "too long" in only_problem("image", "a" * 1025)


def test_tag() -> None:
    assert cfg(tag="pr-12").tag == "pr-12"
    assert "is not a valid tag" in only_problem("tag", "Canary")
    message = only_problem("tag", "t" * 41)  # 40 + len("my-app") = 46 is the limit
    assert "len(tag) + len(service) <= 46" in message and "at most 40 characters" in message
    assert cfg(tag="t" * 40).tag == "t" * 40


def test_suffix() -> None:
    assert cfg(suffix="abc1234-2").suffix == "abc1234-2"
    assert cfg().suffix is None
    assert 'makes revision name "my-app-ABC" invalid' in only_problem("suffix", "ABC")
    assert "at most 63" in only_problem("suffix", "a" * 57)


def test_rollback_to() -> None:
    assert cfg(rollback_to="my-app-00001-abc").rollback_to == "my-app-00001-abc"
    assert 'does not start with "my-app-"' in only_problem("rollback_to", "other-00001")
    assert "is not a valid revision name" in only_problem("rollback_to", "my-app-X")


# ---------------------------------------------------------------------------------------------
# Steps and durations


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("10,50,100", (10, 50, 100)),
        ("25 100", (25, 100)),
        ("10,50", (10, 50)),
        ("0", (0,)),
        ("5%, 100%", (5, 100)),
    ],
)
def test_steps_good(text: str, steps: tuple[int, ...]) -> None:
    assert cfg(steps=text).steps == steps


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10,5,100", '"10,5,100" is not ascending; use ascending percentages from 1 to 100, e.g. 10,50,100'),
        ("10,10", "is not ascending"),
        ("10,abc", '"abc" in "10,abc" is not a whole number'),
        ("10,150", "has a percentage above 100"),
        ("0,50", "mixes 0 with other steps"),
        (",", "has no percentages"),
        ("1.5,100", "is not a whole number"),
    ],
)
def test_steps_bad(text: str, says: str) -> None:
    assert says in only_problem("steps", text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("500ms", 0.5), ("0", 0)],
)
def test_parse_duration_good(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "says"),
    [("-5s", "is negative"), ("5d", "is not a duration"), ("abc", "is not a duration"), ("8000h", "7 days")],
)
def test_parse_duration_bad(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(text)


def test_durations_in_config() -> None:
    loaded = cfg(step_interval="0", wait_timeout="1h30m", smoke_timeout="500ms")
    assert (loaded.step_interval, loaded.wait_timeout, loaded.smoke.timeout) == (0, 5400, 0.5)
    assert "must be longer than 0" in only_problem("wait_timeout", "0s")
    assert "must be longer than 0" in only_problem("smoke_timeout", "0")
    assert "units: h, m, s, ms" in only_problem("step_interval", "1 minute")


# ---------------------------------------------------------------------------------------------
# Smoke


def test_smoke_settings() -> None:
    smoke = cfg(smoke_path="/healthz", smoke_status="200,204,300-399,4xx", smoke_body="ok|ready").smoke
    assert smoke.path == "/healthz"
    assert smoke.statuses.ranges == ((200, 200), (204, 204), (300, 399), (400, 499))
    assert smoke.body is not None and smoke.body.search("all ready")
    assert cfg(smoke_auth="ID_TOKEN").smoke.auth is SmokeAuth.ID_TOKEN


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("smoke_path", "healthz", "use a path starting with '/'"),
        ("smoke_status", "399-200", "with low <= high"),
        ("smoke_status", "600", "within 100-599"),
        ("smoke_status", "ok", '"ok" is not a status code or range'),
        ("smoke_body", "(unclosed", "is not a valid regular expression"),
        ("smoke_auth", "oauth", "is not one of: auto, id_token, none"),
    ],
)
def test_smoke_bad(name: str, value: str, says: str) -> None:
    assert says in only_problem(name, value)


# ---------------------------------------------------------------------------------------------
# Booleans and choices


@pytest.mark.parametrize("name", ["dry_run", "skip_default_labels", "takeover"])
def test_booleans(name: str) -> None:
    assert getattr(cfg(**{name: "TRUE"}), name) is True
    assert getattr(cfg(**{name: "False"}), name) is False
    assert f"input '{name}': \"yes\" is not a boolean; use true or false" == only_problem(name, "yes")


def test_tri_state_booleans() -> None:
    assert cfg(allow_unauthenticated="true").allow_unauthenticated is True
    assert cfg(allow_unauthenticated="false").allow_unauthenticated is False
    assert cfg(cpu_throttling="false").revision.cpu_throttling is False
    assert "is not a boolean" in only_problem("cpu_throttling", "on")


def test_update_strategies() -> None:
    loaded = cfg(env_vars_update_strategy="overwrite", secrets_update_strategy="Merge")
    assert loaded.env_vars_update_strategy is UpdateStrategy.OVERWRITE
    assert loaded.secrets_update_strategy is UpdateStrategy.MERGE
    assert "is not one of: merge, overwrite" in only_problem("secrets_update_strategy", "replace")


# ---------------------------------------------------------------------------------------------
# env_vars, secrets, labels


def test_env_vars_lines_keep_commas_json_and_equals() -> None:
    text = 'A=1,2,3\nJSON={"a": [1, 2], "b": "x=y"}\n# comment\n\nEQ=a=b=c\nEMPTY=\nSPACED=two words'
    assert cfg(env_vars=text).env_vars == {
        "A": "1,2,3",
        "JSON": '{"a": [1, 2], "b": "x=y"}',
        "EQ": "a=b=c",
        "EMPTY": "",
        "SPACED": "two words",
    }


def test_env_vars_yaml_form() -> None:
    text = "A: 010\nB: true\nC: 'True'\nD: 1.50\nE: a=b\nF: https://x/?q=1\nG:\n"
    assert cfg(env_vars=text).env_vars == {
        "A": "010",
        "B": "true",
        "C": "True",
        "D": "1.50",
        "E": "a=b",
        "F": "https://x/?q=1",
        "G": "",
    }


def test_env_vars_line_form_wins_when_first_line_has_equals() -> None:
    assert cfg(env_vars="URL=http://x:8080/a\nB=c: d").env_vars == {"URL": "http://x:8080/a", "B": "c: d"}


def test_env_vars_problems_never_echo_values() -> None:
    found = problems(env_vars="OK=1\nhunter2-secret\nPORT=s3cret\n1X=s3cret\nOK=again")
    text = "\n".join(found)
    assert "s3cret" not in text and "hunter2" not in text
    assert "input 'env_vars': line 2 is not KEY=VALUE; write one KEY=VALUE per line" in found
    assert any('"PORT" is reserved by Cloud Run' in p for p in found)
    assert any('"1X" is not a valid variable name' in p for p in found)
    assert any('"OK" is given twice (line 5)' in p for p in found)
    assert any('"X_GOOGLE_A" is reserved' in p for p in problems(env_vars="X_GOOGLE_A=1"))


def test_env_vars_yaml_problems() -> None:
    assert "is not valid YAML" in only_problem("env_vars", "A: [1\n")
    assert 'the value of "A" is a list' in only_problem("env_vars", "A: [1, 2]")
    assert "a key is given twice" in only_problem("env_vars", "A: 1\nA: 2")
    assert "hunter2" not in only_problem("env_vars", "A: 'hunter2\n")


def test_secrets() -> None:
    text = "DB=db-pass:3\nAPI=api-key\nX=projects/123456/secrets/billing:latest"
    assert cfg(secrets=text).secrets == {
        "DB": SecretRef("db-pass", "3"),
        "API": SecretRef("api-key", "latest"),
        "X": SecretRef("billing", "latest", "123456"),
    }
    assert cfg(secrets="DB: 'db-pass:2'").secrets == {"DB": SecretRef("db-pass", "2")}
    assert 'has version "v2"' in only_problem("secrets", "DB=db:v2")
    assert "is not a secret reference" in only_problem("secrets", "DB=bad name")


def test_env_name_in_both_env_vars_and_secrets() -> None:
    assert problems(env_vars="DB=x", secrets="DB=db-pass") == [
        "input 'secrets': \"DB\" is also set in env_vars; give each variable in one of the two"
    ]


def test_labels() -> None:
    assert cfg(labels="team=core\nenv=prod").labels == {"team": "core", "env": "prod"}
    assert cfg(labels="team: core\nbeta: true").labels == {"team": "core", "beta": "true"}
    assert 'label key "Team" is invalid' in only_problem("labels", "Team=core")
    assert 'label "env" has value "Prod"' in only_problem("labels", "env=Prod")


# ---------------------------------------------------------------------------------------------
# Revision settings


def test_revision_settings_good() -> None:
    revision = cfg(
        cpu="1000m",
        memory="512Mi",
        concurrency="80",
        min_instances="0",
        max_instances="10",
        port="8080",
        request_timeout="5m",
        service_account="run@p.iam.gserviceaccount.com",
        ingress="internal-and-cloud-load-balancing",
        cpu_throttling="true",
        execution_environment="gen2",
        vpc_connector="projects/p/locations/us-central1/connectors/conn",
        vpc_egress="all",
    ).revision
    assert revision == RevisionSettings(
        cpu="1000m",
        memory="512Mi",
        concurrency=80,
        min_instances=0,
        max_instances=10,
        port=8080,
        request_timeout=300,
        service_account="run@p.iam.gserviceaccount.com",
        ingress="internal-and-cloud-load-balancing",
        cpu_throttling=True,
        execution_environment="gen2",
        vpc_connector="projects/p/locations/us-central1/connectors/conn",
        vpc_egress="all-traffic",
    )
    assert cfg(cpu="0.5", memory="2G").revision.cpu == "0.5"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("cpu", "two", "is not a CPU limit"),
        ("cpu", "0", "is not a CPU limit"),
        ("memory", "512MB", "is not a memory limit"),
        ("concurrency", "1001", "use a number from 1 to 1000"),
        ("min_instances", "-1", "use a number of at least 0"),
        ("max_instances", "0", "use a number of at least 1"),
        ("port", "70000", "use a number from 1 to 65535"),
        ("request_timeout", "2h", "use whole seconds from 1s to 3600s"),
        ("request_timeout", "1.5", "use whole seconds"),
        ("service_account", "not-an-email", "is not a service account email"),
        ("ingress", "public", "is not one of: all, internal, internal-and-cloud-load-balancing"),
        ("execution_environment", "gen3", "is not one of: gen1, gen2"),
        ("vpc_connector", "projects/p/connectors/x", "is not a connector"),
        ("vpc_egress", "none", "is not one of: all-traffic, private-ranges-only"),
    ],
)
def test_revision_settings_bad(name: str, value: str, says: str) -> None:
    assert says in only_problem(name, value)


def test_max_instances_below_min() -> None:
    assert problems(min_instances="3", max_instances="2") == [
        "input 'max_instances': 2 is below min_instances 3; use a number of at least 3"
    ]


# ---------------------------------------------------------------------------------------------
# Metadata file


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path.name


KNATIVE = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "my-app"}}


def test_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cfg(metadata=_write(tmp_path / "svc.yaml", KNATIVE)).metadata == KNATIVE
    assert '"nope.yaml" is not a file' in only_problem("metadata", "nope.yaml")
    assert "is not valid YAML" in only_problem("metadata", _write(tmp_path / "bad.yaml", "a: [1"))
    wrong_kind = {**KNATIVE, "kind": "Deployment"}
    assert 'has kind "Deployment"' in only_problem("metadata", _write(tmp_path / "k.yaml", wrong_kind))
    other = {**KNATIVE, "metadata": {"name": "other"}}
    assert 'names service "other" but input service is "my-app"' in only_problem(
        "metadata", _write(tmp_path / "o.yaml", other)
    )
    assert "is not a file" in only_problem("metadata", ".")


# ---------------------------------------------------------------------------------------------
# Endpoints, token, environment, analysis


def test_endpoints() -> None:
    loaded = cfg(api_endpoint="http://127.0.0.1:8123/", monitoring_endpoint="https://mon.example.com/v/")
    assert loaded.api_endpoint == "http://127.0.0.1:8123"
    assert loaded.monitoring_endpoint == "https://mon.example.com/v"
    assert cfg(api_endpoint="http://localhost:1").api_endpoint == "http://localhost:1"
    assert cfg(api_endpoint="http://run.localhost:1").api_endpoint == "http://run.localhost:1"  # as auth
    assert cfg(api_endpoint="http://[::1]:9").api_endpoint == "http://[::1]:9"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("http://run.example.com", "uses plain http for a host that is not loopback"),
        ("https://run.example.com/?x=1", "has a query or fragment"),
        ("ftp://run.example.com", "is not an http(s) URL with a host"),
        ("https://", "is not an http(s) URL with a host"),
        ("https://x:99999", "is not a valid URL"),
    ],
)
def test_endpoints_bad(value: str, says: str) -> None:
    assert says in only_problem("api_endpoint", value)


def test_github_token_is_kept_and_never_shown() -> None:
    loaded = cfg(github_token="ghp_secret")
    assert loaded.github_token == "ghp_secret"
    assert "ghp_secret" not in repr(loaded)


def test_environment() -> None:
    assert cfg(environment="production (eu)").environment == "production (eu)"
    assert "at most 255 characters" in only_problem("environment", "e" * 256)


def test_analysis() -> None:
    analysis = cfg(
        max_error_rate="1.5",
        max_latency_p99="800",
        max_latency_p95="250.5",
        min_requests="100",
        on_inconclusive="extend",
        check_command="./check.sh --strict",
        check_webhook="https://hooks.example.com/c?token=abc",
        failure_threshold="3",
    ).analysis
    assert analysis == AnalysisSettings(
        1.5, 800, 250.5, 100, "extend", "./check.sh --strict", "https://hooks.example.com/c?token=abc", 3
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("max_error_rate", "101", "at most 100 (percent)"),
        ("max_error_rate", "x", "is not a number"),
        ("max_latency_p99", "0", "above 0 (ms)"),
        ("max_latency_p95", "-1", "is not a number"),
        ("min_requests", "1.5", "is not a whole number"),
        ("on_inconclusive", "skip", "is not one of: pass, fail, extend"),
        ("check_webhook", "file:///etc/passwd", "is not an http(s) URL"),
        ("failure_threshold", "0", "use a number of at least 1"),
    ],
)
def test_analysis_bad(name: str, value: str, says: str) -> None:
    assert says in only_problem(name, value)


def test_webhook_problem_does_not_echo_url() -> None:
    assert "tok123" not in only_problem("check_webhook", "gopher://h/?tok123")


# ---------------------------------------------------------------------------------------------
# Hostile values


def test_hostile_values_are_quoted_visibly() -> None:
    message = only_problem("region", "us\n::error::pwned %0A")
    assert "\n" not in message
    assert '"us\\n::error::pwned %0A"' in message
    long = only_problem("region", "x" * 5000)
    assert "(5000 characters)" in long and len(long) < 300


def test_unicode_digits_are_not_numbers() -> None:
    assert "is not a whole number" in only_problem("port", "\uff18\uff10\uff18\uff10")  # fullwidth 8080
    assert "is not a whole number" in only_problem("steps", "\u0661\u0660,100")  # Arabic-Indic 10


# ---------------------------------------------------------------------------------------------
# Run context and suffix


def test_run_context(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    env = {
        "GITHUB_SHA": "ABCDEF0123456789",
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "99",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SERVER_URL": "https://ghe.example.com",
        "GITHUB_API_URL": "https://ghe.example.com/api/v3",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKFLOW": "deploy",
        "GITHUB_ACTOR": "octocat",
    }
    ctx = load({**BASE, **env})[1]
    assert ctx.pr_number == 42 and ctx.run_attempt == "2" and ctx.actor == "octocat"
    assert ctx.run_url == "https://ghe.example.com/o/r/actions/runs/99/attempts/2"
    assert load_context({**env, "GITHUB_EVENT_NAME": "push"}).pr_number is None


@pytest.mark.parametrize("payload", [None, "{not json", "[]", '{"pull_request": {"number": "7"}}'])
def test_pr_number_tolerates_bad_payloads(tmp_path: Path, payload: str | None) -> None:
    path = tmp_path / "event.json"
    if payload is not None:
        path.write_text(payload)
    env = {"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_EVENT_PATH": str(path)}
    assert load_context(env).pr_number is None


def test_image_must_be_a_reference_cloud_run_accepts() -> None:
    good = ["sample/hello:v2", "localhost:5000/app", "us-docker.pkg.dev/p/repo/app:1.2@sha256:" + "a" * 64]
    for image in good:
        assert load({"INPUT_SERVICE": "web", "INPUT_IMAGE": image})[0].image == image
    for image in ("::add-mask::PWNED", "Repo/App", "app:", "app@sha256:zz", "a//b"):
        try:
            load({"INPUT_SERVICE": "web", "INPUT_IMAGE": image})
        except ConfigError as exc:
            assert "input 'image'" in str(exc) and "is not an image reference" in str(exc)
        else:
            raise AssertionError(f"{image!r} accepted")


# ---------------------------------------------------------------------------------------------
# Bounded YAML: aliases, depth, size


def _alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs": 9 levels of 9 aliases each stand for 9**9 strings in a few hundred bytes."""
    lines = ["apiVersion: serving.knative.dev/v1", "kind: Service", 'l0: &l0 ["lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_metadata_alias_bomb_is_a_quick_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    message = only_problem("metadata", _write(tmp_path / "bomb.yaml", _alias_bomb()))
    assert time.monotonic() - started < 2.0
    assert "aliases are expanded" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "[" * 100 + "]" * 100, "nested deeper than"),
        ("a: &a [*a]", "recursive"),
    ],
)
def test_metadata_deep_or_recursive_yaml_is_an_input_error(
    text: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert expected in only_problem("metadata", _write(tmp_path / "deep.yaml", text))


@pytest.mark.parametrize("name", ["env_vars", "secrets", "labels"])
def test_yaml_pairs_inputs_are_bounded(name: str) -> None:
    bomb = "A: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"B{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]\n" for i in range(6)
    )
    message = only_problem(name, bomb)
    assert "aliases are expanded" in message
    assert "x" not in message.split(":", 1)[1].replace("expanded", "")  # no value quoted


def test_yaml_within_the_bounds_still_loads() -> None:
    assert parsers_yaml.load_yaml("a: &x [1, 2]\nb: *x") == {"a": [1, 2], "b": [1, 2]}
    assert parsers_yaml.load_yaml("") is None
