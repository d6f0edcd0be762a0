"""Printing results: JSON for machines (one object per line), plain text for people."""

from __future__ import annotations

import sys
from typing import Any

from core.codec import dumps


def print_json(payload: Any) -> None:
    sys.stdout.write(dumps(payload).decode() + "\n")
