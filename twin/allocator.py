"""Host memory allocator for the ``twin`` command: tcmalloc when the system has it.

XLA's CPU backend allocates and frees its large temporaries on every call; with glibc's malloc
each allocation above 32 MB is a fresh ``mmap`` whose pages fault in again at every training
step. Preloading tcmalloc (Debian/Ubuntu: ``apt install libtcmalloc-minimal4``), which keeps freed
memory for reuse, made the demo twin's training step 1.2x faster and the Sensorium-sized one 1.8x
(benchmarks/README.md, 2026-12-05); glibc's ``hugetlb`` and ``mmap_threshold`` tunables and
jemalloc did not help.

The ``twin`` console script (:func:`entry`) therefore re-executes itself once with tcmalloc in
``LD_PRELOAD`` when it finds the library and it is not loaded yet. ``TWIN_ALLOCATOR=system``
turns this off; ``TWIN_TCMALLOC=/path/libtcmalloc...so`` names the library. Nothing changes
where no tcmalloc is installed, or off Linux. (A library cannot switch allocators once Python
has started, so ``python -c 'from twin.cli import main; ...'`` and the tests use the system's.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

SWITCH = "TWIN_ALLOCATOR"        # "system": never preload tcmalloc
LIBRARY = "TWIN_TCMALLOC"        # an explicit tcmalloc library path
NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
# tcmalloc reports every allocation above 1 GB on stderr by default; XLA makes such allocations
# routinely at large sizes
QUIET = ("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 60))


def find_tcmalloc(environ: Mapping[str, str] = os.environ, dirs=DIRS) -> str | None:
    """The tcmalloc shared library to preload: ``TWIN_TCMALLOC`` if it names a file, else the
    first of ``NAMES`` found in ``dirs``; None if there is none."""
    explicit = environ.get(LIBRARY)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for d in dirs:
        for name in NAMES:
            p = Path(d) / name
            if p.is_file():
                return str(p)
    return None


def preload_env(environ: Mapping[str, str], platform: str = sys.platform,
                library: str | None = None) -> dict[str, str] | None:
    """The environment to re-execute the command with (tcmalloc first in ``LD_PRELOAD``), or None
    to run on as it is: off Linux, with ``TWIN_ALLOCATOR=system``, when tcmalloc is already
    preloaded, or when no library is found (``library``: found by :func:`find_tcmalloc`)."""
    if not platform.startswith("linux") or environ.get(SWITCH, "").strip().lower() == "system":
        return None
    if "tcmalloc" in environ.get("LD_PRELOAD", ""):
        return None       # already preloaded (this also stops a second re-execution)
    lib = library if library is not None else find_tcmalloc(environ)
    if lib is None:
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = " ".join(v for v in (lib, environ.get("LD_PRELOAD", "").strip()) if v)
    env.setdefault(*QUIET)
    return env


def in_use() -> str:
    """``"tcmalloc"`` if this process has tcmalloc mapped, else ``"system"``."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "tcmalloc" if "tcmalloc" in maps else "system"


def reexec_with_tcmalloc(command: list[str]) -> None:
    """Replace this process by ``command`` (an argv whose first item is the program) with
    tcmalloc preloaded, when :func:`preload_env` says so; else (or if the exec fails) return and
    run on as is."""
    env = preload_env(os.environ)
    if env is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, env)
    except OSError:
        return
