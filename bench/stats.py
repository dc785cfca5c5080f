"""Summaries of latency samples and memory series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, min, median, p95, max and mean of samples in milliseconds (None when empty)."""
    if not samples_ms:
        return {"n": 0, "min": None, "median": None, "p95": None, "max": None, "mean": None}
    values = np.asarray(samples_ms, dtype=float)
    return {
        "n": len(values),
        "min": round(float(values.min()), 3),
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
        "mean": round(float(values.mean()), 3),
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs."""
    if len(xs) < 3:
        return None
    fitted: float = np.polyfit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), 1)[0]
    return float(fitted)


def ms(later: float | None, earlier: float | None) -> float | None:
    """Milliseconds from `earlier` to `later` (seconds), None if either is missing."""
    if later is None or earlier is None:
        return None
    return (later - earlier) * 1000.0
