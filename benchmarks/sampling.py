"""Samples of a figure and its twin, taken in turn, for every bench."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def alternated(
    samples: dict[str, Callable[[], float]], repeat: int, warmup: int = 2
) -> dict[str, float]:
    """Median seconds of each measurement, taken in turn; each returns its own time, so
    that what it waits for off the clock stays off it."""
    for _ in range(warmup):
        for sample in samples.values():
            sample()
    taken: dict[str, list[float]] = {name: [] for name in samples}
    for _ in range(repeat):
        for name, sample in samples.items():
            taken[name].append(sample())
    return {name: statistics.median(values) for name, values in taken.items()}
