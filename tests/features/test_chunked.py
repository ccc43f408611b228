"""Decode-and-encode workers: same bytes for any number of workers, equal to encoding each
post alone in this process, and a crashing decoder costs only its posts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmodal.encoders import encoder_set
from nmodal.features import extract as extract_mod
from nmodal.features import read_featureset
from nmodal.features.chunks import CHUNK_POSTS
from nmodal.features.decode import PostJob, decode_post
from nmodal.features.extract import extract_features, load_jobs, resolve_encoders

from . import fake_encoders
from .datasets import write_dataset

MODS = ("text", "image", "video", "audio")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds"), num_videos=4)


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_offline_store_is_byte_identical_for_1_and_2_workers_and_equals_per_post_encoding(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chunks of 2 posts, shards of 3: chunks end at shard ends, several chunks per shard
    monkeypatch.setattr(extract_mod, "CHUNK_POSTS", 2)
    kw = {"encoders": "offline", "modalities": MODS, "shard_size": 3, "progress": False}
    one = extract_features(dataset, tmp_path / "w1", workers=1, device="cpu", **kw)
    two = extract_features(dataset, tmp_path / "w2", workers=2, device="cpu", **kw)
    assert one.stats.cores == 1 and two.stats.cores == 2
    assert _files(tmp_path / "w1") == _files(tmp_path / "w2")

    # independent: each post decoded and encoded alone, in this process, by the torch fp32
    # path (the store was encoded by OpenVINO or onnxruntime when installed)
    torch_path = {"image": {"backend": "torch"}, "video": {"backend": "torch"}}
    encs = encoder_set("offline", modalities=MODS, device="cpu", settings=torch_path)
    spec = extract_mod.decode_spec(encs, 16, 0, 30.0, 1024)
    fs = read_featureset(tmp_path / "w1")
    row = {pid: i for i, pid in enumerate(fs.post_ids)}
    checked = 0
    for job in load_jobs(dataset):
        decoded = decode_post(job, spec)
        for m, item in decoded.items.items():
            want = np.asarray(encs[m].encode([item]), np.float32)[0]
            assert fs.present[m][row[job.post_id]]
            np.testing.assert_allclose(fs.features[m][row[job.post_id]], want, atol=1e-4)
            checked += 1
    assert checked >= 10


def test_chunk_units_never_cross_a_shard(dataset: Path, tmp_path: Path) -> None:
    from nmodal.features.store import StoreWriter

    ids = [f"p{i}" for i in range(40)]
    writer = StoreWriter(tmp_path / "s", ids, {"text": {"dim": 4, "encoder": {}}}, shard_size=20)
    units = extract_mod.chunk_units(writer, writer.pending_shards())
    c = CHUNK_POSTS
    want = [
        (k, a, min(a + c, 20 * (k + 1))) for k in (0, 1) for a in range(20 * k, 20 * (k + 1), c)
    ]
    assert units == want
    assert all(lo < hi <= 20 * (k + 1) and hi - lo <= c for k, lo, hi in units)


def test_a_crashing_decoder_costs_only_its_posts_in_encode_workers(dataset: Path) -> None:
    media = dataset / "media"
    jobs = [
        PostJob(f"p{i}", "segfault here" if i == 2 else f"post {i}", str(media / f"v{i}.mp4"),
                None, None)
        for i in range(4)
    ]  # fmt: skip
    encs = resolve_encoders("fake", ("text", "video"))
    spec = extract_mod.decode_spec(encs, 16, 0, 30.0, 1024)
    units = [(0, 0, 2), (0, 2, 4)]
    got = list(
        extract_mod._chunk_results(
            units, jobs, encs, spec, 2, {"device": "cpu"}, fake_encoders.crashing_decode
        )
    )
    assert [u for u, _ in got] == units
    first, second = got[0][1], got[1][1]
    assert first.present["video"].all() and first.present["text"].all() and not first.errors
    assert second.present["text"].all() and second.present["video"].tolist() == [False, True]
    assert [(e["post_id"], e["reason"]) for e in second.errors] == [
        ("p2", "the decoder process crashed on this post")
    ]
    # the surviving post's features are those of an uncrashed run
    alone = extract_mod.run_chunk(jobs[3:4], spec, encs)
    np.testing.assert_array_equal(second.features["video"][1], alone.features["video"][0])
