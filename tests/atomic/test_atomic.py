"""The atomic-write helper: every crash state of a directory swap recovers to one version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmodal import atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fill(d: Path, text: str) -> None:
    d.mkdir()
    (d / "a.txt").write_text(text)
    (d / "b.txt").write_text(text * 2)


def _read(d: Path) -> tuple[str, str]:
    return (d / "a.txt").read_text(), (d / "b.txt").read_text()


def test_write_file_replaces_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic.write_text(target, "one")
    atomic.write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_failed_file_write_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic.writing_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_stale_file_temp_of_dead_writer_is_cleaned(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    stale = tmp_path / f".x.bin.nmodal-tmp-{_dead_pid()}-abcd"
    stale.write_bytes(b"half")
    live = tmp_path / f".x.bin.nmodal-tmp-{os.getppid()}-abcd"  # a running process's
    live.write_bytes(b"busy")
    atomic.write_bytes(target, b"new")
    assert not stale.exists() and live.exists()


def test_replace_dir_new_and_existing(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with atomic.replacing_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with atomic.replacing_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_failed_dir_write_keeps_old(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with atomic.replacing_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic.replacing_dir(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize(
    "state",
    ["staging", "ready_before_commit", "after_commit", "old_left", "old_only"],
)
def test_every_crash_state_recovers(tmp_path: Path, state: str) -> None:
    """The states a kill -9 can leave between the steps of a swap (see nmodal.atomic)."""
    pid = _dead_pid()
    out = tmp_path / "idx"
    staging = tmp_path / f".idx.nmodal-tmp-{pid}-0000"
    ready = tmp_path / f".idx.nmodal-ready-{pid}"
    old = tmp_path / f".idx.nmodal-old-{pid}"
    if state == "staging":  # killed while filling: old stays
        _fill(out, "old")
        _fill(staging, "half")
        expect = "old"
    elif state == "ready_before_commit":  # new complete, old not yet moved: old stays
        _fill(out, "old")
        _fill(ready, "new")
        expect = "old"
    elif state == "after_commit":  # old moved aside, new not yet in place: roll forward
        _fill(old, "old")
        _fill(ready, "new")
        expect = "new"
    elif state == "old_left":  # new in place, old not yet deleted
        _fill(out, "new")
        _fill(old, "old")
        expect = "new"
    else:  # only the old one left aside: put it back
        _fill(old, "old")
        expect = "old"
    atomic.recover_dir(out)
    assert _read(out) == (expect, expect * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_killed_swap_subprocess_recovers(tmp_path: Path) -> None:
    """A real kill -9 at each step of the swap, then recovery: always one complete version."""
    code = r"""
import os, sys, signal
from pathlib import Path
from nmodal import atomic
step = int(sys.argv[2])
real_rename = os.rename
count = [0]
def rename(a, b):
    count[0] += 1
    if count[0] == step:
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(a, b)
atomic.os.rename = rename
with atomic.replacing_dir(Path(sys.argv[1])) as tmp:
    (tmp / "a.txt").write_text("new")
    (tmp / "b.txt").write_text("newnew")
"""
    for step in (1, 2, 3, 4):
        root = tmp_path / f"s{step}"
        out = root / "idx"
        root.mkdir()
        _fill(out, "old")
        env = {**os.environ, "PYTHONPATH": str(Path(atomic.__file__).parents[1])}
        proc = subprocess.run([sys.executable, "-c", code, str(out), str(step)], env=env)
        assert proc.returncode in (0, -9)
        atomic.recover_dir(out)
        got = _read(out)
        assert got in {("old", "oldold"), ("new", "newnew")}, (step, got)
        assert [p.name for p in root.iterdir()] == ["idx"]
        if step == 3:  # killed after the commit point: the new version wins
            assert got == ("new", "newnew")


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    """safetensors and temporary files are created 0600: a server running as another user
    could not read a model or a store. Published files get open()'s mode under the umask."""
    import os
    import stat

    import numpy as np
    from safetensors.numpy import save_file

    from nmodal.atomic import FILE_MODE, replacing_dir, writing_file

    with writing_file(tmp_path / "shard.safetensors") as tmp:
        save_file({"a": np.zeros(3)}, str(tmp))
    with replacing_dir(tmp_path / "model") as folder:
        save_file({"a": np.zeros(3)}, str(folder / "model.safetensors"))
    for path in (tmp_path / "shard.safetensors", tmp_path / "model" / "model.safetensors"):
        assert stat.S_IMODE(os.stat(path).st_mode) == FILE_MODE
