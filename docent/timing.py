"""Milliseconds since a time.perf_counter() mark: the unit of every `timings` entry."""

from __future__ import annotations

import time


def elapsed_ms(since: float, digits: int | None = None) -> float:
    ms = (time.perf_counter() - since) * 1000
    return ms if digits is None else round(ms, digits)
