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
