"""twin.io: atomic writes leave either the old or the new output, never a partial one."""

from __future__ import annotations

import hashlib

import pytest

from twin.io import atomic_path, sha256_file, sha256_tree, write_text_atomic


def test_a_successful_write_appears_only_at_the_end(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists() and tmp.parent == target.parent
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_directory_writes_replace_the_old_folder_or_leave_it(tmp_path):
    target = tmp_path / "d"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, is_dir=True) as tmp:
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a"] and [p.name for p in tmp_path.iterdir()] == ["d"]
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]


def test_hashes_match_hashlib_and_a_tree_hash_sees_names_and_bytes(tmp_path):
    f = write_text_atomic(tmp_path / "t" / "a.txt", "abc")
    assert sha256_file(f, chunk=1) == hashlib.sha256(b"abc").hexdigest()
    assert sha256_tree(f) == sha256_file(f)
    h1 = sha256_tree(tmp_path / "t")
    f.rename(tmp_path / "t" / "b.txt")
    assert sha256_tree(tmp_path / "t") != h1
