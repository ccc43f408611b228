"""kill -9 of ``nmodal extract``: its decode workers, forkserver and resource tracker exit too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.features.datasets import write_dataset

RUN_CLI = Path(__file__).with_name("run_cli.py")


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        path = Path(f"/proc/{p}/task/{p}/children")
        try:
            kids = [int(c) for c in path.read_text().split()]
        except OSError:
            continue
        out.update(kids)
        todo.extend(kids)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_extract_takes_its_children_along(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=30)
    cmd = [sys.executable, str(RUN_CLI), "extract", str(ds), "--out", str(tmp_path / "store")]
    cmd += ["--encoders", "fake", "--modalities", "text,video,audio", "--workers", "2"]
    cmd += ["--shard-size", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        kids: set[int] = set()
        while len(kids) < 4:  # forkserver + resource tracker + 2 workers
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"workers did not start: {kids}"
            time.sleep(0.05)
            kids = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [k for k in kids if alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"{len(left)} of {len(kids)} child processes outlived kill -9 of extract"


def _forkserver_of(pid: int) -> int | None:
    for kid in descendants(pid):
        try:
            if b"forkserver" in Path(f"/proc/{kid}/cmdline").read_bytes():
                return kid
        except OSError:
            continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_while_the_forkserver_starts_leaves_nothing_running(tmp_path: Path) -> None:
    """The narrow window: extract is killed while its forkserver is still importing its
    preload modules. The forkserver then already has the request for the first worker in
    its socket (which holds the "alive" pipe open), so only its lifeline can stop it; it
    must tie itself to the process that started it, not to whatever adopted it."""
    ds = write_dataset(tmp_path / "ds", num_videos=4)
    for trial in range(4):
        cmd = [sys.executable, str(RUN_CLI), "extract", str(ds)]
        cmd += ["--out", str(tmp_path / f"store{trial}"), "--encoders", "fake"]
        cmd += ["--modalities", "text,video", "--workers", "1", "--no-progress"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = None
        deadline = time.monotonic() + 120
        while server is None and proc.poll() is None and time.monotonic() < deadline:
            server = _forkserver_of(proc.pid)
        time.sleep(0.02 * trial)
        kids = descendants(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        assert server is not None, "the forkserver never started"
        deadline = time.monotonic() + 10
        while any(alive(k) for k in kids | {server}) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [k for k in kids | {server} if alive(k)]
        for k in left:
            os.kill(k, signal.SIGKILL)
        assert not left, f"trial {trial}: {left} outlived kill -9 during the forkserver's start"
