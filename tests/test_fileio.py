"""atomic_write: the target is complete or untouched, never clobbered without overwrite=True."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

import pytest

from cod_lite.errors import CodLiteError, OutputError
from cod_lite.fileio import atomic_write


def _entries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_bytes(tmp_path):
    target = tmp_path / "out.cod"
    assert atomic_write(target, b"payload") == target
    assert target.read_bytes() == b"payload"
    assert _entries(tmp_path) == ["out.cod"]


def test_accepts_str_paths_and_callables(tmp_path):
    target = atomic_write(str(tmp_path / "out.bin"), lambda f: f.write(b"from a callable"))
    assert target.read_bytes() == b"from a callable"


def test_refuses_to_overwrite_and_keeps_old_content(tmp_path):
    target = tmp_path / "out.cod"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match=r"'.*out\.cod' already exists; replace it with overwrite=True"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["out.cod"]


def test_file_created_meanwhile_is_not_clobbered(tmp_path):
    target = tmp_path / "out.cod"

    def racing_writer(f):
        target.write_bytes(b"someone else")  # appears after the up-front existence check
        f.write(b"ours")

    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, racing_writer)
    assert target.read_bytes() == b"someone else"
    assert _entries(tmp_path) == ["out.cod"]


def test_overwrites_when_asked(tmp_path):
    target = tmp_path / "out.cod"
    target.write_bytes(b"old")
    atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert _entries(tmp_path) == ["out.cod"]


def test_missing_folder(tmp_path):
    target = tmp_path / "nowhere" / "out.cod"
    with pytest.raises(OutputError, match=r"cannot write '.*out\.cod': folder '.*nowhere' does not exist"):
        atomic_write(target, b"x")


def test_folder_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(OutputError, match=r"'.*afile' is not a folder"):
        atomic_write(tmp_path / "afile" / "out.cod", b"x")


def test_target_is_a_folder(tmp_path):
    (tmp_path / "out.cod").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        atomic_write(tmp_path / "out.cod", b"x", overwrite=True)
    assert _entries(tmp_path) == ["out.cod"]


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    # Root (as in CI) may write anywhere, so the refusal is simulated where the OS would raise it.
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(OutputError, match=r"cannot write '.*out\.cod': permission denied"):
        atomic_write(tmp_path / "out.cod", b"x")


@pytest.mark.parametrize("failure", [RuntimeError("encoder broke"), KeyboardInterrupt()])
def test_failing_writer_leaves_nothing(tmp_path, failure):
    def writer(f):
        f.write(b"half")
        raise failure

    with pytest.raises(type(failure)):
        atomic_write(tmp_path / "out.cod", writer)
    assert _entries(tmp_path) == []


def test_failing_overwrite_keeps_old_file(tmp_path):
    target = tmp_path / "out.cod"
    target.write_bytes(b"old")

    def writer(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="cannot write '.*out.cod': No space left on device"):
        atomic_write(target, writer, overwrite=True)
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["out.cod"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_permissions_follow_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        target = atomic_write(tmp_path / "out.cod", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_overwrite_keeps_existing_permissions(tmp_path):
    target = tmp_path / "out.cod"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(target, b"new", overwrite=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_filesystem_without_hard_links(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    target = atomic_write(tmp_path / "out.cod", b"payload")
    assert target.read_bytes() == b"payload"
    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, b"again")
    assert _entries(tmp_path) == ["out.cod"]


def test_output_error_is_a_cod_lite_error():
    assert issubclass(OutputError, CodLiteError)
