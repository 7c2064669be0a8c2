"""The command line: the action's engine for a terminal or another CI system (GitLab CI, Cloud Build).

    python -m deployer deploy --service my-app --image REF [--api-endpoint URL] [...]
    run-canary promote --service my-app --region europe-west1

Every input of the action is a flag of the same name (``--step-interval`` or ``--step_interval``),
made from its row of ``deployer.input_table`` (default, section, description) so that a new input
gets its flag and its help without touching this file. The flags only set ``INPUT_<NAME>`` on top
of the process environment and call the action's ``main``: defaults, validation, messages and exit
codes are the action's, by construction, and ``INPUT_*`` variables keep working (a flag wins over
the variable).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence

from deployer import __version__
from deployer.input_table import BY_NAME, INPUTS, InputSpec
from deployer.settings import Mode

BOOLEAN_DEFAULTS = ("true", "false")
# Options of the command line itself; no input may take these names.
CLI_OPTIONS = frozenset({"output", "debug", "help", "version"})

DESCRIPTION = """\
Canary deploys to Google Cloud Run: the image as a tagged revision with no traffic, wait until it
is ready, smoke-check it, move traffic to it in steps, roll back on any failure. The engine of the
run-canary GitHub Action, with the same inputs, defaults, validation and exit codes.
"""

EPILOG = """\
Every input can also be given as INPUT_<NAME> in the environment, as a GitHub runner does
(INPUT_STEP_INTERVAL=5s); a flag wins over the variable. Flags also accept the input's own name
with underscores (--step_interval). Boolean flags alone mean true (--dry-run); --dry-run=false.

Exit codes: 0 promoted, paused, deployed, planned (dry run), or rolled back in mode rollback;
1 a deploy that failed or was rolled back, a cancelled run, invalid input, or any error;
2 a command line that could not be parsed.

The log is for a person (headings, error: and warning: lines, colour on a terminal unless
NO_COLOR is set); with GITHUB_ACTIONS=true it is the runner's workflow commands instead.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help wrapped at spaces only: a flag, URL or `non-zero` is never split at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def flag(name: str) -> str:
    """``step_interval`` -> ``--step-interval``."""
    return "--" + name.replace("_", "-")


def _help(spec: InputSpec) -> str:
    """The input's description and its default, escaped for argparse's %-formatting."""
    description = spec.description or "See the action's README."
    if spec.default:
        description += f" [default: {spec.default}]"
    return description.replace("%", "%%")


def _add_input(group: argparse._ArgumentGroup, spec: InputSpec) -> None:
    """One input as a flag (plus a hidden underscore spelling), leaving None when not given."""
    name = spec.name
    spelled = [flag(name)] + ([f"--{name}"] if "_" in name else [])
    kind: dict[str, object]
    if spec.default in BOOLEAN_DEFAULTS:
        kind = {"nargs": "?", "const": "true", "metavar": "BOOL"}
    elif spec.repeat:
        kind = {"action": "append", "metavar": "LINE"}
    else:
        kind = {"metavar": "VALUE"}
    group.add_argument(spelled[0], dest=name, default=None, help=_help(spec), **kind)  # type: ignore[arg-type]
    for alias in spelled[1:]:
        group.add_argument(alias, dest=name, default=None, help=argparse.SUPPRESS, **kind)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    """The parser: a mode, then one flag per input, in the README's sections."""
    parser = argparse.ArgumentParser(
        prog="run-canary",
        usage="%(prog)s [deploy|promote|rollback|job] --service NAME [--image REF] [--INPUT VALUE ...]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    modes = [m.value for m in Mode]
    parser.add_argument(
        "mode",
        nargs="?",
        choices=modes,
        help=_help(BY_NAME["mode"]),
    )
    parser.add_argument("--mode", dest="mode_flag", choices=modes, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="json: print the outputs (url, tag_url, revision, previous_revision, result, traffic, "
        "job_execution, job_result, job_log_url) as one JSON object on stdout, and the log on stderr. "
        "[default: text]",
    )
    parser.add_argument("--debug", action="store_true", help="Also print debug lines.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sections: dict[str, argparse._ArgumentGroup] = {}
    for spec in INPUTS:
        if spec.name == "mode":
            continue
        if spec.section not in sections:
            sections[spec.section] = parser.add_argument_group(spec.section)
        _add_input(sections[spec.section], spec)
    return parser


def input_env(
    args: argparse.Namespace, env: Mapping[str, str], parser: argparse.ArgumentParser
) -> dict[str, str]:
    """The environment the action's main reads: ``env`` with ``INPUT_<NAME>`` set from given flags."""
    merged = dict(env)
    if args.mode and args.mode_flag and args.mode != args.mode_flag:
        parser.error(f"mode {args.mode!r} and --mode {args.mode_flag!r} disagree; give one")
    values = {spec.name: getattr(args, spec.name) for spec in INPUTS if spec.name != "mode"}
    values["mode"] = args.mode or args.mode_flag
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):  # a repeatable line input
            value = "\n".join(value)
        merged[f"INPUT_{name.upper()}"] = value
    return merged


def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python -m deployer`` and the ``run-canary`` console script; returns the exit code."""
    from deployer.main import main  # after parsing: --help needs neither requests nor google-auth

    parser = build_parser()
    args = parser.parse_args(argv)
    full = input_env(args, os.environ if env is None else env, parser)
    return main(full, output=args.output, debug=args.debug)


if __name__ == "__main__":
    sys.exit(run())
