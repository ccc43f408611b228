"""Index building: files, model fingerprint, approximate recall, incremental add, CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from nmodal.cli import main
from nmodal.errors import InputError, OutputExistsError
from nmodal.features import read_featureset, write_featureset
from nmodal.index import PostIndex, QueryEncoder, add_posts, build_index
from nmodal.index.factory import choose_factory, default_nprobe, nlist_for
from nmodal.index.layout import model_fingerprint, read_index_manifest, write_directory_atomically
from nmodal.model import HeadConfig, ModelConfig, NModalModel
from tests.index.fixtures import (
    MODALITIES,
    Collection,
    FakeEncoder,
    brute_force_scores,
    fake_encoder_source,
    make_collection,
    reference_embeddings,
)


def test_index_files_are_not_pickles(exact_index: Path):
    manifest = json.loads((exact_index / "manifest.json").read_text())
    assert manifest["format"] == "nmodal-post-index"
    suffixes = {p.name.split(".", 1)[1] for p in exact_index.iterdir()}
    assert suffixes == {"json", "parquet", "emb.npy", "present.npy", "faiss"}
    for m in MODALITIES:
        np.load(exact_index / f"{m}.emb.npy", allow_pickle=False)
        assert manifest["modalities"][m]["factory"] == "Flat"
        assert manifest["modalities"][m]["encoder"]["name"] == "synthetic"


def test_build_refuses_existing_output(collection: Collection, exact_index: Path):
    with pytest.raises(OutputExistsError):
        build_index(
            collection.model, collection.store, collection.dataset, exact_index, progress=False
        )


def _index_like(d: Path, text: str) -> None:
    (d / "a.txt").write_text(text)
    (d / "manifest.json").write_text(json.dumps({"format": "nmodal-post-index"}))


def test_failed_write_leaves_old_directory_intact(tmp_path: Path):
    out = tmp_path / "out"
    write_directory_atomically(out, lambda d: _index_like(d, "old"))

    def broken(d: Path) -> None:
        (d / "a.txt").write_text("new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_directory_atomically(out, broken, overwrite=True)
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dirs left behind
    write_directory_atomically(out, lambda d: (d / "b.txt").write_text("new"), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_overwrite_never_replaces_a_folder_that_is_not_an_index(tmp_path: Path):
    out = tmp_path / "papers"
    out.mkdir()
    (out / "thesis.docx").write_text("mine")
    with pytest.raises(OutputExistsError, match="other than an nmodal index"):
        write_directory_atomically(out, lambda d: _index_like(d, "new"), overwrite=True)
    assert (out / "thesis.docx").read_text() == "mine"


def test_choose_factory_by_size():
    assert choose_factory(300_000, total_artifacts=900_000, dim=256) == "Flat"
    assert choose_factory(1_000_000, total_artifacts=3_000_000, dim=256) == "IVF1024,SQ8"
    assert choose_factory(50_000_000, total_artifacts=150_000_000, dim=256).endswith(",PQ32")
    assert nlist_for(100) == 2  # never more lists than training allows (39 vectors per list)
    assert default_nprobe("IVF1024,SQ8") == 16
    assert default_nprobe("Flat") is None


def test_approximate_index_recall(tmp_path: Path):
    """IVF+SQ8 finds most of the exact top 10; probing every list finds (nearly) all."""
    col = make_collection(tmp_path / "c", num_posts=2000, seed=4)
    exact = PostIndex.open(
        build_index(col.model, col.store, col.dataset, tmp_path / "x", progress=False)
    )
    approx_dir = build_index(
        col.model,
        col.store,
        col.dataset,
        tmp_path / "a",
        factory="IVF16,SQ8",
        nprobe=4,
        progress=False,
    )
    ids, emb, present = reference_embeddings(col)
    rows = np.flatnonzero(present["text"])[:60]
    recalls = {}
    for nprobe in (4, 16):
        approx = PostIndex.open(approx_dir, nprobe=nprobe)
        hits = []
        for r in rows:
            q = emb["text"][r : r + 1]
            got = approx.search(["text"], q, k=10)
            want = exact.search(["text"], q, k=10)
            assert not got.exact and want.exact
            hits.append(len({h.post_id for h in got.hits} & {h.post_id for h in want.hits}) / 10)
            # scores of what is returned are exact post scores, not quantised ones
            ref = brute_force_scores(emb, present, ["text"], q, MODALITIES)
            for h in got.hits:
                assert h.score == pytest.approx(
                    ref[int(np.flatnonzero(ids == h.post_id)[0])], abs=1e-5
                )
        recalls[nprobe] = float(np.mean(hits))
    assert recalls[16] >= 0.98
    assert recalls[4] >= 0.7
    assert recalls[4] <= recalls[16]


def test_incremental_add_equals_full_rebuild(tmp_path: Path):
    full = make_collection(tmp_path / "full", num_posts=150, seed=2)
    fs = read_featureset(full.store)
    first = write_featureset(tmp_path / "first", fs.subset(np.arange(100)))
    later = write_featureset(tmp_path / "later", fs.subset(np.arange(60, 150)))  # overlaps 60..99
    inc = build_index(full.model, first, full.dataset, tmp_path / "inc", progress=False)
    assert add_posts(inc, full.model, later, progress=False) == 50
    assert add_posts(inc, full.model, later, progress=False) == 0  # nothing new the second time
    ref = build_index(full.model, full.store, full.dataset, tmp_path / "ref", progress=False)
    a, b = PostIndex.open(inc), PostIndex.open(ref)
    assert a.post_ids.tolist() == b.post_ids.tolist()
    assert a.posts.equals(b.posts)
    for m in MODALITIES:
        np.testing.assert_array_equal(a.present[m], b.present[m])
        np.testing.assert_allclose(np.asarray(a.emb[m]), np.asarray(b.emb[m]), atol=1e-6)
        assert a.indexes[m].ntotal == b.indexes[m].ntotal
    for pid in ("post-00003", "post-00120", "post-00149"):
        ra, rb = a.more_like_this(pid, k=10), b.more_like_this(pid, k=10)
        assert [h.post_id for h in ra.hits] == [h.post_id for h in rb.hits]
        np.testing.assert_allclose(
            [h.score for h in ra.hits], [h.score for h in rb.hits], atol=1e-6
        )


def test_add_from_a_store_without_one_of_the_indexed_modalities(tmp_path: Path):
    """New posts extracted without video (``--modalities text,image``) go into a
    text+image+video index: they are indexed without video, as ``index build`` would."""
    full = make_collection(tmp_path / "full", num_posts=120, seed=3)
    fs = read_featureset(full.store)
    first = write_featureset(tmp_path / "first", fs.subset(np.arange(80)))
    later_fs = fs.subset(np.arange(80, 120)).select(["text", "image"])
    later = write_featureset(tmp_path / "later", later_fs)
    inc = build_index(full.model, first, full.dataset, tmp_path / "inc", progress=False)
    n_old = PostIndex.open(inc).num_posts
    added = add_posts(inc, full.model, later, progress=False)
    has_any = later_fs.present["text"] | later_fs.present["image"]
    assert added == int(has_any.sum())
    index = PostIndex.open(inc)
    new = slice(n_old, n_old + added)
    assert not index.present["video"][new].any()
    assert index.indexes["video"].ntotal == int(index.present["video"].sum())
    np.testing.assert_array_equal(np.asarray(index.emb["video"][new]), 0)
    ref = build_index(full.model, later, full.dataset, tmp_path / "ref", progress=False)
    r = PostIndex.open(ref)
    rows = [r.row_of(str(pid)) for pid in index.post_ids[new]]
    np.testing.assert_allclose(
        np.asarray(index.emb["text"][new]), np.asarray(r.emb["text"])[rows], atol=1e-6
    )
    hits = index.more_like_this(str(index.post_ids[85]), k=5).hits
    assert len(hits) == 5


def test_mismatched_model_is_refused(collection: Collection, exact_index: Path, tmp_path: Path):
    other = tmp_path / "other-model"
    cfg = NModalModel.load(collection.model).config
    NModalModel(
        ModelConfig(
            modalities=cfg.modalities,
            input_dims=cfg.input_dims,
            head=HeadConfig(projection_dim=16),
            encoders=cfg.encoders,
        )
    ).save(other)
    assert model_fingerprint(other) != model_fingerprint(collection.model)
    with pytest.raises(InputError, match="fingerprint"):
        add_posts(exact_index, other, collection.store, progress=False)
    manifest = json.loads((exact_index / "manifest.json").read_text())
    encoder = QueryEncoder.for_index(manifest, other, fake_encoder_source)
    with pytest.raises(InputError, match="fingerprint"):
        encoder.encode("text", "hello")


def test_store_with_other_encoder_is_refused(collection: Collection, tmp_path: Path):
    fs = read_featureset(collection.store)
    fs.encoders["video"] = {"name": "some-other-encoder", "version": "1"}
    store = write_featureset(tmp_path / "store", fs)
    with pytest.raises(InputError, match="encoder"):
        build_index(collection.model, store, collection.dataset, tmp_path / "idx", progress=False)


def test_query_encoder_uses_encoder_then_head(collection: Collection, exact_index: Path):
    manifest = json.loads((exact_index / "manifest.json").read_text())
    encoder = QueryEncoder.for_index(manifest, encoder_source=fake_encoder_source)
    got = encoder.encode("text", "convoy on the bridge")
    model = NModalModel.load(collection.model)
    features = FakeEncoder("text", 24).encode(["convoy on the bridge"])
    want = model.embed({"text": features})["text"]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.shape == (1, 16)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="empty"):
        encoder.encode("text", "   ")
    with pytest.raises(InputError, match="audio"):
        encoder.encode("audio", collection.dataset / "posts.parquet")


def test_query_encoder_decodes_media(collection: Collection, exact_index: Path):
    from nmodal.errors import MediaError

    manifest = json.loads((exact_index / "manifest.json").read_text())
    encoder = QueryEncoder.for_index(manifest, encoder_source=fake_encoder_source)
    image = next((collection.dataset / "media").glob("*.png"))
    assert encoder.encode("image", image).shape == (1, 16)
    broken = collection.root / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(MediaError):
        encoder.encode("image", broken)
    with pytest.raises(InputError, match="no such file"):
        encoder.encode("image", collection.root / "missing.png")


def test_cli_build_add_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    col = make_collection(tmp_path / "c", num_posts=120, seed=5)
    fs = read_featureset(col.store)
    part = write_featureset(tmp_path / "part", fs.subset(np.arange(80)))
    out = tmp_path / "idx"
    argv = [
        "index",
        "build",
        "--model",
        str(col.model),
        "--store",
        str(part),
        "--posts",
        str(col.dataset),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert main(argv) == 1  # exists
    assert "exists" in capsys.readouterr().err
    assert (
        main(["index", "add", str(out), "--model", str(col.model), "--store", str(col.store)]) == 0
    )
    assert "added 40 new posts" in capsys.readouterr().out
    assert main(["index", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_posts"] == PostIndex.open(out).num_posts > 80
    assert info["model"]["fingerprint"] == model_fingerprint(col.model)

    assert (
        main(
            [
                "search",
                str(out),
                "--post",
                "post-00010",
                "-k",
                "5",
                "--account",
                "alpha,charlie",
                "--since",
                "2024-01-15",
                "--json",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    # search's defaults: every modality, the query's own included, best pair (max)
    lib = PostIndex.open(out).more_like_this("post-00010", k=5, collation="max", include_same=True)
    assert printed["exact"] is True
    assert len(printed["hits"]) == 5
    assert all(h["post"]["account"] in ("alpha", "charlie") for h in printed["hits"])
    assert all(h["post"]["date"] >= "2024-01-15" for h in printed["hits"])
    assert main(["search", str(out), "--post", "post-00010", "-k", "5"]) == 0
    table = capsys.readouterr().out
    assert lib.hits[0].post_id in table and "5 posts (max" in table

    # the synthetic store names no real encoder: a text query fails with one clear line
    assert main(["search", str(out), "--text", "anything"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmodal search: error:") and "synthetic" in err
    assert main(["search", str(out), "--post", "nope"]) == 1
    assert "not in index" in capsys.readouterr().err


def test_missing_metadata_is_warned(collection: Collection, tmp_path: Path):
    empty = tmp_path / "ds"
    empty.mkdir()
    import pandas as pd

    pd.DataFrame({"post_id": ["post-00000"], "status": ["kept"]}).to_parquet(
        empty / "posts.parquet"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = build_index(
            collection.model, collection.store, empty, tmp_path / "idx", progress=False
        )
    assert any("no metadata" in str(w.message) for w in caught)
    index = PostIndex.open(out)
    assert index.post(index.row_of("post-00001"))["account"] is None


def _centroids(index) -> np.ndarray:
    import faiss

    ivf = faiss.extract_index_ivf(index)
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def test_ivf_centroids_are_retrained_once_the_index_has_grown(tmp_path: Path):
    full = make_collection(tmp_path / "full", num_posts=300, seed=3)
    fs = read_featureset(full.store)
    first = write_featureset(tmp_path / "first", fs.subset(np.arange(80)))
    small = write_featureset(tmp_path / "small", fs.subset(np.arange(100)))
    fac = "IVF4,Flat"

    def built(name: str) -> Path:
        return build_index(full.model, first, full.dataset, tmp_path / name, factory=fac,
                           progress=False)  # fmt: skip

    ref = PostIndex.open(
        build_index(
            full.model, full.store, full.dataset, tmp_path / "ref", factory=fac, progress=False
        )
    )
    probe = built("probe")
    trained = {m: read_index_manifest(probe)["modalities"][m]["trained_on"] for m in MODALITIES}

    auto = built("auto")
    assert add_posts(auto, full.model, small, progress=False) == 20  # 80 -> 100: kept
    kept = PostIndex.open(auto)
    for m in MODALITIES:
        assert read_index_manifest(auto)["modalities"][m]["trained_on"] == trained[m]
        np.testing.assert_array_equal(
            _centroids(kept.indexes[m]), _centroids(PostIndex.open(probe).indexes[m])
        )
    # 100 -> 300 posts: more than twice what the centroids saw, retrained
    assert add_posts(auto, full.model, full.store, progress=False) == ref.num_posts - kept.num_posts
    never = built("never")
    add_posts(never, full.model, full.store, progress=False, retrain="never")
    grown, stale = PostIndex.open(auto), PostIndex.open(never)
    for m in MODALITIES:
        info = read_index_manifest(auto)["modalities"][m]
        assert info["trained_on"] == info["count"] == ref.indexes[m].ntotal
        # retrained on all vectors = rebuilt with the same factory
        np.testing.assert_allclose(
            _centroids(grown.indexes[m]), _centroids(ref.indexes[m]), atol=1e-4
        )
        assert read_index_manifest(never)["modalities"][m]["trained_on"] == trained[m]
        assert not np.allclose(_centroids(stale.indexes[m]), _centroids(ref.indexes[m]), atol=1e-3)
        assert stale.indexes[m].ntotal == grown.indexes[m].ntotal
    with pytest.raises(InputError, match="retrain must be one of"):
        add_posts(never, full.model, full.store, progress=False, retrain="sometimes")
