"""The sharded feature store: round trips, resume rules, atomicity, errors, old layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from nmodal.errors import InputError, OutputExistsError
from nmodal.features import FeatureSet, make_synthetic, read_featureset, write_featureset
from nmodal.features.store import StoreWriter, read_errors, read_store_manifest


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_round_trip_in_shards_with_missing_modalities(tmp_path: Path) -> None:
    fs = make_synthetic(25, dim=(8, 6, 4), missing_rate=0.3, seed=1)
    write_featureset(tmp_path / "s", fs, shard_size=10)
    back = read_featureset(tmp_path / "s")
    assert back.post_ids.tolist() == fs.post_ids.tolist()
    for m in fs.modalities:
        np.testing.assert_array_equal(back.present[m], fs.present[m])
        np.testing.assert_array_equal(back.features[m], fs.features[m])
    assert back.encoders == fs.encoders
    manifest = read_store_manifest(tmp_path / "s")
    assert manifest["num_shards"] == 3 and [s["num_posts"] for s in manifest["shards"]] == [
        10,
        10,
        5,
    ]
    assert manifest["complete"] and manifest["modalities"]["image"]["dim"] == 6


def test_float16_store_and_subsets(tmp_path: Path) -> None:
    fs = make_synthetic(12, dim=5, seed=2, dtype=np.float16)
    write_featureset(tmp_path / "s", fs, shard_size=5)
    assert read_store_manifest(tmp_path / "s")["dtype"] == "float16"
    raw = read_featureset(tmp_path / "s", dtype=None)
    assert raw.features["text"].dtype == np.float16
    sub = read_featureset(tmp_path / "s", modalities=["video", "text"])
    assert sub.modalities == ["video", "text"] and sub.features["text"].dtype == np.float32
    with pytest.raises(InputError, match="no modality 'audio'"):
        read_featureset(tmp_path / "s", modalities=["audio"])


def test_write_featureset_refuses_to_overwrite(tmp_path: Path) -> None:
    fs = make_synthetic(4, dim=3)
    write_featureset(tmp_path / "s", fs)
    with pytest.raises(OutputExistsError):
        write_featureset(tmp_path / "s", fs)
    write_featureset(tmp_path / "s", make_synthetic(6, dim=3), overwrite=True)
    assert read_featureset(tmp_path / "s").num_posts == 6
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temp dirs left behind


def _writer(path: Path, ids: list[str], **kw: object) -> StoreWriter:
    return StoreWriter(
        path, ids, {"text": {"dim": 2, "encoder": {"name": "t"}}}, shard_size=2, **kw
    )  # type: ignore[arg-type]


def _write(w: StoreWriter, k: int) -> None:
    lo, hi = w.shard_bounds(k)
    x = np.arange(lo, hi, dtype=np.float32)[:, None].repeat(2, axis=1)
    present = np.array([i % 3 != 0 for i in range(lo, hi)])
    errors = [
        {
            "post_id": w.post_ids[i],
            "modality": "text",
            "stage": "decode",
            "reason": "r",
            "path": None,
        }
        for i in range(lo, hi)
        if i % 3 == 0
    ]
    w.write_shard(k, {"text": x}, {"text": present}, errors)


def test_resume_writes_only_missing_shards_and_matches_one_go(tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(5)]
    whole = _writer(tmp_path / "a", ids)
    for k in whole.pending_shards():
        _write(whole, k)
    whole.finish()

    first = _writer(tmp_path / "b", ids)
    _write(first, 0)  # ... and the process dies here
    again = _writer(tmp_path / "b", ids)
    assert again.pending_shards() == [1, 2] and not again.complete
    with pytest.raises(InputError, match="incomplete"):
        read_featureset(tmp_path / "b")
    assert read_featureset(tmp_path / "b", allow_partial=True).num_posts == 2
    for k in again.pending_shards():
        _write(again, k)
    again.finish()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _writer(tmp_path / "b", ids).complete
    fs = read_featureset(tmp_path / "b")
    np.testing.assert_array_equal(fs.present["text"], [False, True, True, False, True])
    assert (fs.features["text"][~fs.present["text"]] == 0).all()  # absent rows hold zeros
    assert [e["post_id"] for e in read_errors(tmp_path / "b")] == ["p0", "p3"]
    lines = (tmp_path / "b" / "errors.jsonl").read_text().splitlines()
    assert [json.loads(line)["post_id"] for line in lines] == ["p0", "p3"]


def test_resume_refuses_a_different_plan(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    _writer(tmp_path / "s", ids)
    with pytest.raises(InputError, match="posts_sha256"):
        _writer(tmp_path / "s", ["a", "b", "x"])
    with pytest.raises(InputError, match="modalities"):
        StoreWriter(
            tmp_path / "s", ids, {"text": {"dim": 2, "encoder": {"name": "other"}}}, shard_size=2
        )
    with pytest.raises(InputError, match="dtype"):
        _writer(tmp_path / "s", ids, dtype="float16")
    fresh = _writer(tmp_path / "s", ["x"], overwrite=True)
    assert fresh.num_shards == 1


def test_writer_checks_its_input(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not an empty feature store"):
        _writer(tmp_path / "junk", ["a"])
    with pytest.raises(InputError, match="not unique"):
        _writer(tmp_path / "s", ["a", "a"])
    w = _writer(tmp_path / "s", ["a", "b", "c"])
    with pytest.raises(InputError, match="expected"):
        w.write_shard(0, {"text": np.zeros((3, 2))}, {"text": np.ones(3, bool)})
    with pytest.raises(InputError, match="non-finite"):
        w.write_shard(0, {"text": np.full((2, 2), np.nan)}, {"text": np.ones(2, bool)})
    with pytest.raises(InputError, match="not written yet"):
        w.finish()
    with pytest.raises(InputError, match="lacks"):
        w.write_shard(0, {"text": np.zeros((2, 2))}, {"text": np.ones(2, bool)}, [{"post_id": "a"}])
    h = StoreWriter(tmp_path / "h", ["a"], {"text": {"dim": 1}}, dtype="float16")
    with pytest.raises(InputError, match="float16 range"):
        h.write_shard(0, {"text": np.array([[1e6]])}, {"text": np.ones(1, bool)})


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    w = _writer(tmp_path / "s", ["a"])
    with (
        w.locked(),
        pytest.raises(InputError, match="another process"),
        _writer(tmp_path / "s", ["a"]).locked(),
    ):
        pass


def test_reads_the_version_1_single_shard_layout(tmp_path: Path) -> None:
    path = tmp_path / "old"
    path.mkdir()
    save_file(
        {"text": np.ones((2, 3), np.float32), "text.present": np.array([1, 0], np.uint8)},
        str(path / "shard-00000.safetensors"),
    )
    (path / "shard-00000.ids.json").write_text('["a", "b"]')
    manifest = {
        "format": "nmodal-feature-store", "version": 1, "num_posts": 2,
        "modalities": {"text": {"dim": 3, "dtype": "float32", "encoder": {}}},
        "shards": [{"name": "shard-00000", "num_posts": 2}], "complete": True,
    }  # fmt: skip
    (path / "manifest.json").write_text(json.dumps(manifest))
    fs = read_featureset(path)
    assert isinstance(fs, FeatureSet) and fs.present["text"].tolist() == [True, False]


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a feature store"):
        read_featureset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"unreadable manifest\.json"):
        read_featureset(tmp_path)


KILLED_SWAP = r"""
import os, signal, sys
from pathlib import Path
from nmodal import atomic
from nmodal.features import make_synthetic, write_featureset
step = int(sys.argv[2])
real_rename, count = os.rename, [0]
def rename(a, b):
    count[0] += 1
    if count[0] == step:
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(a, b)
atomic.os.rename = rename
write_featureset(Path(sys.argv[1]), make_synthetic(12, dim=8, seed=1), overwrite=True, shard_size=5)
"""


def test_a_store_replace_killed_at_each_step_reads_as_the_old_or_the_new(tmp_path: Path) -> None:
    """kill -9 of ``write_featureset`` at each rename of its swap, then a plain read: the
    reader (like every loader) recovers the folder, and finds one complete version."""
    import os
    import subprocess
    import sys

    from nmodal.features import StoreReader

    old, new = make_synthetic(12, dim=8, seed=0), make_synthetic(12, dim=8, seed=1)
    outcomes = []
    for step in (1, 2, 3, 4):
        root = tmp_path / f"s{step}"
        root.mkdir()
        store = write_featureset(root / "store", old, shard_size=5)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        run = subprocess.run([sys.executable, "-c", KILLED_SWAP, str(store), str(step)], env=env)
        assert run.returncode in (0, -9)
        got = read_featureset(store)
        which = [
            name for name, fs in (("old", old), ("new", new))
            if all(np.array_equal(got.features[m], fs.features[m]) for m in fs.features)
        ]  # fmt: skip
        assert len(which) == 1, step
        outcomes.append(which[0])
        assert [p.name for p in root.iterdir()] == ["store"], step  # no leftovers
        assert StoreReader(store).manifest["complete"]
        if step == 3:  # killed after the commit point (old moved aside): the new one wins
            assert which == ["new"]
    assert "old" in outcomes and "new" in outcomes, outcomes
