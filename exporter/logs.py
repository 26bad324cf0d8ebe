"""Logging setup, shared by the command line and the collection process."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, target: str = "") -> None:
    """logfmt-like lines on stderr (journald, docker logs) at `level` and above; with
    `target` (a cluster of --config-file), each line names it."""
    named = f" target={target}" if target else ""
    logging.basicConfig(
        level=level.upper(),
        format=f"ts=%(asctime)s level=%(levelname)s logger=%(name)s{named} msg=%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
