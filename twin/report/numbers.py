"""One way to turn numbers into text, shared by the HTML page and its JSON twin.

Every float the report shows is first rounded with :func:`rounded` (3 significant digits) and
then written with :func:`fmt`; the JSON stores the rounded value, so the number a reader sees
on the page and the number a script reads from the JSON are the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SIG_DIGITS = 3


def rounded(x: Any) -> Any:
    """``x`` rounded to 3 significant digits (ints, bools, None and strings pass through;
    NaN/inf become None, which JSON can hold)."""
    if x is None or isinstance(x, (bool, np.bool_, str)):
        return bool(x) if isinstance(x, np.bool_) else x
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{SIG_DIGITS}g}")


def fmt(x: Any) -> str:
    """The page's text for a value already passed through :func:`rounded`."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.{SIG_DIGITS}g}"
    return str(x)


def clean(obj: Any) -> Any:
    """A JSON-ready deep copy of ``obj`` with every number passed through :func:`rounded`."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean(v) for v in obj.tolist()]
    return rounded(obj)


def iter_numbers(obj: Any, path: str = ""):
    """Yield ``(dotted_path, number)`` for every int/float leaf of a JSON-like object."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from iter_numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from iter_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj
