"""kill -9 at random points of extract, train, index build and index add: the rerun ends
byte-identical to an uninterrupted run, and no half-written output is ever accepted.

Each command runs in a subprocess (the CLI with the tests' fake encoders); it is killed after
a seeded random delay within its measured uninterrupted duration, its output (if any) is
loaded (it must be complete: the loaders verify hashes), then the same command is rerun and
the output compared file by file with the reference run's. ``NMODAL_KILL_POINTS`` sets the
number of kill points per command (default 10).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nmodal.errors import InputError
from nmodal.features import make_synthetic, write_featureset
from tests.features.datasets import write_dataset

RUN_CLI = Path(__file__).with_name("run_cli.py")
POINTS = int(os.environ.get("NMODAL_KILL_POINTS", "10"))
TIMING = ("seconds", "samples_per_second")


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(RUN_CLI), *args]


def _run(cmd: list[str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return time.monotonic() - start


def _killed(cmd: list[str], delay: float) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _files(root: Path) -> dict[str, bytes]:
    """Every regular, non-hidden file under ``root`` (a lock file is not output)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            data = p.read_bytes()
            if p.name == "history.json":  # wall-clock timings differ between any two runs
                doc = json.loads(data)
                data = json.dumps({k: v for k, v in doc.items() if k not in TIMING}).encode()
            out[str(rel)] = data
    return out


def _no_leftovers(parent: Path, name: str) -> None:
    left = [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.nmodal-")]
    assert not left, left


def _trials(
    tmp: Path,
    name: str,
    prepare: Callable[[Path], list[str]],
    output: Callable[[Path], Path],
    load: Callable[[Path], object],
    resumable: bool = False,
) -> None:
    """``resumable``: the output is built in place and resumed (a feature store), so a killed
    run may leave an incomplete one, which loading must refuse with a clear error; other
    outputs are swapped in whole, so whatever exists after a kill must load."""
    ref_root = tmp / f"{name}-ref"
    ref_root.mkdir()
    cmd = prepare(ref_root)
    took = _run(cmd)
    reference = _files(output(ref_root))
    rng = np.random.default_rng(14)
    for trial in range(POINTS):
        root = tmp / f"{name}-{trial}"
        root.mkdir()
        cmd = prepare(root)
        _killed(cmd, float(rng.uniform(0.0, took)))
        out = output(root)
        if out.exists():
            try:
                load(out)
            except InputError:
                if not resumable:
                    raise
        _run(cmd)
        assert _files(out) == reference, f"{name}: rerun after kill {trial} differs"
        _no_leftovers(out.parent, out.name)
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill-base")
    fs = make_synthetic(400, dim=24, latent_dim=8, noise=0.4, seed=0)
    write_featureset(root / "store", fs)
    write_featureset(root / "half", fs.subset(np.arange(200)))
    train = ["train", str(root / "store"), "--out", str(root / "model"), "--epochs", "2"]
    _run(_cli(*train, "--batch-size", "64", "--dim", "16", "--seed", "0"))
    build = ["index", "build", "--model", str(root / "model"), "--store", str(root / "half")]
    _run(_cli(*build, "--out", str(root / "index-half")))
    return root


@pytest.mark.slow
def test_kill_train(tmp_path: Path, base: Path) -> None:
    from nmodal.model import NModalModel

    def prepare(root: Path) -> list[str]:
        args = ["train", str(base / "store"), "--out", str(root / "model"), "--epochs", "3"]
        return _cli(*args, "--batch-size", "64", "--dim", "16", "--seed", "0", "--overwrite")

    _trials(tmp_path, "train", prepare, lambda r: r / "model", NModalModel.load)


@pytest.mark.slow
def test_kill_index_build(tmp_path: Path, base: Path) -> None:
    from nmodal.index import PostIndex

    def prepare(root: Path) -> list[str]:
        args = ["index", "build", "--model", str(base / "model"), "--store", str(base / "store")]
        return _cli(*args, "--out", str(root / "index"), "--overwrite")

    _trials(tmp_path, "build", prepare, lambda r: r / "index", PostIndex.open)


@pytest.mark.slow
def test_kill_index_add(tmp_path: Path, base: Path) -> None:
    from nmodal.index import PostIndex

    def prepare(root: Path) -> list[str]:
        shutil.copytree(base / "index-half", root / "index")
        args = ["index", "add", str(root / "index"), "--model", str(base / "model")]
        return _cli(*args, "--store", str(base / "store"))

    _trials(tmp_path, "add", prepare, lambda r: r / "index", PostIndex.open)


@pytest.mark.slow
def test_kill_extract(tmp_path: Path) -> None:
    from nmodal.features import read_featureset

    ds = write_dataset(tmp_path / "ds", num_videos=6)

    def prepare(root: Path) -> list[str]:
        args = ["extract", str(ds), "--out", str(root / "store"), "--encoders", "fake"]
        return _cli(*args, "--modalities", "text,video,audio", "--workers", "1",
                    "--shard-size", "2", "--no-progress")  # fmt: skip

    _trials(tmp_path, "extract", prepare, lambda r: r / "store", read_featureset, True)
