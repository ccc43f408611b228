"""A hostile file costs only its own post in ``nmodal extract``: a decoder that hangs or
balloons is stopped by the watchdog (:mod:`nmodal.features.limits`), the post's media are
recorded as errors naming the file and the reason, every other post is processed, and a
rerun finds the store complete.

Real worker processes throughout: a real PNG decompression bomb (a small file that decodes
to 192 MB) through ``nmodal extract`` with a memory budget, and a decode that hangs inside C
code holding the GIL through the decode-and-encode pool and the decode-only pool.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nmodal.features import extract as extract_mod
from nmodal.features import read_featureset
from nmodal.features.decode import DecodeSpec, PostJob
from nmodal.features.extract import decoded_stream, resolve_encoders
from nmodal.features.limits import DecodeLimits
from nmodal.sources.posts import read_posts, write_posts
from tests.features import fake_encoders
from tests.features.datasets import write_dataset

RUN_CLI = Path(__file__).with_name("run_cli.py")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
    )


def _bomb(path: Path) -> Path:
    """8000 x 8000 RGB pixels of one colour: a PNG of a few hundred KB, 192 MB decoded."""
    Image.new("RGB", (8000, 8000), (40, 90, 160)).save(path, optimize=False)
    return path


def _with_bomb(root: Path) -> tuple[Path, Path]:
    ds = write_dataset(root, num_videos=3, broken=False)
    bomb = _bomb(ds / "media" / "bomb.png")
    posts = read_posts(ds).to_dict("records")
    posts.insert(1, {"post_id": "ch/bomb", "account": "ch", "text": "a photo that is far too large",
                     "image_path": "media/bomb.png", "status": "kept"})  # fmt: skip
    write_posts(posts, ds)
    return ds, bomb


@pytest.mark.slow
def test_a_decompression_bomb_costs_only_its_post_through_nmodal_extract(tmp_path: Path) -> None:
    ds, bomb = _with_bomb(tmp_path / "ds")
    assert bomb.stat().st_size < 2_000_000
    store = tmp_path / "store"
    args = ["extract", str(ds), "--out", str(store), "--encoders", "fake",
            "--modalities", "text,image,video", "--workers", "2", "--shard-size", "4",
            "--decode-memory-mb", "100", "--no-progress"]  # fmt: skip
    run = _cli(*args)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    errors = [json.loads(line) for line in (store / "errors.jsonl").read_text().splitlines()]
    assert [(e["post_id"], e["modality"], e["path"]) for e in errors] == [
        ("ch/bomb", "image", str(bomb))
    ]
    assert "more than 100 MB" in errors[0]["reason"] and "--decode-memory-mb" in errors[0]["reason"]
    fs = read_featureset(store)
    row = {p: i for i, p in enumerate(fs.post_ids)}
    assert not fs.present["image"][row["ch/bomb"]] and fs.present["text"][row["ch/bomb"]]
    for pid in ("ch/0", "ch/1", "ch/2"):
        assert fs.present["video"][row[pid]] and fs.present["image"][row[pid]]
    assert fs.present["image"][row["ch/photo"]]

    # the good posts' features are those of a run without limits that never saw the bomb
    clean = tmp_path / "clean"
    posts = [p for p in read_posts(ds).to_dict("records") if p["post_id"] != "ch/bomb"]
    write_posts(posts, clean)
    (clean / "media").symlink_to(ds / "media")
    ref_store = tmp_path / "ref"
    ref = _cli("extract", str(clean), "--out", str(ref_store), "--encoders", "fake",
               "--modalities", "text,image,video", "--workers", "0", "--no-progress")  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    want = read_featureset(ref_store)
    for m in ("text", "image", "video"):
        for i, pid in enumerate(want.post_ids):
            assert want.present[m][i] == fs.present[m][row[pid]], (m, pid)
            np.testing.assert_array_equal(want.features[m][i], fs.features[m][row[pid]])

    again = _cli(*args)
    assert again.returncode == 0 and "already complete" in again.stdout, again.stdout


@pytest.mark.slow
def test_a_hanging_decode_is_stopped_in_the_decode_and_encode_pool(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=4, broken=False)
    media = ds / "media"
    jobs = [
        PostJob(f"p{i}", "this one will hang" if i == 2 else f"post {i}",
                str(media / f"v{i}.mp4"), None, None)
        for i in range(4)
    ]  # fmt: skip
    encs = resolve_encoders("fake", ("text", "video"))
    spec = extract_mod.decode_spec(encs, 16, 0, 30.0, 1024)
    units = [(0, 0, 2), (0, 2, 4)]
    start = time.monotonic()
    got = list(
        extract_mod._chunk_results(units, jobs, encs, spec, 2, {"device": "cpu"},
                                   fake_encoders.hanging_decode, DecodeLimits(timeout_s=15.0))
    )  # fmt: skip
    assert time.monotonic() - start < 120
    assert [u for u, _ in got] == units
    first, second = got[0][1], got[1][1]
    assert first.present["video"].all() and not first.errors
    assert second.present["text"].all() and second.present["video"].tolist() == [False, True]
    [err] = second.errors
    assert (err["post_id"], err["modality"], err["path"]) == ("p2", "video", str(media / "v2.mp4"))
    assert "longer than 15 s" in err["reason"] and "--decode-timeout" in err["reason"]
    alone = extract_mod.run_chunk(jobs[3:4], spec, encs)
    np.testing.assert_array_equal(second.features["video"][1], alone.features["video"][0])


@pytest.mark.slow
def test_a_hanging_decode_is_stopped_in_the_decode_only_pool(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=5, broken=False)
    media = ds / "media"
    jobs = [
        PostJob(f"p{i}", "hang" if i == 1 else f"post {i}", str(media / f"v{i}.mp4"), None, None)
        for i in range(5)
    ]
    spec = DecodeSpec(modalities=("text", "video", "image"), video_size=(16, 16))
    out = list(
        decoded_stream(jobs, spec, workers=2, prefetch=4, decode=fake_encoders.hanging_decode,
                       limits=DecodeLimits(timeout_s=15.0))
    )  # fmt: skip
    assert [d.post_id for d in out] == [f"p{i}" for i in range(5)]
    assert all(
        {"video", "image"} <= set(d.items) and not d.errors for i, d in enumerate(out) if i != 1
    )
    assert out[1].items == {"text": "hang"}
    assert [(e["modality"], e["path"]) for e in out[1].errors] == [
        ("video", str(media / "v1.mp4")), ("image", str(media / "v1.mp4"))
    ]  # fmt: skip
    assert all("longer than 15 s" in e["reason"] for e in out[1].errors)


_HOLD_A_WATCHDOG = """
import sys, time
from nmodal.features.limits import DecodeWatchdog
watch = DecodeWatchdog()
print(watch.folder, flush=True)
time.sleep(60)
"""


def test_a_killed_owners_watchdog_folder_is_swept_by_the_next_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 skips the watchdog's cleanup; the next watchdog removes the folder of the
    dead process and leaves a live process's folder (and unrelated folders) alone."""
    import os
    import signal
    import tempfile

    from nmodal.features.limits import DecodeWatchdog, sweep_stale_folders

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_WATCHDOG], stdout=subprocess.PIPE, text=True, env=env
    )
    alive = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_WATCHDOG], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert killed.stdout is not None and alive.stdout is not None
        dead_folder = Path(killed.stdout.readline().strip())
        live_folder = Path(alive.stdout.readline().strip())
        assert dead_folder.parent == tmp_path and dead_folder.name.startswith(
            f"nmodal-decode-{killed.pid}-"
        )
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert dead_folder.is_dir()  # nothing cleaned it up
        unrelated = tmp_path / "nmodal-decode-legacy"  # no pid in the name: not ours to judge
        unrelated.mkdir()

        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        with DecodeWatchdog() as watch:
            assert Path(watch.folder).parent == tmp_path
            assert not dead_folder.exists()
            assert live_folder.is_dir() and unrelated.is_dir()
            assert sweep_stale_folders(str(tmp_path)) == []  # its own folder stays
        assert not Path(watch.folder).exists()
    finally:
        alive.kill()
        alive.wait()
