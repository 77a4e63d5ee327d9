"""The `twin` command's allocator choice (twin.allocator): when it re-executes with tcmalloc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from twin.allocator import QUIET, find_tcmalloc, preload_env


def test_preload_env_puts_tcmalloc_first_and_quietens_its_large_allocation_reports(tmp_path):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    env = preload_env({"PATH": "/bin", "LD_PRELOAD": "libother.so"}, "linux", str(lib))
    assert env["LD_PRELOAD"] == f"{lib} libother.so" and env["PATH"] == "/bin" and env[QUIET[0]] == QUIET[1]
    assert preload_env({}, "linux", str(lib))["LD_PRELOAD"] == str(lib)
    # a user's own report threshold is kept
    assert preload_env({QUIET[0]: "100"}, "linux", str(lib))[QUIET[0]] == "100"


def test_preload_env_runs_on_as_is_off_linux_when_switched_off_already_loaded_or_not_found(tmp_path):
    lib = str(tmp_path / "libtcmalloc.so.4")
    assert preload_env({}, "darwin", lib) is None
    assert preload_env({"TWIN_ALLOCATOR": "system"}, "linux", lib) is None
    assert preload_env({"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4"}, "linux", lib) is None
    assert preload_env({"TWIN_TCMALLOC": str(tmp_path / "missing.so")}, "linux") is None


def test_find_tcmalloc_prefers_the_named_library_then_searches_the_directories(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    (d2 / "libtcmalloc.so.4").write_bytes(b"")
    assert find_tcmalloc({}, (str(d1), str(d2))) == str(d2 / "libtcmalloc.so.4")
    (d1 / "libtcmalloc_minimal.so.4").write_bytes(b"")
    assert find_tcmalloc({}, (str(d1), str(d2))) == str(d1 / "libtcmalloc_minimal.so.4")
    assert find_tcmalloc({}, (str(tmp_path / "none"),)) is None
    named = tmp_path / "my_tcmalloc.so"
    named.write_bytes(b"")
    assert find_tcmalloc({"TWIN_TCMALLOC": str(named)}, (str(d1),)) == str(named)


def _version(env: dict) -> str:
    code = "import sys; sys.argv = ['twin', '--version']; from twin.cli import entry; entry()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_console_entry_reexecutes_with_tcmalloc_where_the_system_has_it():
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TWIN_ALLOCATOR")}
    assert "host memory allocator: system" in _version({**base, "TWIN_ALLOCATOR": "system"})
    if find_tcmalloc(base) is None:
        assert "host memory allocator: system" in _version(base)
        pytest.skip("no tcmalloc on this machine (apt install libtcmalloc-minimal4): only the fallback checked")
    assert "host memory allocator: tcmalloc" in _version(base)
