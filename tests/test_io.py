"""Atomic writes: a failed write leaves neither a partial file nor a temporary one."""

import os
import stat

import pytest

from debatch.core.io import atomic_path, write_text


def test_failure_keeps_previous_output_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text("complete", target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_outputs_get_ordinary_permissions(tmp_path):
    write_text("x", tmp_path / "out.txt")
    mode = stat.S_IMODE((tmp_path / "out.txt").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_a_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    """kill -9 skips the cleanup: the next write of the same output removes what was left,
    and only that output's temporaries (another output's in the same folder stay)."""
    left = tmp_path / ".shard0.k3j2h1g0.tmp.npz"
    other = tmp_path / ".shard0.x.k3j2h1g0.tmp.npz"  # output shard0.x.npz, still being written
    left.write_bytes(b"half a file")
    other.write_bytes(b"another job")
    with atomic_path(tmp_path / "shard0.npz") as tmp:
        tmp.write_bytes(b"done")
    assert not left.exists() and other.exists()
    assert (tmp_path / "shard0.npz").read_bytes() == b"done"
