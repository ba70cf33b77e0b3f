"""atomic_write: the permissions of the file it writes."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from handwriting._io import atomic_write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_file_gets_the_umask_mode(tmp_path, umask_022):
    with atomic_write(tmp_path / "new.txt") as f:
        f.write("x")
    assert _mode(tmp_path / "new.txt") == 0o644  # as open() would create it, not mkstemp's 0600
    os.umask(0o077)
    with atomic_write(tmp_path / "private.txt") as f:
        f.write("x")
    assert _mode(tmp_path / "private.txt") == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_overwritten_file_keeps_its_mode(tmp_path, umask_022, mode):
    p = tmp_path / "secret.json"
    p.write_text("old")
    p.chmod(mode)
    with atomic_write(p) as f:
        f.write("new")
    assert p.read_text() == "new" and _mode(p) == mode


def test_failure_leaves_the_file_and_no_temporary(tmp_path):
    p = tmp_path / "keep.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert p.read_text() == "old" and sorted(q.name for q in tmp_path.iterdir()) == ["keep.txt"]
