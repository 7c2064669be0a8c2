#!/usr/bin/env python3
"""The action.yml of a release: run the image built for it, by digest, keeping the post step.

In the repository, action.yml says ``image: Dockerfile``: every job that uses an unreleased ref builds
the image first (base pull, pip install). A release instead commits an action.yml whose
``runs.image`` is ``docker://ghcr.io/<owner>/<repo>@sha256:<digest>``: the runner pulls that exact
image and still runs ``post-entrypoint`` in a fresh container of it after the main step (a workflow
that uses ``docker://...`` directly has no action.yml, and so no post step). Only the image line
changes; everything else, comments included, stays byte for byte.

    python scripts/release_action.py pin --image ghcr.io/o/r@sha256:<64 hex> [--file action.yml]
    python scripts/release_action.py image [--file action.yml]      # the pinned reference, or exit 1
    python scripts/release_action.py notes --version 1.2.3 [--changelog CHANGELOG.md]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

# A registry path and a digest, nothing else: a tag could be moved to another image after release.
IMAGE_REF = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::[0-9]+)?(?:/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}"
)
_IMAGE_LINE = re.compile(r"^(?P<indent>[ \t]+)image:[ \t]*(?P<value>\S.*?)[ \t]*$", re.MULTILINE)


class ReleaseError(ValueError):
    """The action.yml or the image reference cannot make a release."""


def _load(text: str) -> Any:
    import yaml  # here: `notes` runs where only the standard library is installed

    return yaml.safe_load(text)


def _runs(text: str) -> dict[str, Any]:
    data = _load(text)
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, dict):
        raise ReleaseError("action.yml has no runs: mapping")
    return runs


def pin(text: str, image: str) -> str:
    """action.yml text with ``runs.image: Dockerfile`` replaced by ``docker://<image>``."""
    if not IMAGE_REF.fullmatch(image):
        raise ReleaseError(f"image {image!r} is not <registry>/<path>@sha256:<64 hex digits>")
    runs = _runs(text)
    if runs.get("using") != "docker":
        raise ReleaseError(f"runs.using is {runs.get('using')!r}, not docker")
    if runs.get("image") != "Dockerfile":
        raise ReleaseError(f"runs.image is {runs.get('image')!r}, not Dockerfile (already a release?)")
    lines = [m for m in _IMAGE_LINE.finditer(text) if m.group("value").strip("'\"") == "Dockerfile"]
    if len(lines) != 1:
        raise ReleaseError(f"expected one 'image: Dockerfile' line in action.yml, found {len(lines)}")
    line = lines[0]
    indent = line.group("indent")
    replacement = (
        f"{indent}# A release: the image built for it, pulled by digest (scripts/release_action.py).\n"
        f"{indent}image: docker://{image}"
    )
    out = text[: line.start()] + replacement + text[line.end() :]
    after = _runs(out)
    if after.get("image") != f"docker://{image}" or after.get("post-entrypoint") != runs.get(
        "post-entrypoint"
    ):
        raise ReleaseError("pinning changed more than runs.image")  # pragma: no cover - a bug here
    if _load(out).get("inputs") != _load(text).get("inputs"):
        raise ReleaseError("pinning changed the inputs")  # pragma: no cover - a bug here
    return out


def pinned_image(text: str) -> str:
    """The image reference a release's action.yml runs (``docker://`` stripped)."""
    image = str(_runs(text).get("image", ""))
    if not image.startswith("docker://") or not IMAGE_REF.fullmatch(image.removeprefix("docker://")):
        raise ReleaseError(f"runs.image {image!r} is not docker://<image>@sha256:<digest>")
    return image.removeprefix("docker://")


def notes(changelog: str, version: str) -> str:
    """The changelog's section for ``version`` (a heading naming it, up to the next such heading)."""
    heading = re.compile(r"^(#{1,3})\s+\[?v?" + re.escape(version) + r"\]?(?:[ \t].*)?$", re.MULTILINE)
    found = heading.search(changelog)
    if not found:
        raise ReleaseError(f"no section for {version} in the changelog")
    level = len(found.group(1))
    rest = changelog[found.end() :]
    following = re.search(rf"^#{{1,{level}}}\s", rest, re.MULTILINE)
    body = rest[: following.start()] if following else rest
    return body.strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_pin = sub.add_parser("pin", help="rewrite action.yml to run the given image by digest")
    p_pin.add_argument("--image", required=True)
    p_pin.add_argument("--file", type=Path, default=Path("action.yml"))
    p_image = sub.add_parser("image", help="print the image a release's action.yml runs")
    p_image.add_argument("--file", type=Path, default=Path("action.yml"))
    p_notes = sub.add_parser("notes", help="print the changelog section of a version")
    p_notes.add_argument("--version", required=True)
    p_notes.add_argument("--changelog", type=Path, default=Path("CHANGELOG.md"))
    args = parser.parse_args(argv)
    try:
        if args.command == "pin":
            args.file.write_text(pin(args.file.read_text(encoding="utf-8"), args.image), encoding="utf-8")
        elif args.command == "image":
            print(pinned_image(args.file.read_text(encoding="utf-8")))
        else:
            print(notes(args.changelog.read_text(encoding="utf-8"), args.version.removeprefix("v")), end="")
    except (ReleaseError, OSError) as exc:
        print(f"release_action: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
