"""`index build` / `index add` stream embeddings to disk and build FAISS from the files:
the index is byte for byte the one the in-memory algorithm builds from the same inputs."""

from __future__ import annotations

import io
from pathlib import Path

import faiss
import numpy as np
import pytest

from nmodal.features import read_featureset, write_featureset
from nmodal.index import add_posts, build_index
from nmodal.index.build import build_modality
from nmodal.index.layout import read_index_manifest
from nmodal.index.tuning import RecallTarget
from nmodal.index.vectors import EmbeddingFile
from nmodal.model import NModalModel
from tests.index.fixtures import MODALITIES, make_collection

TARGET = RecallTarget(recall=0.9, queries=100)


def _in_memory(model_dir: Path, store: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The embeddings the index must hold, computed as before streaming: the present rows
    of each modality embedded at once, zeros elsewhere, posts without any artifact left out."""
    fs = read_featureset(store)
    keep = np.zeros(fs.num_posts, bool)
    for m in MODALITIES:
        keep |= fs.present[m]
    fs = fs.subset(np.flatnonzero(keep))
    model = NModalModel.load(model_dir)
    emb, present = {}, {}
    for m in MODALITIES:
        out = np.zeros((fs.num_posts, model.config.projection_dim), np.float32)
        out[fs.present[m]] = model.embed({m: fs.features[m][fs.present[m]]})[m]
        emb[m], present[m] = out, fs.present[m].copy()
    return emb, present


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("factory", [None, "IVF16,SQ8"])
def test_streamed_build_is_the_in_memory_build(tmp_path: Path, factory: str | None) -> None:
    col = make_collection(tmp_path / "c", num_posts=1200, seed=5)
    out = build_index(col.model, col.store, col.dataset, tmp_path / "i", factory=factory,
                      target=TARGET, batch_size=500, progress=False)  # fmt: skip
    emb, present = _in_memory(col.model, col.store)
    manifest = read_index_manifest(out)
    total = sum(int(p.sum()) for p in present.values())
    for m in MODALITIES:
        assert (out / f"{m}.emb.npy").read_bytes() == _npy_bytes(emb[m])
        np.testing.assert_array_equal(np.load(out / f"{m}.present.npy"), present[m])
        index, info = build_modality(emb, present, m, factory, total, {"nprobe": None}, TARGET)
        stored = faiss.read_index(str(out / f"{m}.faiss"))
        assert bytes(faiss.serialize_index(stored)) == bytes(faiss.serialize_index(index))
        entry = manifest["modalities"][m]
        assert entry.pop("storage") == "memory"  # the build writes it, build_modality does not
        assert {k: v for k, v in entry.items() if k != "encoder"} == info


def test_streamed_add_is_a_rebuild_for_exact_indexes(tmp_path: Path) -> None:
    full = make_collection(tmp_path / "full", num_posts=300, seed=2)
    fs = read_featureset(full.store)
    first = write_featureset(tmp_path / "first", fs.subset(np.arange(200)))
    later = write_featureset(tmp_path / "later", fs.subset(np.arange(120, 300)))
    inc = build_index(full.model, first, full.dataset, tmp_path / "inc", progress=False)
    assert add_posts(inc, full.model, later, batch_size=64, progress=False) > 90
    ref = build_index(full.model, full.store, full.dataset, tmp_path / "ref", progress=False)
    for m in MODALITIES:
        a, b = np.load(inc / f"{m}.emb.npy"), np.load(ref / f"{m}.emb.npy")
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert (inc / f"{m}.present.npy").read_bytes() == (ref / f"{m}.present.npy").read_bytes()
        ia = faiss.read_index(str(inc / f"{m}.faiss"))
        assert ia.ntotal == faiss.read_index(str(ref / f"{m}.faiss")).ntotal
        # the grown index holds exactly the rows of its embedding file
        stored = faiss.rev_swig_ptr(faiss.downcast_index(ia.index).get_xb(), ia.ntotal * a.shape[1])
        rows = np.flatnonzero(np.load(inc / f"{m}.present.npy"))
        ids = faiss.vector_to_array(ia.id_map)
        np.testing.assert_array_equal(np.sort(ids), rows)
        np.testing.assert_array_equal(stored.reshape(ia.ntotal, -1), a[ids])


def test_embedding_file_writes_runs_and_copies(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    want = np.zeros((50, 4), np.float32)
    rows = np.array([0, 1, 2, 7, 8, 30, 49])
    want[rows] = rng.standard_normal((len(rows), 4))
    f = EmbeddingFile(tmp_path / "a.npy", 50, 4)
    f.write(rows, want[rows])
    f.close()
    assert (tmp_path / "a.npy").read_bytes() == _npy_bytes(want)
    g = EmbeddingFile(tmp_path / "b.npy", 60, 4)
    g.copy_rows(tmp_path / "a.npy", 50)
    g.write(np.array([55]), np.ones((1, 4), np.float32))
    g.close()
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy")[:50], want)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy")[55], np.ones(4))
