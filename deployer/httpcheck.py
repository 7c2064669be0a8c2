"""`run-canary-http`: the curl-style HTTP check that `check_command` can run inside the action's
container, which has no curl, wget or jq.

    run-canary-http [METHOD] URL [--status 200-399] [--body REGEX] [--header 'Name: value']...
                    [--data TEXT] [--timeout SECONDS]

Exit 0 when the answer's status is accepted (and the body matches ``--body``), 1 when not or when the
request fails, 2 for a usage error. It prints one line: the method, the URL without its userinfo or
query, the status and the time taken; never the body (an app may echo its environment) and never
the headers sent (they may carry a token). Redirects are not followed (a 3xx is the answer).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence

import requests

from deployer.errors import UsageError as Usage
from deployer.redact import redact_url, redact_urls

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_BODY = 1 << 20


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``200,204,300-399`` as ranges; Usage when malformed."""
    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([1-5][0-9][0-9])\s*(?:-\s*([1-5][0-9][0-9])\s*)?", part)
        if not match:
            raise Usage(f"--status {text!r}: expected codes and ranges such as 200,204,300-399")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise Usage(f"--status {text!r}: a range must go up, e.g. 200-299")
        ranges.append((low, high))
    return tuple(ranges)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-canary-http", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="+", metavar="[METHOD] URL")
    parser.add_argument("--status", default="200-399", help="accepted status codes (default 200-399)")
    parser.add_argument("--body", help="regular expression the body must match")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--data", help="request body (sent as is)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args(argv)
    target = list(args.target)
    if len(target) == 2 and target[0].upper() in METHODS:
        args.method, args.url = target[0].upper(), target[1]
    elif len(target) == 1:
        args.method, args.url = ("POST" if args.data is not None else "GET"), target[0]
    else:
        raise Usage(f"expected [METHOD] URL, METHOD one of {', '.join(METHODS)}")
    if not re.match(r"https?://[^/\s]+", args.url):
        raise Usage(f"{redact_url(args.url)} is not an http(s) URL")
    args.statuses = parse_statuses(args.status)
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
            raise Usage("--header: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    args.headers = headers
    try:
        args.pattern = re.compile(args.body) if args.body is not None else None
    except re.error as exc:
        raise Usage(f"--body is not a valid regular expression: {exc}") from None
    if not 0 < args.timeout <= 300:
        raise Usage("--timeout: give seconds between 0 and 300")
    return args


def check(args: argparse.Namespace) -> tuple[bool, str]:
    """(passed, the line to print)."""
    shown = f"{args.method} {redact_url(args.url)}"
    start = time.monotonic()
    try:
        with requests.request(
            args.method,
            args.url,
            headers=args.headers,
            data=args.data,
            timeout=args.timeout,
            allow_redirects=False,
            stream=True,
        ) as resp:
            status = resp.status_code
            body = resp.raw.read(MAX_BODY, decode_content=True) if args.pattern is not None else b""
    except requests.RequestException as exc:
        return False, f"{shown}: {type(exc).__name__}: {redact_urls(str(exc))[:300]}"
    took = f"in {time.monotonic() - start:.2f} s"
    if not any(low <= status <= high for low, high in args.statuses):
        return False, f"{shown} -> {status} {took} (expected {args.status})"
    if args.pattern is not None:
        text = body.decode(resp.encoding or "utf-8", errors="replace")
        if not args.pattern.search(text):
            size = f"{len(text)} characters; not shown"
            return False, f"{shown} -> {status} {took}, body did not match ({size})"
    return True, f"{shown} -> {status} {took}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except Usage as exc:
        print(f"run-canary-http: {exc}", file=sys.stderr)
        return 2
    ok, line = check(args)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
