"""``nmodal extract --ray`` on a local Ray instance: the same store as a local run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nmodal.features import read_featureset
from nmodal.features.extract import extract_features
from nmodal.features.store import StoreWriter, read_store_manifest

from . import fake_encoders  # noqa: F401  (registers the "fake" encoder set)
from .datasets import write_dataset

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

MODS = ("text", "image", "video", "audio")
TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # the decode tasks and encoder actors import the test's fake encoders from tests/
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS_DIR)}},
    )  # fmt: skip
    yield
    ray.shutdown()


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_ray_pipeline_writes_the_local_store(local_ray: None, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=3)
    kw = {"encoders": "fake", "modalities": MODS, "shard_size": 3, "progress": False}
    extract_features(ds, tmp_path / "local", workers=0, **kw)

    # a store with its first shard already written (an interrupted run) is resumed by Ray
    writer_ids = read_featureset(tmp_path / "local").post_ids.tolist()
    local = read_featureset(tmp_path / "local")
    manifest = read_store_manifest(tmp_path / "local")
    w = StoreWriter(
        tmp_path / "ray", writer_ids, {m: manifest["modalities"][m] for m in MODS}, shard_size=3
    )
    w.write_shard(
        0, {m: local.features[m][:3] for m in MODS}, {m: local.present[m][:3] for m in MODS}, []
    )

    result = extract_features(ds, tmp_path / "ray", use_ray=True, **kw)
    assert result.stats.posts_skipped == 3 and result.stats.shards_written == 2
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert extract_features(ds, tmp_path / "ray", use_ray=True, **kw).already_complete
