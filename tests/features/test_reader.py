"""The piecewise store reader: rows and modalities on demand, checks on load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from nmodal.errors import InputError
from nmodal.features import StoreReader, make_synthetic, read_featureset, write_featureset


def _store(tmp_path: Path, dtype: type = np.float16) -> Path:
    fs = make_synthetic(23, dim=(4, 6, 5), missing_rate=0.3, seed=2, dtype=dtype)
    return write_featureset(tmp_path / "s", fs, shard_size=5)


def test_rows_and_modalities_read_only_what_is_asked(tmp_path: Path) -> None:
    path = _store(tmp_path)
    ref = make_synthetic(23, dim=(4, 6, 5), missing_rate=0.3, seed=2, dtype=np.float16)
    rows = np.array([22, 0, 7, 6, 11, 3])
    fs = read_featureset(path, dtype=None, modalities=["video", "text"], rows=rows)
    assert fs.modalities == ["video", "text"]
    assert fs.post_ids.tolist() == ref.post_ids[rows].tolist()
    for m in fs.modalities:
        assert fs.features[m].dtype == np.float16
        np.testing.assert_array_equal(fs.features[m], ref.features[m][rows])
        np.testing.assert_array_equal(fs.present[m], ref.present[m][rows])
    full = read_featureset(path)  # default: float32, every modality, every row
    assert full.features["image"].dtype == np.float32
    np.testing.assert_array_equal(full.features["image"], ref.features["image"].astype(np.float32))


def test_view_takes_batches_in_any_order(tmp_path: Path) -> None:
    path = _store(tmp_path, np.float32)
    ref = read_featureset(path)
    view = StoreReader(path).view(["text", "image"]).subset(np.arange(3, 20))
    index = np.array([16, 0, 5, 4, 9, 1, 2])
    got = view.take(index)
    np.testing.assert_array_equal(got["image"], ref.features["image"][3:20][index])
    assert view.load().post_ids.tolist() == ref.post_ids[3:20].tolist()


def test_a_changed_shard_fails_its_hash_unless_verify_is_off(tmp_path: Path) -> None:
    path = _store(tmp_path)
    shard = path / "shard-00002.safetensors"
    tensors = load_file(str(shard))
    tensors["text"] = tensors["text"] + np.float16(1)
    save_file(tensors, str(shard))
    with pytest.raises(InputError, match=r"shard-00002\.safetensors: sha256 does not match"):
        read_featureset(path)
    read_featureset(path, rows=[0, 1])  # untouched shards still read
    assert read_featureset(path, verify=False).num_posts == 23


def test_the_global_no_verify_reaches_every_store_read(tmp_path, monkeypatch) -> None:
    """``nmodal --no-verify`` (``$NMODAL_NO_VERIFY``) skips the shards' hashes wherever a
    store is read, ``index build`` included; an explicit ``verify=True`` still checks."""
    path = _store(tmp_path)
    shard = path / "shard-00001.safetensors"
    tensors = load_file(str(shard))
    tensors["image"] = tensors["image"] + np.float16(1)
    save_file(tensors, str(shard))
    monkeypatch.setenv("NMODAL_NO_VERIFY", "1")
    assert read_featureset(path).num_posts == 23
    assert StoreReader(path).view().load().num_posts == 23
    with pytest.raises(InputError, match="sha256 does not match"):
        read_featureset(path, verify=True)


def test_shard_names_that_leave_the_store_are_refused(tmp_path: Path) -> None:
    path = _store(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["shards"][1]["name"] = "../outside"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"'\.\./outside' is not a plain file name"):
        read_featureset(path, verify=False)


def test_wrong_shape_dtype_and_nan_shards_name_the_file(tmp_path: Path) -> None:
    path = _store(tmp_path)
    shard = path / "shard-00001.safetensors"
    good = load_file(str(shard))
    cases = [
        (
            {**good, "text": good["text"][:, :3].copy()},
            r"'text' is F16 \[5, 3\], expected float16 \[5, 4\]",
        ),
        ({**good, "text": good["text"].astype(np.float32)}, "'text' is F32"),
        ({**good, "text": np.full_like(good["text"], np.nan)}, "non-finite features in 'text'"),
    ]
    for tensors, message in cases:
        save_file(tensors, str(shard))
        with pytest.raises(InputError, match=r"shard-00001\.safetensors: .*" + message):
            read_featureset(path, verify=False)
    shard.write_bytes(b"\x01")
    with pytest.raises(InputError, match=r"shard-00001\.safetensors: not a safetensors file"):
        read_featureset(path, verify=False)
