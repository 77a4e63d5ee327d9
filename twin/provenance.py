"""Provenance records: what produced an output (config, inputs' hashes, versions, commit)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

from twin import __version__
from twin.io import sha256_tree

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "xarray", "h5py",
             "h5netcdf", "pandas", "pyarrow", "scipy", "statsmodels", "matplotlib")


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape `twin`'s numbers."""
    out = {"twin": __version__, "python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The git commit of the `twin` source tree (with ``+dirty`` if modified), or None."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def provenance(config: Any = None, inputs: Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
    """A JSON-ready record: config, SHA-256 of each input path, package versions, commit, time."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "inputs": {str(p): sha256_tree(p) for p in inputs},
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
