"""``python -m cloudrun_emulator``: serve the Cloud Run emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from cloudrun_emulator.images import ImageCatalogue
from cloudrun_emulator.server import Emulator


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m cloudrun_emulator", description="Local Cloud Run Admin API v1 emulator."
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="REF=COMMAND",
        help="run COMMAND for image REF (any tag or digest); repeatable",
    )
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how long a change takes to become Ready (default 0.5)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a revision may take to listen on PORT before it fails (default 10)",
    )
    parser.add_argument(
        "--metric-sampling",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="Cloud Monitoring sampling window of request metrics (default 60, as Cloud Run)",
    )
    parser.add_argument(
        "--metric-lag",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long after its window a metric point becomes visible (default 180, Google's maximum)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start, announce the URL on the first stdout line, serve until a stop signal."""
    args = parse_args(argv)
    try:
        images = dict(ImageCatalogue.parse_mapping(text) for text in args.image)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for flag, value in (
        ("--ready-delay", args.ready_delay),
        ("--metric-sampling", args.metric_sampling),
        ("--metric-lag", args.metric_lag),
    ):
        if value < 0:
            print(f"error: {flag} must not be negative", file=sys.stderr)
            return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator = Emulator(
            port=args.port,
            host=args.host,
            images=images,
            ready_delay=args.ready_delay,
            start_timeout=args.start_timeout,
            metric_sampling=args.metric_sampling,
            metric_lag=args.metric_lag,
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    with emulator:
        print(f"Cloud Run emulator listening on {emulator.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
